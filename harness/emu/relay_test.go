//go:build linux

package emu

import (
	"context"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sink records what the relay passes to the VM.
type sink struct {
	mu  sync.Mutex
	got []byte
	ch  chan struct{}
}

func (s *sink) WriteConsole(_ context.Context, p []byte) error {
	s.mu.Lock()
	s.got = append(s.got, p...)
	s.mu.Unlock()
	select {
	case s.ch <- struct{}{}:
	default:
	}
	return nil
}

func TestRelay(t *testing.T) {
	r, err := newRelay("dev1")
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	defer r.close()

	if r.attached() {
		t.Fatalf("attached with nobody on %s", r.path)
	}
	// Nobody reads: output is dropped, the writer is never held up.
	begin := time.Now()
	for range 100 {
		if n, err := r.Write(make([]byte, 4096)); n != 4096 || err != nil {
			t.Fatalf("Write: got %d, %v; want 4096, nil", n, err)
		}
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("400 KiB to nobody took %v, want no stall", d)
	}

	h, err := os.OpenFile(r.path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if !r.attached() {
		t.Fatalf("not attached with %s open", r.path)
	}
	if _, err := r.Write([]byte("refdev ready\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = h.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := h.Read(buf)
	if got := string(buf[:n]); err != nil || got != "refdev ready\r\n" {
		t.Errorf("harness read %q, %v; want the guest's line as it is (nothing dropped earlier reaches it)", got, err)
	}

	// What the harness types reaches the VM attached.
	s := &sink{ch: make(chan struct{}, 1)}
	r.attach(s)
	if _, err := h.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.ch:
	case <-time.After(5 * time.Second):
		t.Fatal("typed input never reached the VM")
	}
	s.mu.Lock()
	got := string(s.got)
	s.mu.Unlock()
	if got != "ping\n" {
		t.Errorf("VM got %q, want %q", got, "ping\n")
	}
}
