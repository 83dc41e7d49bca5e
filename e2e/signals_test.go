package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

	"github.com/hilt-project/hilt/harness/netns"
)

// Fault tests on the harness side: hilt run interrupted (SIGINT, SIGTERM, SIGHUP), killed
// (SIGKILL: the next run removes what it left), two runs at once, and an emulated unit's
// QEMU killed mid-run. Each run selects a few checks with --label-filter to stay short.

// Deadlines of the fault tests: generous, for a loaded machine.
const (
	// interruptBound is how long an interrupted run may take to exit: stop the running
	// check, run its cleanup, stop the bench, write the reports.
	interruptBound = 20 * time.Second
	// outputWait bounds the wait for a line of a run's output.
	outputWait = 90 * time.Second
	// runWait bounds a short simulated run.
	runWait = 3 * time.Minute
)

// bgRun is a hilt run in the background.
type bgRun struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	dir  string // --out
	args []string
	done chan struct{}
	err  error
	t0   time.Time
	// scratch, when set, is the run's own state folder and temporary folder.
	scratch *scratch
}

// scratch is a private HILT_STATE_DIR and TMPDIR for the runs of one test: what those runs
// leave, and what they remove, is out of reach of the benches that other packages' tests
// start at the same time (go test runs packages side by side, and every bench start
// removes what dead runs in its state folder left).
type scratch struct{ state, tmp string }

// newScratch makes a scratch pair, removed when the test ends. The temporary folder's
// path is short: the runs make unix sockets in it.
func newScratch(t *testing.T) *scratch {
	t.Helper()
	root, err := os.MkdirTemp("", "hk")
	if err != nil {
		t.Fatal(err)
	}
	sc := &scratch{state: filepath.Join(root, "s"), tmp: filepath.Join(root, "t")}
	// Registered first, so it runs last, when the runs are gone: what they left in the
	// machine (namespaces, veths) is listed only in this state folder, which no later
	// run will read.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if removed, err := netns.CleanupStale(ctx, sc.state); err != nil || len(removed) > 0 {
			t.Logf("scratch state folder: removed %v (%v)", removed, err)
		}
		os.RemoveAll(root)
	})
	for _, d := range []string{sc.state, sc.tmp} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return sc
}

// stateDir is the folder of the run's network state files.
func (r *bgRun) stateDir() string {
	if r.scratch != nil {
		return r.scratch.state
	}
	return "/run/hilt"
}

// tmpDir is the run's temporary folder.
func (r *bgRun) tmpDir() string {
	if r.scratch != nil {
		return r.scratch.tmp
	}
	return os.TempDir()
}

// syncBuffer is a bytes.Buffer written by the child's output and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startHilt starts hilt with args and a fresh --out folder, without waiting for it.
func startHilt(t *testing.T, args ...string) *bgRun {
	t.Helper()
	return startHiltIn(t, nil, args...)
}

// startHiltIn is startHilt with the state and temporary folders of sc (nil: the machine's).
func startHiltIn(t *testing.T, sc *scratch, args ...string) *bgRun {
	t.Helper()
	r := &bgRun{dir: t.TempDir(), out: &syncBuffer{}, done: make(chan struct{}), scratch: sc}
	r.args = append(args, "--out", r.dir)
	r.cmd = exec.Command(hiltBin, r.args...)
	if sc != nil {
		r.cmd.Env = append(os.Environ(), netns.StateDirEnv+"="+sc.state, "TMPDIR="+sc.tmp)
	}
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.t0 = time.Now()
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start hilt %v: %v", r.args, err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

// waitFor waits until the run's output matches re and returns the submatches; it fails the
// test if the run ends first or the deadline passes.
func (r *bgRun) waitFor(t *testing.T, re *regexp.Regexp, within time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(r.out.String()); m != nil {
			return m
		}
		select {
		case <-r.done:
			if m := re.FindStringSubmatch(r.out.String()); m != nil {
				return m
			}
			t.Fatalf("hilt %v ended (%v) before printing %q:\n%s", r.args, r.err, re, lastLines(r.out.String(), 40))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hilt %v printed no %q in %v:\n%s", r.args, re, within, lastLines(r.out.String(), 40))
		}
	}
}

// wait waits for the run to end and returns its exit code (-1 for a signal) and the time
// since since.
func (r *bgRun) wait(t *testing.T, within time.Duration, since time.Time) (int, time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(within):
		t.Fatalf("hilt %v still runs after %v:\n%s", r.args, within, lastLines(r.out.String(), 40))
	}
	took := time.Since(since)
	var ee *exec.ExitError
	switch {
	case r.err == nil:
		return 0, took
	case errors.As(r.err, &ee):
		return ee.ExitCode(), took
	}
	t.Fatalf("hilt %v: %v", r.args, r.err)
	return 0, 0
}

// report reads the run's compliance.json.
func (r *bgRun) report(t *testing.T) runReport {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "compliance.json"))
	if err != nil {
		t.Fatalf("compliance.json: %v\n%s", err, lastLines(r.out.String(), 30))
	}
	var rep runReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("compliance.json: %v", err)
	}
	return rep
}

type runReport struct {
	Run struct {
		Interrupted bool     `json:"interrupted"`
		Errors      []string `json:"errors"`
	} `json:"run"`
	Checks []checkResult `json:"checks"`
}

func (rep runReport) describe() string {
	var b strings.Builder
	for _, c := range rep.Checks {
		fmt.Fprintf(&b, "  %s %s %s: %.200s\n", c.Device, c.ID, c.Verdict, c.Reason)
	}
	return b.String()
}

// validateJUnit checks junit.xml against the Jenkins schema.
func validateJUnit(t *testing.T, dir string) {
	t.Helper()
	requireCI(t, "xmllint")
	xsd := schemaPath(t)
	if out, err := exec.Command("xmllint", "--noout", "--schema", xsd, filepath.Join(dir, "junit.xml")).CombinedOutput(); err != nil {
		t.Errorf("junit.xml does not validate against %s: %v\n%s", xsd, err, out)
	}
}

// Prefixes of the temporary folders hilt names after their owner's PID (harness/sim,
// internal/rundir).
var ownedPrefixes = []string{"hilt-sim-", "hilt-qemu-run-", "hilt-qemu-", "hilt-emu-", "hq-"}

// leftovers lists what the hilt run r left on the machine:
// processes started for it, the namespaces and veths of its state file, taps marked with
// its PID, temporary folders named after it. Processes are given a few seconds to go.
func leftovers(t *testing.T, r *bgRun) []string {
	t.Helper()
	pid, out := r.cmd.Process.Pid, r.dir
	var left []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		left = left[:0]
		for _, p := range processesOf(pid, out) {
			left = append(left, "process "+p)
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling for processes to exit, bounded by deadline
	}
	for _, st := range stateFilesOf(r.stateDir(), pid) {
		left = append(left, fmt.Sprintf("run state %s (namespaces %v, veths %v)", st.path, st.Namespaces, st.HostIfs))
	}
	nsOut, _ := exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-j", "link", "show").Output()
	var ls []struct {
		Name  string `json:"ifname"`
		Alias string `json:"ifalias"`
	}
	_ = json.Unmarshal(links, &ls)
	for _, l := range ls {
		if l.Alias == fmt.Sprintf("hilt-qemu pid=%d", pid) {
			left = append(left, "tap "+l.Name)
		}
	}
	for _, id := range runIDs(r.out.String()) {
		for _, ns := range strings.Fields(string(nsOut)) {
			if strings.HasPrefix(ns, "hilt-"+id+"-") {
				left = append(left, "namespace "+ns)
			}
		}
		for _, l := range ls {
			if strings.HasPrefix(l.Name, "hv"+id) {
				left = append(left, "veth "+l.Name)
			}
		}
	}
	for _, p := range ownedPrefixes {
		m, _ := filepath.Glob(filepath.Join(r.tmpDir(), fmt.Sprintf("%s%d-*", p, pid)))
		for _, d := range m {
			left = append(left, "folder "+d)
		}
	}
	return left
}

// runIDs returns the run IDs of the simulated benches in a run's output.
var runIDRE = regexp.MustCompile(`namespaces hilt-([a-z0-9]+)-1\.\.`)

func runIDs(out string) []string {
	var ids []string
	for _, m := range runIDRE.FindAllStringSubmatch(out, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

// processesOf lists the processes (other than this one) whose command line names the run's
// --out folder or one of the temporary folders of the run with this PID.
func processesOf(pid int, out string) []string {
	markers := []string{out}
	for _, p := range ownedPrefixes {
		markers = append(markers, fmt.Sprintf("%s%d-", p, pid))
	}
	ents, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil || n == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		cl := strings.ReplaceAll(string(bytes.TrimRight(b, "\x00")), "\x00", " ")
		for _, m := range markers {
			if strings.Contains(cl, m) {
				found = append(found, fmt.Sprintf("%d %.160s", n, cl))
				break
			}
		}
	}
	return found
}

type stateFile struct {
	path       string
	PID        int      `json:"pid"`
	Namespaces []string `json:"namespaces"`
	HostIfs    []string `json:"host_ifs"`
}

// stateFilesOf returns the network state files (harness/netns) in dir owned by pid.
func stateFilesOf(dir string, pid int) []stateFile {
	m, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	var out []stateFile
	for _, p := range m {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var st stateFile
		if json.Unmarshal(b, &st) == nil && st.PID == pid {
			st.path = p
			out = append(out, st)
		}
	}
	return out
}

// sigProgressRE matches a finished check's progress line of the run's output.
func sigProgressRE(id string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^  (\S+)\s+` + regexp.QuoteMeta(id) + `\s+(pass|fail|skip|error)\s`)
}

// TestInterruptedRun interrupts hilt run while a check that changes the unit's
// configuration (LA-05: lockout settings, restored by its cleanup) runs, and while the
// bench starts: the run stops promptly, the checks cut short are errors that say the run
// was interrupted, the reports are written (junit.xml valid), the exit code is 2, and
// nothing the run started is left: processes, namespaces, veths, temporary folders.
func TestInterruptedRun(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name  string
		sig   syscall.Signal
		after *regexp.Regexp // the output line after which the signal is sent
		// midCheck: the signal arrives while checks run (DI-01 done, LA-05 running).
		midCheck bool
	}{
		{"SIGINT mid-check", syscall.SIGINT, sigProgressRE("DI-01"), true},
		{"SIGTERM mid-check", syscall.SIGTERM, sigProgressRE("DI-01"), true},
		{"SIGHUP mid-check", syscall.SIGHUP, sigProgressRE("DI-01"), true},
		{"SIGTERM while the bench starts", syscall.SIGTERM, regexp.MustCompile(`(?m)^starting 1 simulated unit`), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, code, took := interruptRun(t, tc.sig, tc.after, tc.midCheck, "run", "--devices", "1", "--label-filter", "DI-01 || LA-05")
			t.Logf("%s: exit %d, %v after the signal", tc.sig, code, took.Round(time.Millisecond))
			if took > interruptBound {
				t.Errorf("the run took %v to stop after %s, want under %v", took, tc.sig, interruptBound)
			}
			if code != 2 {
				t.Errorf("exit %d, want 2 (an interrupted run)\n%s", code, lastLines(r.out.String(), 30))
			}
			rep := r.report(t)
			if !rep.Run.Interrupted {
				t.Errorf("compliance.json: run.interrupted is false")
			}
			validateJUnit(t, r.dir)
			t.Logf("verdicts:\n%s", rep.describe())
			if tc.midCheck {
				checkInterruptedVerdicts(t, rep)
			}
			if left := leftovers(t, r); len(left) > 0 {
				t.Errorf("the interrupted run left:\n  %s", strings.Join(left, "\n  "))
			}
		})
	}
}

// interruptTries bounds the attempts to send the signal while LA-05 runs.
const interruptTries = 3

// intoLA05 is how long after DI-01's progress line the signal is sent, to land inside LA-05
// rather than in the check process's step from DI-01 to it (the 20-odd checks the filter
// skips in between); LA-05 waits out two lockouts, so it runs for well over a second.
const intoLA05 = 400 * time.Millisecond

// interruptRun starts hilt with args, sends sig once its output matches after, and waits
// for the run to end; it returns the run, its exit code and the time from the signal to
// the exit. With midLA05, the signal must find LA-05 running (it starts right after DI-01's
// line): if the check process had not started it yet (a loaded machine), the run is tried
// again, up to interruptTries times.
func interruptRun(t *testing.T, sig syscall.Signal, after *regexp.Regexp, midLA05 bool, args ...string) (*bgRun, int, time.Duration) {
	t.Helper()
	for try := 1; ; try++ {
		r := startHilt(t, args...)
		r.waitFor(t, after, outputWait)
		if midLA05 {
			time.Sleep(intoLA05) // not a readiness wait: it picks an instant inside LA-05
		}
		sent := time.Now()
		if err := r.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		code, took := r.wait(t, interruptBound+10*time.Second, sent)
		if !midLA05 || sig == syscall.SIGKILL || try == interruptTries {
			return r, code, took
		}
		for _, c := range r.report(t).Checks {
			if c.ID == "LA-05" && strings.HasPrefix(c.Reason, "not run") {
				t.Logf("try %d: the signal came before LA-05 started (%s); again", try, c.Reason)
				r = nil
				break
			}
		}
		if r != nil {
			return r, code, took
		}
	}
}

// checkInterruptedVerdicts: DI-01 finished before the signal; LA-05, running when it came,
// was cut short: an error that says the run was interrupted, its cleanup (restoring the
// lockout settings) having raised nothing.
func checkInterruptedVerdicts(t *testing.T, rep runReport) {
	t.Helper()
	got := map[string]checkResult{}
	for _, c := range rep.Checks {
		got[c.ID] = c
	}
	for _, id := range []string{"DI-01", "LA-05"} {
		if _, ok := got[id]; !ok {
			t.Errorf("%s: no result (every selected check must have one)\n%s", id, rep.describe())
		}
	}
	if r := got["LA-05"].Reason; strings.HasPrefix(r, "not run") {
		t.Errorf("LA-05 runs after DI-01: the signal must find it running, not %q", r)
	}
	if v := got["DI-01"].Verdict; v != "pass" {
		t.Errorf("DI-01 finished before the signal: %s, want pass", v)
	}
	errs := 0
	for _, c := range rep.Checks {
		switch c.Verdict {
		case "fail":
			t.Errorf("%s: fail after an interruption (a check cut short must be an error): %s", c.ID, c.Reason)
		case "error":
			errs++
			if !strings.Contains(c.Reason, "interrupted") {
				t.Errorf("%s: error %q does not say the run was interrupted", c.ID, c.Reason)
			}
			if strings.Contains(c.Reason, "in cleanup") {
				t.Errorf("%s: its cleanup failed, the unit may not be as found: %s", c.ID, c.Reason)
			}
		}
	}
	if errs == 0 {
		t.Errorf("no check was cut short by the signal:\n%s", rep.describe())
	}
}

// TestClosedOutputPipe closes hilt run's output after its first line (hilt run | head -1):
// the run is not killed by SIGPIPE half way, leaving its bench behind, but goes on, writes
// its reports and exits as the checks say.
func TestClosedOutputPipe(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	cmd := exec.Command(hiltBin, "run", "--devices", "1", "--label-filter", "DI-01 || DC-01", "--out", dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("first line: %v", err)
	}
	stdout.Close()
	t.Logf("read %q, then closed the pipe", first)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(runWait):
		cmd.Process.Kill()
		t.Fatalf("hilt run still runs %v after its output was closed", runWait)
	}
	if err != nil {
		t.Errorf("hilt run with its output closed: %v, want exit 0 (SIGPIPE must not end it)", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "compliance.json"))
	if err != nil {
		t.Fatalf("no reports: %v", err)
	}
	var rep runReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Checks) != 2 {
		t.Errorf("%d check results, want 2:\n%s", len(rep.Checks), rep.describe())
	}
	r := &bgRun{cmd: cmd, dir: dir, out: &syncBuffer{}}
	if left := leftovers(t, r); len(left) > 0 {
		t.Errorf("the run left:\n  %s", strings.Join(left, "\n  "))
	}
}

// TestSimOutputClosed: hilt sim stops cleanly when the pipe its output goes to is closed
// (hilt sim | tee, and tee ends), and not for a SIGPIPE raised by anything else: a device
// that reboots while the bench's broker writes to it raises one, and that used to stop a
// bench in the middle of a run against it.
func TestSimOutputClosed(t *testing.T) {
	requireRoot(t)
	dir := filepath.Join(t.TempDir(), "bench")
	r := &bgRun{out: &syncBuffer{}, done: make(chan struct{}), dir: dir, args: []string{"sim", "--devices", "1", "--dir", dir}}
	r.cmd = exec.Command(hiltBin, r.args...)
	r.cmd.Stderr = r.out
	// Its stdout is a pipe of the test's own: closing the reading end is the test's act.
	stdout, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.cmd.Stdout = w
	t.Cleanup(func() { stdout.Close() })
	r.startStoppable(t)
	w.Close()
	printed := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Ctrl-C stops") {
				break
			}
		}
		printed <- b.String() // the pipe stays open, unread, until the test closes it
	}()
	select {
	case <-printed:
	case <-r.done:
		t.Fatalf("hilt sim ended (%v) before printing its bench:\n%s", r.err, lastLines(r.out.String(), 40))
	case <-time.After(outputWait):
		t.Fatalf("hilt sim printed no bench in %v:\n%s", outputWait, lastLines(r.out.String(), 40))
	}

	r.requireRunsOn(t, syscall.SIGPIPE)

	stdout.Close()
	code, took := r.wait(t, runWait, time.Now())
	t.Logf("output closed: exit %d after %v", code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("exit %d, want 0 (a closed output stops the bench as Ctrl-C does)", code)
	}
	if !strings.Contains(r.out.String(), "the output was closed") {
		t.Errorf("hilt sim did not say why it stopped:\n%s", lastLines(r.out.String(), 20))
	}
	if left := leftovers(t, r); len(left) > 0 {
		t.Errorf("the bench left:\n  %s", strings.Join(left, "\n  "))
	}
}

// TestInterruptedRunLeavesDeviceAsFound runs against a device hilt does not own (a
// `hilt sim` bench, described to hilt run as an external device) and stops the run while
// LA-05 has the unit's lockout settings changed: by SIGINT (hilt run stops its check
// process, whose cleanup restores the settings) and by SIGKILL (hilt run cannot clean up;
// its check process gets SIGTERM as its parent-death signal and restores them itself). A
// second run of LA-05 then finds the settings as declared and passes.
func TestInterruptedRunLeavesDeviceAsFound(t *testing.T) {
	requireRoot(t)
	bench := startSimBench(t)
	profile := bench.profile
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			r, code, took := interruptRun(t, sig, sigProgressRE("DI-01"), true, "run", "--device", profile, "--label-filter", "DI-01 || LA-05")
			t.Logf("%s: exit %d, %v after the signal", sig, code, took.Round(time.Millisecond))
			if sig == syscall.SIGINT {
				if code != 2 {
					t.Errorf("exit %d, want 2", code)
				}
				checkInterruptedVerdicts(t, r.report(t))
			}
			// The check process ends once its cleanup has run (under SIGKILL, on its own).
			deadline := time.Now().Add(interruptBound)
			for ps := processesOf(r.cmd.Process.Pid, r.dir); len(ps) > 0; ps = processesOf(r.cmd.Process.Pid, r.dir) {
				if time.Now().After(deadline) {
					t.Fatalf("the check process outlived hilt run by %v:\n  %s", interruptBound, strings.Join(ps, "\n  "))
				}
				time.Sleep(100 * time.Millisecond) // polling for its exit, bounded by deadline
			}
			again := startHilt(t, "run", "--device", profile, "--label-filter", "LA-05")
			code, _ = again.wait(t, runWait, again.t0)
			if code != 0 {
				bench.requireAlive(t)
				t.Errorf("LA-05 after the %s run: exit %d, want 0: the unit was not left as found\n%s", sig, code, again.report(t).describe())
			}
		})
	}
}

// simBench is a `hilt sim` bench a test started, with its profile rewritten to describe the
// unit as external.
type simBench struct {
	run     *bgRun
	profile string // the external copy of the bench's profile
}

// requireAlive fails the test, with the bench's output, when the bench has stopped: its
// unit's address then leads nowhere (or, on a host whose default route is a proxy, to
// something else entirely), and no later failure would say why.
func (b *simBench) requireAlive(t *testing.T) {
	t.Helper()
	select {
	case <-b.run.done:
		t.Fatalf("the hilt sim bench stopped (%v) while the test used it:\n%s", b.run.err, lastLines(b.run.out.String(), 40))
	default:
	}
	// It says so before it takes its network down.
	if out := b.run.out.String(); strings.Contains(out, "hilt sim: stopping") {
		t.Fatalf("the hilt sim bench is stopping while the test uses it:\n%s", lastLines(out, 40))
	}
}

// startSim starts `hilt sim --devices 1 --dir D` (through the command wrap names first, if
// any: nohup) and waits until it has printed its bench. It is stopped (SIGTERM) when the
// test ends.
func startSim(t *testing.T, wrap ...string) *bgRun {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bench")
	r := &bgRun{out: &syncBuffer{}, done: make(chan struct{}), dir: dir, args: []string{"sim", "--devices", "1", "--dir", dir}}
	argv := append(append(slices.Clone(wrap), hiltBin), r.args...)
	r.cmd = exec.Command(argv[0], argv[1:]...)
	r.cmd.Stdout, r.cmd.Stderr = r.out, r.out
	r.startStoppable(t)
	r.waitFor(t, regexp.MustCompile(`(?m)^profile\s+\S+`), outputWait)
	return r
}

// startStoppable starts r.cmd and stops it when the test ends: SIGTERM, then SIGKILL if it
// still runs 30 s later.
func (r *bgRun) startStoppable(t *testing.T) {
	t.Helper()
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start hilt %v: %v", r.args, err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			r.cmd.Process.Kill()
			<-r.done
		}
	})
}

// requireRunsOn sends sig to a hilt sim and fails the test if it stops: a bench that stops
// says so at once, so a second without it is ample.
func (r *bgRun) requireRunsOn(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-r.done:
		t.Fatalf("hilt %v ended (%v) on %v:\n%s", r.args, r.err, sig, lastLines(r.out.String(), 20))
	case <-time.After(time.Second):
	}
	if strings.Contains(r.out.String(), "hilt sim: stopping") {
		t.Fatalf("hilt sim stops on %v:\n%s", sig, lastLines(r.out.String(), 20))
	}
}

// TestSimHangup: a closed terminal (SIGHUP) stops hilt sim cleanly, unless it was started
// under nohup, which asks for the opposite; SIGTERM still stops it then.
func TestSimHangup(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name     string
		wrap     []string
		wantStop bool
	}{
		{"plain", nil, true},
		{"nohup", []string{"nohup"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := startSim(t, tc.wrap...)
			if tc.wantStop {
				if err := r.cmd.Process.Signal(syscall.SIGHUP); err != nil {
					t.Fatal(err)
				}
			} else {
				r.requireRunsOn(t, syscall.SIGHUP)
				if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			code, took := r.wait(t, runWait, time.Now())
			t.Logf("exit %d %v after the signal", code, took.Round(time.Millisecond))
			if code != 0 {
				t.Errorf("exit %d, want 0", code)
			}
			if left := leftovers(t, r); len(left) > 0 {
				t.Errorf("the bench left:\n  %s", strings.Join(left, "\n  "))
			}
		})
	}
}

// startSimBench starts `hilt sim` with one unit and returns it with a copy of its profile
// that describes the unit as external (hilt run then tests it without starting a bench of
// its own). The bench is stopped when the test ends.
func startSimBench(t *testing.T) *simBench {
	t.Helper()
	r := startSim(t)
	dir := r.dir
	b, err := os.ReadFile(filepath.Join(dir, "profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte("\nbackend: sim\n")) {
		t.Fatalf("the bench's profile has no \"backend: sim\" line:\n%s", b)
	}
	ext := filepath.Join(t.TempDir(), "external.yaml")
	if err := os.WriteFile(ext, bytes.Replace(b, []byte("\nbackend: sim\n"), []byte("\nbackend: external\n"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	return &simBench{run: r, profile: ext}
}

// TestKilledRunLeftovers SIGKILLs a run mid-check: its device processes and check processes
// die with it (parent-death signals), its namespaces, veths and folder stay (it could not
// clean up), and the next run removes them, says so, and leaves a concurrent live run's
// resources alone (that run passes).
func TestKilledRunLeftovers(t *testing.T) {
	requireRoot(t)
	// The live run: the whole baseline on one unit (10-20 s), still running when the next
	// run starts.
	sc := newScratch(t)
	live := startHiltIn(t, sc, "run", "--devices", "1")
	liveID := live.waitFor(t, runIDRE, outputWait)[1]
	live.waitFor(t, regexp.MustCompile(`(?m)^running \d+ checks`), outputWait)

	dead := startHiltIn(t, sc, "run", "--devices", "2", "--label-filter", "DI-01 || LA-05 || LA-01")
	deadID := dead.waitFor(t, runIDRE, outputWait)[1]
	dead.waitFor(t, sigProgressRE("DI-01"), outputWait)
	if err := dead.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-dead.done
	deadPID := dead.cmd.Process.Pid
	// Device processes (SIGKILL) and check processes (their parent-death signal: they run
	// their cleanups and exit) die with hilt run; what it made outside processes stays.
	if ps := processesOf(deadPID, dead.dir); len(ps) > 0 {
		deadline := time.Now().Add(15 * time.Second)
		for len(ps) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond) // polling for exits, bounded by deadline
			ps = processesOf(deadPID, dead.dir)
		}
		if len(ps) > 0 {
			t.Errorf("processes outlived the SIGKILLed run by 15 s:\n  %s", strings.Join(ps, "\n  "))
		}
	}
	before := leftovers(t, dead)
	t.Logf("the SIGKILLed run left:\n  %s", strings.Join(before, "\n  "))
	if len(before) == 0 {
		t.Errorf("the SIGKILLed run left nothing: the test did not kill it mid-run")
	}

	select {
	case <-live.done:
		t.Fatalf("the live run ended before the next run's cleanup; make its selection longer:\n%s", lastLines(live.out.String(), 20))
	default:
	}
	next := startHiltIn(t, sc, "run", "--devices", "1", "--label-filter", "DI-01")
	code, took := next.wait(t, runWait, next.t0)
	t.Logf("next run: exit %d in %v", code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("next run: exit %d, want 0\n%s", code, lastLines(next.out.String(), 30))
	}
	out := next.out.String()
	for _, want := range []string{"removed what dead runs left", "hilt-" + deadID + "-1", "hilt-" + deadID + "-2", fmt.Sprintf("hilt-sim-%d-", deadPID)} {
		if !strings.Contains(out, want) {
			t.Errorf("the next run's output does not say it removed %q:\n%s", want, lastLines(out, 30))
		}
	}
	if regexp.MustCompile(`removed what dead runs left:[^\n]*(hilt-` + liveID + fmt.Sprintf(`-|hilt-sim-%d-)`, live.cmd.Process.Pid)).MatchString(out) {
		t.Errorf("the next run removed the live run's namespace or folder:\n%s", lastLines(out, 30))
	}
	if left := leftovers(t, dead); len(left) > 0 {
		t.Errorf("after the next run, the SIGKILLed run's leftovers remain:\n  %s", strings.Join(left, "\n  "))
	}

	code, _ = live.wait(t, runWait, live.t0)
	if code != 0 {
		t.Errorf("the live run, during which another run's leftovers were removed: exit %d, want 0\n%s", code, lastLines(live.out.String(), 30))
	}
}

// benchRE picks, from a simulated run's output, what two concurrent runs must not share.
var benchRE = struct{ net, broker, profile *regexp.Regexp }{
	net:     regexp.MustCompile(`network: namespaces (hilt-[a-z0-9]+)-1\.\.\S+, device addresses (\d+\.\d+\.\d+)\.`),
	broker:  regexp.MustCompile(`broker: embedded, TLS port (\d+), plaintext port (\d+)`),
	profile: regexp.MustCompile(`profile (\S+)/profile\.yaml`),
}

// TestConcurrentRuns runs two compliant runs at once: they pass, and their namespaces,
// subnets, broker ports and folders differ; neither leaves anything.
func TestConcurrentRuns(t *testing.T) {
	requireRoot(t)
	args := []string{"run", "--devices", "2", "--label-filter", "DI-01 || DI-02 || LA-05 || DC-01"}
	runs := []*bgRun{startHilt(t, args...), startHilt(t, args...)}
	var got [2][]string
	for i, r := range runs {
		code, took := r.wait(t, runWait, r.t0)
		t.Logf("run %d: exit %d in %v", i+1, code, took.Round(time.Millisecond))
		if code != 0 {
			t.Errorf("run %d: exit %d, want 0\n%s\n%s", i+1, code, r.report(t).describe(), lastLines(r.out.String(), 30))
		}
		out := r.out.String()
		for _, re := range []*regexp.Regexp{benchRE.net, benchRE.broker, benchRE.profile} {
			m := re.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("run %d: no %q in its output:\n%s", i+1, re, lastLines(out, 30))
			}
			got[i] = append(got[i], m[1:]...)
		}
	}
	names := []string{"namespace prefix", "subnet", "broker TLS port", "broker plaintext port", "run folder"}
	for k, name := range names {
		if got[0][k] == got[1][k] {
			t.Errorf("both runs have %s %s", name, got[0][k])
		}
	}
	t.Logf("run 1: %v; run 2: %v", got[0], got[1])
	for i, r := range runs {
		if left := leftovers(t, r); len(left) > 0 {
			t.Errorf("run %d left:\n  %s", i+1, strings.Join(left, "\n  "))
		}
		if _, err := os.Stat(got[i][4]); !os.IsNotExist(err) {
			t.Errorf("run %d: its run folder %s is still there (%v)", i+1, got[i][4], err)
		}
	}
}

// qemuKilled kills the QEMU of one emulated unit mid-run: the run ends within its
// timeouts, that unit's checks still to run are errors (none fails, none passes after the
// kill), the other unit's pass, the reports are written and their errors say that the
// unit's QEMU was killed, the exit code is 2, and no tap,
// QEMU, folder or disk image of the run is left.
func qemuKilled(t *testing.T) {
	// The profile's own boot timeout: the first boot of both units runs beside the other
	// emulated runs of make test, and a shorter one (30 s) failed that boot under CI load.
	r := startHilt(t, "run", "--device", qemuProfile, "--label-filter", "DI-01 || DC-01")
	r.waitFor(t, regexp.MustCompile(`(?m)^running \d+ checks`), 10*time.Minute)
	pid := r.cmd.Process.Pid
	var qpid int
	for _, p := range sigChildrenOf(pid) {
		if cl := sigCmdline(p); strings.Contains(cl, "qemu-system") && strings.Contains(cl, "guest=dev1") {
			qpid = p
		}
	}
	if qpid == 0 {
		t.Fatalf("no QEMU of dev1 among the children of hilt run %d", pid)
	}
	killed := time.Now()
	if err := syscall.Kill(qpid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	code, took := r.wait(t, 15*time.Minute, killed)
	t.Logf("QEMU of dev1 killed: the run ended %v later with exit %d", took.Round(time.Second), code)
	if code != 2 {
		t.Errorf("exit %d, want 2\n%s", code, lastLines(r.out.String(), 40))
	}
	rep := r.report(t)
	validateJUnit(t, r.dir)
	t.Logf("verdicts:\n%s", rep.describe())
	dev1Errors := 0
	for _, c := range rep.Checks {
		switch {
		case c.Verdict == "fail":
			t.Errorf("%s %s: fail; a unit whose emulator died cannot fail a check, only error: %s", c.Device, c.ID, c.Reason)
		case c.Device == "dev1" && c.Verdict == "error":
			dev1Errors++
		case c.Device == "dev2" && c.Verdict != "pass":
			t.Errorf("dev2 %s: %s (%s); the other unit's checks must pass", c.ID, c.Verdict, c.Reason)
		}
	}
	if dev1Errors == 0 {
		t.Errorf("no check of dev1 errored after its QEMU was killed:\n%s", rep.describe())
	}
	// The report says why: the bench saw dev1's QEMU die, and names it.
	said := false
	for _, e := range rep.Run.Errors {
		said = said || strings.Contains(e, "dev1: QEMU exited on its own") && strings.Contains(e, "killed or crashed")
	}
	if !said {
		t.Errorf("the run's errors %q do not say that dev1's QEMU was killed", rep.Run.Errors)
	}
	if left := leftovers(t, r); len(left) > 0 {
		t.Errorf("the run left:\n  %s", strings.Join(left, "\n  "))
	}
}

// TestDeviceKilledMidRun SIGKILLs one simulated device's process while its checks run: its
// check in progress ends within its own timeouts, the next one finds that the unit does not
// answer within the boot timeout, and every check after that is an error at once that says
// so, instead of each waiting out its own timeouts on a unit that is gone. The run's errors
// name the device that died, the exit code is 2, and the other unit's checks all pass.
func TestDeviceKilledMidRun(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	r := startHilt(t, "run", "--devices", "2")
	r.waitFor(t, regexp.MustCompile(`(?m)^running \d+ checks`), outputWait)
	r.waitFor(t, regexp.MustCompile(`(?m)^  dev1\s+CS-02\s`), outputWait)
	var dev int
	for _, p := range sigChildrenOf(r.cmd.Process.Pid) {
		if cl := sigCmdline(p); strings.Contains(cl, "__refdev") && strings.Contains(cl, "/dev1/") {
			dev = p
		}
	}
	if dev == 0 {
		t.Fatalf("no device process of dev1 among the children of hilt run %d", r.cmd.Process.Pid)
	}
	killed := time.Now()
	if err := syscall.Kill(dev, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The check in progress may wait out a boot timeout (30 s) and the next one another
	// before the unit is given up; the ~25 checks left would take many minutes otherwise.
	code, took := r.wait(t, 4*time.Minute, killed)
	t.Logf("dev1's device process killed: the run ended %v later with exit %d", took.Round(time.Second), code)
	if code != 2 {
		t.Errorf("exit %d, want 2\n%s", code, lastLines(r.out.String(), 40))
	}
	rep := r.report(t)
	lost := 0
	for _, c := range rep.Checks {
		switch {
		case c.Device == "dev2" && c.Verdict != "pass" && c.Verdict != "skip":
			t.Errorf("dev2 %s: %s (%s); the other unit's checks must pass", c.ID, c.Verdict, c.Reason)
		case c.Device == "dev1" && strings.Contains(c.Reason, "the unit is lost to this run"):
			lost++
			if c.Verdict != "error" {
				t.Errorf("dev1 %s: %s, want error: %s", c.ID, c.Verdict, c.Reason)
			}
		}
	}
	if lost < 5 {
		t.Errorf("%d checks of dev1 say that the unit is lost, want most of those after the kill:\n%s", lost, rep.describe())
	}
	said := false
	for _, e := range rep.Run.Errors {
		said = said || strings.Contains(e, "simulated bench: dev1") && strings.Contains(e, "signal: killed")
	}
	if !said {
		t.Errorf("the run's errors %q do not say that dev1's device process was killed", rep.Run.Errors)
	}
}

// childrenOf returns the PIDs whose parent is pid.
func sigChildrenOf(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

func sigCmdline(pid int) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	return strings.ReplaceAll(string(b), "\x00", " ")
}
