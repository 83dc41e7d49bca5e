package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/hilt-project/hilt/drivers/qemu"
	"github.com/hilt-project/hilt/harness/emu"
	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/harness/sim"
	"github.com/hilt-project/hilt/internal/rundir"
)

// qemuBenchLog is the emulated bench's log (QEMU command lines, QEMU's output, boots,
// power cuts, the broker's connections), under the run's .hilt folder.
const qemuBenchLog = "qemu-bench.log"

// minConnectWait bounds from below the wait for each unit's first broker connection.
const minConnectWait = 30 * time.Second

// qemuRun is a running emulated bench and what serves it: broker, control socket.
type qemuRun struct {
	dir     string // the bench's folder: runtime profile, control socket, units' disks
	out     string // the run's .hilt folder
	stdout  io.Writer
	log     *os.File
	broker  *sim.Broker
	bench   *emu.Bench
	ctl     *benchControl
	cancel  context.CancelFunc // ends the control socket's operations
	started time.Time
}

// startQEMU boots the emulated units of a qemu profile (harness/emu) with a broker of
// their own (embedded, or a private Mosquitto with --mosquitto), writes the runtime
// profile into the bench's folder and serves the bench's control socket to the check
// processes. stop kills the units and removes what the bench made.
func startQEMU(ctx context.Context, o Options, static *profile.Profile) (*profile.Profile, stopFunc, error) {
	if err := qemuPreflight(o); err != nil {
		return nil, nil, err
	}
	dir, err := rundir.New(rundir.QEMURun)
	if err != nil {
		return nil, nil, fmt.Errorf("emulated bench: %w", err)
	}
	q := &qemuRun{dir: dir, out: filepath.Join(o.Out, ".hilt"), stdout: o.Stdout, started: time.Now()}
	logPath := filepath.Join(q.out, qemuBenchLog)
	if q.log, err = os.Create(logPath); err != nil {
		os.RemoveAll(dir)
		return nil, nil, fmt.Errorf("emulated bench: %w", err)
	}
	names := make([]string, len(static.Instances))
	for i, in := range static.Instances {
		names[i] = in.Name
	}
	accel, why := qemu.HostAccel()
	fmt.Fprintf(o.Stdout, "starting %d emulated unit(s) under QEMU (%s)%s: %s\n", len(names), accel, flawNote(o.Flaws), strings.Join(names, ", "))
	if why != "" {
		fmt.Fprintf(o.Stdout, "  QEMU emulates the CPU, many times slower than KVM: %s\n", why)
	}
	fmt.Fprintf(o.Stdout, "  bench log: %s\n", logPath)

	p, err := q.start(ctx, o, static)
	if err != nil {
		return nil, q.stop, fmt.Errorf("emulated bench: %w", err)
	}
	return p, q.stop, nil
}

// qemuPreflight refuses what the emulated bench cannot do, before it makes anything.
func qemuPreflight(o Options) error {
	switch {
	case o.Bench.BrokerURL != "":
		return fmt.Errorf("%w: --broker: emulated units get the embedded broker, or a private Mosquitto with --mosquitto; an external broker is for simulated units", ErrBadInput)
	case o.Bench.Loopback:
		return fmt.Errorf("%w: --loopback applies to simulated units; emulated units have tap links of their own", ErrBadInput)
	}
	if _, err := exec.LookPath(qemu.Binary); err != nil {
		return fmt.Errorf("emulated units: %w; `scripts/deps.sh qemu` installs it with e2fsprogs, then `make qemu-image` builds the kernel and initramfs", qemu.ErrNoQEMU)
	}
	if os.Geteuid() != 0 {
		return errors.New("emulated units need root: the bench makes a tap device per unit (CAP_NET_ADMIN)")
	}
	return nil
}

func (q *qemuRun) start(ctx context.Context, o Options, static *profile.Profile) (*profile.Profile, error) {
	b, err := emu.Start(ctx, emu.Options{
		Profile:        static,
		Flaws:          o.Flaws,
		Dir:            filepath.Join(q.dir, "units"),
		Broker:         q.brokerFunc(o, static.Broker.TopicPrefix),
		Log:            q.log,
		BootTimeout:    static.Timeouts.Boot.Duration,
		CommandTimeout: static.Timeouts.Command.Duration,
	})
	if err != nil {
		if errors.Is(err, qemu.ErrNoKernel) || errors.Is(err, qemu.ErrNoInitramfs) {
			return nil, err // it says which file, and to run make qemu-image
		}
		return nil, fmt.Errorf("%w (the whole log: %s)", err, q.log.Name())
	}
	q.bench = b
	units := b.Units()
	for _, u := range units {
		fmt.Fprintf(q.stdout, "  %-8s ready %v after power-on, ID %s, %s on %s\n",
			u.Name, u.FirstBoot.Round(time.Millisecond), u.ID, u.Guest, u.Tap)
	}
	if err := q.connectUnits(ctx, units, static.Timeouts.Boot.Duration); err != nil {
		return nil, err
	}

	sock := filepath.Join(q.dir, "control.sock")
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	q.cancel = cancel
	// An interrupted run still needs the socket: its checks' cleanups restore the units.
	if q.ctl, err = serveControl(sctx, sock, b, q.log); err != nil {
		return nil, err
	}
	path, err := q.writeProfile(static, sock)
	if err != nil {
		return nil, err
	}
	p, err := profile.Load(path)
	if err != nil {
		return nil, fmt.Errorf("the bench's profile: %w", err)
	}
	fmt.Fprintf(q.stdout, "bench up in %s\n", time.Since(q.started).Round(time.Millisecond))
	return p, nil
}

// brokerFunc starts the units' broker once their links exist: a certificate for every
// host address, an account per unit, the harness account.
func (q *qemuRun) brokerFunc(o Options, prefix string) emu.BrokerFunc {
	return func(ctx context.Context, links []emu.Link) ([]emu.BrokerInfo, error) {
		hosts := make([]netip.Addr, len(links))
		names := make([]string, len(links))
		for i, l := range links {
			hosts[i], names[i] = l.Host, l.Unit
		}
		b, err := sim.StartBroker(ctx, sim.BrokerOptions{
			Dir: q.dir, Hosts: hosts, Units: names, Mosquitto: o.Bench.Mosquitto, TopicPrefix: prefix,
			Log: prefixWriter(q.log, "broker: "),
		})
		if err != nil {
			return nil, err
		}
		q.broker = b
		infos := make([]emu.BrokerInfo, len(links))
		for i, l := range links {
			tlsAddr, plainAddr := b.DeviceAddrs(l.Host)
			a := b.Device(i)
			infos[i] = emu.BrokerInfo{TLSAddr: tlsAddr, PlainAddr: plainAddr, CAPEM: string(b.CAPEM()),
				Username: a.Username, Password: a.Password, TopicPrefix: prefix}
		}
		fmt.Fprintf(q.stdout, "  broker: %s %s\n", b.Kind(), b.HarnessURL())
		return infos, nil
	}
}

// connectUnits binds each unit's broker account to the ID the unit reported and waits for
// the unit's first connection.
func (q *qemuRun) connectUnits(ctx context.Context, units []emu.Unit, wait time.Duration) error {
	for _, u := range units {
		res, err := q.broker.Bind(ctx, u.MQTT.User, u.ID)
		if err != nil {
			return fmt.Errorf("%s: broker account %q for unit ID %s: %w", u.Name, u.MQTT.User, u.ID, err)
		}
		if len(res.SharedWith) > 0 {
			fmt.Fprintf(q.stdout, "  %-8s warning: reports ID %s, as the unit(s) of account(s) %s do: they share that ID's topics\n",
				u.Name, u.ID, strings.Join(res.SharedWith, ", "))
		}
	}
	wait = max(wait, minConnectWait)
	errs := make([]error, len(units))
	var wg sync.WaitGroup
	for i, u := range units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx, cancel := context.WithTimeout(ctx, wait)
			defer cancel()
			if err := q.broker.WaitConnected(wctx, u.MQTT.User, u.ID, u.Guest); err != nil {
				errs[i] = fmt.Errorf("%s (%s): the broker saw no connection from it in %v: %w (its console: %s)", u.Name, u.ID, wait, err, u.ConsoleLog)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writeProfile writes the runtime profile: the bench's, with paths made absolute, the
// broker, the control socket, and each unit's boot-to-ready.
func (q *qemuRun) writeProfile(static *profile.Profile, sock string) (string, error) {
	p := *q.bench.Profile()
	var err error
	abs := func(rel string) string {
		if rel == "" {
			return ""
		}
		a, aerr := filepath.Abs(static.Resolve(rel))
		if aerr != nil && err == nil {
			err = aerr
		}
		return a
	}
	p.DeclarationsFile = abs(static.DeclarationsFile)
	p.Update.SigningKey = abs(static.Update.SigningKey)
	if len(static.Update.Images) > 0 {
		p.Update.Images = maps.Clone(static.Update.Images)
		for k, v := range p.Update.Images {
			p.Update.Images[k] = abs(v)
		}
	}
	if err != nil {
		return "", err
	}
	h := q.broker.Harness()
	p.Broker = profile.Broker{URL: q.broker.HarnessURL(), CAFile: q.broker.CAFile(), Username: h.Username, Password: h.Password,
		TopicPrefix: static.Broker.TopicPrefix, Kind: q.broker.Kind()}
	qc := profile.QEMU{}
	if p.QEMU != nil {
		qc = *p.QEMU
	}
	qc.Control = sock
	p.QEMU = &qc
	p.Instances = append([]profile.Instance(nil), p.Instances...)
	for i := range p.Instances {
		if u, ok := q.bench.Unit(p.Instances[i].Name); ok {
			p.Instances[i].BootToReady = profile.Duration{Duration: u.FirstBoot}
		}
	}
	out, err := yaml.Marshal(&p)
	if err != nil {
		return "", fmt.Errorf("the bench's profile: %w", err)
	}
	header := "# written by hilt run for its emulated bench: valid while the bench runs\n"
	path := filepath.Join(q.dir, "profile.yaml")
	if err := os.WriteFile(path, append([]byte(header), out...), 0o600); err != nil {
		return "", fmt.Errorf("the bench's profile: %w", err)
	}
	return path, nil
}

// stop kills the units, stops the broker and the control socket, says what the bench did,
// keeps each unit's console log beside the bench log, and removes the bench's folder. It
// hands found an error for each time a unit's QEMU was killed or crashed during the run
// (that unit's checks after it are errors, and the run must say why), before the
// teardown, which may hang.
func (q *qemuRun) stop(found func(error)) {
	if q.cancel != nil {
		q.cancel()
	}
	if q.ctl != nil {
		q.ctl.close()
	}
	if q.bench != nil {
		// Before Close: the exits its teardown causes are not the units' own.
		for _, err := range q.unitExits() {
			found(err)
		}
		// Now, in case the teardown below hangs (hilt run then stops waiting for it), and
		// again in report, with what the units printed until they were killed.
		q.keepConsoles()
		if err := q.bench.Close(); err != nil {
			fmt.Fprintf(q.stdout, "hilt: emulated bench: %v\n", err)
		}
	}
	if q.ctl != nil {
		q.ctl.wait()
	}
	if q.broker != nil {
		q.broker.Close()
	}
	if q.bench != nil {
		q.report()
	}
	q.log.Close()
	os.RemoveAll(q.dir)
}

// unitExits reports the units whose QEMU exited on its own during the run and stayed off.
// A guest that powered itself off or panicked did so as the device: a line here, and the
// checks judge it. QEMU killed, crashed or signalled is the bench failing: an error naming
// the unit and its console log.
func (q *qemuRun) unitExits() []error {
	var errs []error
	for _, u := range q.bench.Units() {
		for _, e := range u.Exits {
			if !e.Killed() {
				fmt.Fprintf(q.stdout, "emulated bench: %s: %v; the unit stayed off\n", u.Name, e)
				continue
			}
			errs = append(errs, fmt.Errorf("emulated bench: %s: %v, and the unit stayed off: its checks after that could not reach it (its console: %s)",
				u.Name, e, filepath.Join(q.out, u.Name+".console.log")))
		}
	}
	return errs
}

// report says per unit how often it booted and what the checks did to it, and keeps its
// console log as <unit>.console.log in the run's .hilt folder.
func (q *qemuRun) report() {
	fmt.Fprintf(q.stdout, "emulated bench: up %s\n", time.Since(q.started).Round(time.Second))
	for _, c := range q.keepConsoles() {
		if c.log == nil {
			continue
		}
		u, kept, b := c.unit, c.kept, c.log
		boots := bytes.Count(b, []byte("refdev ready"))
		line := fmt.Sprintf("  %-8s %d boots to ready", u.Name, boots)
		if q.ctl != nil {
			st := q.ctl.statsOf(u.Name)
			if st.powerCuts > 0 || st.scans > 0 {
				// The restarts that got ready are among the boots counted above.
				line += fmt.Sprintf(" (%d power cuts, %d storage scans; %d restarts after them ready, %s from power-on to ready in all",
					st.powerCuts, st.scans, st.readyRestarts, st.restarts.Round(time.Second))
				if st.failedRestarts > 0 {
					line += fmt.Sprintf("; %d restarts not ready", st.failedRestarts)
				}
				line += ")"
			}
		}
		fmt.Fprintf(q.stdout, "%s; console %s\n", line, kept)
	}
}

// keptConsole is one unit's console log, as keepConsoles copied it.
type keptConsole struct {
	unit emu.Unit
	log  []byte // nil: unreadable
	kept string // the copy's path, or why there is none
}

// keepConsoles copies each unit's console log to <unit>.console.log in the run's .hilt
// folder, which outlives the bench's folder.
func (q *qemuRun) keepConsoles() []keptConsole {
	var out []keptConsole
	for _, u := range q.bench.Units() {
		c := keptConsole{unit: u}
		b, err := os.ReadFile(u.ConsoleLog)
		if err == nil {
			c.log = b
			c.kept = filepath.Join(q.out, u.Name+".console.log")
			if err := os.WriteFile(c.kept, b, 0o600); err != nil {
				c.kept = "(not kept: " + err.Error() + ")"
			}
		}
		out = append(out, c)
	}
	return out
}
