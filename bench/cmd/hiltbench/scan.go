package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hilt-project/hilt/bench"
	"github.com/hilt-project/hilt/drivers/netprobe"
	"github.com/hilt-project/hilt/harness/profile"
)

// scanRun is one measured full port scan.
type scanRun struct {
	Usage bench.Usage
	Open  []int
	// Inner is the scan's own time, as the tool reports it (netprobe's call; nmap's
	// "scanned in").
	Inner time.Duration
	// Method is the scan method netprobe used (syn or connect; empty for nmap).
	Method string
	Err    error
}

// scanResult is the port scan section.
type scanResult struct {
	Addr string
	// Namespace says the device had a network namespace of its own; else it was on a
	// loopback address, where the host's listeners answer too.
	Namespace bool
	// Hilt are netprobe's default scans (a SYN scan as root), Connect its connect scans
	// (netprobe.WithMethod(netprobe.ScanConnect)), Nmap nmap's.
	Hilt    []scanRun
	Connect []scanRun
	Nmap    []scanRun
	// Profile is the top of a CPU profile of one more netprobe scan (pprof -top).
	Profile string
	Err     error
}

// scanChildOut is what `hiltbench __scan` prints.
type scanChildOut struct {
	Open      []int  `json:"open"`
	ElapsedNS int64  `json:"elapsed_ns"`
	Method    string `json:"method"`
	Fallback  string `json:"fallback,omitempty"`
}

// scanChild is `hiltbench __scan [-cpuprofile F] [-method syn|connect] ADDR`: a netprobe
// scan (what check LA-01 runs) over every port of ADDR.
func scanChild(args []string) error {
	fs := flag.NewFlagSet("__scan", flag.ContinueOnError)
	prof := fs.String("cpuprofile", "", "write a CPU profile")
	method := fs.String("method", "", "netprobe scan method: syn, connect (default: syn where permitted)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: hiltbench __scan [-cpuprofile F] [-method syn|connect] ADDR")
	}
	if *prof != "" {
		stop, err := startProfile(*prof)
		if err != nil {
			return err
		}
		defer stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	r, err := netprobe.ScanAttributed(ctx, fs.Arg(0), "", netprobe.WithMethod(netprobe.ScanMethod(*method)))
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(scanChildOut{Open: r.Open, ElapsedNS: time.Since(t0).Nanoseconds(),
		Method: string(r.Method), Fallback: r.Fallback})
}

// runScan starts one simulated device with `hilt sim`, then scans all its TCP ports with
// netprobe (its default, a SYN scan as root, and its connect scan) and with nmap, in turn.
func runScan(ctx context.Context, cfg config) *scanResult {
	res := &scanResult{}
	sim, err := startSim(ctx, cfg)
	if err != nil {
		res.Err = err
		cfg.logf("scan: %v", err)
		return res
	}
	defer func() {
		if err := sim.stop(); err != nil {
			cfg.logf("scan: stop hilt sim: %v", err)
		}
	}()
	res.Addr, res.Namespace = sim.addr, sim.namespace
	for i := range cfg.scanRuns {
		if ctx.Err() != nil {
			break
		}
		h := scanHilt(ctx, cfg, sim.addr, "", "")
		res.Hilt = append(res.Hilt, h)
		n := scanNmap(ctx, sim.addr)
		res.Nmap = append(res.Nmap, n)
		c := scanHilt(ctx, cfg, sim.addr, "", "connect")
		res.Connect = append(res.Connect, c)
		cfg.logf("scan %d/%d of %s: netprobe %s %s %v (%v), nmap %s %v (%v), connect %s %v (%v); load %.2f", i+1, cfg.scanRuns, sim.addr,
			h.Method, fmtDur(h.Usage.Wall), h.Open, h.Err, fmtDur(n.Usage.Wall), n.Open, n.Err, fmtDur(c.Usage.Wall), c.Open, c.Err, h.Usage.LoadBefore[0])
	}
	if cfg.profile && ctx.Err() == nil {
		prof := filepath.Join(cfg.work, "scan.cpu.pprof")
		if h := scanHilt(ctx, cfg, sim.addr, prof, ""); h.Err != nil {
			res.Profile = "profile run failed: " + h.Err.Error()
		} else {
			res.Profile = pprofTop(ctx, cfg, cfg.self, prof)
		}
	}
	return res
}

// scanHilt runs `hiltbench __scan` on addr, with method ("" for netprobe's default).
func scanHilt(ctx context.Context, cfg config, addr, cpuprofile, method string) scanRun {
	var r scanRun
	args := []string{"__scan"}
	if cpuprofile != "" {
		args = append(args, "-cpuprofile", cpuprofile)
	}
	if method != "" {
		args = append(args, "-method", method)
	}
	cmd := exec.Command(cfg.self, append(args, addr)...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	r.Usage, r.Err = bench.Run(ctx, cmd)
	if r.Err != nil {
		r.Err = fmt.Errorf("%w: %s", r.Err, strings.TrimSpace(errb.String()))
		return r
	}
	var o scanChildOut
	if err := json.Unmarshal([]byte(out.String()), &o); err != nil {
		r.Err = fmt.Errorf("hiltbench __scan printed %q: %w", out.String(), err)
		return r
	}
	r.Open, r.Inner, r.Method = o.Open, time.Duration(o.ElapsedNS), o.Method
	if o.Fallback != "" {
		r.Method += " (" + o.Fallback + ")"
	}
	return r
}

var (
	nmapOpen = regexp.MustCompile(`(?m)^(\d+)/tcp\s+open\s`)
	nmapDone = regexp.MustCompile(`scanned in ([0-9.]+) seconds`)
)

func scanNmap(ctx context.Context, addr string) scanRun {
	var r scanRun
	cmd := exec.Command("nmap", "-p-", "-n", "-T4", addr)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	r.Usage, r.Err = bench.Run(ctx, cmd)
	if r.Err != nil {
		r.Err = fmt.Errorf("%w: %s", r.Err, strings.TrimSpace(errb.String()))
		return r
	}
	r.Open, r.Inner, r.Err = parseNmap(out.String(), addr)
	return r
}

// parseNmap reads nmap's normal output: the open TCP ports, sorted, and the time nmap
// says the scan took.
func parseNmap(out, addr string) ([]int, time.Duration, error) {
	var open []int
	for _, m := range nmapOpen.FindAllStringSubmatch(out, -1) {
		p, _ := strconv.Atoi(m[1])
		open = append(open, p)
	}
	slices.Sort(open)
	var took time.Duration
	if m := nmapDone.FindStringSubmatch(out); m != nil {
		s, _ := strconv.ParseFloat(m[1], 64)
		took = time.Duration(s * float64(time.Second))
	}
	if !strings.Contains(out, "Host is up") {
		return open, took, fmt.Errorf("nmap did not find %s up: %q", addr, out)
	}
	return open, took, nil
}

// simBench is a `hilt sim` running in the background.
type simBench struct {
	cmd       *exec.Cmd
	addr      string
	namespace bool
	done      chan error
}

// startSim starts `hilt sim --devices 1 --dir D` and waits until it prints that its
// device is up, then reads the device's address from D/profile.yaml.
func startSim(ctx context.Context, cfg config) (*simBench, error) {
	dir := filepath.Join(cfg.work, "sim")
	log, err := os.Create(dir + ".log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(cfg.hilt, "sim", "--devices", "1", "--dir", dir)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = io.MultiWriter(pw, log), log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start hilt sim: %w", err)
	}
	s := &simBench{cmd: cmd, done: make(chan error, 1)}
	go func() {
		err := cmd.Wait()
		pw.CloseWithError(fmt.Errorf("hilt sim exited: %v", err))
		log.Close()
		s.done <- err
	}()
	up := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "profile ") {
				up <- nil
				io.Copy(io.Discard, pr)
				return
			}
		}
		up <- fmt.Errorf("hilt sim ended before its device was up: %v (log %s.log)", sc.Err(), dir)
	}()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	select {
	case err = <-up:
	case <-wctx.Done():
		err = fmt.Errorf("hilt sim: device not up: %w (log %s.log)", wctx.Err(), dir)
	}
	if err == nil {
		var p *profile.Profile
		if p, err = profile.Load(filepath.Join(dir, "profile.yaml")); err == nil {
			if len(p.Instances) != 1 {
				err = fmt.Errorf("%s: %d instances, want 1", p.Path, len(p.Instances))
			} else {
				s.addr = p.Instances[0].Address
				s.namespace = p.Instances[0].CaptureInterface != ""
			}
		}
	}
	if err != nil {
		return nil, errors.Join(err, s.stop())
	}
	return s, nil
}

// stop sends hilt sim SIGTERM (it stops its device, broker and namespace) and waits for
// it, killing it after 30 s.
func (s *simBench) stop() error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case err := <-s.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 0 {
			return nil
		}
		return err
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("hilt sim (PID %d) did not stop within 30 s of SIGTERM: killed", s.cmd.Process.Pid)
	}
}
