package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// faultRunLimit is how long one faulted run may take, end to end (bench up, checks, each
// hanging command bounded by the profile's 5 s command timeout, bench down).
const faultRunLimit = 75 * time.Second

// faultFilter selects three short console-driven checks that do not attack the device.
const faultFilter = "DC-01 || DC-02 || DC-03"

// TestDeviceFaults makes a fault on the device side of a simulated run, once the first
// check has reported, and holds the run to BASELINE.md's "Verdicts": a fault of the
// harness's path (serial port vanished, broker down) is an error, and so is a device that
// stops answering before any attack; a fault that heals lets the later checks pass. The run
// still ends within its time, writes compliance.json and a junit.xml that validates, keeps
// the evidence so far, exits 2 when anything errored, and leaves no process (hilt __refdev,
// hilt __check, mosquitto), network namespace or run folder behind. Faults on the serial
// port and the broker go through the bench's fault control (docs/SIM.md, "Faults").
func TestDeviceFaults(t *testing.T) {
	requireRoot(t)
	cases := []faultCase{
		{
			name: "device killed",
			inject: func(t *testing.T, r *liveRun) func() {
				r.signalDevice(t, "dev1", syscall.SIGKILL)
				return nil
			},
			after: "error", reason: "no answer", wantCode: 2,
		},
		{
			name: "device hangs",
			inject: func(t *testing.T, r *liveRun) func() {
				pid := r.signalDevice(t, "dev1", syscall.SIGSTOP)
				return func() { syscall.Kill(pid, syscall.SIGCONT) }
			},
			after: "error", reason: "no answer", wantCode: 2,
		},
		{
			name: "serial port unplugged for good",
			inject: func(t *testing.T, r *liveRun) func() {
				r.fault(t, "unplug dev1")
				return nil
			},
			after: "error", reason: "dev1/console", wantCode: 2,
		},
		{
			name: "serial port unplugged and back",
			inject: func(t *testing.T, r *liveRun) func() {
				r.fault(t, "unplug dev1")
				r.fault(t, "replug dev1")
				return nil
			},
			reason: "dev1/console",
		},
		{
			name: "embedded broker restarted",
			inject: func(t *testing.T, r *liveRun) func() {
				r.fault(t, "broker restart")
				return nil
			},
			reason: "mqtt",
		},
		{
			name: "mosquitto restarted",
			args: []string{"--mosquitto"},
			inject: func(t *testing.T, r *liveRun) func() {
				r.fault(t, "broker restart")
				return nil
			},
			reason: "mqtt",
		},
		{
			name: "mosquitto down",
			args: []string{"--mosquitto"},
			inject: func(t *testing.T, r *liveRun) func() {
				r.fault(t, "broker stop")
				return nil
			},
			after: "error", reason: "mqtt", wantCode: 2,
		},
	}
	// All at once, whatever -parallel says: a faulted run mostly waits out timeouts.
	var wg sync.WaitGroup
	defer wg.Wait()
	for _, tc := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(tc.name, func(t *testing.T) { testFault(t, tc) })
		}()
	}
}

// faultCase is one fault of TestDeviceFaults.
type faultCase struct {
	name string
	args []string
	// inject makes the fault once the first check has reported; the function it returns
	// (may be nil) runs after the run ended.
	inject func(t *testing.T, r *liveRun) func()
	// after is the verdict every check that had not reported at the fault must get, or ""
	// when the fault heals: then some check must pass after it, none may fail, and the
	// exit code is 2 if a check errored, else 0.
	after string
	// reason is what every error's reason must mention.
	reason   string
	wantCode int
}

// testFault runs one faulted run and holds it to the verdict rules (see TestDeviceFaults).
func testFault(t *testing.T, tc faultCase) {
	if slices.Contains(tc.args, "--mosquitto") {
		requireCI(t, "mosquitto")
	}
	r := startRun(t, append([]string{"run", "--devices", "1", "--boot-timeout", "10", "--label-filter", faultFilter}, tc.args...)...)
	first := r.waitLine(t, progressRE, 60*time.Second)
	before := r.reported()
	t.Logf("injecting after %q", first)
	cleanup := tc.inject(t, r)
	res := r.wait(t)
	if cleanup != nil {
		cleanup()
	}
	if tc.after == "" {
		// A fault that heals: exit 2 if a check was caught by it, else 0.
		for _, c := range res.checks {
			if c.Verdict == "error" {
				tc.wantCode = 2
			}
		}
	}
	if res.code != tc.wantCode {
		t.Errorf("exit %d, want %d\n%s", res.code, tc.wantCode, res.describe())
	}
	if len(res.checks) != 3 {
		t.Fatalf("compliance.json has %d check results, want 3\n%s", len(res.checks), lastLines(res.out, 30))
	}
	passedAfter := 0
	for _, c := range res.checks {
		switch {
		case before[c.ID] != "" && c.Verdict != before[c.ID]:
			t.Errorf("%s reported %s before the fault, %s in compliance.json", c.ID, before[c.ID], c.Verdict)
		case before[c.ID] != "":
		case tc.after != "" && c.Verdict != tc.after:
			t.Errorf("%s after the fault: %s, want %s: %s", c.ID, c.Verdict, tc.after, c.Reason)
		case c.Verdict == "fail":
			t.Errorf("%s after an infrastructure fault: fail, want error or pass: %s", c.ID, c.Reason)
		case c.Verdict == "pass":
			passedAfter++
		}
		if c.Verdict == "error" && !strings.Contains(strings.ToLower(c.Reason), tc.reason) {
			t.Errorf("%s error does not mention %q: %s", c.ID, tc.reason, c.Reason)
		}
	}
	if tc.after == "" && len(before) < 3 && passedAfter == 0 {
		t.Errorf("no check passed after the fault healed\n%s", res.describe())
	}
	checkReports(t, res, before)
	r.checkNothingLeft(t)
}

// progressRE matches a check's progress line: "  dev1     DC-01  pass    0.43s".
var progressRE = regexp.MustCompile(`^\s+(dev\d+)\s+([A-Z]{2}-\d{2})\s+(pass|fail|skip|error)\s`)

// liveRun is a hilt run in progress whose output the test follows.
type liveRun struct {
	cmd    *exec.Cmd
	dir    string
	cancel context.CancelFunc
	t0     time.Time

	mu    sync.Mutex
	lines []string
	grew  chan struct{} // closed and replaced at every line
	done  chan struct{} // closed when the output ends

	// What the run made, recorded while it runs (its processes are reparented once it ends).
	pmu     sync.Mutex
	pids    map[int]string // PID -> start time, of the run's children
	runDir  string         // the bench's run folder
	netnses []string
}

func startRun(t *testing.T, args ...string) *liveRun {
	t.Helper()
	dir := t.TempDir()
	args = append(args, "--out", dir)
	ctx, cancel := context.WithTimeout(context.Background(), faultRunLimit+30*time.Second)
	cmd := exec.CommandContext(ctx, hiltBin, args...)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	r := &liveRun{cmd: cmd, dir: dir, cancel: cancel, t0: time.Now(), grew: make(chan struct{}), done: make(chan struct{}), pids: map[int]string{}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	t.Logf("hilt %s (PID %d)", strings.Join(args, " "), cmd.Process.Pid)
	go func() {
		defer close(r.done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			r.mu.Lock()
			r.lines = append(r.lines, sc.Text())
			close(r.grew)
			r.grew = make(chan struct{})
			r.mu.Unlock()
			r.record(sc.Text())
		}
	}()
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	return r
}

var (
	faultSockRE = regexp.MustCompile(`fault control (\S+)$`)
	netnsRE     = regexp.MustCompile(`namespaces (hilt-[0-9a-f]+-)\d+\.\.`)
)

// record notes what the run made, from its output and its process tree.
func (r *liveRun) record(line string) {
	r.pmu.Lock()
	defer r.pmu.Unlock()
	if m := faultSockRE.FindStringSubmatch(line); m != nil {
		r.runDir = filepath.Dir(m[1])
	}
	if m := netnsRE.FindStringSubmatch(line); m != nil {
		r.netnses = append(r.netnses, m[1])
	}
	for pid, start := range descendants(r.cmd.Process.Pid) {
		r.pids[pid] = start
	}
}

// waitLine waits for an output line matching re and returns it.
func (r *liveRun) waitLine(t *testing.T, re *regexp.Regexp, limit time.Duration) string {
	t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	seen := 0
	for {
		r.mu.Lock()
		lines, grew := r.lines, r.grew
		r.mu.Unlock()
		for _, l := range lines[seen:] {
			if re.MatchString(l) {
				return l
			}
		}
		seen = len(lines)
		select {
		case <-grew:
		case <-r.done:
			t.Fatalf("the run ended before a line matching %s:\n%s", re, lastLines(strings.Join(lines, "\n"), 30))
		case <-deadline.C:
			t.Fatalf("no line matching %s within %v:\n%s", re, limit, lastLines(strings.Join(lines, "\n"), 30))
		}
	}
}

// reported returns the verdicts the run has reported so far, by check ID.
func (r *liveRun) reported() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]string{}
	for _, l := range r.lines {
		if f := progressRE.FindStringSubmatch(l); f != nil {
			m[f[2]] = f[3]
		}
	}
	return m
}

// fault sends one command to the bench's fault control and fails the test on ERR.
func (r *liveRun) fault(t *testing.T, cmd string) string {
	t.Helper()
	r.pmu.Lock()
	dir := r.runDir
	r.pmu.Unlock()
	if dir == "" {
		t.Fatal("the run did not say where its fault control is")
	}
	c, err := net.DialTimeout("unix", filepath.Join(dir, "faults.sock"), 5*time.Second)
	if err != nil {
		t.Fatalf("fault control: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(40 * time.Second))
	fmt.Fprintln(c, cmd)
	ans, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("fault control: %s: %v", cmd, err)
	}
	ans = strings.TrimSpace(ans)
	t.Logf("fault control: %s: %s (%.1fs into the run)", cmd, ans, time.Since(r.t0).Seconds())
	if !strings.HasPrefix(ans, "OK") {
		t.Fatalf("fault control: %s: %s", cmd, ans)
	}
	return ans
}

// signalDevice signals the named device of this run (never another run's) and returns its PID.
func (r *liveRun) signalDevice(t *testing.T, name string, sig syscall.Signal) int {
	t.Helper()
	for pid := range descendants(r.cmd.Process.Pid) {
		args := cmdline(pid)
		if !slices.Contains(args, "__refdev") {
			continue
		}
		if i := slices.Index(args, "--hw"); i < 0 || i+1 >= len(args) || filepath.Base(filepath.Dir(args[i+1])) != name {
			continue
		}
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatalf("signal %s (PID %d): %v", name, pid, err)
		}
		t.Logf("%v to %s (PID %d) %.1fs into the run", sig, name, pid, time.Since(r.t0).Seconds())
		return pid
	}
	t.Fatalf("no __refdev process of %s under hilt PID %d", name, r.cmd.Process.Pid)
	return 0
}

// wait waits for the run's end, checks that it ended in time and reads its reports.
func (r *liveRun) wait(t *testing.T) result {
	t.Helper()
	<-r.done
	err := r.cmd.Wait()
	took := time.Since(r.t0)
	r.cancel()
	res := result{dir: r.dir}
	r.mu.Lock()
	res.out = strings.Join(r.lines, "\n")
	r.mu.Unlock()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		res.code = ee.ExitCode()
	default:
		t.Fatalf("hilt: %v after %v\n%s", err, took, lastLines(res.out, 30))
	}
	t.Logf("exit %d in %s", res.code, took.Round(time.Millisecond))
	if took > faultRunLimit {
		t.Errorf("the run took %v, more than %v", took, faultRunLimit)
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "compliance.json"))
	if err != nil {
		t.Fatalf("no compliance.json: %v\n%s", err, lastLines(res.out, 30))
	}
	var c compliance
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatalf("compliance.json: %v", err)
	}
	res.checks = c.Checks
	for _, c := range res.checks {
		t.Logf("  %s %s %s: %.200s", c.Device, c.ID, c.Verdict, c.Reason)
	}
	return res
}

// checkReports checks junit.xml against the schema and that the evidence of the checks
// that ended before the fault is kept.
func checkReports(t *testing.T, res result, before map[string]string) {
	t.Helper()
	junit := filepath.Join(res.dir, "junit.xml")
	if _, err := os.Stat(junit); err != nil {
		t.Fatalf("no junit.xml: %v", err)
	}
	if _, err := exec.LookPath("xmllint"); err == nil || os.Getenv("CI") != "" {
		xsd := schemaPath(t)
		if out, err := exec.Command("xmllint", "--noout", "--schema", xsd, junit).CombinedOutput(); err != nil {
			t.Errorf("junit.xml does not validate against %s: %v\n%s", xsd, err, out)
		}
	}
	for id := range before {
		ev, _ := os.ReadDir(filepath.Join(res.dir, "evidence", "dev1", id))
		if len(ev) == 0 {
			t.Errorf("no evidence kept for %s, which ended before the fault", id)
		}
	}
}

// checkNothingLeft checks that no process, namespace or run folder of the run is left.
func (r *liveRun) checkNothingLeft(t *testing.T) {
	t.Helper()
	r.pmu.Lock()
	defer r.pmu.Unlock()
	if len(r.pids) == 0 {
		t.Error("no child process of the run was recorded")
	}
	for pid, start := range r.pids {
		if startTime(pid) == start {
			t.Errorf("PID %d (%s) outlived the run", pid, strings.Join(cmdline(pid), " "))
			syscall.Kill(pid, syscall.SIGCONT)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Errorf("ip netns list: %v", err)
	}
	for _, prefix := range r.netnses {
		if strings.Contains(string(out), prefix) {
			t.Errorf("network namespace %s* outlived the run:\n%s", prefix, out)
		}
	}
	if len(r.netnses) == 0 {
		t.Error("the run did not name its network namespaces")
	}
	if r.runDir == "" {
		t.Error("the run did not name its run folder")
	} else if _, err := os.Stat(r.runDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run folder %s outlived the run (%v)", r.runDir, err)
	}
}

// descendants returns the processes below pid, with their start times.
func descendants(root int) map[int]string {
	ents, _ := os.ReadDir("/proc")
	parent := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp := ppid(pid); pp > 0 {
			parent[pid] = pp
		}
	}
	out := map[int]string{}
	for pid := range parent {
		for p := parent[pid]; p > 1; p = parent[p] {
			if p == root {
				if st := startTime(pid); st != "" {
					out[pid] = st
				}
				break
			}
		}
	}
	return out
}

// procStat returns the fields of /proc/PID/stat after the command name.
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

func ppid(pid int) int {
	f := procStat(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// startTime is the process's start time in clock ticks since boot ("" if it is gone).
func startTime(pid int) string {
	f := procStat(pid)
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

func cmdline(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}
