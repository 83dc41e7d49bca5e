package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/reports"
)

// within runs f and fails the test if it has not returned after d: a bound that broke
// fails here instead of hanging the package until go test's timeout.
func within(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("still waiting after %v", d)
	}
}

func TestStopWithin(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	unitDied := errors.New("dev1: QEMU exited on its own")
	otherDied := errors.New("dev2: QEMU exited on its own")
	tests := []struct {
		name string
		stop stopFunc
		want []error // in order; ErrTeardown: the stuck teardown's
	}{
		{"stops in time", func(func(error)) {}, nil},
		{"stops in time, with what went wrong", func(found func(error)) { found(unitDied); found(otherDied) }, []error{unitDied, otherDied}},
		{"stuck", func(func(error)) { stuckTeardown(release) }, []error{ErrTeardown}},
		// What went wrong during the run is found before the teardown that hangs, and
		// is kept; what the abandoned stop finds after the limit is dropped.
		{"stuck after finding a unit died", func(found func(error)) {
			found(unitDied)
			stuckTeardown(release)
			found(otherDied)
		}, []error{unitDied, ErrTeardown}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stacks := filepath.Join(t.TempDir(), "stacks.txt")
			var errs []error
			within(t, 10*time.Second, func() { errs = stopWithin(tt.stop, 200*time.Millisecond, stacks) })
			ok := len(errs) == len(tt.want)
			for i := 0; ok && i < len(errs); i++ {
				ok = errors.Is(errs[i], tt.want[i])
			}
			if !ok {
				t.Fatalf("stopWithin: %v, want %v", errs, tt.want)
			}
			if len(errs) == 0 || !errors.Is(errs[len(errs)-1], ErrTeardown) {
				if _, err := os.Stat(stacks); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("stacks written for a bench that stopped: %v", err)
				}
				return
			}
			err := errs[len(errs)-1]
			if !errors.Is(err, ErrTeardown) || !strings.Contains(err.Error(), stacks) {
				t.Errorf("error %q: want ErrTeardown naming %s", err, stacks)
			}
			b, rerr := os.ReadFile(stacks)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if !strings.Contains(string(b), "stuckTeardown") {
				t.Errorf("the stacks do not show the stuck teardown:\n%s", b)
			}
		})
	}
}

// stuckTeardown is a bench's stop that hangs until release.
func stuckTeardown(release <-chan struct{}) { <-release }

// TestRunStuckTeardown: a bench that does not stop after the checks delays the run by the
// teardown limit at most; the reports are written and say so, and say what the bench found
// before it hung (a unit that died); the exit code is 2, and what the bench writes after
// that is dropped.
func TestRunStuckTeardown(t *testing.T) {
	dir := t.TempDir()
	hilt := filepath.Join(dir, ".hilt")
	if err := os.MkdirAll(hilt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hilt, teardownStacks), []byte("an earlier run's"), 0o600); err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	var stopped atomic.Bool
	var out strings.Builder
	var late atomic.Int32 // writes to the output after Run returned: the gate let them through
	var returned atomic.Bool
	died := "simulated bench: dev2 (PID 4242) exited: signal: killed; the unit stayed off"
	o := Options{
		Out: dir,
		Exe: os.Args[0],
		Stdout: writerFunc(func(p []byte) (int, error) {
			if returned.Load() {
				late.Add(1)
			}
			return out.Write(p)
		}),
		TeardownLimit: 300 * time.Millisecond,
		cleanStale:    func(context.Context, io.Writer) {},
		startUnits: func(_ context.Context, bo Options) (*profile.Profile, stopFunc, error) {
			return &profile.Profile{}, func(found func(error)) {
				stopped.Store(true)
				found(errors.New(died))
				stuckTeardown(release)
				fmt.Fprintln(bo.Stdout, "the bench stopped, late")
			}, nil
		},
	}
	var run *reports.Run
	var code int
	within(t, 10*time.Second, func() { run, code = Run(t.Context(), o) })
	returned.Store(true)
	close(release)
	if !stopped.Load() {
		t.Error("the bench's stop was not called")
	}
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if len(run.Errors) != 2 || run.Errors[0] != died || !strings.Contains(run.Errors[1], ErrTeardown.Error()) {
		t.Errorf("run errors %q, want dev2's death, then the bench that did not stop", run.Errors)
	}
	for _, f := range []string{"junit.xml", "compliance.md"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("not written: %v", err)
		} else if !strings.Contains(string(b), ErrTeardown.Error()) || !strings.Contains(string(b), "dev2 (PID 4242)") {
			t.Errorf("%s does not say that dev2 died and the bench did not stop", f)
		}
	}
	if b, err := os.ReadFile(filepath.Join(hilt, teardownStacks)); err != nil || !strings.Contains(string(b), "stuckTeardown") {
		t.Errorf("%s: %v; want this run's stacks, with the stuck teardown", teardownStacks, err)
	}
	time.Sleep(100 * time.Millisecond) // the abandoned stop ends now; its line must go nowhere
	if n := late.Load(); n > 0 {
		t.Errorf("%d writes to the run's output after the run ended", n)
	}
}

// TestRunStaleStacksRemoved: a run whose bench stops in time leaves no stacks file, not
// even an earlier run's.
func TestRunStaleStacksRemoved(t *testing.T) {
	dir := t.TempDir()
	hilt := filepath.Join(dir, ".hilt")
	if err := os.MkdirAll(hilt, 0o755); err != nil {
		t.Fatal(err)
	}
	stacks := filepath.Join(hilt, teardownStacks)
	if err := os.WriteFile(stacks, []byte("an earlier run's"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Out: dir, Exe: os.Args[0], cleanStale: func(context.Context, io.Writer) {},
		startUnits: func(context.Context, Options) (*profile.Profile, stopFunc, error) {
			return &profile.Profile{}, func(func(error)) {}, nil
		}}
	within(t, 10*time.Second, func() { Run(t.Context(), o) })
	if _, err := os.Stat(stacks); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: %v, want it removed", stacks, err)
	}
}

// TestRunBenchErrors: what the bench's stop reports going wrong during the run (an
// emulated unit's QEMU killed) is a harness error of the run, in its reports and exit code,
// and the bench's lines are not cut off for it.
func TestRunBenchErrors(t *testing.T) {
	dir := t.TempDir()
	var out strings.Builder
	died := "emulated bench: dev1: QEMU exited on its own at 04:15:02 (no shutdown event: killed or crashed)"
	o := Options{Out: dir, Exe: os.Args[0], Stdout: &out, cleanStale: func(context.Context, io.Writer) {},
		startUnits: func(_ context.Context, bo Options) (*profile.Profile, stopFunc, error) {
			return &profile.Profile{}, func(found func(error)) {
				fmt.Fprintln(bo.Stdout, "emulated bench: up 1m0s")
				found(errors.New(died))
			}, nil
		}}
	var run *reports.Run
	var code int
	within(t, 10*time.Second, func() { run, code = Run(t.Context(), o) })
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if len(run.Errors) != 1 || run.Errors[0] != died {
		t.Errorf("run errors %q, want [%q]", run.Errors, died)
	}
	if !strings.Contains(out.String(), "emulated bench: up 1m0s") {
		t.Errorf("the bench's last line is missing from the output:\n%s", out.String())
	}
	b, err := os.ReadFile(filepath.Join(dir, "compliance.md"))
	if err != nil || !strings.Contains(string(b), died) {
		t.Errorf("compliance.md (%v) does not say what went wrong with the bench", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestRunChildLingeringGrandchild: a program the check process started that outlives it,
// holding the progress pipe, does not hold the run.
func TestRunChildLingeringGrandchild(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".hilt"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A stand-in check process: it leaves a sleep behind with the progress pipe (fd 3)
	// open, writes its result and ends.
	exe := filepath.Join(dir, "check.sh")
	script := `#!/bin/sh
while [ $# -gt 0 ]; do
	if [ "$1" = --result ]; then result=$2; fi
	shift
done
sleep 60 &
echo $! >"$result.sleeper"
echo "dev1 DI-01 pass 0.1" >&3
echo '{"name":"dev1"}' >"$result"
`
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if b, err := os.ReadFile(filepath.Join(dir, ".hilt", "dev1.json.sleeper")); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	var lines atomic.Int32
	o := Options{Out: dir, Exe: exe, progressDrain: 200 * time.Millisecond}
	var dr reports.DeviceResult
	within(t, 20*time.Second, func() {
		dr = runChild(t.Context(), o, &profile.Profile{Path: "p.yaml"}, "dev1", "pins.json", func(string) { lines.Add(1) })
	})
	if dr.Name != "dev1" || dr.Error != "" {
		t.Errorf("result %+v, want dev1's, without error", dr)
	}
	if lines.Load() != 1 {
		t.Errorf("%d progress lines, want 1", lines.Load())
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".hilt", "dev1.log")); !strings.Contains(string(b), "progress pipe was still held") {
		t.Errorf("the check's log does not say that the pipe was still held:\n%s", b)
	}
}

// TestInheritedPipe: the progress pipe a check process inherits is marked close-on-exec,
// and a descriptor that is not open gives no pipe.
func TestInheritedPipe(t *testing.T) {
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil { // no O_CLOEXEC: as a child inherits it
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	f := inheritedPipe(p[1], "progress")
	if f == nil {
		t.Fatal("no file for an open descriptor")
	}
	defer f.Close()
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.FD_CLOEXEC == 0 {
		t.Error("the inherited pipe is not close-on-exec: programs the checks start would hold it")
	}
	if f := inheritedPipe(p[1]+1000, "none"); f != nil {
		t.Errorf("a file for a descriptor that is not open: %v", f.Name())
	}
}
