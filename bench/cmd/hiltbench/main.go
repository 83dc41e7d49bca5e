package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hilt-project/hilt/bench"
)

// Sections of the report, in order.
var allSections = []string{"baseline", "fleet", "scan", "capture", "console", "go", "emulated"}

// config is hiltbench's command line.
type config struct {
	hilt, out, work, goCmd string
	keep                   bool
	sections               map[string]bool
	fleet                  []int
	runs                   map[int]int
	scanRuns               int
	packets                int
	seed                   uint64
	analyzeRuns            int
	tsharkRuns             int
	goCount                int
	emuProfile             string
	emuRuns                int
	profile                bool
	self                   string // this executable, for the measured children
	logw                   io.Writer
}

func main() {
	if len(os.Args) > 1 {
		var err error
		switch os.Args[1] {
		case "__scan":
			err = scanChild(os.Args[2:])
		case "__analyze":
			err = analyzeChild(os.Args[2:])
		case "gen":
			err = genCmd(os.Args[2:])
		default:
			err = errNotChild
		}
		if !errors.Is(err, errNotChild) {
			if err != nil {
				fmt.Fprintf(os.Stderr, "hiltbench %s: %v\n", os.Args[1], err)
				os.Exit(1)
			}
			return
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "hiltbench: %v\n", err)
		os.Exit(2)
	}
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintf(os.Stderr, "hiltbench: %v\n", err)
		os.Exit(1)
	}
}

var errNotChild = errors.New("not a child command")

func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("hiltbench", flag.ContinueOnError)
	var cfg config
	var only, fleet, runs string
	var seed uint64
	fs.StringVar(&cfg.hilt, "hilt", "bin/hilt", "the hilt executable to measure")
	fs.StringVar(&cfg.out, "o", "BENCHMARKS.md", "the report to write")
	fs.StringVar(&cfg.work, "work", "", "work folder for run outputs and the capture (default: a temporary folder, removed at the end)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the work folder")
	fs.StringVar(&cfg.goCmd, "go", "go", "the go command, for the Go benchmarks")
	fs.StringVar(&only, "only", strings.Join(allSections, ","), "sections to run: "+strings.Join(allSections, ","))
	fs.StringVar(&fleet, "fleet", "1,4,16", "fleet sizes (simulated devices per hilt run); the first is the baseline")
	fs.StringVar(&runs, "runs", "1:3,4:2,16:1", "runs per fleet size, size:runs,... (sizes not listed: 1 run)")
	fs.IntVar(&cfg.scanRuns, "scan-runs", 3, "full port scans with each tool")
	fs.IntVar(&cfg.packets, "packets", 1_000_000, "packets in the generated capture")
	fs.Uint64Var(&seed, "seed", 1, "seed of the generated capture")
	fs.IntVar(&cfg.analyzeRuns, "analyze-runs", 3, "runs of netprobe.AnalyzeFile over the capture")
	fs.IntVar(&cfg.tsharkRuns, "tshark-runs", 1, "runs of tshark over the capture")
	fs.IntVar(&cfg.goCount, "go-count", 5, "go test -count for the Go benchmarks")
	fs.StringVar(&cfg.emuProfile, "emu-profile", "fixtures/devices/qemu.yaml", "the qemu profile whose first unit the emulated runs use")
	fs.IntVar(&cfg.emuRuns, "emu-runs", 1, "runs of the whole baseline on one emulated unit (each takes minutes)")
	fs.BoolVar(&cfg.profile, "profile", true, "take a CPU profile of one extra analysis run (pprof) for the report")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.seed = seed
	cfg.sections = map[string]bool{}
	for _, s := range strings.Split(only, ",") {
		s = strings.TrimSpace(s)
		if !slices.Contains(allSections, s) {
			return cfg, fmt.Errorf("-only: unknown section %q (want %s)", s, strings.Join(allSections, ","))
		}
		cfg.sections[s] = true
	}
	for _, f := range strings.Split(fleet, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64 {
			return cfg, fmt.Errorf("-fleet: %q is not a number of devices (1..64)", f)
		}
		cfg.fleet = append(cfg.fleet, n)
	}
	cfg.runs = map[int]int{}
	for _, r := range strings.Split(runs, ",") {
		n, k, ok := strings.Cut(strings.TrimSpace(r), ":")
		ni, err1 := strconv.Atoi(n)
		ki, err2 := strconv.Atoi(k)
		if !ok || err1 != nil || err2 != nil || ki < 1 {
			return cfg, fmt.Errorf("-runs: %q: want size:runs", r)
		}
		cfg.runs[ni] = ki
	}
	for _, n := range []int{cfg.scanRuns, cfg.analyzeRuns, cfg.tsharkRuns, cfg.goCount, cfg.packets, cfg.emuRuns} {
		if n < 1 {
			return cfg, errors.New("every count must be at least 1")
		}
	}
	return cfg, nil
}

func (c config) runsFor(n int) int {
	if r, ok := c.runs[n]; ok {
		return r
	}
	return 1
}

func run(ctx context.Context, cfg config) error {
	cfg.logw = os.Stderr
	var err error
	if cfg.self, err = os.Executable(); err != nil {
		return err
	}
	if cfg.sections["baseline"] || cfg.sections["fleet"] || cfg.sections["scan"] || cfg.sections["emulated"] {
		if cfg.hilt, err = filepath.Abs(cfg.hilt); err != nil {
			return err
		}
		if _, err := os.Stat(cfg.hilt); err != nil {
			return fmt.Errorf("the hilt executable: %w (make build makes bin/hilt)", err)
		}
	}
	if cfg.work == "" {
		if cfg.work, err = os.MkdirTemp("", "hiltbench-"); err != nil {
			return err
		}
		if !cfg.keep {
			defer os.RemoveAll(cfg.work)
		}
	} else if err := os.MkdirAll(cfg.work, 0o755); err != nil {
		return err
	}
	rep := &report{Start: time.Now().UTC(), Machine: bench.ReadMachine(), Cfg: cfg, Versions: toolVersions(ctx, cfg)}
	rep.LoadStart, _ = bench.ReadLoad()
	cfg.logf("work folder %s; load average %s", cfg.work, rep.LoadStart)
	if cfg.sections["baseline"] || cfg.sections["fleet"] {
		rep.Fleet = runFleet(ctx, cfg)
	}
	if ctx.Err() == nil && cfg.sections["scan"] {
		rep.Scan = runScan(ctx, cfg)
	}
	if ctx.Err() == nil && cfg.sections["capture"] {
		rep.Capture = runCapture(ctx, cfg)
	}
	if ctx.Err() == nil && (cfg.sections["console"] || cfg.sections["go"]) {
		rep.Go = runGoBenchmarks(ctx, cfg)
	}
	if ctx.Err() == nil && cfg.sections["emulated"] {
		rep.Emu = runEmulated(ctx, cfg)
	}
	rep.End = time.Now().UTC()
	rep.LoadEnd, _ = bench.ReadLoad()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("interrupted; %s not written: %w", cfg.out, err)
	}
	if err := os.WriteFile(cfg.out, rep.markdown(), 0o644); err != nil {
		return err
	}
	cfg.logf("wrote %s in %s", cfg.out, rep.End.Sub(rep.Start).Round(time.Second))
	return nil
}

func (c config) logf(format string, args ...any) {
	fmt.Fprintf(c.logw, "hiltbench: "+format+"\n", args...)
}

// toolVersions names the versions of hilt's peers, by their first line of --version.
func toolVersions(ctx context.Context, cfg config) map[string]string {
	v := map[string]string{}
	for _, t := range []struct{ name, section string }{{"nmap", "scan"}, {"tshark", "capture"}} {
		if !cfg.sections[t.section] {
			continue
		}
		out, err := exec.CommandContext(ctx, t.name, "--version").Output()
		if err != nil {
			v[t.name] = "not available: " + err.Error()
			continue
		}
		line, _, _ := strings.Cut(string(out), "\n")
		v[t.name] = strings.TrimSpace(line)
	}
	if out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output(); err == nil {
		v["hilt"] = strings.TrimSpace(string(out))
	}
	return v
}
