package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat (100 on every
// Linux architecture Go supports).
const clockTicks = 100

// sampler walks the process tree under root in /proc.
type sampler struct {
	root     int
	skip     bool // root is a wrapper (GNU time): walk its tree, do not count it
	pageSize int64
	stats    treeStats
	kinds    map[kindKey]string // read once per process image from cmdline
}

// kindKey tells process images apart: an exec keeps the PID and changes the name.
type kindKey struct {
	pid  int
	comm string
}

// skipRoot leaves the root out of the figures (its descendants are still sampled).
func (s *sampler) skipRoot() { s.skip = true }

// childrenOf returns the PIDs of pid's children (/proc/PID/task/PID/children).
func childrenOf(pid int) []int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range bytes.Fields(b) {
		if n, err := strconv.Atoi(string(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

func newSampler(root int) *sampler {
	return &sampler{root: root, pageSize: int64(os.Getpagesize()), kinds: map[kindKey]string{}}
}

// procStat is what the sampler reads from /proc/PID/stat.
type procStat struct {
	comm string
	ppid int
	cpu  time.Duration
}

// readStat parses /proc/PID/stat: the command name is in parentheses and may hold
// spaces and parentheses itself, so the fields are counted from the last ')'.
func readStat(pid int) (procStat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	j := bytes.IndexByte(b, '(')
	if i < 0 || j < 0 || j > i {
		return procStat{}, false
	}
	f := bytes.Fields(b[i+1:])
	// f[0] state, f[1] ppid, ... f[11] utime, f[12] stime (fields 3, 4, 14, 15 of proc(5)).
	if len(f) < 13 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(string(f[1]))
	ut, err2 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err3 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return procStat{}, false
	}
	return procStat{comm: string(b[j+1 : i]), ppid: ppid, cpu: time.Duration(ut+st) * time.Second / clockTicks}, true
}

// sample reads the tree once: every process whose chain of parents leads to root.
func (s *sampler) sample() {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	children := map[int][]int{}
	stats := map[int]procStat{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, ok := readStat(pid)
		if !ok {
			continue
		}
		stats[pid] = st
		children[st.ppid] = append(children[st.ppid], pid)
	}
	if _, ok := stats[s.root]; !ok {
		return
	}
	var procs []ProcMem
	cpu := map[int]procCPU{}
	queue := []int{s.root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		queue = append(queue, children[pid]...)
		if s.skip && pid == s.root {
			continue
		}
		rss, pss, ok := s.memory(pid)
		if !ok {
			continue // gone, or a zombie
		}
		kind := s.kind(pid, stats[pid].comm)
		procs = append(procs, ProcMem{PID: pid, Kind: kind, RSS: rss, PSS: pss})
		cpu[pid] = procCPU{kind: kind, cpu: stats[pid].cpu}
	}
	s.stats.add(procs, cpu)
}

// memory returns the RSS (statm) and PSS (smaps_rollup) of pid in bytes.
func (s *sampler) memory(pid int) (rss, pss int64, ok bool) {
	dir := "/proc/" + strconv.Itoa(pid)
	b, err := os.ReadFile(dir + "/statm")
	if err != nil {
		return 0, 0, false
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0, 0, false
	}
	pages, err := strconv.ParseInt(string(f[1]), 10, 64)
	if err != nil || pages == 0 {
		return 0, 0, false
	}
	rss = pages * s.pageSize
	pss = rss // where smaps_rollup cannot be read, PSS is at most RSS
	if b, err := os.ReadFile(dir + "/smaps_rollup"); err == nil {
		if v, ok := kbField(b, "Pss:"); ok {
			pss = v
		}
	}
	return rss, pss, true
}

// kind names a process by its executable and subcommand, from its command line: "hilt
// __refdev", "tshark". It is read once per PID and name (`ip netns exec` execs the device).
func (s *sampler) kind(pid int, comm string) string {
	key := kindKey{pid, comm}
	if k, ok := s.kinds[key]; ok {
		return k
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	args := bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0})
	k := "?"
	if len(args) > 0 && len(args[0]) > 0 {
		k = filepath.Base(string(args[0]))
		if len(args) > 1 && len(args[1]) > 0 && args[1][0] != '-' {
			k += " " + string(args[1])
		}
	}
	s.kinds[key] = k
	return k
}

func (s *sampler) fill(u *Usage) { s.stats.fill(u) }
