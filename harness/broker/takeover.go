package broker

import (
	"bytes"
	"errors"
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
// The guard orders the two, per client ID, so that the removal either happens before any
// new connection of the ID looks for a session to take over, or not at all:
//   - an ending session whose disconnect hook runs while a new connection of its ID is
//     arriving (between OnSessionEstablish and OnSessionEstablished) waits, in that hook,
//     until the new connection has taken it over: its check then finds it taken over;
//   - otherwise the session will remove its ID: every connection of that ID that arrives
//     before the removal is done waits for it, before it looks for a session to take over.
//
// The removal waits for nothing, so the second wait ends in microseconds, or as long as a
// busy host keeps that goroutine from running; it is bounded by removalWait and by close.
// Sessions that do not expire (persistent MQTT 3 sessions, MQTT 5 ones with an expiry
// interval) are never removed this way and are left alone.
type takeoverGuard struct {
	mqtt.HookBase
	srv *mqtt.Server

	mu       sync.Mutex
	arriving map[string]*arrival // by client ID: a connection between its two session hooks
	leaving  map[string]*leaving // by client ID: a session that will remove its ID, until it has
	closing  chan struct{}       // closed by close
	once     sync.Once
}

// arrival is a new connection on its way to being established.
type arrival struct {
	cl          *mqtt.Client
	established chan struct{} // closed in OnSessionEstablished
}

// leaving is an ending session that will remove its client ID from the list.
type leaving struct {
	cl      *mqtt.Client
	removed chan struct{} // closed once it has (or removalWait passed)
}

const (
	// takeoverWait bounds an ending session's wait for the connection taking it over.
	takeoverWait = 2 * time.Second
	// removalWait bounds a new connection's wait for the removal of its ID.
	removalWait = 30 * time.Second
)

// errClosing ends a connection that arrived while the broker closes.
var errClosing = errors.New("the broker is closing")

func newTakeoverGuard(srv *mqtt.Server) *takeoverGuard {
	return &takeoverGuard{srv: srv, arriving: map[string]*arrival{}, leaving: map[string]*leaving{},
		closing: make(chan struct{})}
}

func (g *takeoverGuard) ID() string { return "hilt-takeover-guard" }

func (g *takeoverGuard) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect}, []byte{b})
}

// close ends every wait and every connection established from now on: the broker calls
// it before it closes the server, whose Close waits for every connection but disconnects
// only the clients in its list, not one that is still being established (waiting here, or
// anywhere between its CONNECT and its addition to the list). Such a connection would keep
// Close waiting for as long as its client stays.
func (g *takeoverGuard) close() { g.once.Do(func() { close(g.closing) }) }

// stopIfClosing ends cl if the broker is closing.
func (g *takeoverGuard) stopIfClosing(cl *mqtt.Client) bool {
	select {
	case <-g.closing:
		cl.Stop(errClosing)
		return true
	default:
		return false
	}
}

// OnSessionEstablish runs after the connection was authenticated, before mochi looks for a
// session of its ID to take over.
func (g *takeoverGuard) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	if g.stopIfClosing(cl) {
		return
	}
	g.mu.Lock()
	l := g.leaving[cl.ID]
	g.arriving[cl.ID] = &arrival{cl: cl, established: make(chan struct{})}
	g.mu.Unlock()
	if l == nil {
		return
	}
	t := time.NewTimer(removalWait)
	defer t.Stop()
	select {
	case <-l.removed:
	case <-t.C:
		g.srv.Log.Error("takeover guard: the previous session of this client ID was not removed in time; its removal may drop this connection",
			"client", cl.ID, "waited", removalWait)
	case <-g.closing:
		cl.Stop(errClosing)
	}
}

// OnSessionEstablished runs once the connection took any session of its ID over and is in
// the client list, before its packets are read.
func (g *takeoverGuard) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	g.mu.Lock()
	if a := g.arriving[cl.ID]; a != nil && a.cl == cl {
		close(a.established)
		delete(g.arriving, cl.ID)
	}
	g.mu.Unlock()
	g.stopIfClosing(cl)
}

// OnDisconnect runs in the ending session's goroutine before mochi checks whether the
// session was taken over.
func (g *takeoverGuard) OnDisconnect(cl *mqtt.Client, _ error, expire bool) {
	if !expire || cl.IsTakenOver() {
		return // mochi will not remove its ID
	}
	g.mu.Lock()
	a := g.arriving[cl.ID]
	var l *leaving
	if a == nil {
		// No one is taking it over, and whoever arrives now waits: it will remove its ID.
		l = &leaving{cl: cl, removed: make(chan struct{})}
		g.leaving[cl.ID] = l
	}
	g.mu.Unlock()
	if l != nil {
		go g.watchRemoval(l)
		return
	}
	t := time.NewTimer(takeoverWait)
	defer t.Stop()
	select {
	case <-a.established:
	case <-t.C:
	case <-g.closing:
	}
}

// watchRemoval closes l.removed once l's session is out of the client list, and forgets l.
func (g *takeoverGuard) watchRemoval(l *leaving) {
	defer func() {
		g.mu.Lock()
		if g.leaving[l.cl.ID] == l {
			delete(g.leaving, l.cl.ID)
		}
		g.mu.Unlock()
		close(l.removed)
	}()
	deadline := time.NewTimer(removalWait)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		// Nothing else can put another client under the ID meanwhile: arrivals wait.
		if cur, ok := g.srv.Clients.Get(l.cl.ID); !ok || cur != l.cl {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return
		case <-g.closing:
			return
		}
	}
}
