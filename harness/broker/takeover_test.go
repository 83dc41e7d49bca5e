package broker

import (
	"context"
	"fmt"
	"testing"
	"time"
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
