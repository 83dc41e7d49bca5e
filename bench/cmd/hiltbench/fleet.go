package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hilt-project/hilt/bench"
)

// compliance is the part of out/compliance.json the benchmarks read.
type compliance struct {
	Run struct {
		DurationMS int64    `json:"duration_ms"`
		Errors     []string `json:"errors"`
	} `json:"run"`
	Checks []struct {
		ID         string `json:"id"`
		Device     string `json:"device"`
		Verdict    string `json:"verdict"`
		Reason     string `json:"reason"`
		DurationMS int64  `json:"duration_ms"`
	} `json:"checks"`
}

// hiltRun is one measured `hilt run --devices N`.
type hiltRun struct {
	Devices int
	Usage   bench.Usage
	Err     error
	// Checks holds each check's duration on each device, ms: Checks[id][device].
	Checks map[string]map[string]int64
	// Order lists the check IDs as compliance.json does.
	Order    []string
	Verdicts map[string]int
	RunMS    int64
	// Failed lists the checks that failed or errored: "dev8 DC-03 error: reason".
	Failed []string
	// BenchUp is how long the simulated bench took to start, from hilt's output.
	BenchUp time.Duration
	// Boots counts the devices' boots, from hilt's output (the first ones included): the
	// simulated device re-executes its executable at every reboot.
	Boots int
	// DevExe is the executable the devices ran, from hilt's output.
	DevExe string
	// Log is the file with hilt's output.
	Log string
}

var benchUpRE = regexp.MustCompile(`(?m)^bench up in (\S+)$`)

// fleetResult is every hilt run, by fleet size, in the order run.
type fleetResult struct {
	Sizes []int
	Runs  map[int][]hiltRun
	// Starts are runs of `hilt __refdev --list-flaws`: what a start of the hilt
	// executable costs before it does any work (package initialisation).
	Starts []bench.Usage
	// DevExe is the executable the simulated devices ran (the paired hilt-refdev, or hilt
	// itself), from hilt's output; DevStarts are its bare starts when it is not hilt.
	DevExe    string
	DevStarts []bench.Usage
}

// devExeRE finds the device executable in hilt's output (harness/sim's log line).
var devExeRE = regexp.MustCompile(`(?m)^\s*bench: devices run (\S+)`)

// startRuns is how many times runFleet measures a bare start of hilt.
const startRuns = 5

// measureStarts runs `exe __refdev --list-flaws` startRuns times.
func measureStarts(ctx context.Context, cfg config, exe string) []bench.Usage {
	var us []bench.Usage
	for range startRuns {
		cmd := exec.Command(exe, "__refdev", "--list-flaws")
		u, err := bench.Run(ctx, cmd)
		if err != nil {
			cfg.logf("start of %s: %v", exe, err)
			return nil
		}
		us = append(us, u)
	}
	return us
}

// runFleet runs `hilt run --devices N` for every fleet size, interleaving the sizes
// (1, 4, 16, 1, 4, 1, ...) so that a change in the machine's load spreads over all.
func runFleet(ctx context.Context, cfg config) *fleetResult {
	res := &fleetResult{Sizes: cfg.fleet, Runs: map[int][]hiltRun{}, Starts: measureStarts(ctx, cfg, cfg.hilt)}
	most := 0
	for _, n := range cfg.fleet {
		most = max(most, cfg.runsFor(n))
	}
	for round := range most {
		for _, n := range cfg.fleet {
			if round >= cfg.runsFor(n) || ctx.Err() != nil {
				continue
			}
			r := runHilt(ctx, cfg, n, round)
			res.Runs[n] = append(res.Runs[n], r)
			if res.DevExe == "" && r.DevExe != "" {
				res.DevExe = r.DevExe
				if r.DevExe != cfg.hilt && filepath.Base(r.DevExe) != filepath.Base(cfg.hilt) {
					res.DevStarts = measureStarts(ctx, cfg, r.DevExe)
				}
			}
			status := "ok"
			if r.Err != nil {
				status = r.Err.Error()
			}
			peak, _ := r.Usage.PeakMem()
			cfg.logf("hilt run --devices %d (%d/%d): %s wall, %s CPU, peak %s, load %.2f: %s",
				n, round+1, cfg.runsFor(n), fmtDur(r.Usage.Wall), fmtDur(r.Usage.CPU()), fmtMB(peak), r.Usage.LoadBefore[0], status)
		}
	}
	return res
}

func runHilt(ctx context.Context, cfg config, n, round int) hiltRun {
	return runHiltWith(ctx, cfg, fmt.Sprintf("run-%d-%d", n, round+1), n, 15*time.Minute, "--devices", fmt.Sprint(n))
}

// runHiltWith runs `hilt run ARGS --out WORK/NAME` for n devices, with its output in
// WORK/NAME.log, and reads its reports.
func runHiltWith(ctx context.Context, cfg config, name string, n int, limit time.Duration, args ...string) hiltRun {
	r := hiltRun{Devices: n}
	out := filepath.Join(cfg.work, name)
	r.Log = out + ".log"
	log, err := os.Create(r.Log)
	if err != nil {
		r.Err = err
		return r
	}
	defer log.Close()
	cmd := exec.Command(cfg.hilt, append(append([]string{"run"}, args...), "--out", out)...)
	cmd.Stdout, cmd.Stderr = log, log
	rctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	r.Usage, r.Err = bench.Run(rctx, cmd, bench.WithCgroup(true))
	if r.Err != nil {
		r.Err = fmt.Errorf("%w (log: %s)", r.Err, out+".log")
	}
	if b, err := os.ReadFile(out + ".log"); err == nil {
		if m := benchUpRE.FindSubmatch(b); m != nil {
			r.BenchUp, _ = time.ParseDuration(string(m[1]))
		}
		r.Boots = n + bytes.Count(b, []byte(": booted again ("))
		if m := devExeRE.FindSubmatch(b); m != nil {
			r.DevExe = string(m[1])
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "compliance.json"))
	if err != nil {
		if r.Err == nil {
			r.Err = err
		}
		return r
	}
	var c compliance
	if err := json.Unmarshal(b, &c); err != nil {
		if r.Err == nil {
			r.Err = fmt.Errorf("%s: %w", filepath.Join(out, "compliance.json"), err)
		}
		return r
	}
	r.RunMS = c.Run.DurationMS
	r.Checks = map[string]map[string]int64{}
	r.Verdicts = map[string]int{}
	for _, ch := range c.Checks {
		if r.Checks[ch.ID] == nil {
			r.Checks[ch.ID] = map[string]int64{}
			r.Order = append(r.Order, ch.ID)
		}
		r.Checks[ch.ID][ch.Device] = ch.DurationMS
		r.Verdicts[ch.Verdict]++
		if ch.Verdict == "fail" || ch.Verdict == "error" {
			reason := strings.Join(strings.Fields(ch.Reason), " ")
			if r := []rune(reason); len(r) > 200 {
				reason = string(r[:200]) + "…"
			}
			r.Failed = append(r.Failed, fmt.Sprintf("%s %s %s (%s): %s", ch.Device, ch.ID, ch.Verdict, fmtDur(ms(ch.DurationMS)), reason))
		}
	}
	return r
}
