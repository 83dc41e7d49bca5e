package suites

import (
	"errors"
	"testing"
	"time"
)

// Unit tests of the pure helpers of LA-05's lockout probe.

func TestLockoutSeconds(t *testing.T) {
	tests := []struct {
		name string
		rtt  time.Duration
		want int
	}{
		{"no answer timed yet", 0, 1},
		{"fast device", 10 * time.Millisecond, 1},
		{"exactly one second of answers", 200 * time.Millisecond, 1},
		{"just over", 201 * time.Millisecond, 2},
		{"slow device", 1100 * time.Millisecond, 6},
		{"capped at the protocol's maximum", 2 * time.Hour, 3600},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := lockoutSeconds(tc.rtt); got != tc.want {
				t.Errorf("lockoutSeconds(%s) = %d, want %d", tc.rtt, got, tc.want)
			}
		})
	}
}

func TestJudgeLock(t *testing.T) {
	from := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return from.Add(time.Duration(ms) * time.Millisecond) }
	refused := errors.New("refused")
	tests := []struct {
		name string
		a    attempt
		want lockJudgement
	}{
		{"refused at once", attempt{at(10), at(20), refused}, lockHeld},
		{"refused after the lock's end", attempt{at(1500), at(1600), refused}, lockHeld},
		{"accepted well inside the lock", attempt{at(10), at(20), nil}, lockMissing},
		{"accepted, answer just before the end", attempt{at(900), at(999), nil}, lockMissing},
		{"accepted, answer at the end", attempt{at(900), at(1000), nil}, lockUnsure},
		{"accepted, sent inside, answered after", attempt{at(100), at(1300), nil}, lockUnsure},
		{"accepted after the end", attempt{at(1200), at(1210), nil}, lockUnsure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := judgeLock(tc.a, from, time.Second); got != tc.want {
				t.Errorf("judgeLock(%s..%s) = %d, want %d", tc.a.start.Sub(from), tc.a.end.Sub(from), got, tc.want)
			}
		})
	}
}

func TestWrongPasswords(t *testing.T) {
	for n, want := range map[int]string{1: "1 wrong password", 2: "2 wrong passwords", 0: "0 wrong passwords"} {
		if got := wrongPasswords(n); got != want {
			t.Errorf("wrongPasswords(%d) = %q, want %q", n, got, want)
		}
	}
}
