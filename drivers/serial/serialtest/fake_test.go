package serialtest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/serial"
	"github.com/hilt-project/hilt/drivers/serial/serialtest"
)

func TestFakeConformance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := serialtest.NewFake("fake0")
	if err := serialtest.TestConsole(ctx, f, f.Device()); err != nil {
		t.Fatal(err)
	}
}

func TestFakeResponder(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := serialtest.NewFake("fake0")
	f.Respond(func(line string) string {
		switch {
		case line == "ping":
			return "OK {\"pong\":true}\nrefdev> "
		case strings.HasPrefix(line, "login "):
			return "ERR auth wrong credentials\nrefdev> "
		}
		return "ERR unknown-command\nrefdev> "
	})
	tests := []struct {
		send string
		want serial.Matcher
		text string
	}{
		{"ping", serial.Regex(`OK (\{.*\})\n`), "OK {\"pong\":true}\n"},
		{"login admin nope", serial.Regex(`ERR (\S+)`), "ERR auth"},
		{"frobnicate", serial.Literal("ERR unknown-command"), "ERR unknown-command"},
	}
	for _, tt := range tests {
		if err := f.Send(ctx, tt.send); err != nil {
			t.Fatal(err)
		}
		m, err := f.Expect(ctx, tt.want)
		if err != nil {
			t.Fatalf("%s: %v", tt.send, err)
		}
		if m.Text != tt.text {
			t.Errorf("%s: got %q, want %q", tt.send, m.Text, tt.text)
		}
	}
	if got := string(f.Input()); got != "ping\nlogin admin nope\nfrobnicate\n" {
		t.Errorf("Input: got %q", got)
	}
}

func TestFakeVanishAndReopen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := serialtest.NewFake("fake0")
	f.OutputString("bye\n")
	pending := make(chan error, 1)
	go func() {
		_, err := f.Expect(ctx, serial.Literal("never"))
		pending <- err
	}()
	f.Vanish(errors.New("usb disconnect"))
	var ge *serial.GoneError
	if err := <-pending; !errors.As(err, &ge) || ge.Last != "bye\n" {
		t.Fatalf("got %v, want a *GoneError with the last output", err)
	}
	if err := f.Send(ctx, "x"); !errors.Is(err, serial.ErrPortGone) {
		t.Errorf("Send: got %v, want ErrPortGone", err)
	}
	if err := f.Reopen(ctx); err != nil {
		t.Fatal(err)
	}
	f.OutputString("back\n")
	if _, err := f.Expect(ctx, serial.Literal("back")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := f.Send(ctx, "x"); !errors.Is(err, serial.ErrPortClosed) {
		t.Errorf("Send after Close: got %v, want ErrPortClosed", err)
	}
}
