package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"

	"github.com/hilt-project/hilt/harness/broker"
	"github.com/hilt-project/hilt/harness/netns"
	"github.com/hilt-project/hilt/harness/profile"
)

// stderrTail is how much of a device's stderr an error quotes.
const stderrTail = 4 << 10

// FactoryRecord is what the bench, as the factory, writes to <hw>/factory.json before a
// device's first boot (docs/SIM.md). It is the bench's own copy of the contract: the bench
// does not import the device.
type FactoryRecord struct {
	Seed         string `json:"seed"`
	BrokerTLS    string `json:"broker_tls"`
	BrokerPlain  string `json:"broker_plain"`
	BrokerCAPEM  string `json:"broker_ca_pem"`
	MQTTUsername string `json:"mqtt_username"`
	MQTTPassword string `json:"mqtt_password"`
	TopicPrefix  string `json:"topic_prefix"`
	ModelLabel   string `json:"model_label"`
}

// ExitError says that a device process exited while the bench did not stop it.
type ExitError struct {
	Device string
	PID    int
	// State is the process's exit state ("exit status 2", "signal: killed").
	State string
	// BeforeReady is true when the device never reported ready.
	BeforeReady bool
	// Stderr is the end of what the device wrote to stderr.
	Stderr string
}

func (e *ExitError) Error() string {
	when := "exited"
	if e.BeforeReady {
		when = "exited before it was ready"
	}
	s := fmt.Sprintf("%s (PID %d) %s: %s", e.Device, e.PID, when, e.State)
	if t := strings.TrimSpace(e.Stderr); t != "" {
		s += "; its stderr:\n  " + strings.ReplaceAll(t, "\n", "\n  ")
	}
	return s
}

// Unwrap makes errors.Is(err, ErrDeviceExited) hold.
func (e *ExitError) Unwrap() error { return ErrDeviceExited }

// device is one simulated unit and its process.
type device struct {
	index   int
	name    string
	host    netns.Host
	dir     string
	hwDir   string
	dataDir string
	mqtt    broker.Account
	admin   profile.Credential

	slave      *os.File // the bench's end of the console (the adapter's slave as first plugged)
	serialPath string   // the console link, <dir>/console
	cable      *cable
	notifyR    *os.File
	cmd        *exec.Cmd
	started    time.Time
	stderr     *tailBuffer
	logFiles   []*os.File

	firstReady chan struct{} // closed at the first ready line
	bootCh     chan struct{} // closed and replaced at every ready line
	exited     chan struct{} // closed when the process has exited
	exitErr    error         // the process's Wait error, valid after exited

	mu          sync.Mutex
	id          string
	boots       int
	bootToReady time.Duration
	pubkey      string
	stopping    bool
}

// info returns what the bench tells about the device.
func (d *device) info() DeviceInfo {
	d.mu.Lock()
	defer d.mu.Unlock()
	di := DeviceInfo{
		Name:           d.name,
		ID:             d.id,
		Address:        d.host.Address,
		HarnessAddress: d.host.HarnessAddress,
		ControlAddress: d.host.ControlAddress,
		Namespace:      d.host.Namespace,
		HostIf:         d.host.HostIf,
		SerialPath:     d.serialPath,
		BootToReady:    d.bootToReady,
		Boots:          d.boots,
		Admin:          d.admin,
		MQTT:           profile.Credential{User: d.mqtt.Username, Pass: d.mqtt.Password},
		HWDir:          d.hwDir,
		DataDir:        d.dataDir,
		PubKey:         d.pubkey,
	}
	di.Address6, di.HarnessAddress6 = d.host.Address6, d.host.HarnessAddress6
	if d.cmd != nil && d.cmd.Process != nil {
		di.PID = d.cmd.Process.Pid
	}
	return di
}

// writeFactory writes the factory record before the device's first boot.
func (d *device) writeFactory(rec FactoryRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(d.hwDir, "factory.json")
	if err := os.WriteFile(p, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("%s: write factory record: %w", d.name, err)
	}
	return nil
}

// start makes the device's pty and notify pipe and starts its process.
func (d *device) start(b *Bench, exe string, args []string) error {
	if d.host.Namespace == "" {
		// On the host's stack a port of the device's can be taken already.
		for _, port := range []int{mgmtPort, debugPort} {
			ap := net.JoinHostPort(d.host.Address.String(), strconv.Itoa(port))
			ln, err := net.Listen("tcp", ap)
			if err == nil {
				ln.Close()
				continue
			}
			if port == mgmtPort {
				return fmt.Errorf("%s: address %s is busy (a listener on the host's 0.0.0.0:%d takes it from every loopback address): %w", d.name, ap, port, err)
			}
			b.logf("%s: warning: %s is busy: the device's debug interface cannot be switched on", d.name, ap)
		}
	}
	master, slave, err := pty.Open()
	if err != nil {
		return fmt.Errorf("%s: open a pty: %w", d.name, err)
	}
	if err := makeRaw(slave); err != nil {
		master.Close()
		slave.Close()
		return fmt.Errorf("%s: console %s: %w", d.name, slave.Name(), err)
	}
	// The harness reaches the console through an adapter the bench can unplug (cable.go).
	d.cable, err = newCable(d.name, consoleLink(d.dir), slave)
	if err != nil {
		master.Close()
		slave.Close()
		return err
	}
	d.slave, d.serialPath = d.cable.benchSlave(), d.cable.link
	notifyR, notifyW, err := os.Pipe()
	if err != nil {
		master.Close()
		return fmt.Errorf("%s: notify pipe: %w", d.name, err)
	}
	d.notifyR = notifyR

	stdout, err := os.OpenFile(filepath.Join(d.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		master.Close()
		notifyW.Close()
		return fmt.Errorf("%s: %w", d.name, err)
	}
	stderr, err := os.OpenFile(filepath.Join(d.dir, "stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		master.Close()
		notifyW.Close()
		stdout.Close()
		return fmt.Errorf("%s: %w", d.name, err)
	}
	d.logFiles = []*os.File{stdout, stderr}
	d.stderr = &tailBuffer{max: stderrTail}

	full := append([]string{"__refdev",
		"--hw", d.hwDir,
		"--data", d.dataDir,
		"--console-fd", "3",
		"--notify-fd", "4",
		"--listen", d.host.Address.String(),
	}, append(listenArgs6(d.host), args...)...)
	cmd := d.host.Command(exe, full...)
	cmd.Dir = d.dir
	cmd.ExtraFiles = []*os.File{master, notifyW}
	cmd.Stdout = stdout
	cmd.Stderr = io.MultiWriter(stderr, d.stderr)
	d.cmd = cmd
	d.firstReady = make(chan struct{})
	d.bootCh = make(chan struct{})
	d.exited = make(chan struct{})
	d.started = time.Now()
	err = startTied(cmd)
	// The device holds its own copies now.
	master.Close()
	notifyW.Close()
	if err != nil {
		d.cmd = nil
		return fmt.Errorf("%s: start %s: %w", d.name, exe, err)
	}
	b.logf("%s: started PID %d (%s), console %s", d.name, cmd.Process.Pid, d.where(), d.serialPath)
	go d.readNotify(b)
	go func() {
		d.exitErr = cmd.Wait()
		// The bench records the exit first: whoever sees exited closed finds it in
		// Bench.Exits already.
		b.deviceExited(d)
		close(d.exited)
	}()
	return nil
}

func (d *device) where() string {
	if d.host.Namespace != "" {
		return fmt.Sprintf("namespace %s, address %s", d.host.Namespace, d.host.Address)
	}
	return fmt.Sprintf("loopback address %s", d.host.Address)
}

// readyLine is what a device writes to the notify fd after every boot.
type readyLine struct {
	ID   string `json:"id"`
	Boot int    `json:"boot"`
}

// readNotify follows the device's ready lines for as long as the pipe is open.
func (d *device) readNotify(b *Bench) {
	sc := bufio.NewScanner(d.notifyR)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "ready ")
		var r readyLine
		if !ok || json.Unmarshal([]byte(rest), &r) != nil || r.ID == "" {
			b.logf("%s: unexpected line on the notify fd: %q", d.name, line)
			continue
		}
		d.mu.Lock()
		first := d.boots == 0
		oldID := d.id
		d.boots++
		d.id = r.ID
		if first {
			d.bootToReady = time.Since(d.started)
		}
		close(d.bootCh)
		d.bootCh = make(chan struct{})
		d.mu.Unlock()
		if first {
			close(d.firstReady)
			continue
		}
		b.logf("%s: booted again (boot %d) as %s", d.name, r.Boot, r.ID)
		if oldID != r.ID {
			b.logf("%s: warning: its ID changed from %s to %s", d.name, oldID, r.ID)
			ctx, cancel := context.WithTimeout(context.Background(), b.opts.CommandTimeout)
			if err := b.bindAccount(ctx, d, r.ID); err != nil {
				b.logf("%v", err)
			}
			cancel()
		}
	}
}

// waitBoots waits until the device has reported at least n boots.
func (d *device) waitBoots(ctx context.Context, n int) error {
	for {
		d.mu.Lock()
		boots, ch := d.boots, d.bootCh
		d.mu.Unlock()
		if boots >= n {
			return nil
		}
		select {
		case <-ch:
		case <-d.exited:
			return d.exitError()
		case <-ctx.Done():
			return fmt.Errorf("%s: boot %d: %w (%d seen)", d.name, n, ctx.Err(), boots)
		}
	}
}

// exitError describes the device's exit (valid after exited is closed).
func (d *device) exitError() *ExitError {
	d.mu.Lock()
	beforeReady := d.boots == 0
	d.mu.Unlock()
	state := "exited"
	var ee *exec.ExitError
	if errors.As(d.exitErr, &ee) {
		state = ee.ProcessState.String()
	} else if d.exitErr != nil {
		state = d.exitErr.Error()
	} else {
		state = "exit status 0"
	}
	return &ExitError{Device: d.name, PID: d.cmd.Process.Pid, State: state, BeforeReady: beforeReady, Stderr: d.stderr.String()}
}

// waitReady waits for the device's first ready line.
func (d *device) waitReady(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-d.firstReady:
		return nil
	case <-d.exited:
		return d.exitError()
	case <-t.C:
		return fmt.Errorf("%s: %w: no ready line on the notify fd within %v of start; stderr so far:\n  %s",
			d.name, ErrTimeout, timeout, strings.ReplaceAll(strings.TrimSpace(d.stderr.String()), "\n", "\n  "))
	case <-ctx.Done():
		return fmt.Errorf("%s: waiting for ready: %w", d.name, ctx.Err())
	}
}

// stop ends the device: SIGTERM to its process group, SIGKILL after grace.
func (d *device) stop(grace time.Duration) error {
	d.mu.Lock()
	d.stopping = true
	d.mu.Unlock()
	var err error
	if d.cmd != nil && d.cmd.Process != nil {
		pid := d.cmd.Process.Pid
		select {
		case <-d.exited:
		default:
			_ = signalGroup(pid, syscall.SIGTERM)
			t := time.NewTimer(grace)
			select {
			case <-d.exited:
			case <-t.C:
				_ = signalGroup(pid, syscall.SIGKILL)
				k := time.NewTimer(grace)
				select {
				case <-d.exited:
				case <-k.C:
					err = fmt.Errorf("%s: PID %d still runs after SIGKILL", d.name, pid)
				}
				k.Stop()
				if err == nil {
					err = fmt.Errorf("%s: did not stop within %v of SIGTERM; killed", d.name, grace)
				}
			}
			t.Stop()
		}
		if err == nil {
			// Anything the device left in its process group goes with it.
			_ = signalGroup(pid, syscall.SIGKILL)
		}
	}
	if d.cable != nil {
		d.cable.close()
	}
	for _, f := range append([]*os.File{d.notifyR}, d.logFiles...) {
		if f != nil {
			f.Close()
		}
	}
	return err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append([]byte(nil), t.b[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}

// addrOrEmpty prints an address, or "" when it is not set.
func addrOrEmpty(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
