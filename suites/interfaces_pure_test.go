package suites

import (
	"testing"
	"time"
)

// TestGoodbyeWait: LA-02's wait for an answer over MQTT after the device's goodbye
// scales with the answer it gave before, within bounds.
func TestGoodbyeWait(t *testing.T) {
	for _, tc := range []struct{ rtt, want time.Duration }{
		{2 * time.Millisecond, goodbyeMin},
		{30 * time.Millisecond, 600 * time.Millisecond},
		{500 * time.Millisecond, goodbyeMax},
	} {
		if got := goodbyeWait(tc.rtt); got != tc.want {
			t.Errorf("goodbyeWait(%v) = %v, want %v", tc.rtt, got, tc.want)
		}
	}
}
