package broker

import (
	"bytes"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// takeoverGuard works around a race in mochi (v2.7.9) between a clean session that ends
// and a new connection with the same client ID: the ending session's goroutine removes
// its client ID from the server's client list after its disconnect hook, and when the new
// connection has been added to that list in the meantime, that removal drops the new
// client instead. The new client stays connected and can publish, but the broker no
// longer delivers it anything: its subscriptions point to an ID with no client. A device
// that reconnects at once (a changed broker setting, its link bounced) hits it when the
// host is busy: with 16 simulated devices, one of them answered nothing over MQTT for
// minutes while its telemetry kept coming.
//
// The guard holds a new session, before the broker reads its first packet, until the
// previous session of its ID has gone through its disconnect and its removal from the
// client list; it then puts the new client back in the list if that removal dropped it.
type takeoverGuard struct {
	mqtt.HookBase
	srv *mqtt.Server

	mu       sync.Mutex
	sessions map[*mqtt.Client]*session // connected, by client
	latest   map[string]*session       // the latest session of each client ID, until shortly after it ends
}

// session is one connection's session, as the guard follows it.
type session struct {
	cl   *mqtt.Client
	gone chan struct{} // closed when its disconnect hook ran
}

// takeoverWait bounds how long a new session waits for its predecessor's cleanup.
const takeoverWait = 2 * time.Second

func newTakeoverGuard(srv *mqtt.Server) *takeoverGuard {
	return &takeoverGuard{srv: srv, sessions: map[*mqtt.Client]*session{}, latest: map[string]*session{}}
}

func (g *takeoverGuard) ID() string { return "hilt-takeover-guard" }

func (g *takeoverGuard) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSessionEstablished, mqtt.OnDisconnect}, []byte{b})
}

// OnSessionEstablished runs after the client was added to the list and acknowledged,
// before its packets are read.
func (g *takeoverGuard) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	g.mu.Lock()
	prev := g.latest[cl.ID]
	s := &session{cl: cl, gone: make(chan struct{})}
	g.sessions[cl], g.latest[cl.ID] = s, s
	g.mu.Unlock()
	if prev == nil || prev.cl == cl {
		return
	}
	deadline := time.NewTimer(takeoverWait)
	defer deadline.Stop()
	select {
	case <-prev.gone:
	case <-deadline.C:
		return
	}
	// Between its disconnect hook and its removal from the list the old session's
	// goroutine does no waiting: look until it is done.
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		cur, ok := g.srv.Clients.Get(cl.ID)
		switch {
		case ok && cur == cl:
			return // the removal came first, or did not happen (taken over)
		case !ok:
			g.srv.Clients.Add(cl) // the removal dropped the new client: put it back
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return
		}
	}
}

// OnDisconnect marks the session gone, and forgets it once no successor can need it.
func (g *takeoverGuard) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sessions[cl]
	if s == nil {
		return
	}
	close(s.gone)
	delete(g.sessions, cl)
	id := cl.ID
	time.AfterFunc(takeoverWait, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.latest[id] == s {
			delete(g.latest, id)
		}
	})
}
