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
// previous session of its ID has gone through its disconnect and, where the broker will
// remove it (a clean session not taken over), until that removal: it then puts the new
// client back in the list, which the removal dropped. The broker unsubscribes the old
// session by client ID just before removing it, so the new session's subscriptions, read
// after the guard lets it go, are made after that.
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
	// Set before gone is closed: whether the broker goes on to remove the client ID from
	// its list (a clean session not taken over), and when the hook ran.
	removal bool
	goneAt  time.Time
}

const (
	// takeoverWait bounds how long a new session waits for its predecessor's disconnect.
	takeoverWait = 2 * time.Second
	// removalWait bounds, from the predecessor's disconnect hook, the wait for its removal
	// from the list: the broker's goroutine does no waiting in between, so this is only
	// scheduling delay on a busy host; a removal done before the new client was added is
	// not seen at all and costs this wait once.
	removalWait = 500 * time.Millisecond
	// forgetAfter is how long an ended session is kept for a successor to find.
	forgetAfter = takeoverWait
)

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
	if !prev.removal {
		return // taken over, or a persistent session: the broker removes nothing
	}
	// The old session's goroutine unsubscribes and removes its client ID next: wait for
	// the removal (the ID missing from the list) and put the new client back.
	limit := prev.goneAt.Add(removalWait)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		if cur, ok := g.srv.Clients.Get(cl.ID); !ok {
			g.srv.Clients.Add(cl)
			return
		} else if cur != cl {
			return // a newer session replaced this one: it is that session's to guard
		}
		if time.Now().After(limit) {
			return // the removal came before the new client was added, or never
		}
		<-tick.C
	}
}

// OnDisconnect marks the session gone, with whether the broker will remove its client ID
// (the broker's own test, made right after this hook), and forgets it a little later.
func (g *takeoverGuard) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sessions[cl]
	if s == nil {
		return
	}
	s.removal, s.goneAt = expire && !cl.IsTakenOver(), time.Now()
	close(s.gone)
	delete(g.sessions, cl)
	id := cl.ID
	time.AfterFunc(forgetAfter, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.latest[id] == s {
			delete(g.latest, id)
		}
	})
}
