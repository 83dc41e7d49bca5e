package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hilt-project/hilt/harness/profile"
)

func TestStopWithin(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	tests := []struct {
		name    string
		stop    func()
		wantErr bool
	}{
		{"stops in time", func() {}, false},
		{"stuck", func() { stuckTeardown(release) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stacks := filepath.Join(t.TempDir(), "stacks.txt")
			err := stopWithin(tt.stop, 200*time.Millisecond, stacks)
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("stopWithin: %v, want an error: %v", err, tt.wantErr)
			}
			if !tt.wantErr {
				if _, err := os.Stat(stacks); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("stacks written for a bench that stopped: %v", err)
				}
				return
			}
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
// teardown limit at most; the reports are written and say so, and the exit code is 2.
func TestRunStuckTeardown(t *testing.T) {
	dir := t.TempDir()
	release := make(chan struct{})
	defer close(release)
	var stopped atomic.Bool
	o := Options{
		Out:           dir,
		Exe:           os.Args[0],
		TeardownLimit: 300 * time.Millisecond,
		startUnits: func(context.Context, Options) (*profile.Profile, func(), error) {
			return nil, func() { stopped.Store(true); stuckTeardown(release) }, errors.New("the units did not start")
		},
	}
	begin := time.Now()
	run, code := Run(t.Context(), o)
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("Run took %v with a teardown limit of %v", d, o.TeardownLimit)
	}
	if !stopped.Load() {
		t.Error("the bench's stop was not called")
	}
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	found := false
	for _, e := range run.Errors {
		found = found || strings.Contains(e, ErrTeardown.Error())
	}
	if !found {
		t.Errorf("run errors %q do not say that the bench did not stop", run.Errors)
	}
	for _, f := range []string{"junit.xml", "compliance.md", filepath.Join(".hilt", "teardown-stacks.txt")} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("not written: %v", err)
		}
	}
}

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
	begin := time.Now()
	dr := runChild(t.Context(), Options{Out: dir, Exe: exe}, &profile.Profile{Path: "p.yaml"}, "dev1", "pins.json",
		func(string) { lines.Add(1) })
	if d := time.Since(begin); d > progressDrain+10*time.Second {
		t.Errorf("runChild took %v: it waited for the lingering program", d)
	}
	if dr.Name != "dev1" || dr.Error != "" {
		t.Errorf("result %+v, want dev1's, without error", dr)
	}
	if lines.Load() != 1 {
		t.Errorf("%d progress lines, want 1", lines.Load())
	}
}
