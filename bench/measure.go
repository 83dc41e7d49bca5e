package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// DefaultInterval is how often the process tree is sampled.
const DefaultInterval = 20 * time.Millisecond

// MemMethod says how a figure of peak memory was taken.
type MemMethod string

// Methods of measuring peak memory.
const (
	// MemCgroup: memory.peak of a cgroup v2 that held the whole tree (anonymous memory,
	// page cache charged to it and kernel memory).
	MemCgroup MemMethod = "cgroup v2 memory.peak"
	// MemProcSampled: the largest sum of RSS over the tree, sampled from /proc.
	MemProcSampled MemMethod = "sum of RSS over the process tree, sampled from /proc"
)

// ProcMem is one process of a measured tree, as sampled.
type ProcMem struct {
	PID  int
	Kind string // the executable's base name and its subcommand: "hilt __refdev"
	RSS  int64  // bytes
	PSS  int64  // bytes
}

// Usage is what a measured command used.
type Usage struct {
	Wall time.Duration
	// User and System are the CPU times of the command and of every descendant it (or
	// they) waited for, from wait4.
	User, System time.Duration
	// MaxRSS is the largest RSS the command's process (or any descendant it waited for)
	// reached, bytes: GNU time's figure where GNUTime is GNU time; else ru_maxrss from
	// wait4, which is at least this process's RSS at the fork (see GNUTime), and
	// MaxRSSInflated is true.
	MaxRSS         int64
	MaxRSSInflated bool
	// PeakRSS and PeakPSS are the largest sums over the tree seen by the sampler, bytes.
	PeakRSS, PeakPSS int64
	// CgroupPeak is the cgroup's memory.peak in bytes, or 0 where no cgroup was used.
	CgroupPeak int64
	// Samples counts the samples taken; Procs the distinct processes seen.
	Samples, Procs int
	// AtPeak is the tree at the sample of PeakRSS, largest first.
	AtPeak []ProcMem
	// CPUByKind is the CPU time (user+system) of the tree's processes by kind, as last
	// sampled before each exited.
	CPUByKind map[string]time.Duration
	// LoadBefore and LoadAfter are the 1-, 5- and 15-minute load averages.
	LoadBefore, LoadAfter Load
	// ExitCode is the command's exit status (killed by signal N: 128+N under GNU time,
	// else -1).
	ExitCode int
	// CgroupErr says why no cgroup was used, when one was wanted.
	CgroupErr error
}

// CPU returns the command tree's CPU time, user and system.
func (u Usage) CPU() time.Duration { return u.User + u.System }

// PeakMem returns the figure of peak memory to report and how it was taken: the cgroup's
// memory.peak where there was one, else the sampled sum of RSS.
func (u Usage) PeakMem() (int64, MemMethod) {
	if u.CgroupPeak > 0 {
		return u.CgroupPeak, MemCgroup
	}
	return u.PeakRSS, MemProcSampled
}

// Option configures Run.
type Option func(*runConfig)

type runConfig struct {
	interval time.Duration
	cgroup   bool
}

// WithInterval sets the sampling interval (default DefaultInterval).
func WithInterval(d time.Duration) Option { return func(c *runConfig) { c.interval = d } }

// WithCgroup asks for a cgroup v2 of the command's own where one can be made (root, a
// cgroup2 mount whose root delegates the memory controller). Without it, or where none
// can be made (Usage.CgroupErr says why), only the sampler measures memory.
func WithCgroup(on bool) Option { return func(c *runConfig) { c.cgroup = on } }

// ErrExit is wrapped by Run's error when the command ran but exited with a non-zero status.
var ErrExit = errors.New("command failed")

// Run starts cmd, samples its process tree until it exits, and returns what it used. A
// command that exits non-zero returns its full Usage and an error wrapping ErrExit; ctx
// ends the command as exec.CommandContext would (cmd must not be started).
func Run(ctx context.Context, cmd *exec.Cmd, opts ...Option) (Usage, error) {
	cfg := runConfig{interval: DefaultInterval}
	for _, o := range opts {
		o(&cfg)
	}
	var u Usage
	name := cmd.Path
	var cg *cgroup
	if cfg.cgroup {
		var err error
		if cg, err = newCgroup(); err != nil {
			u.CgroupErr = err
			cg = nil
		} else {
			cg.attach(cmd)
		}
	}
	var rssFile string
	if HaveGNUTime() {
		// GNU time would turn a command it cannot start into exit status 127: say so as
		// Start would have.
		if err := startable(cmd); err != nil {
			return u, fmt.Errorf("bench: start %s: %w", name, err)
		}
		var err error
		if rssFile, err = wrapInTime(cmd); err != nil {
			return u, fmt.Errorf("bench: %s: %w", name, err)
		}
		defer os.Remove(rssFile)
	}
	u.LoadBefore, _ = ReadLoad()
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		if cg != nil {
			cg.remove()
		}
		return u, fmt.Errorf("bench: start %s: %w", name, err)
	}
	stopKill := context.AfterFunc(ctx, func() { terminate(cmd.Process, rssFile != "") })
	defer stopKill()
	s := newSampler(cmd.Process.Pid)
	if rssFile != "" {
		s.skipRoot() // GNU time itself is not what is measured
	}
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(cfg.interval)
		defer t.Stop()
		s.sample()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	werr := cmd.Wait()
	u.Wall = time.Since(t0)
	close(done)
	<-sampled
	u.LoadAfter, _ = ReadLoad()
	if st := cmd.ProcessState; st != nil {
		u.User, u.System = st.UserTime(), st.SystemTime()
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			u.MaxRSS, u.MaxRSSInflated = ru.Maxrss<<10, true
		}
		if rssFile != "" {
			if rss, err := readTimeRSS(rssFile); err == nil {
				u.MaxRSS, u.MaxRSSInflated = rss, false
			}
		}
		u.ExitCode = st.ExitCode()
	}
	s.fill(&u)
	if cg != nil {
		if p, err := cg.peak(); err != nil {
			u.CgroupErr = err
		} else {
			u.CgroupPeak = p
		}
		if err := cg.remove(); err != nil {
			u.CgroupErr = errors.Join(u.CgroupErr, err)
		}
	}
	if ctx.Err() != nil {
		return u, fmt.Errorf("bench: %s: %w", name, ctx.Err())
	}
	if werr != nil {
		var ee *exec.ExitError
		if errors.As(werr, &ee) {
			return u, fmt.Errorf("bench: %s: %w: %w", name, ErrExit, werr)
		}
		return u, fmt.Errorf("bench: %s: %w", name, werr)
	}
	return u, nil
}

// treeStats accumulates what the sampler saw.
type treeStats struct {
	samples          int
	peakRSS, peakPSS int64
	atPeak           []ProcMem
	cpu              map[int]procCPU // last CPU time seen, by PID
}

type procCPU struct {
	kind string
	cpu  time.Duration
}

func (t *treeStats) add(procs []ProcMem, cpu map[int]procCPU) {
	t.samples++
	var rss, pss int64
	for _, p := range procs {
		rss += p.RSS
		pss += p.PSS
	}
	if rss > t.peakRSS {
		t.peakRSS = rss
		t.atPeak = append(t.atPeak[:0], procs...)
	}
	t.peakPSS = max(t.peakPSS, pss)
	if t.cpu == nil {
		t.cpu = map[int]procCPU{}
	}
	for pid, c := range cpu {
		t.cpu[pid] = c
	}
}

func (t *treeStats) fill(u *Usage) {
	u.Samples = t.samples
	u.PeakRSS, u.PeakPSS = t.peakRSS, t.peakPSS
	u.AtPeak = append([]ProcMem(nil), t.atPeak...)
	sort.Slice(u.AtPeak, func(i, j int) bool { return u.AtPeak[i].RSS > u.AtPeak[j].RSS })
	u.Procs = len(t.cpu)
	u.CPUByKind = map[string]time.Duration{}
	for _, c := range t.cpu {
		u.CPUByKind[c.kind] += c.cpu
	}
}

// terminate sends SIGTERM to the measured command: to GNU time's child when wrapped (GNU
// time would die of it and leave the command running; a command it has not forked yet is
// waited for, up to a second), else to the process itself.
func terminate(p *os.Process, wrapped bool) {
	if wrapped {
		deadline := time.Now().Add(time.Second)
		for {
			if kids := childrenOf(p.Pid); len(kids) > 0 {
				for _, k := range kids {
					syscall.Kill(k, syscall.SIGTERM)
				}
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond) // polling for GNU time's fork, bounded by deadline
		}
	}
	p.Signal(syscall.SIGTERM)
}

// startable reports what would keep cmd from starting: a lookup that failed, or an
// executable that is not there.
func startable(cmd *exec.Cmd) error {
	if cmd.Err != nil {
		return cmd.Err
	}
	path := cmd.Path
	if !filepath.IsAbs(path) && cmd.Dir != "" {
		path = filepath.Join(cmd.Dir, path)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: not an executable file", path)
	}
	return nil
}
