//go:build unix

package outwatch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// wait bounds how long a test waits for an event that must come.
const wait = 10 * time.Second

// TestContext: the context ends when the reading end of a watched pipe or socket closes,
// and never because of a SIGPIPE or an EPIPE elsewhere (a device's broken connection).
func TestContext(t *testing.T) {
	tests := []struct {
		name string
		// open returns the file to watch and a function that closes its reading end.
		open func(t *testing.T) (*os.File, func())
	}{
		{"pipe", func(t *testing.T) (*os.File, func()) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { w.Close() })
			return w, func() { r.Close() }
		}},
		{"unix socket", func(t *testing.T) (*os.File, func()) {
			fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
			if err != nil {
				t.Fatal(err)
			}
			w, r := os.NewFile(uintptr(fds[0]), "w"), os.NewFile(uintptr(fds[1]), "r")
			t.Cleanup(func() { w.Close() })
			return w, func() { r.Close() }
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, closeReader := tc.open(t)
			ctx, cancel := Context(context.Background(), out)
			defer cancel()

			// A write to another broken pipe raises SIGPIPE and fails with EPIPE; so does
			// a SIGPIPE sent from outside. Neither ends the process or the context.
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			if _, err := w.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
				t.Errorf("write to a pipe without reader: %v, want EPIPE", err)
			}
			w.Close()
			if err := syscall.Kill(os.Getpid(), syscall.SIGPIPE); err != nil {
				t.Fatal(err)
			}
			if ctx.Err() != nil {
				t.Fatalf("context ended (%v) before its output closed", context.Cause(ctx))
			}

			closeReader()
			select {
			case <-ctx.Done():
			case <-time.After(wait):
				t.Fatalf("context still live %v after the output's reader closed", wait)
			}
			if cause := context.Cause(ctx); !errors.Is(cause, ErrOutputClosed) {
				t.Errorf("cause %v, want ErrOutputClosed", cause)
			}
		})
	}
}

// TestContextUnwatched: a regular file is not watched, and cancel ends the context with
// context.Canceled and returns (its watchers stop).
func TestContextUnwatched(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	ctx, cancel := Context(context.Background(), f, w, nil)
	if watchable(f) {
		t.Errorf("a regular file is watchable")
	}
	if !watchable(w) {
		t.Errorf("a pipe is not watchable")
	}
	done := make(chan struct{})
	go func() { cancel(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatalf("cancel did not return in %v: a watcher did not stop", wait)
	}
	if cause := context.Cause(ctx); !errors.Is(cause, context.Canceled) {
		t.Errorf("cause after cancel: %v, want context.Canceled", cause)
	}
}
