package bench_test

import (
	"strings"
	"testing"

	"github.com/hilt-project/hilt/bench"
)

const goTestOutput = `goos: linux
goarch: amd64
pkg: github.com/hilt-project/hilt/drivers/serial
cpu: AMD EPYC
BenchmarkExpectFlood/literal-2         	      27	  55074140 ns/op	  19.04 MB/s	 4680462 B/op	     280 allocs/op
BenchmarkExpectFlood/literal-2         	      25	  45074140 ns/op	  23.04 MB/s	 4680462 B/op	     280 allocs/op
BenchmarkExpectFlood/literal-2         	      20	  65074140 ns/op	  15.04 MB/s	 4680462 B/op	     280 allocs/op
BenchmarkExpectLatency-2               	   10000	    321518 ns/op	     420 B/op	      11 allocs/op
--- FAIL: BenchmarkBroken-2
PASS
pkg: github.com/hilt-project/hilt/bench
BenchmarkConsoleUpload-2    	     216	   8687976 ns/op	   7.57 MB/s	    280257 ns/line	  544514 B/op	    2980 allocs/op
ok  	github.com/hilt-project/hilt/bench	7.524s
`

func TestParseGoBench(t *testing.T) {
	got, err := bench.ParseGoBench(strings.NewReader(goTestOutput), 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("got %d results, want 5: %+v", len(got), got)
	}
	med := bench.MedianGoBench(got)
	for _, tt := range []struct {
		pkg, name, unit string
		want            float64
		runs            int
	}{
		{"github.com/hilt-project/hilt/drivers/serial", "ExpectFlood/literal", "ns/op", 55074140, 3},
		{"github.com/hilt-project/hilt/drivers/serial", "ExpectFlood/literal", "MB/s", 19.04, 3},
		{"github.com/hilt-project/hilt/drivers/serial", "ExpectLatency", "allocs/op", 11, 1},
		{"github.com/hilt-project/hilt/bench", "ConsoleUpload", "ns/line", 280257, 1},
	} {
		found := false
		for _, b := range med {
			if b.Pkg == tt.pkg && b.Name == tt.name {
				found = true
				if b.Metrics[tt.unit] != tt.want || b.Runs != tt.runs {
					t.Errorf("%s %s: got %v %s over %d runs, want %v over %d", tt.pkg, tt.name, b.Metrics[tt.unit], tt.unit, b.Runs, tt.want, tt.runs)
				}
			}
		}
		if !found {
			t.Errorf("%s %s: not found in %+v", tt.pkg, tt.name, med)
		}
	}
}

func TestMedian(t *testing.T) {
	for _, tt := range []struct {
		name string
		in   []int64
		want int64
	}{
		{"none", nil, 0},
		{"one", []int64{7}, 7},
		{"odd", []int64{9, 1, 5}, 5},
		{"even", []int64{4, 1, 10, 2}, 3},
	} {
		if got := bench.Median(tt.in); got != tt.want {
			t.Errorf("%s: Median(%v) = %d, want %d", tt.name, tt.in, got, tt.want)
		}
	}
}
