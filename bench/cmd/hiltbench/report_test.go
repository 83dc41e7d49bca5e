package main

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hilt-project/hilt/bench"
	"github.com/hilt-project/hilt/bench/capgen"
)

// TestMarkdown renders a report of made-up results through every section: no figure is
// checked, only that each section renders and says what it must.
func TestMarkdown(t *testing.T) {
	cfg, err := parseFlags([]string{"-fleet", "1,2", "-runs", "1:2,2:1"})
	if err != nil {
		t.Fatal(err)
	}
	u := func(wall, cpu time.Duration, rss int64) bench.Usage {
		return bench.Usage{Wall: wall, User: cpu, PeakRSS: rss, PeakPSS: rss / 2, MaxRSS: rss / 3,
			AtPeak: []bench.ProcMem{{PID: 1, Kind: "hilt run", RSS: rss}}, CPUByKind: map[string]time.Duration{"hilt run": cpu}}
	}
	run := func(n int, wall time.Duration, failed ...string) hiltRun {
		h := hiltRun{Devices: n, Usage: u(wall, wall/3, int64(n)*100e6), Order: []string{"DI-01", "LA-05"}, RunMS: wall.Milliseconds(),
			Checks:   map[string]map[string]int64{"DI-01": {"dev1": 10}, "LA-05": {"dev1": 3000}},
			Verdicts: map[string]int{"pass": 2}, Failed: failed}
		if len(failed) > 0 {
			h.Err = fmt.Errorf("%w: exit status 1", bench.ErrExit)
			h.Usage.ExitCode = 1
		}
		return h
	}
	cred := capgen.Cred{Src: netip.MustParseAddr("10.20.0.5"), Username: "dev-1", Password: "pw"}
	scan := func(d time.Duration) scanRun { return scanRun{Usage: u(d, d/2, 20e6), Open: []int{8443}, Inner: d} }
	an := func(d time.Duration) analysisRun {
		return analysisRun{Usage: u(d, d, 40e6), Creds: []capgen.Cred{cred}, Inner: d}
	}
	gb := func(pkg, name string, m map[string]float64) bench.GoBench {
		return bench.GoBench{Pkg: "github.com/hilt-project/hilt/" + pkg, Name: name, Runs: 3, Metrics: m, Min: m, Max: m}
	}
	r := &report{
		Start: time.Now(), End: time.Now(), Cfg: cfg, Machine: bench.Machine{Cores: 2, CPU: "test"},
		Fleet: &fleetResult{Sizes: []int{1, 2}, Runs: map[int][]hiltRun{
			1: {run(1, 10*time.Second), run(1, 12*time.Second)},
			2: {run(2, 30*time.Second, "dev2 LA-05 fail (7.61 s): no lockout | really")},
		}},
		Scan:    &scanResult{Addr: "10.1.2.2", Namespace: true, Hilt: []scanRun{scan(time.Second)}, Nmap: []scanRun{scan(2 * time.Second)}},
		Capture: &captureResult{Summary: capgen.Summary{Packets: 10, Creds: []capgen.Cred{cred}, Split: cred, Flows: map[capgen.Kind]int{}}, Hilt: []analysisRun{an(time.Second)}, Tshark: []analysisRun{an(time.Minute)}},
		Go: &goResult{Count: map[string]int{"console": 3, "hot paths": 3}, Benches: []bench.GoBench{
			gb("drivers/serial", "ExpectFlood/literal", map[string]float64{"MB/s": 10}),
			gb("drivers/serial", "ExpectLatency", map[string]float64{"ns/op": 2e5}),
			gb("bench", "PTYFloodRaw", map[string]float64{"MB/s": 30}),
			gb("bench", "PTYLatencyRaw", map[string]float64{"ns/op": 5e4}),
			gb("bench", "ImageBuild/1MiB/signed", map[string]float64{"ns/op": 1e7}),
			gb("bench", "ImageBuild/1MiB/hash+sign", map[string]float64{"ns/op": 1e6}),
		}, Errs: []error{errors.New("one suite failed")}},
		Emu: &emuResult{Profile: "fixtures/devices/qemu.yaml", Runs: []emuRun{
			{hiltRun: run(1, 4*time.Minute), FirstBoot: 5 * time.Second, Boots: 30},
		}},
	}
	md := string(r.markdown())
	skip := &report{Start: time.Now(), End: time.Now(), Cfg: cfg, Machine: r.Machine, Fleet: r.Fleet, Emu: &emuResult{Skip: "not root"}}
	skip.Cfg.sections = map[string]bool{"emulated": true}
	if skipped := string(skip.markdown()); !strings.Contains(skipped, "Not measured: not root.") {
		t.Errorf("a skipped emulated section does not say why:\n%s", skipped)
	}
	for _, want := range []string{
		"## Summary", "## 1. Baseline", "## 2. Fleet", "## 3. Full TCP port scan", "## 4. Capture analysis", "## 5. Console",
		"## 6. Peak memory", "## 7. Go benchmarks", "## 8. Baseline on one emulated device", "## Method",
		"boot to ready", "30 boots to ready in a run",
		"under 3 s: **missed**", "same open ports: yes", "same credentials: yes", "no lockout \\| really", "exit 1", "Error: one suite failed",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}
