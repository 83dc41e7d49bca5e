//go:build linux

package netprobe

import (
	"testing"
	"time"
)

// TestWindow plays rounds of answers and lost SYNs (ports whose first SYN went
// unanswered and a later one was answered) to the scan's window and checks its size after
// each, and the tries a port gets at the end.
func TestWindow(t *testing.T) {
	const hold = 300 * time.Millisecond
	t0 := time.Unix(1000, 0)
	type round struct {
		at              time.Duration // when the round settles, from t0
		answers, losses int
		sentBefore      bool // the lost SYNs were sent before the last cut
		want            int
	}
	tests := []struct {
		name      string
		max       int
		rounds    []round
		wantTries int
	}{
		{"answers alone leave it at the maximum", 2000, []round{
			{at: 0, answers: 2000, want: 2000},
			{at: time.Second, answers: 2000, want: 2000},
		}, 2},
		{"losses halve it, down to the floor", 2000, []round{
			{at: 0, answers: 1800, losses: 200, want: 1000},
			{at: 400 * time.Millisecond, answers: 900, losses: 100, want: 500},
			{at: 800 * time.Millisecond, answers: 400, losses: 100, want: 250},
			{at: 1200 * time.Millisecond, answers: 200, losses: 50, want: 125},
			{at: 1600 * time.Millisecond, answers: 100, losses: 25, want: 62},
			{at: 2000 * time.Millisecond, answers: 50, losses: 12, want: 32},
			{at: 2400 * time.Millisecond, answers: 16, losses: 16, want: 32},
		}, 4},
		{"clean rounds grow it a quarter at most once a hold after the cut", 2000, []round{
			{at: 0, answers: 1800, losses: 200, want: 1000},
			{at: 100 * time.Millisecond, answers: 1000, want: 1000},
			{at: 300 * time.Millisecond, answers: 1000, want: 1250},
			{at: 400 * time.Millisecond, answers: 1250, want: 1250},
			{at: 600 * time.Millisecond, answers: 1250, want: 1562},
			{at: 900 * time.Millisecond, answers: 1562, want: 1952},
			{at: 1200 * time.Millisecond, answers: 1952, want: 2000},
		}, 4},
		{"losses of SYNs sent before a cut do not count", 2000, []round{
			{at: 0, answers: 1800, losses: 200, want: 1000},
			{at: 10 * time.Millisecond, answers: 500, losses: 500, sentBefore: true, want: 1000},
		}, 4},
		{"a few losses hold it", 2000, []round{
			{at: 0, answers: 1800, losses: 200, want: 1000},
			{at: time.Second, answers: 980, losses: 20, want: 1000},
		}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWindow(tt.max, hold, t0)
			if w.size != tt.max {
				t.Fatalf("first window %d, want the maximum %d", w.size, tt.max)
			}
			for i, r := range tt.rounds {
				now := t0.Add(r.at)
				first := now.Add(-hold)
				if r.sentBefore {
					first = w.cut.Add(-time.Millisecond)
				}
				// Losses first: a round settles on its last event.
				for range r.losses {
					w.recovered(first, now)
				}
				for range r.answers {
					w.answered(now)
				}
				if w.size != r.want {
					t.Fatalf("round %d: window %d, want %d", i+1, w.size, r.want)
				}
			}
			if got := w.tries(); got != tt.wantTries {
				t.Errorf("tries %d, want %d", got, tt.wantTries)
			}
		})
	}
}
