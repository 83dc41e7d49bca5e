package broker

import (
	"bytes"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// takeoverGuard works around a race in mochi (v2.7.9) between a clean session that ends
// and a new connection with the same client ID. After its disconnect hook, the ending
// session's goroutine checks whether it was taken over and, if not, unsubscribes its
// client ID and removes it from the server's client list. A new connection with that ID
// takes the old session over (which cancels that removal) and adds itself to the list.
// When the new connection's takeover comes after the check but its addition before the
// removal, the removal drops the new client: it stays connected and can publish, but the
// broker delivers it nothing, its subscriptions pointing to an ID with no client. A
// device that reconnects at once (a changed broker setting, its link bounced) hits it
// when the host is busy: with 16 simulated devices, one of them answered nothing over
// MQTT for minutes while its telemetry kept coming.
//
// The guard orders the two, per client ID, so that the removal either happens before the
// new connection looks for a session to take over, or not at all:
//   - an ending session whose disconnect hook runs while a new connection of its ID is
//     arriving (between OnSessionEstablish and OnSessionEstablished) waits, in that hook,
//     until the new connection has taken it over: its check then finds it taken over;
//   - a new connection that arrives after an ending session's hook found no one arriving
//     (so that the session will remove its ID) waits, before it looks for a session to
//     take over, until that removal is done.
//
// Each wait is bounded by takeoverWait.
type takeoverGuard struct {
	mqtt.HookBase
	srv *mqtt.Server

	mu       sync.Mutex
	arriving map[string]*arrival     // by client ID: a connection between its two session hooks
	ending   map[string]*mqtt.Client // by client ID: a session that will remove its ID
}

// arrival is a new connection on its way to being established.
type arrival struct {
	cl          *mqtt.Client
	established chan struct{} // closed in OnSessionEstablished
}

// takeoverWait bounds each wait of the guard.
const takeoverWait = 2 * time.Second

func newTakeoverGuard(srv *mqtt.Server) *takeoverGuard {
	return &takeoverGuard{srv: srv, arriving: map[string]*arrival{}, ending: map[string]*mqtt.Client{}}
}

func (g *takeoverGuard) ID() string { return "hilt-takeover-guard" }

func (g *takeoverGuard) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect}, []byte{b})
}

// OnSessionEstablish runs after the connection was authenticated, before mochi looks for a
// session of its ID to take over.
func (g *takeoverGuard) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	g.mu.Lock()
	old := g.ending[cl.ID]
	delete(g.ending, cl.ID)
	g.arriving[cl.ID] = &arrival{cl: cl, established: make(chan struct{})}
	g.mu.Unlock()
	if old == nil || old == cl {
		return
	}
	// The ending session removes its ID from the list without waiting for anything: look
	// until it has.
	deadline := time.Now().Add(takeoverWait)
	for time.Now().Before(deadline) {
		if cur, ok := g.srv.Clients.Get(cl.ID); !ok || cur != old {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// OnSessionEstablished runs once the connection took any session of its ID over and is in
// the client list, before its packets are read.
func (g *takeoverGuard) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if a := g.arriving[cl.ID]; a != nil && a.cl == cl {
		close(a.established)
		delete(g.arriving, cl.ID)
	}
}

// OnDisconnect runs in the ending session's goroutine before mochi checks whether the
// session was taken over.
func (g *takeoverGuard) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	g.mu.Lock()
	a := g.arriving[cl.ID]
	if a != nil && a.cl == cl {
		a = nil // its own arrival, cut short
	}
	if a == nil && expire && !cl.IsTakenOver() {
		g.ending[cl.ID] = cl // no one is taking it over: it will remove its ID
	}
	g.mu.Unlock()
	if a == nil {
		return
	}
	t := time.NewTimer(takeoverWait)
	defer t.Stop()
	select {
	case <-a.established:
	case <-t.C:
	}
}
