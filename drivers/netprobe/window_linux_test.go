//go:build linux

package netprobe

import (
	"testing"
	"time"
)

// TestWindow plays rounds of answers and losses to the scan's window and checks its size
// after each.
func TestWindow(t *testing.T) {
	const hold = 300 * time.Millisecond
	t0 := time.Unix(1000, 0)
	type round struct {
		at              time.Duration // when the round settles, from t0
		answers, losses int
		sentBefore      bool // the losses are of SYNs sent before the last cut
		want            int
	}
	tests := []struct {
		name      string
		max       int
		rounds    []round
		wantTries int
	}{
		{"clean rounds grow it a quarter at most once a hold", 2000, []round{
			{at: 0, answers: 256, want: 256},
			{at: 300 * time.Millisecond, answers: 256, want: 320},
			{at: 400 * time.Millisecond, answers: 320, want: 320},
			{at: 600 * time.Millisecond, answers: 320, want: 400},
		}, 2},
		{"growth stops at the maximum", 300, []round{
			{at: 300 * time.Millisecond, answers: 256, want: 300},
			{at: time.Second, answers: 300, want: 300},
		}, 2},
		{"losses while answers come halve it", 2000, []round{
			{at: 0, answers: 200, losses: 56, want: 128},
			{at: 400 * time.Millisecond, answers: 100, losses: 28, want: 64},
			{at: 800 * time.Millisecond, answers: 32, losses: 32, want: 32},
			{at: 1200 * time.Millisecond, answers: 16, losses: 16, want: 32}, // the floor
		}, 4},
		{"a round lost whole, from a target that answered, halves it", 2000, []round{
			{at: 0, answers: 256, want: 256},
			{at: 300 * time.Millisecond, losses: 256, want: 128},
		}, 4},
		{"losses of SYNs sent before a cut do not count", 2000, []round{
			{at: 0, answers: 200, losses: 56, want: 128},
			{at: 10 * time.Millisecond, answers: 128, losses: 500, sentBefore: true, want: 128},
		}, 4},
		{"few losses hold it and add tries", 2000, []round{
			{at: 0, answers: 246, losses: 10, want: 256},
			{at: time.Second, answers: 256, losses: 5, want: 256},
		}, 4},
		{"a target that answers almost nothing does not shrink it", 2000, []round{
			{at: 0, answers: 10, losses: 246, want: 256},
			{at: time.Second, answers: 0, losses: 256, want: 256},
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWindow(tt.max, hold, t0)
			for i, r := range tt.rounds {
				now := t0.Add(r.at)
				sent := now.Add(-hold)
				if r.sentBefore {
					sent = w.cut.Add(-time.Millisecond)
				}
				// Losses first: a round settles on its last event.
				for range r.losses {
					w.lost(sent, now)
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
