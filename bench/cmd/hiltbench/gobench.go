package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/hilt-project/hilt/bench"
)

// goSuite is a set of Go benchmarks of one package, run as one test binary.
type goSuite struct {
	Name    string // in the report
	Pkg     string // ./drivers/serial
	Pattern string // -test.bench
	Count   int
	Extra   []string
}

// goResult is the Go benchmarks section: medians over the runs, with the load average
// around each suite's runs.
type goResult struct {
	Benches []bench.GoBench
	Load    map[string][2]bench.Load // by suite name: before the first run, after the last
	Count   map[string]int
	// ImageProfile is the top of a CPU profile of image.Build (1 MiB, unsigned).
	ImageProfile string
	Errs         []error
}

// find returns the median result of pkg's benchmark name.
func (g *goResult) find(pkgSuffix, name string) (bench.GoBench, bool) {
	for _, b := range g.Benches {
		if strings.HasSuffix(b.Pkg, pkgSuffix) && b.Name == name {
			return b, true
		}
	}
	return bench.GoBench{}, false
}

// runGoBenchmarks builds the test binaries once, then runs the console benchmarks and
// their pty peers alternately (one -count at a time, so that both see the same load),
// then the hot-path benchmarks.
func runGoBenchmarks(ctx context.Context, cfg config) *goResult {
	res := &goResult{Load: map[string][2]bench.Load{}, Count: map[string]int{}}
	var rounds [][]goSuite
	if cfg.sections["console"] {
		var pair []goSuite
		for range cfg.goCount {
			pair = append(pair,
				goSuite{Name: "console", Pkg: "./drivers/serial", Pattern: "^Benchmark(ExpectFlood|ExpectLatency)$", Count: 1},
				goSuite{Name: "console-peer", Pkg: "./bench", Pattern: "^BenchmarkPTY", Count: 1})
		}
		rounds = append(rounds, pair)
	}
	if cfg.sections["go"] {
		var hot []goSuite
		for range cfg.goCount {
			hot = append(hot, goSuite{Name: "hot paths", Pkg: "./bench", Pattern: "^Benchmark(Image|Console)", Count: 1})
		}
		rounds = append(rounds, hot,
			[]goSuite{{Name: "capture analysis", Pkg: "./drivers/netprobe", Pattern: "^BenchmarkAnalyze$", Count: min(cfg.goCount, 3)}})
	}
	bins := map[string]string{}
	var raw bytes.Buffer
	for _, round := range rounds {
		for _, s := range round {
			if ctx.Err() != nil {
				return res
			}
			bin, ok := bins[s.Pkg]
			if !ok {
				bin = filepath.Join(cfg.work, strings.ReplaceAll(strings.Trim(s.Pkg, "./"), "/", "_")+".test")
				cmd := exec.CommandContext(ctx, cfg.goCmd, "test", "-c", "-o", bin, s.Pkg)
				if out, err := cmd.CombinedOutput(); err != nil {
					res.Errs = append(res.Errs, fmt.Errorf("go test -c %s: %w: %s", s.Pkg, err, out))
					bins[s.Pkg] = ""
					continue
				}
				bins[s.Pkg] = bin
			}
			if bin == "" {
				continue
			}
			before, _ := bench.ReadLoad()
			args := append([]string{"-test.run", "^$", "-test.bench", s.Pattern, "-test.benchmem", "-test.count", fmt.Sprint(s.Count), "-test.timeout", "5m"}, s.Extra...)
			cmd := exec.CommandContext(ctx, bin, args...)
			cmd.Dir = s.Pkg // a package's benchmarks may read its testdata
			out, err := cmd.CombinedOutput()
			after, _ := bench.ReadLoad()
			if err != nil {
				res.Errs = append(res.Errs, fmt.Errorf("%s -test.bench %s: %w: %s", s.Pkg, s.Pattern, err, lastLines(string(out), 5)))
				continue
			}
			raw.Write(out)
			l, seen := res.Load[s.Name]
			if !seen {
				l[0] = before
			}
			l[1] = after
			res.Load[s.Name] = l
			res.Count[s.Name] += s.Count
			cfg.logf("go benchmarks %s (%s): load %.2f", s.Name, s.Pkg, before[0])
		}
	}
	if bin := bins["./bench"]; bin != "" && cfg.sections["go"] && cfg.profile && ctx.Err() == nil {
		res.ImageProfile = profileGoBench(ctx, cfg, bin, "./bench", "^BenchmarkImageBuild$/^1MiB$/^unsigned$")
	}
	parsed, err := bench.ParseGoBench(&raw, runtime.GOMAXPROCS(0))
	if err != nil {
		res.Errs = append(res.Errs, err)
	}
	res.Benches = bench.MedianGoBench(parsed)
	return res
}

// profileGoBench runs one benchmark of a test binary with a CPU profile and returns the
// top of the profile.
func profileGoBench(ctx context.Context, cfg config, bin, dir, pattern string) string {
	prof := bin + ".cpu.pprof"
	cmd := exec.CommandContext(ctx, bin, "-test.run", "^$", "-test.bench", pattern, "-test.benchtime", "2s", "-test.cpuprofile", prof, "-test.timeout", "5m")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Sprintf("profile run failed: %v: %s", err, lastLines(string(out), 3))
	}
	return pprofTop(ctx, cfg, bin, prof)
}
