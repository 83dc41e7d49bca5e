package netprobe

import (
	"testing"
	"time"
)

func TestNgTimestampResolution(t *testing.T) {
	tests := []struct {
		name string
		ifc  ngInterface
		ts   uint64
		want time.Time
	}{
		{"microseconds (default)", ngInterface{tsExp: 6}, 1_700_000_000_123_456, time.Unix(1_700_000_000, 123_456_000)},
		{"nanoseconds", ngInterface{tsExp: 9}, 1_700_000_000_123_456_789, time.Unix(1_700_000_000, 123_456_789)},
		{"picoseconds", ngInterface{tsExp: 12}, 1_000_000_000_000_123_456, time.Unix(1_000_000, 123)},
		{"2^-10 seconds", ngInterface{tsBase2: true, tsExp: 10}, 5<<10 | 512, time.Unix(5, 500_000_000)},
		{"2^-30 seconds", ngInterface{tsBase2: true, tsExp: 30}, 7<<30 | 1<<28, time.Unix(7, 250_000_000)},
	}
	for _, tt := range tests {
		if got := tt.ifc.time(tt.ts); !got.Equal(tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}
