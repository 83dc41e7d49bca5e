package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
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
// in between), as a host busy enough to deschedule that goroutine does.
type slowUnsubscribe struct {
	mqtt.HookBase
	id    string
	delay time.Duration
}

func (h *slowUnsubscribe) ID() string { return "test-slow-unsubscribe" }

func (h *slowUnsubscribe) Provides(b byte) bool { return b == mqtt.OnUnsubscribed }

func (h *slowUnsubscribe) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) {
	if cl.ID == h.id {
		time.Sleep(h.delay)
	}
}

// TestReconnectDuringRemoval: a device reconnects while its previous session is between
// mochi's taken-over check and its removal from the client list. The new session must
// still be delivered what is published to it after that removal.
func TestReconnectDuringRemoval(t *testing.T) {
	b, ca := startTestBroker(t)
	const delay = 300 * time.Millisecond
	if err := b.server.AddHook(&slowUnsubscribe{id: "rd-slow", delay: delay}, nil); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("mqtts://127.0.0.1:%d", b.TLSAddr().Port)
	harness := mustDial(t, url, ca, HarnessUsername, "harness-pass-0123456789", "hilt-harness-slow")
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
		dev.Disconnect(0) // the next connection follows at once, during the slow removal
	}
}
