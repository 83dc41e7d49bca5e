package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hilt-project/hilt/bench"
)

// emuResult is the runs of the whole baseline on one emulated device.
type emuResult struct {
	// Profile is the qemu profile the unit came from (its first instance).
	Profile string
	Runs    []emuRun
	// Skip says why nothing was measured.
	Skip string
}

// emuRun is one measured `hilt run --device PROFILE` of one emulated unit.
type emuRun struct {
	hiltRun
	// FirstBoot is the unit's first boot, from QEMU's start to the firmware's ready line.
	FirstBoot time.Duration
	// Boots counts the unit's boots to ready in the run, the first included.
	Boots int
}

var (
	firstBootRE = regexp.MustCompile(`(?m)^\s+\S+\s+ready (\S+) after power-on`)
	emuBootsRE  = regexp.MustCompile(`(?m)^\s+\S+\s+(\d+) boots to ready`)
)

// emuRunLimit bounds one emulated run: its checks time out well before.
const emuRunLimit = 30 * time.Minute

// runEmulated runs the whole baseline on the first unit of cfg.emuProfile, cfg.emuRuns
// times.
func runEmulated(ctx context.Context, cfg config) *emuResult {
	res := &emuResult{Profile: cfg.emuProfile}
	if os.Geteuid() != 0 {
		res.Skip = "not root: an emulated unit needs a tap device (CAP_NET_ADMIN)"
		return res
	}
	prof, remove, err := oneUnitProfile(cfg.emuProfile)
	if err != nil {
		res.Skip = err.Error()
		return res
	}
	defer remove()
	for i := range cfg.emuRuns {
		if ctx.Err() != nil {
			break
		}
		r := emuRun{hiltRun: runHiltWith(ctx, cfg, fmt.Sprintf("emu-%d", i+1), 1, emuRunLimit, "--device", prof)}
		if b, err := os.ReadFile(r.Log); err == nil {
			if m := firstBootRE.FindSubmatch(b); m != nil {
				r.FirstBoot, _ = time.ParseDuration(string(m[1]))
			}
			if m := emuBootsRE.FindSubmatch(b); m != nil {
				r.Boots, _ = strconv.Atoi(string(m[1]))
			}
		}
		res.Runs = append(res.Runs, r)
		status := "ok"
		if r.Err != nil {
			status = r.Err.Error()
		}
		cfg.logf("hilt run, one emulated unit (%d/%d): %s wall, first boot %s, %d boots: %s",
			i+1, cfg.emuRuns, fmtDur(r.Usage.Wall), fmtDur(r.FirstBoot), r.Boots, status)
	}
	return res
}

// oneUnitProfile writes a copy of the qemu profile at path with its first instance only,
// next to it (its relative paths name files from there), and returns the copy's path and
// what removes it.
func oneUnitProfile(path string) (string, func(), error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, fmt.Errorf("the emulated device's profile: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return "", nil, fmt.Errorf("the emulated device's profile %s: %w", path, err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return "", nil, fmt.Errorf("the emulated device's profile %s: not a mapping", path)
	}
	root := doc.Content[0]
	found := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "instances" && root.Content[i+1].Kind == yaml.SequenceNode && len(root.Content[i+1].Content) > 0 {
			root.Content[i+1].Content = root.Content[i+1].Content[:1]
			found = true
		}
	}
	if !found {
		return "", nil, fmt.Errorf("the emulated device's profile %s: no instances", path)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return "", nil, err
	}
	enc.Close()
	one := filepath.Join(filepath.Dir(path), fmt.Sprintf(".hiltbench-%d-%s", os.Getpid(), filepath.Base(path)))
	if err := os.WriteFile(one, out.Bytes(), 0o644); err != nil {
		return "", nil, fmt.Errorf("the one-unit profile: %w", err)
	}
	return one, func() { os.Remove(one) }, nil
}

var accelRE = regexp.MustCompile(`under QEMU \((\w+)\)`)

// hiltRuns returns the runs as hiltRuns.
func (e *emuResult) hiltRuns() []hiltRun {
	var hs []hiltRun
	for _, r := range e.Runs {
		hs = append(hs, r.hiltRun)
	}
	return hs
}

func (r *report) emulated() {
	if !r.Cfg.sections["emulated"] || r.Emu == nil {
		return
	}
	e := r.Emu
	r.p("## 8. Baseline on one emulated device")
	r.p("")
	if len(e.Runs) == 0 {
		r.p("Not measured: %s.", e.Skip)
		r.p("")
		r.row("baseline, 1 emulated device", "–", "0", "", "", "not measured: "+e.Skip, "")
		return
	}
	accel := "accelerator not named in hilt's output"
	if b, err := os.ReadFile(e.Runs[0].Log); err == nil {
		if m := accelRE.FindSubmatch(b); m != nil {
			accel = string(m[1])
		}
	}
	hs := e.hiltRuns()
	us := usages(hs)
	wall := medianWall(us)
	var first, boots []int64
	for _, x := range e.Runs {
		if x.FirstBoot > 0 {
			first = append(first, int64(x.FirstBoot))
		}
		boots = append(boots, int64(x.Boots))
	}
	fb := time.Duration(0)
	if len(first) > 0 {
		fb = time.Duration(medianInt(first))
	}
	nb := medianInt(boots)
	sim := r.fleetRuns(1)
	simWith, simRatio := "", ""
	if len(sim) > 0 {
		sw := medianWall(usages(sim))
		simWith, simRatio = "1 simulated device: "+fmtDur(sw), ratio(wall.Seconds(), sw.Seconds())
	}
	r.row("baseline, 1 emulated device (QEMU, "+accel+"): wall time of the whole baseline", fmtDur(wall), fmt.Sprint(len(e.Runs)),
		simWith, simRatio, errNote(hs), loadRange(us))
	r.row("emulated device: boot to ready (QEMU started to the firmware's ready line, first boot)", orNone(fb), fmt.Sprint(len(first)), "", "", "", loadRange(us))
	r.p("`hilt run --device P --out DIR`, where P is %s with its first unit only: every check of the baseline against the reference device running as PID 1's child "+
		"in a Linux VM under QEMU (%s; docs/QEMU.md), with its own tap link, serial console, disks and the embedded broker, %s. "+
		"Median wall time **%s**; the unit's first boot, from QEMU's start to the firmware's ready line, **%s**; %d boots to ready in a run (median), the first included.",
		"`"+e.Profile+"`", accel, plural(len(e.Runs), "run"), fmtDur(wall), orNone(fb), nb)
	r.p("")
	r.p("| run | wall | hilt's run time | bench up | first boot to ready | boots | CPU (tree) | peak memory | verdicts | load (1 min) at start |")
	r.p("|---|---|---|---|---|---|---|---|---|---|")
	for i, x := range e.Runs {
		r.p("| %d | %s | %s | %s | %s | %d | %s | %s | %s | %.2f |", i+1, fmtDur(x.Usage.Wall), fmtDur(ms(x.RunMS)), orNone(x.BenchUp), orNone(x.FirstBoot), x.Boots,
			fmtDur(x.Usage.CPU()), fmtMB(peakMem(x.Usage)), x.verdicts(), x.Usage.LoadBefore[0])
	}
	r.p("")
	r.failures(hs)
	// Per check, beside the simulated device's.
	var order []string
	for _, h := range hs {
		if len(h.Order) > 0 {
			order = h.Order
			break
		}
	}
	if len(order) == 0 {
		r.p("No run wrote its checks' times (compliance.json): see the runs above.")
		r.p("")
		return
	}
	type chk struct {
		id       string
		med, sim int64
	}
	var cs []chk
	var sum int64
	for _, id := range order {
		vs, ss := checkTimes(hs, id), checkTimes(sim, id)
		c := chk{id: id, med: medianInt(vs)}
		if len(ss) > 0 {
			c.sim = medianInt(ss)
		}
		sum += c.med
		cs = append(cs, c)
	}
	r.p("### Time per check, emulated")
	r.p("")
	if len(sim) > 0 {
		r.p("From `compliance.json`, median over the runs, beside the same check's median on one simulated device (§1).")
	} else {
		r.p("From `compliance.json`, median over the runs (the simulated device was not measured in this run of hiltbench).")
	}
	r.p("")
	r.p("| check | emulated | simulated | ratio | share of the sum | what it waits for |")
	r.p("|---|---|---|---|---|---|")
	for _, c := range cs {
		simMed, rat := "–", "–"
		if len(sim) > 0 {
			simMed, rat = fmtDur(ms(c.sim)), ratio(float64(c.med), float64(c.sim))
		}
		r.p("| %s | %s | %s | %s | %.1f%% | %s |", c.id, fmtDur(ms(c.med)), simMed, rat,
			100*float64(c.med)/float64(max(sum, 1)), emuWaits(c.id))
	}
	r.p("| **sum** | **%s** | | | 100%% | |", fmtDur(ms(sum)))
	r.p("")
	var meds []checkMed
	for _, c := range cs {
		meds = append(meds, checkMed{c.id, c.med})
	}
	top, topSum := slowest(meds, 5)
	cpu := time.Duration(medianOf(us, func(u bench.Usage) int64 { return int64(u.CPU()) }))
	how := "QEMU ran with " + accel
	switch accel {
	case "tcg":
		how = "the unit's CPU is emulated (QEMU's TCG: no hardware KVM here), so its kernel and firmware run many times slower than on the host"
	case "kvm":
		how = "the unit runs under KVM, at close to the host's speed, but as a whole Linux system"
	}
	r.p("**What bounds it.** The checks wait on the unit, and %s. Every boot, %s from power-on to ready on the first, "+
		"is paid again at each of the run's %d boots: checks reboot the device, cut its power and scan its raw disk with the unit stopped. "+
		"The five slowest checks (%s) take %s, %.0f%% of the sum of the checks (%s). The whole process tree, QEMU included, used %s of CPU in %s of wall time.",
		how, orNone(fb), nb, strings.Join(top, ", "), fmtDur(ms(topSum)), 100*float64(topSum)/float64(max(sum, 1)), fmtDur(ms(sum)), fmtDur(cpu), fmtDur(wall))
	r.p("")
}

// emuWaits says what a check waits for on an emulated unit, where it differs from checkWaits.
func emuWaits(id string) string {
	switch id {
	case "SU-09":
		return "cuts the unit's power while an update is written, at several moments, and boots it each time (emulated only)"
	case "DP-03", "RT-03":
		return "stops the unit, scans its raw disk image (free blocks included), boots it again"
	}
	return checkWaits[id]
}

// orNone prints d, or "not measured" for 0 (a figure hilt's output did not give).
func orNone(d time.Duration) string {
	if d <= 0 {
		return "not measured"
	}
	return fmtDur(d)
}

// medianInt is the median of vs (0 for none).
func medianInt(vs []int64) int64 {
	if len(vs) == 0 {
		return 0
	}
	return bench.Median(vs)
}
