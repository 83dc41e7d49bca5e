package runner

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/hilt-project/hilt/harness/catalog"
	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/harness/session"
	"github.com/hilt-project/hilt/harness/sim"
	"github.com/hilt-project/hilt/reports"
)

// Options configure a run.
type Options struct {
	// Device is a profile path; empty runs against the simulated bench.
	Device string
	// Devices is the number of simulated units when Device is empty (default 2).
	Devices int
	// Bench holds the broker and network choices for simulated units; Devices, Flaws,
	// Dir, Exe and Log are filled in by Run.
	Bench       sim.Options
	Flaws       []string
	Out         string
	LabelFilter string
	Seed        int64
	// Exe is the hilt executable children are started from (default os.Executable()).
	Exe             string
	Stdout          io.Writer
	Version, Commit string
	// Invalid, when set, is what was wrong with the command line: the run writes a
	// report saying so and exits 2.
	Invalid error
	// TeardownLimit bounds the wait for the bench to stop after the checks; zero or less
	// means DefaultTeardownLimit. Past it the reports are written regardless (stopWithin).
	TeardownLimit time.Duration

	// Stand-ins for tests of this package; zero values mean the real thing.
	startUnits    func(context.Context, Options) (*profile.Profile, stopFunc, error) // units
	cleanStale    func(context.Context, io.Writer)                                   // removeStale
	progressDrain time.Duration                                                      // defaultProgressDrain
}

// defaultProgressDrain bounds the wait for a check process's last progress lines after it
// ended.
const defaultProgressDrain = 5 * time.Second

// ErrBadInput is wrapped by errors in what the user asked for (exit code 2).
var ErrBadInput = errors.New("bad input")

// Run runs the baseline and writes the reports; it returns the run and its exit code.
// A run interrupted through ctx still writes its reports.
func Run(ctx context.Context, o Options) (*reports.Run, int) {
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Out == "" {
		o.Out = "out"
	}
	if o.Seed == 0 {
		o.Seed = rand.Int64N(1 << 30)
	}
	run := &reports.Run{SchemaVersion: 1, HiltVersion: o.Version, GitCommit: o.Commit, Start: time.Now().UTC(),
		Seed: o.Seed, LabelFilter: o.LabelFilter, Flaws: o.Flaws}
	var secrets []string
	err := runAll(ctx, o, run, &secrets)
	run.End = time.Now().UTC()
	if ctx.Err() != nil {
		run.Interrupted = true
		run.Errors = append(run.Errors, "the run was interrupted: checks not finished are errors")
	}
	if err != nil {
		run.Errors = append(run.Errors, err.Error())
		fmt.Fprintf(o.Stdout, "hilt: %v\n", err)
	}
	red := reports.NewRedactor(secrets...)
	if werr := os.MkdirAll(o.Out, 0o755); werr == nil {
		werr = reports.WriteAll(o.Out, run, reports.WithRedactor(red))
		if werr != nil {
			fmt.Fprintf(o.Stdout, "hilt: writing reports: %v\n", werr)
			run.Errors = append(run.Errors, werr.Error())
		}
	}
	fmt.Fprintln(o.Stdout)
	reports.Summary(o.Stdout, run, reports.WithRedactor(red))
	fmt.Fprintf(o.Stdout, "reports: %s\n", filepath.Join(o.Out, "compliance.md"))
	code := reports.ExitCode(run)
	if errors.Is(err, ErrBadInput) {
		code = 2
	}
	return run, code
}

func runAll(ctx context.Context, o Options, run *reports.Run, secrets *[]string) error {
	if o.Invalid != nil {
		return fmt.Errorf("%w: %w", ErrBadInput, o.Invalid)
	}
	selected, err := selectChecks(o.LabelFilter)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(o.Out, ".hilt"), 0o755); err != nil {
		return fmt.Errorf("output folder %s: %w", o.Out, err)
	}
	if o.Exe == "" {
		if o.Exe, err = os.Executable(); err != nil {
			return err
		}
	}
	stacks := filepath.Join(o.Out, ".hilt", teardownStacks)
	os.Remove(stacks) // an earlier run's
	clean, start := removeStale, units
	if o.cleanStale != nil {
		clean = o.cleanStale
	}
	if o.startUnits != nil {
		start = o.startUnits
	}
	clean(ctx, o.Stdout)
	// The bench writes through a gate: a teardown left running past its limit must not
	// write into the summary.
	benchOut := &gate{w: o.Stdout}
	bo := o
	bo.Stdout = benchOut
	p, stop, err := start(ctx, bo)
	if stop != nil {
		defer func() {
			limit := o.TeardownLimit
			if limit <= 0 {
				limit = DefaultTeardownLimit
			}
			for _, terr := range stopWithin(stop, limit, stacks) {
				if errors.Is(terr, ErrTeardown) {
					benchOut.shut() // the teardown goes on; its lines must not land in the summary
				}
				fmt.Fprintf(o.Stdout, "hilt: %v\n", terr)
				run.Errors = append(run.Errors, terr.Error())
			}
		}()
	}
	if err != nil {
		return err
	}
	run.ProfilePath, run.ProfileDigest = p.Path, p.Digest
	*secrets = profileSecrets(p)
	run.Broker = brokerName(p)

	fmt.Fprintf(o.Stdout, "first contact with %d unit(s): pinning identities\n", len(p.Instances))
	var fleet []session.Pin
	for _, in := range p.Instances {
		pin, err := session.FirstContact(ctx, p, in.Name)
		if err != nil {
			return fmt.Errorf("first contact: %w", err)
		}
		fmt.Fprintf(o.Stdout, "  %-8s %s\n", in.Name, pin.ID)
		fleet = append(fleet, pin)
	}
	pins := filepath.Join(o.Out, ".hilt", "pins.json")
	if err := writeJSON(pins, fleet); err != nil {
		return err
	}
	fmt.Fprintf(o.Stdout, "running %d checks on %d unit(s)\n", len(selected), len(p.Instances))
	run.Devices = runChildren(ctx, o, p, pins, selected)
	return nil
}

// units returns the profile to test, starting the units hilt owns; stop releases them,
// handing its callback what went wrong with the bench while the checks ran (stopFunc).
func units(ctx context.Context, o Options) (*profile.Profile, stopFunc, error) {
	n, backend := o.Devices, profile.BackendSim
	var static *profile.Profile
	if o.Device != "" {
		p, err := profile.Load(o.Device)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrBadInput, err)
		}
		static, backend, n = p, p.Backend, len(p.Instances)
	}
	if backend == profile.BackendExternal {
		if len(o.Flaws) > 0 {
			return nil, nil, fmt.Errorf("%w: --flaw applies to units hilt starts (sim, qemu); %s describes external units", ErrBadInput, o.Device)
		}
		return static, nil, nil
	}
	if backend == profile.BackendQEMU {
		return startQEMU(ctx, o, static)
	}
	if n <= 0 {
		n = 2
	}
	fmt.Fprintf(o.Stdout, "starting %d simulated unit(s)%s\n", n, flawNote(o.Flaws))
	t0 := time.Now()
	bo := o.Bench
	// The bench makes its own temporary folder, named after this process (hilt-sim-<pid>-...)
	// so that a later run removes it if this one is killed; Close removes it.
	bo.Devices, bo.Flaws, bo.Dir, bo.KeepDir, bo.Exe, bo.Log = n, o.Flaws, "", false, o.Exe, prefixWriter(o.Stdout, "  bench: ")
	b, err := sim.Start(ctx, bo)
	stop := func(found func(error)) {
		if b == nil {
			return
		}
		// Before Close, which stops the devices itself. A simulated device's process ends
		// only when it is stopped (it reboots by re-executing itself): one that exited on
		// its own was killed or crashed, and its checks after that could not reach it.
		for _, err := range b.Exits() {
			found(fmt.Errorf("simulated bench: %w; the unit stayed off: its checks after that could not reach it", err))
		}
		if err := b.Close(); err != nil {
			fmt.Fprintf(o.Stdout, "hilt: stop the simulated bench: %v\n", err)
		}
	}
	if err != nil {
		return nil, stop, fmt.Errorf("simulated bench: %w", err)
	}
	fmt.Fprintf(o.Stdout, "bench up in %s\n", time.Since(t0).Round(time.Millisecond))
	p, err := profile.Load(b.ProfilePath())
	if err != nil {
		return nil, stop, fmt.Errorf("the bench's profile: %w", err)
	}
	return p, stop, nil
}

func flawNote(fs []string) string {
	if len(fs) == 0 {
		return ""
	}
	return " with flaw " + strings.Join(fs, ", ")
}

func brokerName(p *profile.Profile) string {
	k := p.Broker.Kind
	if k == "" {
		k = "external"
	}
	return k + " " + p.Broker.URL
}

// selectChecks returns the catalog checks the label filter selects.
func selectChecks(filter string) ([]catalog.Check, error) {
	if err := catalog.ValidateLabelFilter(filter); err != nil && filter != "" {
		return nil, fmt.Errorf("%w: --label-filter: %w", ErrBadInput, err)
	}
	match := func([]string) bool { return true }
	if filter != "" {
		f, err := types.ParseLabelFilter(filter)
		if err != nil {
			return nil, fmt.Errorf("%w: --label-filter: %w", ErrBadInput, err)
		}
		match = f
	}
	var out []catalog.Check
	for _, c := range catalog.Checks() {
		if match(catalog.Labels(c.ID)) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: --label-filter %q selects no check", ErrBadInput, filter)
	}
	return out, nil
}

// runChildren runs one child process per unit, all at once, and collects their results.
func runChildren(ctx context.Context, o Options, p *profile.Profile, pins string, selected []catalog.Check) []reports.DeviceResult {
	res := make([]reports.DeviceResult, len(p.Instances))
	var wg sync.WaitGroup
	var outMu sync.Mutex
	for i, in := range p.Instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = runChild(ctx, o, p, in.Name, pins, func(line string) {
				outMu.Lock()
				defer outMu.Unlock()
				fmt.Fprintln(o.Stdout, line)
			})
			fillMissing(&res[i], selected, ctx.Err() != nil)
		}()
	}
	wg.Wait()
	return res
}

func runChild(ctx context.Context, o Options, p *profile.Profile, name, pins string, progress func(string)) reports.DeviceResult {
	result := filepath.Join(o.Out, ".hilt", name+".json")
	logPath := filepath.Join(o.Out, ".hilt", name+".log")
	os.Remove(result)
	logf, err := os.Create(logPath)
	if err != nil {
		return reports.DeviceResult{Name: name, Error: err.Error()}
	}
	defer logf.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		return reports.DeviceResult{Name: name, Error: err.Error()}
	}
	args := []string{"__check", "--profile", p.Path, "--instance", name, "--out", o.Out, "--pins", pins,
		"--result", result, "--seed", fmt.Sprint(o.Seed)}
	if o.LabelFilter != "" {
		args = append(args, "--label-filter", o.LabelFilter)
	}
	cmd := exec.CommandContext(ctx, o.Exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{pw}
	// Its own process group: a terminal's Ctrl-C reaches the child only through us, once,
	// so Ginkgo interrupts the running check and runs its cleanup (restoring the unit). If
	// we die without stopping it, ParentDeathSignal makes it do the same on its own
	// (InterruptOnParentDeath).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: ParentDeathSignal}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Start(); err != nil {
		pw.Close()
		pr.Close()
		return reports.DeviceResult{Name: name, Error: fmt.Sprintf("start the check process: %v", err)}
	}
	pw.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 4 {
				progress(fmt.Sprintf("  %-8s %-6s %-5s %6ss", f[0], f[1], f[2], f[3]))
			}
		}
	}()
	werr := cmd.Wait()
	// The check process has ended; a program it started that still holds the progress
	// pipe must not hold the run: its last lines are not worth waiting for.
	drain := o.progressDrain
	if drain <= 0 {
		drain = defaultProgressDrain
	}
	select {
	case <-done:
		pr.Close()
	case <-time.After(drain):
		pr.Close() // ends the reader, which reports nothing after this
		<-done
		fmt.Fprintf(logf, "hilt run: the progress pipe was still held %v after the check process ended (by a program it started?): stopped reading it\n", drain)
	}
	var dr reports.DeviceResult
	if err := readJSON(result, &dr); err != nil {
		return reports.DeviceResult{Name: name, Error: fmt.Sprintf("the check process ended without a result (%v): %v; its log: %s", werr, err, tail(logPath, 1500))}
	}
	if dr.Name == "" {
		dr.Name = name
	}
	return dr
}

// fillMissing turns every selected check that has no result into an error, so a unit
// that could not be tested, or a run cut short, never reads as passed.
func fillMissing(dr *reports.DeviceResult, selected []catalog.Check, interrupted bool) {
	have := map[string]bool{}
	for _, c := range dr.Checks {
		have[c.ID] = true
	}
	if interrupted {
		// Ginkgo calls the check it stopped "Interrupted by User": it was the run that was
		// interrupted (Ctrl-C, SIGTERM, SIGHUP), and the child's cleanups ran.
		for i, c := range dr.Checks {
			if c.Verdict == reports.Error {
				dr.Checks[i].Reason = strings.Replace(c.Reason, "Interrupted by User", "the run was interrupted; the check's cleanup ran", 1)
			}
		}
	}
	why := "not run"
	switch {
	case dr.Error != "":
		why = "not run: " + dr.Error
	case interrupted:
		why = "not run: the run was interrupted"
	}
	for _, c := range selected {
		if !have[c.ID] {
			dr.Checks = append(dr.Checks, reports.CheckResult{ID: c.ID, Title: c.Title, Capability: c.Capability,
				Device: dr.Name, Verdict: reports.Error, Reason: why, Requirements: c.Requirements()})
		}
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// prefixWriter prefixes every line written through it.
func prefixWriter(w io.Writer, prefix string) io.Writer {
	pr, pw := io.Pipe()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(w, prefix+sc.Text())
		}
	}()
	return pw
}

// profileSecrets are the credentials in a profile: no report may show them.
func profileSecrets(p *profile.Profile) []string {
	s := []string{p.Broker.Password}
	for _, in := range p.Instances {
		s = append(s, in.Admin.Pass, in.MQTT.Pass)
	}
	return s
}
