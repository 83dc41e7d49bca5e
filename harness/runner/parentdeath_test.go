package runner

import (
	"io"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestInterruptOnParentDeath: however many parent-death signals come (the kernel sends one
// per exiting thread of the parent the child is handed to), the process interrupts itself
// once, so Ginkgo runs the check's cleanup instead of skipping it on a second interrupt.
func TestInterruptOnParentDeath(t *testing.T) {
	term := make(chan os.Signal, 8)
	signal.Notify(term, syscall.SIGTERM)
	defer signal.Stop(term)
	stop := InterruptOnParentDeath(io.Discard)
	defer stop()

	for range 3 {
		if err := syscall.Kill(os.Getpid(), ParentDeathSignal); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-term:
	case <-time.After(10 * time.Second):
		t.Fatal("no SIGTERM after the parent-death signal")
	}
	// The three signals may be delivered as one or as three: either way, no second SIGTERM.
	select {
	case <-term:
		t.Fatal("a second SIGTERM: Ginkgo would skip the running check's cleanup")
	case <-time.After(500 * time.Millisecond):
	}
}
