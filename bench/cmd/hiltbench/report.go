package main

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hilt-project/hilt/bench"
)

// Targets of the issue.
const (
	targetBaseline   = 3 * time.Second
	targetFleetRatio = 2.0
	targetMemory     = 100_000_000 // bytes
)

// report is everything measured, rendered as BENCHMARKS.md.
type report struct {
	Start, End         time.Time
	Machine            bench.Machine
	Cfg                config
	Versions           map[string]string
	LoadStart, LoadEnd bench.Load
	Fleet              *fleetResult
	Scan               *scanResult
	Capture            *captureResult
	Go                 *goResult
	Emu                *emuResult

	summary [][]string // rows of the summary table
	b       bytes.Buffer
}

func (r *report) p(format string, args ...any) { fmt.Fprintf(&r.b, format+"\n", args...) }

// row adds a summary row: figure, median, runs, compared with, ratio, target, load.
func (r *report) row(cells ...string) { r.summary = append(r.summary, cells) }

func (r *report) markdown() []byte {
	var body report
	body.Cfg, body.Machine, body.Fleet, body.Scan, body.Capture, body.Go, body.Emu = r.Cfg, r.Machine, r.Fleet, r.Scan, r.Capture, r.Go, r.Emu
	body.sections()
	r.summary = body.summary

	r.p("# Benchmarks")
	r.p("")
	r.p("Written by `make bench` (scripts/bench.sh, then bench/cmd/hiltbench) on %s UTC, in %s. Regenerate it with `make bench`; do not edit it by hand.",
		r.Start.Format("2006-01-02 15:04"), r.End.Sub(r.Start).Round(time.Second))
	var vs []string
	for _, k := range []string{"hilt", "nmap", "tshark"} {
		if v, ok := r.Versions[k]; ok {
			vs = append(vs, fmt.Sprintf("%s `%s`", k, v))
		}
	}
	vs = append(vs, "Go "+r.Machine.Go)
	r.p("Versions: %s.", strings.Join(vs, ", "))
	r.p("")
	r.p("## Machine")
	r.p("")
	r.p("| CPU | cores | memory | kernel | OS |")
	r.p("|---|---|---|---|---|")
	r.p("| %s | %d | %.1f GB | %s | %s |", r.Machine.CPU, r.Machine.Cores, float64(r.Machine.MemTotal)/1e9, r.Machine.Kernel, r.Machine.OS)
	r.p("")
	r.p("Load average (1, 5, 15 min): %s at the start, %s at the end. The machine may be shared with other jobs while the figures are taken: "+
		"each figure carries the 1-minute load average at the start of its runs (a range over the runs); on %d cores, a load above %d means the "+
		"benchmarks competed for the CPU and ran slower than they would alone. Ratios against a peer are robust to that (the peer runs "+
		"alternately with hilt's code, under the same load); absolute figures are not.", r.LoadStart, r.LoadEnd, r.Machine.Cores, r.Machine.Cores)
	r.p("")
	r.p("## Summary")
	r.p("")
	r.p("Each figure is the median of the runs given; the ratio is hilt's figure divided by the peer's (or the target's), measured in the same `make bench` on the same input.")
	r.p("")
	r.p("| figure | median | runs | compared with | ratio | target / agreement | load (1 min) |")
	r.p("|---|---|---|---|---|---|---|")
	for _, row := range r.summary {
		r.p("| %s |", strings.Join(row, " | "))
	}
	r.p("")
	r.b.Write(body.b.Bytes())
	r.method()
	return r.b.Bytes()
}

func (r *report) sections() {
	r.baseline()
	r.fleet()
	r.scan()
	r.capture()
	r.console()
	r.memory()
	r.goBench()
	r.emulated()
}

// usages returns the Usage of each run.
func usages(runs []hiltRun) []bench.Usage {
	var us []bench.Usage
	for _, h := range runs {
		us = append(us, h.Usage)
	}
	return us
}

func (r *report) baseline() {
	if !r.Cfg.sections["baseline"] {
		return
	}
	r.p("## 1. Baseline on one simulated device")
	r.p("")
	runs := r.fleetRuns(1)
	if len(runs) == 0 {
		r.p("Not measured: `-fleet` has no size 1.")
		r.p("")
		return
	}
	us := usages(runs)
	wall := medianWall(us)
	r.row("baseline, 1 device: wall time of `hilt run --devices 1`", fmtDur(wall), fmt.Sprint(len(runs)),
		"target 3 s", ratio(wall.Seconds(), targetBaseline.Seconds()), "under 3 s: "+verdict(wall < targetBaseline)+errNote(runs), loadRange(us))
	r.p("`hilt run --devices 1 --out DIR`, every check of the baseline against one simulated device (network namespace, embedded broker), %s. "+
		"Target: under 3 s. Median wall time **%s** (%s the target).", plural(len(runs), "run"), fmtDur(wall), ratio(wall.Seconds(), targetBaseline.Seconds()))
	r.p("")
	r.runTable(runs)
	// Per check.
	order := runs[0].Order
	var sumMed int64
	type chk struct {
		id       string
		med      int64
		lo, hi   int64
		fleetMed int64
	}
	var cs []chk
	big := r.biggestFleet()
	for _, id := range order {
		vs := checkTimes(runs, id)
		if len(vs) == 0 {
			continue
		}
		c := chk{id: id, med: bench.Median(vs), lo: slices.Min(vs), hi: slices.Max(vs)}
		if big > 1 {
			c.fleetMed = bench.Median(checkTimes(r.fleetRuns(big), id))
		}
		sumMed += c.med
		cs = append(cs, c)
	}
	r.p("### Time per check")
	r.p("")
	r.p("From `compliance.json` (`duration_ms`), median over the runs; the checks of one device run one after another, so their sum is most of the wall time.")
	if big > 1 {
		r.p("The last column is the same check's median over every device of the %d-device runs, for comparison.", big)
	}
	r.p("")
	hdr := "| check | median | min–max | share of the sum |"
	sep := "|---|---|---|---|"
	if big > 1 {
		hdr += fmt.Sprintf(" %d devices |", big)
		sep += "---|"
	}
	r.p("%s what it waits for |", hdr)
	r.p("%s---|", sep)
	for _, c := range cs {
		line := fmt.Sprintf("| %s | %s | %s–%s | %.1f%% |", c.id, fmtDur(ms(c.med)), fmtDur(ms(c.lo)), fmtDur(ms(c.hi)), 100*float64(c.med)/float64(max(sumMed, 1)))
		if big > 1 {
			line += " " + fmtDur(ms(c.fleetMed)) + " |"
		}
		r.p("%s %s |", line, checkWaits[c.id])
	}
	r.p("| **sum** | **%s** | | 100%% |%s |", fmtDur(ms(sumMed)), strings.Repeat(" |", boolInt(big > 1)))
	r.p("")
	// What bounds it.
	cpu := time.Duration(medianOf(us, func(u bench.Usage) int64 { return int64(u.CPU()) }))
	up := bench.Median(benchUps(runs))
	var meds []checkMed
	for _, c := range cs {
		meds = append(meds, checkMed{c.id, c.med})
	}
	top, topSum := slowest(meds, 5)
	r.p("**What bounds it.** ")
	r.p("The whole process tree (hilt, its check process, the device, the broker in hilt's process) used %s of CPU in %s of wall time: %.2f cores busy on average. "+
		"The run is bound by waiting, not by computing: the checks wait for the device to reboot, for its telemetry, for lockouts to expire and for interfaces to fall silent, one check after another. "+
		"The sum of the checks (%s) is %.0f%% of the wall time; the bench's start (network namespace, certificates, broker, first boot and provisioning) takes %s, and the rest is first contact, the check process's start and the reports. "+
		"The five slowest checks (%s) take %s, %.0f%% of the sum.",
		fmtDur(cpu), fmtDur(wall), cpu.Seconds()/wall.Seconds(), fmtDur(ms(sumMed)), 100*float64(sumMed)/float64(wall.Milliseconds()), fmtDur(up),
		strings.Join(top, ", "), fmtDur(ms(topSum)), 100*float64(topSum)/float64(max(sumMed, 1)))
	waits := "shorter waits (a shorter telemetry interval on the simulated device, a shorter lockout in LA-05, which waits out one of at least 1 s, faster reboots) or the checks of one device run concurrently"
	if cpu < targetBaseline {
		r.p("Reaching 3 s would need %s; a faster harness alone would not get there, since all the CPU the run uses (%s) already fits in the target.", waits, fmtDur(cpu))
	} else {
		r.p("Reaching 3 s would need %s, and less CPU: the run's CPU alone, %s (%s), is more than the target on one core, and %s on %d cores if all of it could run at once.",
			waits, fmtDur(cpu), cpuByKind(runs[0].Usage.CPUByKind), fmtDur(cpu/time.Duration(r.Machine.Cores)), r.Machine.Cores)
	}
	r.startCost(runs)
	r.p("")
}

// startCost says what the starts of the executables cost in runs: the device re-executes
// its own at every reboot.
func (r *report) startCost(runs []hiltRun) {
	if r.Fleet == nil || len(r.Fleet.Starts) == 0 || len(runs) == 0 || runs[0].Boots == 0 {
		return
	}
	st := r.Fleet.Starts
	cpu := time.Duration(medianOf(st, func(u bench.Usage) int64 { return int64(u.CPU()) }))
	rss := medianOf(st, func(u bench.Usage) int64 { return u.MaxRSS })
	var boots []int64
	for _, x := range runs {
		boots = append(boots, int64(x.Boots))
	}
	b := bench.Median(boots)
	r.p("Every start of the hilt executable costs %s of CPU and %s of RSS before it does any work (`hilt __refdev --list-flaws`, median of %d): loading the executable, the Go runtime and the initialisation of the packages linked in "+
		"(`GODEBUG=inittrace=1` lists them: most of it is gopacket's layers package, whose tables of 65536 entries it fills at every start; "+
		"hilt decodes packets with gopacket rather than a decoder of its own).",
		fmtDur(cpu), fmtMB(rss), len(st))
	if ds := r.Fleet.DevStarts; len(ds) > 0 {
		dcpu := time.Duration(medianOf(ds, func(u bench.Usage) int64 { return int64(u.CPU()) }))
		drss := medianOf(ds, func(u bench.Usage) int64 { return u.MaxRSS })
		r.p(" The simulated devices run `%s`, the firmware alone, built with hilt by `make build` (internal/buildpair): a start of it costs %s of CPU and %s of RSS. "+
			"A device re-executes it at every reboot (RAM lost, as on hardware): %d boots in the run (median), so about %s of the devices' CPU is starts (%s had they run the hilt executable).",
			filepath.Base(r.Fleet.DevExe), fmtDur(dcpu), fmtMB(drss), b, fmtDur(dcpu*time.Duration(b)), fmtDur(cpu*time.Duration(b)))
	} else {
		r.p(" The simulated devices run the hilt executable itself (`hilt __refdev`: no hilt-refdev built with it lay next to it) and re-execute it at every reboot (RAM lost, as on hardware): %d boots in the run (median), so about %s of the devices' CPU is starts.",
			b, fmtDur(cpu*time.Duration(b)))
	}
}

// checkTimes is check id's duration on every device of every run, ms.
func checkTimes(runs []hiltRun, id string) []int64 {
	var vs []int64
	for _, h := range runs {
		for _, v := range h.Checks[id] {
			vs = append(vs, v)
		}
	}
	return vs
}

// checkMed is a check's median duration, ms.
type checkMed struct {
	id  string
	med int64
}

// slowest names the n slowest checks with their times, slowest first, and sums them.
func slowest(cs []checkMed, n int) ([]string, int64) {
	cs = slices.Clone(cs)
	sort.Slice(cs, func(i, j int) bool { return cs[i].med > cs[j].med })
	var names []string
	var sum int64
	for _, c := range cs[:min(n, len(cs))] {
		names = append(names, fmt.Sprintf("%s %s", c.id, fmtDur(ms(c.med))))
		sum += c.med
	}
	return names, sum
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// checkWaits says what the slow checks wait for, from reading suites/ when this was
// written (the figures above say how long).
var checkWaits = map[string]string{
	"DP-01": "reboots the device and captures its traffic until its next telemetry message",
	"DP-02": "redirects the device to an untrusted TLS server and waits for its connection, then for it to come back online",
	"LA-01": "a full TCP port scan of each of the device's addresses, IPv4 and IPv6 at once (netprobe: a SYN scan as root, 65535 ports, §3), and UDP probes that wait for silence",
	"LA-02": "disables each interface and waits until it stops answering (up to 3 s; for MQTT, once the device says goodbye, 20 times its last answer time, 0.3-1 s), then enables it",
	"LA-04": "probes every default or shared credential on console and mgmt",
	"LA-05": "times the device's answers, waits out one lockout it sets (at least 1 s, 5× the slowest answer) and reboots the device one attempt short of the threshold",
	"SU-01": "installs an image over each update channel (each install reboots the device) and reboots it once more",
	"SU-10": "reboots (rollback of an update)",
	"CS-04": "installs an update and reboots with its image slots put back",
	"RT-01": "factory reset and reboot, then a reboot as the new owner",
	"RT-02": "factory reset and reboot",
	"RT-03": "factory reset and reboot",
	"DC-01": "reboots the device to see settings survive",
}

func benchUps(runs []hiltRun) []time.Duration {
	var ds []time.Duration
	for _, h := range runs {
		if h.BenchUp > 0 {
			ds = append(ds, h.BenchUp)
		}
	}
	return ds
}

// runTable lists the runs of one fleet size.
func (r *report) runTable(runs []hiltRun) {
	r.p("| run | wall | hilt's run time | CPU (tree) | peak memory | peak PSS | verdicts | load (1 min) at start |")
	r.p("|---|---|---|---|---|---|---|---|")
	for i, h := range runs {
		r.p("| %d | %s | %s | %s | %s | %s | %s | %.2f |", i+1, fmtDur(h.Usage.Wall), fmtDur(ms(h.RunMS)), fmtDur(h.Usage.CPU()),
			fmtMB(peakMem(h.Usage)), fmtMB(h.Usage.PeakPSS), h.verdicts(), h.Usage.LoadBefore[0])
	}
	r.p("")
	r.failures(runs)
}

// verdicts counts the run's verdicts and says how it ended, if not well.
func (h hiltRun) verdicts() string {
	v := fmt.Sprintf("%d pass, %d fail, %d skip, %d error", h.Verdicts["pass"], h.Verdicts["fail"], h.Verdicts["skip"], h.Verdicts["error"])
	switch {
	case errors.Is(h.Err, bench.ErrExit):
		v += fmt.Sprintf("; exit %d", h.Usage.ExitCode)
	case h.Err != nil:
		v += "; " + strings.ReplaceAll(h.Err.Error(), "|", "\\|")
	}
	return v
}

// failures lists the checks that failed or errored in each run that had any.
func (r *report) failures(runs []hiltRun) {
	for i, h := range runs {
		if len(h.Failed) == 0 {
			continue
		}
		r.p("Run %d did not pass cleanly (a check that errors has usually waited out a timeout first, which its wall time includes):", i+1)
		r.p("")
		for _, f := range h.Failed {
			r.p("- %s", strings.ReplaceAll(f, "|", "\\|"))
		}
		r.p("")
	}
}

func (r *report) fleetRuns(n int) []hiltRun {
	if r.Fleet == nil {
		return nil
	}
	return r.Fleet.Runs[n]
}

func (r *report) biggestFleet() int {
	if r.Fleet == nil {
		return 0
	}
	big := 0
	for _, n := range r.Fleet.Sizes {
		if len(r.Fleet.Runs[n]) > 0 {
			big = max(big, n)
		}
	}
	return big
}

func (r *report) fleet() {
	if !r.Cfg.sections["fleet"] || r.Fleet == nil {
		return
	}
	r.p("## 2. Fleet: 1 to %d simulated devices", r.biggestFleet())
	r.p("")
	r.p("`hilt run --devices N`: one check process and one device process per device, all devices at once. Target: %d devices in at most 2× the wall time of one. "+
		"Runs of the sizes were interleaved (1, 4, 16, 1, 4, 1 ...) so that changes in the machine's load spread over all.", r.biggestFleet())
	r.p("")
	one := r.fleetRuns(1)
	oneWall := medianWall(usages(one))
	onePeak := medianOf(usages(one), peakMem)
	r.p("| devices | runs | wall (median) | vs 1 device | CPU (tree) | cores busy | peak memory | per device | peak PSS | load (1 min) |")
	r.p("|---|---|---|---|---|---|---|---|---|---|")
	for _, n := range r.Fleet.Sizes {
		runs := r.fleetRuns(n)
		if len(runs) == 0 {
			continue
		}
		us := usages(runs)
		wall := medianWall(us)
		cpu := time.Duration(medianOf(us, func(u bench.Usage) int64 { return int64(u.CPU()) }))
		peak := medianOf(us, peakMem)
		pss := medianOf(us, func(u bench.Usage) int64 { return u.PeakPSS })
		r.p("| %d | %d | %s | %s | %s | %.2f | %s | %s | %s | %s |", n, len(runs), fmtDur(wall), ratio(wall.Seconds(), oneWall.Seconds()),
			fmtDur(cpu), cpu.Seconds()/wall.Seconds(), fmtMB(peak), fmtMB(peak/int64(n)), fmtMB(pss), loadRange(us))
		if n == 1 {
			continue
		}
		target := ""
		if n == r.biggestFleet() {
			target = "at most 2×: " + verdict(wall.Seconds() <= targetFleetRatio*oneWall.Seconds())
		}
		target += errNote(runs)
		r.row(fmt.Sprintf("fleet, %d devices: wall time", n), fmtDur(wall), fmt.Sprint(len(runs)), "1 device: "+fmtDur(oneWall),
			ratio(wall.Seconds(), oneWall.Seconds()), target, loadRange(us))
		r.row(fmt.Sprintf("fleet, %d devices: peak memory", n), fmtMB(peak), fmt.Sprint(len(runs)), "1 device: "+fmtMB(onePeak),
			ratio(float64(peak), float64(onePeak)), fmtMB(peak/int64(n))+" per device", loadRange(us))
	}
	r.p("")
	big := r.biggestFleet()
	if big <= 1 || len(one) == 0 {
		return
	}
	for _, n := range r.Fleet.Sizes {
		if n > 1 && len(r.fleetRuns(n)) > 0 {
			r.p("Runs with %d devices:", n)
			r.p("")
			r.runTable(r.fleetRuns(n))
		}
	}
	runs := r.fleetRuns(big)
	us := usages(runs)
	wall := medianWall(us)
	cpu := time.Duration(medianOf(us, func(u bench.Usage) int64 { return int64(u.CPU()) }))
	oneCPU := time.Duration(medianOf(usages(one), func(u bench.Usage) int64 { return int64(u.CPU()) }))
	cores := float64(r.Machine.Cores)
	floor := time.Duration(max(float64(oneWall), float64(cpu)/cores))
	r.p("**What bounds it.** ")
	r.p("One device needs %s of CPU in %s; %d devices need %s of CPU (%.1f× one, %s per device), and this machine has %d cores: "+
		"the %d-device run cannot end before max(one device's wall time, CPU ÷ cores) = **%s**, %s one device's wall time, whatever the harness does. "+
		"It took %s, with %.2f cores busy on average.",
		fmtDur(oneCPU), fmtDur(oneWall), big, fmtDur(cpu), cpu.Seconds()/max(oneCPU.Seconds(), 1e-9), fmtDur(cpu/time.Duration(big)), int(cores),
		big, fmtDur(floor), ratio(floor.Seconds(), oneWall.Seconds()), fmtDur(wall), cpu.Seconds()/wall.Seconds())
	limit := targetFleetRatio * oneWall.Seconds()
	switch {
	case wall.Seconds() <= limit:
		r.p("The target is met.")
	case floor.Seconds() > limit:
		r.p("The run is CPU-bound: the CPU its devices and checks need, spread over %d cores, already exceeds 2× one device's wall time. "+
			"Meeting the target on this machine would need the CPU per device below %s (it is %s), or %d cores at today's CPU per device; "+
			"with other jobs on the machine (load above %d), fewer cores than that are really ours.",
			int(cores), fmtDur(time.Duration(limit*cores/float64(big)*float64(time.Second))), fmtDur(cpu/time.Duration(big)), int(cpu.Seconds()/limit)+1, int(cores))
	default:
		r.p("The CPU floor is under 2×, so the rest is contention: %.2f of %d cores were busy on average (other jobs on the machine take the rest), "+
			"and checks that wait on the device (reboots, console round trips) wait longer when its process gets less CPU.",
			cpu.Seconds()/wall.Seconds(), int(cores))
	}
	r.p("")
	if len(runs) > 0 {
		r.p("CPU by process in the %d-device run (sampled from /proc): %s.", big, cpuByKind(runs[0].Usage.CPUByKind))
		r.p("")
		r.p("Memory at the peak of the %d-device run (RSS, by process): %s.", big, byKind(runs[0].Usage.AtPeak))
		r.p("")
	}
	// Which checks slow down most.
	type grow struct {
		id        string
		one, many int64
	}
	var gs []grow
	for _, id := range one[0].Order {
		a, b := checkTimes(one, id), checkTimes(runs, id)
		if len(a) > 0 && len(b) > 0 {
			gs = append(gs, grow{id, bench.Median(a), bench.Median(b)})
		}
	}
	sort.Slice(gs, func(i, j int) bool { return gs[i].many-gs[i].one > gs[j].many-gs[j].one })
	var parts []string
	for _, g := range gs[:min(6, len(gs))] {
		parts = append(parts, fmt.Sprintf("%s %s → %s", g.id, fmtDur(ms(g.one)), fmtDur(ms(g.many))))
	}
	r.p("The checks that slow down most with %d devices (median per device): %s.", big, strings.Join(parts, ", "))
	if r.Scan != nil && len(r.Scan.Hilt) > 0 {
		scanCPU := time.Duration(medianOf(scanUsages(r.Scan.Hilt), func(u bench.Usage) int64 { return int64(u.CPU()) }))
		r.p("LA-01 is a full TCP port scan of each device; one scan costs %s of CPU (§3), so %d devices scanning at once need about %s of CPU for LA-01 alone, %s on %d cores.",
			fmtDur(scanCPU), big, fmtDur(scanCPU*time.Duration(big)), fmtDur(scanCPU*time.Duration(big)/time.Duration(r.Machine.Cores)), r.Machine.Cores)
	}
	r.p("")
}

// plural prints "1 run", "3 runs".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// errNote says how many runs did not pass cleanly, for the summary.
func errNote(runs []hiltRun) string {
	n := 0
	for _, h := range runs {
		if h.Err != nil || len(h.Failed) > 0 {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d of %d runs with failed or errored checks, see below)", n, len(runs))
}
