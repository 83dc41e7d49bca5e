package bench

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// GoBench is one result of `go test -bench`, or the median of several.
type GoBench struct {
	Pkg string
	// Name is the benchmark's name without "Benchmark" and without the -GOMAXPROCS suffix.
	Name string
	// Runs is how many result lines went into it (-count).
	Runs int
	// Metrics are the values by unit: "ns/op", "MB/s", "B/op", "allocs/op" and any
	// custom unit reported with b.ReportMetric.
	Metrics map[string]float64
	// Min and Max are the extremes of each metric over the runs merged by MedianGoBench.
	Min, Max map[string]float64
}

// ParseGoBench reads the output of `go test -bench` (several packages and -count
// allowed); procs is the GOMAXPROCS the benchmarks ran with, whose suffix it strips.
func ParseGoBench(r io.Reader, procs int) ([]GoBench, error) {
	var out []GoBench
	pkg := ""
	suffix := "-" + strconv.Itoa(procs)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimSpace(p)
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // a benchmark's own log line, or one that failed
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		if procs > 1 {
			name = strings.TrimSuffix(name, suffix)
		}
		b := GoBench{Pkg: pkg, Name: name, Runs: 1, Metrics: map[string]float64{"N": float64(n)}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return out, fmt.Errorf("bench: %q: metric %q: %w", line, f[i], err)
			}
			b.Metrics[f[i+1]] = v
		}
		out = append(out, b)
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("bench: read go test output: %w", err)
	}
	return out, nil
}

// MedianGoBench merges the results of the same benchmark (same package and name) into
// one holding the median of each metric, in the order first seen.
func MedianGoBench(in []GoBench) []GoBench {
	type key struct{ pkg, name string }
	var order []key
	vals := map[key]map[string][]float64{}
	for _, b := range in {
		k := key{b.Pkg, b.Name}
		if vals[k] == nil {
			vals[k] = map[string][]float64{}
			order = append(order, k)
		}
		for u, v := range b.Metrics {
			vals[k][u] = append(vals[k][u], v)
		}
	}
	out := make([]GoBench, 0, len(order))
	for _, k := range order {
		b := GoBench{Pkg: k.pkg, Name: k.name, Metrics: map[string]float64{}, Min: map[string]float64{}, Max: map[string]float64{}}
		for u, vs := range vals[k] {
			b.Metrics[u] = Median(vs)
			b.Min[u], b.Max[u] = slices.Min(vs), slices.Max(vs)
			b.Runs = max(b.Runs, len(vs))
		}
		out = append(out, b)
	}
	return out
}
