package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestStopResume: a stopped broker refuses connections; resumed, it
// serves the same accounts on the same ports.
func TestStopResume(t *testing.T) {
	b, ca := startTestBroker(t)
	url := fmt.Sprintf("mqtts://127.0.0.1:%d", b.TLSAddr().Port)
	mustDial(t, url, ca, HarnessUsername, "harness-pass-0123456789", "h1")
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := b.Stop(); !errors.Is(err, ErrStopped) {
		t.Errorf("second Stop: got %v, want ErrStopped", err)
	}
	if _, err := dial(t, url, ca, HarnessUsername, "harness-pass-0123456789", "h2"); err == nil {
		t.Error("the stopped broker accepted a connection")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.TLSAddr().Port; fmt.Sprintf("mqtts://127.0.0.1:%d", got) != url {
		t.Errorf("resumed on port %d, want the old one (%s)", got, url)
	}
	mustDial(t, url, ca, HarnessUsername, "harness-pass-0123456789", "h3")
	if _, err := dial(t, url, ca, HarnessUsername, "wrong-password-0123", "h4"); err == nil {
		t.Error("the resumed broker accepted a wrong password")
	}
	if err := b.Resume(ctx); !errors.Is(err, ErrStopped) {
		t.Errorf("Resume of a running broker: got %v, want an error wrapping ErrStopped", err)
	}
}
