package broker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/hilt-project/hilt/harness/pki"
)

// TestReconnectKeepsDelivery: a device that drops its connection and connects again at
// once, with the same client ID and a clean session, again and again, gets every message
// sent to it after each reconnection (the takeover guard; without it, mochi could drop the
// new client from its list when the old session's cleanup came late).
func TestReconnectKeepsDelivery(t *testing.T) {
	b, ca := startTestBroker(t)
	url := fmt.Sprintf("mqtts://127.0.0.1:%d", b.TLSAddr().Port)
	harness := mustDial(t, url, ca, HarnessUsername, "harness-pass-0123456789", "hilt-harness-reconnect")
	for i := range 20 {
		dev, err := dial(t, url, ca, "dev1", "dev1-pass-0123456789", "rd-reconnect")
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		got := newRecorder()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = Subscribe(ctx, dev, "hilt/rd-reconnect/cmd", got.handle)
		cancel()
		if err != nil {
			t.Fatalf("connection %d: subscribe: %v", i, err)
		}
		want := fmt.Sprintf("ping %d", i)
		publish(t, harness, "hilt/rd-reconnect/cmd", want)
		got.waitFor(t, "hilt/rd-reconnect/cmd "+want)
		if _, ok := b.server.Clients.Get("rd-reconnect"); !ok {
			t.Fatalf("connection %d: the broker lists no client rd-reconnect", i)
		}
		dev.Disconnect(0) // at once, and the next connection follows right away
	}
}

// slowUnsubscribe makes an ending session of one client ID slow between mochi's
// taken-over check and its removal from the client list (UnsubscribeClient runs this hook
// in between), as a host busy enough to deschedule that goroutine does. Only the call that
// unsubscribes filters sleeps: the ending session's own; a takeover's call for the same
// session, which comes second, finds none left.
// It also says when a session of the ID has ended: its disconnect hook, which runs after
// the guard's (hooks run in the order added), has run.
type slowUnsubscribe struct {
	mqtt.HookBase
	id    string
	delay time.Duration
	ended chan struct{}
}

func (h *slowUnsubscribe) ID() string { return "test-slow-unsubscribe" }

func (h *slowUnsubscribe) Provides(b byte) bool {
	return b == mqtt.OnUnsubscribed || b == mqtt.OnDisconnect
}

func (h *slowUnsubscribe) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	if cl.ID == h.id {
		select {
		case h.ended <- struct{}{}:
		default:
		}
	}
}

func (h *slowUnsubscribe) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	if cl.ID == h.id && len(pk.Filters) > 0 {
		time.Sleep(h.delay)
	}
}

// TestReconnectDuringRemoval: a device reconnects while its previous session is between
// mochi's taken-over check and its removal from the client list. The new session must
// still be delivered what is published to it after that removal.
func TestReconnectDuringRemoval(t *testing.T) {
	const delay = 300 * time.Millisecond
	_, ca, url, harness, h := slowRemoval(t, "rd-slow", delay)
	const topic = "hilt/rd-slow/cmd"
	for i := range 2 {
		dev := mustDial(t, url, ca, "dev1", "dev1-pass-0123456789", "rd-slow")
		got := newRecorder()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := Subscribe(ctx, dev, topic, got.handle)
		cancel()
		if err != nil {
			t.Fatalf("connection %d: subscribe: %v", i, err)
		}
		// Past the previous session's removal, however late it comes.
		time.Sleep(2 * delay)
		want := fmt.Sprintf("ping %d", i)
		publish(t, harness, topic, want)
		got.waitFor(t, topic+" "+want)
		dev.Disconnect(0)
		waitEnded(t, h) // the next connection follows during the slow removal
	}
}

// slowRemoval starts a broker whose sessions of client ID id take delay to be removed,
// and a harness client of it; it returns the broker's TLS URL, and the hook, whose ended
// tells when a session of id ended.
func slowRemoval(t *testing.T, id string, delay time.Duration) (*Broker, *pki.CA, string, paho.Client, *slowUnsubscribe) {
	t.Helper()
	b, ca := startTestBroker(t)
	h := &slowUnsubscribe{id: id, delay: delay, ended: make(chan struct{}, 1)}
	if err := b.server.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("mqtts://127.0.0.1:%d", b.TLSAddr().Port)
	return b, ca, url, mustDial(t, url, ca, HarnessUsername, "harness-pass-0123456789", "hilt-harness-"+id), h
}

// endSubscribed connects as client ID id, subscribes to topic and disconnects at once:
// a session whose removal the slowUnsubscribe hook then slows.
func endSubscribed(t *testing.T, url string, ca *pki.CA, id, topic string) {
	t.Helper()
	dev := mustDial(t, url, ca, "dev1", "dev1-pass-0123456789", id)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Subscribe(ctx, dev, topic, func(paho.Client, paho.Message) {}); err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	dev.Disconnect(0)
}

// waitEnded waits until the broker has seen a session of h's client ID end (its removal
// is then under way, slowed): the next connection of the ID comes during it.
func waitEnded(t *testing.T, h *slowUnsubscribe) {
	t.Helper()
	select {
	case <-h.ended:
	case <-time.After(10 * time.Second):
		t.Fatalf("the broker did not see the session of %s end", h.id)
	}
}

// TestTwoArrivalsDuringRemoval: two connections of one client ID arrive at once while its
// previous session is being removed; the broker must list the ID's client afterwards.
func TestTwoArrivalsDuringRemoval(t *testing.T) {
	const delay = 300 * time.Millisecond
	b, ca, url, _, h := slowRemoval(t, "rd-twice", delay)
	endSubscribed(t, url, ca, "rd-twice", "hilt/rd-twice/cmd")
	waitEnded(t, h)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if c, err := dial(t, url, ca, "dev1", "dev1-pass-0123456789", "rd-twice"); err == nil {
				t.Cleanup(func() { c.Disconnect(0) })
			}
		})
	}
	wg.Wait()
	time.Sleep(2 * delay) // past the removal, however late it comes
	if _, ok := b.server.Clients.Get("rd-twice"); !ok {
		t.Error("the broker lists no client rd-twice: the removal of its old session dropped the new one")
	}
}

// TestStopWhileArrivalWaits: a broker stopped while a connection waits for its ID's
// previous session to be removed stops at once; mochi's Close, which waits for every
// connection, would otherwise wait for that one for good once it got through.
func TestStopWhileArrivalWaits(t *testing.T) {
	const delay = 1500 * time.Millisecond
	b, ca, url, _, h := slowRemoval(t, "rd-stop", delay)
	endSubscribed(t, url, ca, "rd-stop", "hilt/rd-stop/cmd")
	waitEnded(t, h)
	connected := make(chan paho.Client, 1)
	go func() {
		c, _ := dial(t, url, ca, "dev1", "dev1-pass-0123456789", "rd-stop")
		connected <- c // it stays connected, as a device would
	}()
	t.Cleanup(func() {
		if c := <-connected; c != nil {
			c.Disconnect(0)
		}
	})
	time.Sleep(100 * time.Millisecond) // the new connection waits in the guard
	stopped := make(chan error, 1)
	go func() { stopped <- b.Stop() }()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("stop: %v", err)
		}
	case <-time.After(delay + 10*time.Second):
		t.Fatal("Stop did not return: it waits for the connection the guard held")
	}
}
