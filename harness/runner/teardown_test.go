package runner

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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
