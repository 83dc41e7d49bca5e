package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hilt-project/hilt/bench"
	"github.com/hilt-project/hilt/bench/capgen"
)

func scanUsages(runs []scanRun) []bench.Usage {
	var us []bench.Usage
	for _, s := range runs {
		us = append(us, s.Usage)
	}
	return us
}

// sameOpen reports whether every run found the same open ports, and which.
func sameOpen(runs ...[]scanRun) ([]int, bool) {
	var first []int
	seen := false
	for _, rs := range runs {
		for _, s := range rs {
			if s.Err != nil {
				return nil, false
			}
			if !seen {
				first, seen = s.Open, true
			} else if !slices.Equal(first, s.Open) {
				return first, false
			}
		}
	}
	return first, seen
}

func (r *report) scan() {
	if !r.Cfg.sections["scan"] || r.Scan == nil {
		return
	}
	s := r.Scan
	r.p("## 3. Full TCP port scan of one simulated device")
	r.p("")
	if s.Err != nil {
		r.p("Not measured: %v", s.Err)
		r.p("")
		r.row("full TCP port scan", "not measured", "0", "nmap", "–", s.Err.Error(), "–")
		return
	}
	where := "in its own network namespace (a veth pair to the host): the scan sees the device's listeners only"
	if !s.Namespace {
		where = "on a loopback address of the host (no network namespaces here): the host's own listeners answer on it too, for both tools"
	}
	r.p("`hilt sim --devices 1` in the background; the device at %s, %s. The tools scan all 65535 TCP ports of the same address, in turn, %s each, "+
		"each as a process of its own: `hiltbench __scan ADDR` (netprobe's default, what check LA-01 runs: as root a SYN scan from a raw IPv4 socket connected to the device, "+
		"SYNs sent and answers read up to 128 per system call (sendmmsg, recvmmsg), a window of at most 2000 SYNs in flight at a time that halves when the path drops SYNs, sends clocked by the answers, each one unanswered for the dial timeout sent again), `nmap -p- -n -T4 ADDR` (as root a SYN scan from a raw socket) and "+
		"`hiltbench __scan -method connect ADDR` (netprobe's connect scan, its fallback without root: non-blocking connects multiplexed on epoll, 2000 at a time).",
		s.Addr, where, plural(r.Cfg.scanRuns, "time"))
	r.p("")
	r.p("| tool | runs | wall (median, process) | scan time (median, own report) | CPU (median) | peak RSS | open ports | load (1 min) |")
	r.p("|---|---|---|---|---|---|---|---|")
	cpuOf := func(runs []scanRun) time.Duration {
		return time.Duration(medianOf(scanUsages(runs), func(u bench.Usage) int64 { return int64(u.CPU()) }))
	}
	line := func(name string, runs []scanRun) {
		us := scanUsages(runs)
		var inner []time.Duration
		var errs []string
		for _, x := range runs {
			inner = append(inner, x.Inner)
			if x.Err != nil {
				errs = append(errs, x.Err.Error())
			}
		}
		open := "–"
		if len(runs) > 0 {
			open = fmt.Sprint(runs[0].Open)
		}
		if len(errs) > 0 {
			open += "; errors: " + strings.Join(errs, "; ")
		}
		r.p("| %s | %d | %s | %s | %s | %s | %s | %s |", name, len(runs), fmtDur(medianWall(us)), fmtDur(bench.Median(inner)), fmtDur(cpuOf(runs)),
			fmtMB(medianOf(us, func(u bench.Usage) int64 { return u.MaxRSS })), open, loadRange(us))
	}
	method := "netprobe"
	if len(s.Hilt) > 0 && s.Hilt[0].Method != "" {
		method = "netprobe, " + s.Hilt[0].Method + " scan"
	}
	line(method, s.Hilt)
	line("nmap -p- -n -T4", s.Nmap)
	if len(s.Connect) > 0 {
		line("netprobe, connect scan", s.Connect)
	}
	r.p("")
	hw, nw := medianWall(scanUsages(s.Hilt)), medianWall(scanUsages(s.Nmap))
	open, same := sameOpen(s.Hilt, s.Nmap)
	if len(s.Connect) > 0 {
		_, sameC := sameOpen(s.Connect, s.Nmap)
		same = same && sameC
	}
	r.p("Same open ports found by all, in every run: **%s** (%v). %s takes %s the time of nmap.", yesNo(same), open, method, ratio(hw.Seconds(), nw.Seconds()))
	r.p("")
	hcpu, ncpu, ccpu := cpuOf(s.Hilt), cpuOf(s.Nmap), cpuOf(s.Connect)
	r.p("**What bounds it.** A connect scan costs a socket, a connect, an epoll registration and a close per port, all system calls; a SYN scan (netprobe's as root, nmap's) "+
		"sends one raw packet per port from one socket and reads one answer per port (netprobe up to 128 of either per system call, "+
		"from a socket connected to the device, so the kernel looks up the route once), and the kernel resets the device's SYN-ACKs itself. "+
		"Either way the device's kernel answers each SYN with a RST, and on a veth link that work is done on the scanning CPU. "+
		"CPU per scan (median, user + system): %s %s, nmap %s, netprobe's connect scan %s.", method, fmtDur(hcpu), fmtDur(ncpu), fmtDur(ccpu))
	if hw > nw {
		r.p("netprobe sends as fast as the answers come back (up to 2000 in flight); on a busy machine its system calls compete for the CPU (the profile below).")
	} else {
		r.p("nmap paces its probes by the replies it sees (its -T4 timing template adapts to the latency and the losses it measures), which on a busy machine makes it wait; " +
			"netprobe keeps up to 2000 SYNs in flight and is bound by its system calls (the profile below).")
	}
	r.p("In a hilt run the scan is check LA-01, once per device: with many devices at once, their scans' CPU adds up (§2).")
	r.p("")
	if s.Profile != "" {
		r.p("Where %s spends its time (a CPU profile of one more run, `go tool pprof -top`):", method)
		r.p("")
		r.p("```")
		r.p("%s", s.Profile)
		r.p("```")
		r.p("")
	}
	r.row("full TCP port scan (65535 ports), "+method, fmtDur(hw), fmt.Sprint(len(s.Hilt)), "`nmap -p- -n -T4`: "+fmtDur(nw),
		ratio(hw.Seconds(), nw.Seconds()), "same open ports: "+yesNo(same), loadRange(append(scanUsages(s.Hilt), scanUsages(s.Nmap)...)))
}

func analysisUsages(runs []analysisRun) []bench.Usage {
	var us []bench.Usage
	for _, a := range runs {
		us = append(us, a.Usage)
	}
	return us
}

// credsAgree reports whether every run found exactly want.
func credsAgree(runs []analysisRun, want []capgen.Cred) bool {
	if len(runs) == 0 {
		return false
	}
	for _, a := range runs {
		if a.Err != nil || !slices.Equal(a.Creds, want) {
			return false
		}
	}
	return true
}

func foundSplit(runs []analysisRun, split capgen.Cred) bool {
	for _, a := range runs {
		if a.Err != nil || !slices.Contains(a.Creds, split) {
			return false
		}
	}
	return len(runs) > 0
}

func (r *report) capture() {
	if !r.Cfg.sections["capture"] || r.Capture == nil {
		return
	}
	c := r.Capture
	r.p("## 4. Capture analysis: MQTT passwords in a million packets")
	r.p("")
	if c.Err != nil {
		r.p("Not measured: %v", c.Err)
		r.p("")
		r.row("capture analysis", "not measured", "0", "tshark", "–", c.Err.Error(), "–")
		return
	}
	s := c.Summary
	var kinds []string
	for _, k := range []capgen.Kind{capgen.KindTLS, capgen.KindMQTT, capgen.KindHTTP, capgen.KindDNS} {
		kinds = append(kinds, fmt.Sprintf("%d %s", s.Flows[k], k))
	}
	r.p("The capture: bench/capgen, seed %d, **%d packets** in %s (pcapng, Ethernet), %s flows interleaved 64 at a time over %s of capture time; "+
		"TLS to 443 and 8883, cleartext MQTT 3.1.1 to 1883 (the port tshark dissects as MQTT), HTTP to 80, DNS. "+
		"%d MQTT CONNECTs carry a password (%d more a user name only). One CONNECT, from %s (user %s), has its password cut across two TCP segments: finding it takes reassembly. "+
		"Generated in %s; sha256 `%s` (the same seed gives the same file).",
		c.Opts.Seed, s.Packets, fmtMB(c.Size), strings.Join(kinds, ", "), s.Last.Sub(s.First).Round(time.Second),
		len(s.Creds), s.NoPassword, s.Split.Src, s.Split.Username, fmtDur(c.GenTime), c.SHA256)
	r.p("")
	r.p("Both tools run as processes of their own, alternately: `hiltbench __analyze FILE` (netprobe.AnalyzeFile, its Creds with a user name and a password) and " +
		"`tshark -r FILE -Y mqtt.passwd -T fields -e ip.src -e mqtt.username -e mqtt.passwd` (one pass, TCP reassembly on, its defaults). " +
		"Peak memory is the process's largest RSS (ru_maxrss: each tool is one process; Method).")
	r.p("")
	r.p("| tool | runs | wall (median) | peak RSS (median) | passwords found | all %d, nothing else | the split one | load (1 min) |", len(s.Creds))
	r.p("|---|---|---|---|---|---|---|---|")
	line := func(name string, runs []analysisRun) {
		us := analysisUsages(runs)
		found := "–"
		var errs []string
		for _, a := range runs {
			if a.Err != nil {
				errs = append(errs, a.Err.Error())
			}
		}
		if len(runs) > 0 {
			found = fmt.Sprint(len(runs[0].Creds))
		}
		if len(errs) > 0 {
			found += "; errors: " + strings.Join(errs, "; ")
		}
		r.p("| %s | %d | %s | %s | %s | %s | %s | %s |", name, len(runs), fmtDur(medianWall(us)), fmtMB(medianOf(us, func(u bench.Usage) int64 { return u.MaxRSS })),
			found, yesNo(credsAgree(runs, s.Creds)), yesNo(foundSplit(runs, s.Split)), loadRange(us))
	}
	line("netprobe.AnalyzeFile", c.Hilt)
	line("tshark", c.Tshark)
	r.p("")
	hu, tu := analysisUsages(c.Hilt), analysisUsages(c.Tshark)
	hw, tw := medianWall(hu), medianWall(tu)
	hm := medianOf(hu, func(u bench.Usage) int64 { return u.MaxRSS })
	tm := medianOf(tu, func(u bench.Usage) int64 { return u.MaxRSS })
	same := credsAgree(c.Hilt, s.Creds) && credsAgree(c.Tshark, s.Creds)
	var inner []time.Duration
	for _, a := range c.Hilt {
		inner = append(inner, a.Inner)
	}
	r.p("Same credentials found by both (and exactly those generated): **%s**. netprobe.AnalyzeFile takes %s the time of tshark (%s of it inside AnalyzeFile, %.0f packets/s) and %s its peak memory.",
		yesNo(same), ratio(hw.Seconds(), tw.Seconds()), fmtDur(bench.Median(inner)), float64(s.Packets)/bench.Median(inner).Seconds(), ratio(float64(hm), float64(tm)))
	r.p("")
	load := loadRange(append(hu, tu...))
	r.row(fmt.Sprintf("capture analysis (%d packets): time, netprobe.AnalyzeFile", s.Packets), fmtDur(hw), fmt.Sprint(len(c.Hilt)), "tshark: "+fmtDur(tw),
		ratio(hw.Seconds(), tw.Seconds()), "same credentials: "+yesNo(same), load)
	r.row("capture analysis: peak memory, netprobe.AnalyzeFile", fmtMB(hm), fmt.Sprint(len(c.Hilt)), "tshark: "+fmtMB(tm),
		ratio(float64(hm), float64(tm)), "", load)
	if c.Profile != "" {
		r.p("Where AnalyzeFile spends its time (a CPU profile of one more run, `go tool pprof -top`):")
		r.p("")
		r.p("```")
		r.p("%s", c.Profile)
		r.p("```")
		r.p("")
	}
}

func (r *report) console() {
	if !r.Cfg.sections["console"] || r.Go == nil {
		return
	}
	g := r.Go
	r.p("## 5. Console: expect on a flood, byte-to-match latency")
	r.p("")
	r.p("drivers/serial's own benchmarks (a serial.Port on a pty; `BenchmarkExpectFlood`: 1 MiB of boot log then the awaited line, per op; "+
		"`BenchmarkExpectLatency`: the device prints one short line, Expect returns) against their peers in bench/ (`BenchmarkPTYFloodRaw`, "+
		"`BenchmarkPTYLatencyRaw`): the same bytes through the same kind of pty, opened the same way (go.bug.st/serial, raw), read with plain reads "+
		"and a check of the last bytes, nothing kept. The peer is the floor of the transport; the ratio is what the expect machinery costs on top. "+
		"The two packages ran alternately, %s each; load (1 min) %s.", plural(g.Count["console"], "time"), loadPair(g.Load["console"]))
	r.p("")
	r.p("Medians, with the range over the runs in parentheses: a pty's throughput depends on how the writer and the reader get scheduled, and varies a lot on a busy machine.")
	r.p("")
	r.p("| measure | drivers/serial | bare pty | ratio (hilt ÷ pty) |")
	r.p("|---|---|---|---|")
	peerFlood, okF := g.find("/bench", "PTYFloodRaw")
	for _, m := range []string{"literal", "regex", "anyof"} {
		b, ok := g.find("/drivers/serial", "ExpectFlood/"+m)
		if !ok || !okF {
			continue
		}
		r.p("| flood throughput, %s matcher | %.1f MB/s (%.1f–%.1f) | %.1f MB/s (%.1f–%.1f) | %s |", m, b.Metrics["MB/s"], b.Min["MB/s"], b.Max["MB/s"],
			peerFlood.Metrics["MB/s"], peerFlood.Min["MB/s"], peerFlood.Max["MB/s"], ratio(b.Metrics["MB/s"], peerFlood.Metrics["MB/s"]))
		if m == "literal" {
			r.row("console: expect throughput on a flood (literal)", fmt.Sprintf("%.1f MB/s", b.Metrics["MB/s"]), fmt.Sprint(g.Count["console"]),
				fmt.Sprintf("bare pty read: %.1f MB/s", peerFlood.Metrics["MB/s"]), ratio(b.Metrics["MB/s"], peerFlood.Metrics["MB/s"]), "", loadPair(g.Load["console"]))
		}
	}
	lat, ok1 := g.find("/drivers/serial", "ExpectLatency")
	peerLat, ok2 := g.find("/bench", "PTYLatencyRaw")
	if ok1 && ok2 {
		l, pl := time.Duration(lat.Metrics["ns/op"]), time.Duration(peerLat.Metrics["ns/op"])
		r.p("| byte-to-match latency | %s (%s–%s) | %s (%s–%s) | %s |", fmtDur(l), fmtDur(time.Duration(lat.Min["ns/op"])), fmtDur(time.Duration(lat.Max["ns/op"])),
			fmtDur(pl), fmtDur(time.Duration(peerLat.Min["ns/op"])), fmtDur(time.Duration(peerLat.Max["ns/op"])), ratio(l.Seconds(), pl.Seconds()))
		r.row("console: byte-to-match latency", fmtDur(l), fmt.Sprint(g.Count["console"]), "bare pty read: "+fmtDur(pl), ratio(l.Seconds(), pl.Seconds()), "", loadPair(g.Load["console"]))
	}
	r.p("")
	if b, ok := g.find("/drivers/serial", "ExpectFlood/literal"); ok {
		r.p("Allocations per 1 MiB flood: %.0f B in %.0f allocations (literal); the bare pty reader: %.0f B. The port keeps what it reads in its transcript (up to 8 MiB), which the bare reader does not.",
			b.Metrics["B/op"], b.Metrics["allocs/op"], peerFlood.Metrics["B/op"])
		r.p("")
	}
}

func (r *report) memory() {
	if !r.Cfg.sections["baseline"] {
		return
	}
	runs := r.fleetRuns(1)
	if len(runs) == 0 {
		return
	}
	us := usages(runs)
	peak := medianOf(us, peakMem)
	_, method := us[0].PeakMem()
	pss := medianOf(us, func(u bench.Usage) int64 { return u.PeakPSS })
	r.p("## 6. Peak memory of a single-device run")
	r.p("")
	r.p("`hilt run --devices 1` (the runs of §1): %s, median over %s: **%s** (target under 100 MB: %s). Summing PSS instead (pages shared between the processes, such as hilt's own executable, counted once): %s.",
		method, plural(len(runs), "run"), fmtMB(peak), verdict(peak < targetMemory), fmtMB(pss))
	r.p("")
	r.p("At the peak (first run): %s; %d samples, %d processes seen in all (the `ip` commands of the bench's network setup included).",
		byKind(runs[0].Usage.AtPeak), runs[0].Usage.Samples, runs[0].Usage.Procs)
	r.p("")
	if runs[0].Usage.CgroupErr != nil {
		r.p("No cgroup v2 figure: %v.", runs[0].Usage.CgroupErr)
		r.p("")
	}
	start := ""
	if r.Fleet != nil && len(r.Fleet.Starts) > 0 {
		start = fmt.Sprintf(" A bare start of the hilt executable is already %s of RSS (`hilt __refdev --list-flaws`: the Go runtime, the pages of the executable it touches, the packages' initialisation), which `hilt run` and the check process each pay.",
			fmtMB(medianOf(r.Fleet.Starts, func(u bench.Usage) int64 { return u.MaxRSS })))
		if ds := r.Fleet.DevStarts; len(ds) > 0 {
			start += fmt.Sprintf(" The device runs `%s`, the firmware alone, whose bare start is %s.",
				filepath.Base(r.Fleet.DevExe), fmtMB(medianOf(ds, func(u bench.Usage) int64 { return u.MaxRSS })))
		}
	}
	if peak >= targetMemory {
		r.p("**What bounds it.** `hilt run` and the check process are copies of the hilt executable (the Go runtime, the MQTT broker, Ginkgo and the suites, gopacket): each pays its own resident text and runtime, "+
			"which RSS counts once per process. PSS, which shares those pages, is %s.%s", fmtMB(pss), start)
		r.p("")
	} else if start != "" {
		r.p("**What bounds it.** Three processes: `hilt run` and the check process, copies of the hilt executable, and the device.%s", start)
		r.p("")
	}
	r.row("single-device run: peak memory (hilt, check process, device)", fmtMB(peak), fmt.Sprint(len(runs)), "target 100 MB",
		ratio(float64(peak), targetMemory), "under 100 MB: "+verdict(peak < targetMemory), loadRange(us))
}

func (r *report) goBench() {
	if !r.Cfg.sections["go"] || r.Go == nil {
		return
	}
	g := r.Go
	r.p("## 7. Go benchmarks of the hot paths")
	r.p("")
	r.p("Packet decoding has benchmarks of its own (drivers/netprobe `BenchmarkAnalyze`, `decode-only` is the decoding alone); secret scanning too (harness/secretscan `BenchmarkScan`). "+
		"Those that had none are in bench/: image building (harness/image), a command over a console and an update image sent over one (harness/agent on drivers/serial). "+
		"Median of %s (`go test -bench -benchmem`; %d for netprobe, whose benchmark takes longer); load (1 min) %s and %s.",
		plural(g.Count["hot paths"], "run"), g.Count["capture analysis"], loadPair(g.Load["hot paths"]), loadPair(g.Load["capture analysis"]))
	r.p("")
	r.p("| benchmark | time/op | throughput | B/op | allocs/op | other |")
	r.p("|---|---|---|---|---|---|")
	for _, b := range g.Benches {
		if strings.HasSuffix(b.Pkg, "/drivers/serial") || strings.HasPrefix(b.Name, "PTY") {
			continue // in §5
		}
		pkg := b.Pkg[strings.LastIndex(b.Pkg, "/")+1:]
		tp := "–"
		if v, ok := b.Metrics["MB/s"]; ok {
			tp = fmt.Sprintf("%.1f MB/s", v)
		}
		var other []string
		keys := make([]string, 0, len(b.Metrics))
		for k := range b.Metrics {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			switch k {
			case "N", "ns/op", "MB/s", "B/op", "allocs/op":
				continue
			}
			other = append(other, fmt.Sprintf("%.0f %s", b.Metrics[k], k))
		}
		r.p("| %s `%s` | %s | %s | %.0f | %.0f | %s |", pkg, b.Name, fmtDur(time.Duration(b.Metrics["ns/op"])), tp, b.Metrics["B/op"], b.Metrics["allocs/op"], strings.Join(other, ", "))
	}
	r.p("")
	var ratios []string
	for _, sz := range []string{"4KiB", "1MiB", "16MiB"} {
		bld, ok1 := g.find("/bench", "ImageBuild/"+sz+"/signed")
		fl, ok2 := g.find("/bench", "ImageBuild/"+sz+"/hash+sign")
		if ok1 && ok2 {
			ratios = append(ratios, fmt.Sprintf("%s %s", sz, ratio(bld.Metrics["ns/op"], fl.Metrics["ns/op"])))
			if sz == "1MiB" {
				r.row("image build, 1 MiB signed (harness/image)", fmtDur(time.Duration(bld.Metrics["ns/op"])), fmt.Sprint(g.Count["hot paths"]),
					"hash + sign floor: "+fmtDur(time.Duration(fl.Metrics["ns/op"])), ratio(bld.Metrics["ns/op"], fl.Metrics["ns/op"]), "", loadPair(g.Load["hot paths"]))
			}
		}
	}
	if len(ratios) > 0 {
		r.p("image.Build (signed) against its floor, `BenchmarkImageBuild/SIZE/hash+sign` (SHA-256 of the payload and one Ed25519 signature, the work no builder can skip; "+
			"it runs right after the builds of its size): %s. B/op is about twice the payload: Build allocates the payload, then assembles the image in a bytes.Buffer that grows by copying.",
			strings.Join(ratios, ", "))
		r.p("")
	}
	if g.ImageProfile != "" {
		r.p("**What bounds it** above the floor (a CPU profile of `BenchmarkImageBuild/1MiB/unsigned`, `go tool pprof -top`): `image.Build`'s own time is the payload filler, " +
			"written a byte at a time with a modulo (`'a' + i%%26`); `memclrNoHeapPointers` and `madvise` are the zeroing of the two payload-sized allocations and the GC returning them.")
		r.p("")
		r.p("```")
		r.p("%s", g.ImageProfile)
		r.p("```")
		r.p("")
	}
	for _, err := range g.Errs {
		r.p("Error: %v", err)
		r.p("")
	}
}

func (r *report) method() {
	r.p("## Method")
	r.p("")
	r.p("- **Wall time** is that of the measured process, from its start to its exit as its parent sees them; CPU time is user + system of the process and of every descendant it waited for (wait4's rusage).")
	r.p("- **Peak memory of a process tree** (a hilt run: hilt, one check process and one device process per device): where a cgroup v2 hierarchy with the memory controller is mounted, the command starts in a cgroup of its own "+
		"(clone3 with CLONE_INTO_CGROUP; GNU time, which starts it, adds its own 1-2 MB) and memory.peak is reported; otherwise the tree (every process whose parent chain leads to the command) is sampled from /proc every %s and the largest sum of RSS is reported, "+
		"with the largest sum of PSS beside it. /usr/bin/time -v would give the largest single process instead.", bench.DefaultInterval)
	if r.inflatedRSS() {
		r.p("- **Peak memory of one process** (nmap, tshark, the analysis and scan children, bare starts) is its ru_maxrss from wait4. **%s is not GNU time here, so these figures are at least hiltbench's own RSS at the fork** "+
			"(Linux records the memory a vfork child shared with its parent when it execs; `scripts/deps.sh bench` installs GNU time).", bench.GNUTime)
	} else {
		r.p("- **Peak memory of one process** (nmap, tshark, the analysis and scan children, bare starts) is its ru_maxrss as GNU time (%s) reports it: the command runs as GNU time's child, "+
			"since ru_maxrss measured from hiltbench itself would be at least hiltbench's RSS at the fork (Linux records the memory a vfork child shared with its parent when it execs).", bench.GNUTime)
	}
	r.p("- MB is 10^6 bytes. Medians of an even count are the mean of the middle two.")
	r.p("- Repetitions: hilt runs %s (by fleet size), port scans %d per tool, capture analysis %d (netprobe) and %d (tshark, about a minute a run), Go benchmarks %d runs each (netprobe's %d). The slow items run fewer times to keep `make bench` near 10 minutes; `go run ./bench/cmd/hiltbench -h` lists the flags that change this.",
		runsString(r.Cfg), r.Cfg.scanRuns, r.Cfg.analyzeRuns, r.Cfg.tsharkRuns, r.Cfg.goCount, min(r.Cfg.goCount, 3))
	var skipped []string
	for _, s := range allSections {
		if !r.Cfg.sections[s] {
			skipped = append(skipped, s)
		}
	}
	if len(skipped) > 0 {
		r.p("- Sections not run this time (-only): %s.", strings.Join(skipped, ", "))
	}
}

func runsString(cfg config) string {
	var parts []string
	for _, n := range cfg.fleet {
		parts = append(parts, fmt.Sprintf("%d for %d device(s)", cfg.runsFor(n), n))
	}
	return strings.Join(parts, ", ")
}

// inflatedRSS says whether any single-process figure of the report is ru_maxrss measured
// without GNU time (bench.Usage.MaxRSSInflated).
func (r *report) inflatedRSS() bool {
	var us []bench.Usage
	if r.Fleet != nil {
		us = append(us, r.Fleet.Starts...)
		us = append(us, r.Fleet.DevStarts...)
	}
	if r.Scan != nil {
		for _, runs := range [][]scanRun{r.Scan.Hilt, r.Scan.Connect, r.Scan.Nmap} {
			for _, x := range runs {
				us = append(us, x.Usage)
			}
		}
	}
	for _, u := range us {
		if u.MaxRSSInflated {
			return true
		}
	}
	return false
}
