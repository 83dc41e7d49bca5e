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

// TestRunMaxRSS: a small command measured from a large process reads as small. Without
// GNU time, ru_maxrss would report at least this process's RSS at the fork (GNUTime).
func TestRunMaxRSS(t *testing.T) {
	if !bench.HaveGNUTime() {
		t.Fatalf("%s is not GNU time: install Debian's package time (scripts/deps.sh test does)", bench.GNUTime)
	}
	ballast := make([]byte, 64<<20)
	for i := range ballast {
		ballast[i] = byte(i)
	}
	u, err := bench.Run(context.Background(), exec.Command("sh", "-c", "true"))
	if err != nil {
		t.Fatal(err)
	}
	if u.MaxRSSInflated || u.MaxRSS <= 0 || u.MaxRSS > 16<<20 {
		t.Errorf("MaxRSS %d bytes (inflated %v) for sh -c true, measured from a process holding 64 MiB; want it under 16 MiB and exact", u.MaxRSS, u.MaxRSSInflated)
	}
	_ = ballast[len(ballast)-1]
}

// TestRunMissing: a command that is not there is a start error, not an exit status.
func TestRunMissing(t *testing.T) {
	_, err := bench.Run(context.Background(), exec.Command("/nonexistent/hilt-bench-missing"))
	if err == nil || errors.Is(err, bench.ErrExit) {
		t.Errorf("got %v, want a start error", err)
	}
}
