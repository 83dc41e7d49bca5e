package bench_test

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"

	"github.com/hilt-project/hilt/bench"
)

// TestRunTree runs a shell that starts two children and checks that the sampler saw the
// tree: what it measured is not asserted, only that it measured.
func TestRunTree(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.Command("sh", "-c", "sleep 0.3 & sleep 0.3 & wait")
	u, err := bench.Run(ctx, cmd, bench.WithInterval(5*time.Millisecond), bench.WithCgroup(true))
	if err != nil {
		t.Fatal(err)
	}
	if u.Samples == 0 || u.Procs < 3 || u.PeakRSS <= 0 || u.MaxRSS <= 0 || u.Wall < 300*time.Millisecond {
		t.Errorf("got %d samples, %d processes, peak RSS %d, max RSS %d, wall %v; want the shell and its two sleeps seen, the wall time at least 300ms",
			u.Samples, u.Procs, u.PeakRSS, u.MaxRSS, u.Wall)
	}
	if peak, _ := u.PeakMem(); peak <= 0 {
		t.Errorf("PeakMem() = %d, want more than 0", peak)
	}
	if u.CgroupPeak == 0 && u.CgroupErr == nil {
		t.Error("no cgroup figure and no reason given")
	}
}

func TestRunExit(t *testing.T) {
	_, err := bench.Run(context.Background(), exec.Command("sh", "-c", "exit 3"))
	if !errors.Is(err, bench.ErrExit) {
		t.Errorf("got %v, want an error wrapping ErrExit", err)
	}
}
