//go:build unix

package outwatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wait bounds how long a test waits for an event that must come.
const wait = 10 * time.Second

// TestContext: the context ends when the reading end of a watched pipe or socket closes.
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
	if stop := watch(w, func() {}); stop == nil {
		t.Errorf("watch of a pipe: no watcher started")
	} else {
		stop()
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

// helperEnv makes the test binary run outputClosedHelper instead of its tests.
const helperEnv = "OUTWATCH_TEST_HELPER"

// TestMain runs the helper process when asked to.
func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		os.Exit(outputClosedHelper())
	}
	os.Exit(m.Run())
}

// outputClosedHelper watches its stdout, waits for the context to end, and then writes to
// stdout once more, as a bench's last message does. Exit 0: the context ended for the
// closed output and the write failed with EPIPE; death by SIGPIPE: SIGPIPE was not caught;
// 3: the context never ended; 4: the write did not fail as it must.
func outputClosedHelper() int {
	ctx, cancel := Context(context.Background(), os.Stdout)
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(wait):
		fmt.Fprintln(os.Stderr, "context still live")
		return 3
	}
	if !errors.Is(context.Cause(ctx), ErrOutputClosed) {
		fmt.Fprintln(os.Stderr, "cause:", context.Cause(ctx))
		return 3
	}
	if _, err := os.Stdout.WriteString("stopping\n"); !errors.Is(err, syscall.EPIPE) {
		fmt.Fprintln(os.Stderr, "write to the closed stdout:", err)
		return 4
	}
	return 0
}

// TestStdoutClosed runs a process whose stdout is a pipe that no one reads any more: its
// context ends, and its next write to stdout fails with EPIPE instead of killing it (Go's
// default for stdout when SIGPIPE is not caught).
func TestStdoutClosed(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stdout, cmd.Stderr = w, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	r.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(2 * wait):
		cmd.Process.Kill()
		<-done
		t.Fatalf("helper still runs after %v", 2*wait)
	}
	if err != nil {
		t.Errorf("helper: %v (%s), want exit 0", err, strings.TrimSpace(stderr.String()))
	}
}
