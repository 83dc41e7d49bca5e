package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/hilt-project/hilt/bench"
)

// fmtDur prints a duration with three significant figures or so.
func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%d ns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	case d < 100*time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f s", d.Seconds())
}

// fmtMB prints bytes in MB (10^6 bytes), the unit of the targets.
func fmtMB(b int64) string {
	if b <= 0 {
		return "–"
	}
	mb := float64(b) / 1e6
	if mb < 10 {
		return fmt.Sprintf("%.1f MB", mb)
	}
	return fmt.Sprintf("%.0f MB", mb)
}

// ratio prints a/b as "0.31×".
func ratio(a, b float64) string {
	if b == 0 || math.IsNaN(a) || math.IsNaN(b) {
		return "–"
	}
	r := a / b
	switch {
	case r < 0.1:
		return fmt.Sprintf("%.3f×", r)
	case r < 10:
		return fmt.Sprintf("%.2f×", r)
	}
	return fmt.Sprintf("%.0f×", r)
}

// loadRange prints the 1-minute load averages at the start of each run, "4.20" or
// "3.91–11.20".
func loadRange(us []bench.Usage) string {
	if len(us) == 0 {
		return "–"
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, u := range us {
		lo, hi = min(lo, u.LoadBefore[0]), max(hi, u.LoadBefore[0])
	}
	return span(lo, hi)
}

func span(lo, hi float64) string {
	if fmt.Sprintf("%.2f", lo) == fmt.Sprintf("%.2f", hi) {
		return fmt.Sprintf("%.2f", lo)
	}
	return fmt.Sprintf("%.2f–%.2f", lo, hi)
}

// loadPair prints the 1-minute load before and after.
func loadPair(l [2]bench.Load) string { return span(min(l[0][0], l[1][0]), max(l[0][0], l[1][0])) }

// medianWall is the median wall time of runs.
func medianWall(us []bench.Usage) time.Duration {
	var ds []time.Duration
	for _, u := range us {
		ds = append(ds, u.Wall)
	}
	return bench.Median(ds)
}

// medianOf applies f to each usage and returns the median.
func medianOf(us []bench.Usage, f func(bench.Usage) int64) int64 {
	var vs []int64
	for _, u := range us {
		vs = append(vs, f(u))
	}
	return bench.Median(vs)
}

func peakMem(u bench.Usage) int64 { p, _ := u.PeakMem(); return p }

// byKind sums the processes of a sample by kind, largest first: "hilt __check 2×31 MB".
func byKind(ps []bench.ProcMem) string {
	type agg struct {
		kind string
		n    int
		rss  int64
	}
	m := map[string]*agg{}
	for _, p := range ps {
		a := m[p.Kind]
		if a == nil {
			a = &agg{kind: p.Kind}
			m[p.Kind] = a
		}
		a.n++
		a.rss += p.RSS
	}
	var as []*agg
	for _, a := range m {
		as = append(as, a)
	}
	sort.Slice(as, func(i, j int) bool { return as[i].rss > as[j].rss })
	var parts []string
	for _, a := range as {
		if a.n == 1 {
			parts = append(parts, fmt.Sprintf("`%s` %s", a.kind, fmtMB(a.rss)))
		} else {
			parts = append(parts, fmt.Sprintf("`%s` %d × %s = %s", a.kind, a.n, fmtMB(a.rss/int64(a.n)), fmtMB(a.rss)))
		}
	}
	return strings.Join(parts, ", ")
}

// cpuByKind prints the CPU time by process kind, largest first, with shares.
func cpuByKind(m map[string]time.Duration) string {
	var total time.Duration
	kinds := make([]string, 0, len(m))
	for k, d := range m {
		total += d
		kinds = append(kinds, k)
	}
	sort.Slice(kinds, func(i, j int) bool { return m[kinds[i]] > m[kinds[j]] })
	var parts []string
	for _, k := range kinds {
		if m[k] < 10*time.Millisecond {
			continue
		}
		parts = append(parts, fmt.Sprintf("`%s` %s (%.0f%%)", k, fmtDur(m[k]), 100*m[k].Seconds()/total.Seconds()))
	}
	return strings.Join(parts, ", ")
}

// verdict prints whether a target was met.
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// yesNo prints an agreement.
func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
