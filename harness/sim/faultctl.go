package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FaultSocket is the name of the bench's fault control socket in its run folder.
const FaultSocket = "faults.sock"

// faultControl is the bench's fault-injection control: a unix socket in the run folder on
// which a test sends one command per line and reads one answer line per command, "OK ..."
// or "ERR message" (docs/SIM.md, "Faults"). It only acts on this bench's own devices.
type faultControl struct {
	b    *Bench
	ln   net.Listener
	path string
	wg   sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]bool // open connections, closed by close
	closed bool
}

// startFaultControl listens on <dir>/faults.sock.
func (b *Bench) startFaultControl() error {
	path := filepath.Join(b.dir, FaultSocket)
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("fault control %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("fault control %s: %w", path, err)
	}
	fc := &faultControl{b: b, ln: ln, path: path, conns: map[net.Conn]bool{}}
	fc.wg.Add(1)
	go fc.serve()
	b.faults = fc
	return nil
}

// FaultControlPath returns the path of the bench's fault control socket ("" before Start
// has made it).
func (b *Bench) FaultControlPath() string {
	if b.faults == nil {
		return ""
	}
	return b.faults.path
}

func (fc *faultControl) serve() {
	defer fc.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := fc.ln.Accept()
		if err != nil {
			return
		}
		fc.mu.Lock()
		if fc.closed {
			fc.mu.Unlock()
			c.Close()
			return
		}
		fc.conns[c] = true
		fc.mu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer func() {
				fc.mu.Lock()
				delete(fc.conns, c)
				fc.mu.Unlock()
				c.Close()
			}()
			sc := bufio.NewScanner(c)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if line == "" {
					continue
				}
				ans, err := fc.do(line)
				if err != nil {
					ans = "ERR " + strings.ReplaceAll(err.Error(), "\n", " ")
				} else {
					ans = strings.TrimSpace("OK " + ans)
				}
				fc.b.logf("fault control: %s: %s", line, ans)
				if _, err := fmt.Fprintln(c, ans); err != nil {
					return
				}
			}
		}()
	}
}

// faultCommandTimeout bounds one fault command.
const faultCommandTimeout = 30 * time.Second

// do runs one command line.
func (fc *faultControl) do(line string) (string, error) {
	f := strings.Fields(line)
	switch {
	case len(f) == 2 && f[0] == "unplug":
		return "", fc.b.Unplug(f[1])
	case len(f) == 2 && f[0] == "replug":
		return fc.b.Replug(f[1])
	case len(f) == 2 && f[0] == "broker":
		ctx, cancel := context.WithTimeout(context.Background(), faultCommandTimeout)
		defer cancel()
		return "", fc.b.BrokerFault(ctx, f[1])
	case len(f) == 1 && f[0] == "help":
		return "unplug DEV | replug DEV | broker stop|start|restart", nil
	}
	return "", fmt.Errorf("%w: fault command %q: want unplug DEV, replug DEV or broker stop|start|restart", ErrBadOptions, line)
}

// close stops listening, ends every open connection (a command running finishes first)
// and removes the socket.
func (fc *faultControl) close() {
	fc.ln.Close()
	fc.mu.Lock()
	fc.closed = true
	for c := range fc.conns {
		c.Close()
	}
	fc.mu.Unlock()
	fc.wg.Wait()
	os.Remove(fc.path)
}

func (b *Bench) device(name string) (*device, error) {
	for _, d := range b.devices {
		if d.name == name {
			return d, nil
		}
	}
	return nil, fmt.Errorf("%w: no device %q", ErrBadOptions, name)
}

// Unplug makes the named device's console vanish, as a USB serial adapter does when it is
// unplugged or power-cycled: the link in the profile is removed and the pty behind it is
// closed (an open port reads EIO). The device keeps running.
func (b *Bench) Unplug(name string) error {
	d, err := b.device(name)
	if err != nil {
		return err
	}
	return d.cable.unplug()
}

// Replug brings back an unplugged console: a new pty behind the same link. It returns the
// new pty's path.
func (b *Bench) Replug(name string) (string, error) {
	d, err := b.device(name)
	if err != nil {
		return "", err
	}
	return d.cable.plug()
}

// errNoBrokerFault says the bench's broker cannot be stopped and started by the bench.
var errNoBrokerFault = errors.New("this broker cannot be stopped or started by the bench")

// brokerFaulter is a broker backend that can be stopped and started again on its ports.
type brokerFaulter interface {
	stop() error
	start(ctx context.Context) error
}

// BrokerFault stops ("stop"), starts ("start") or restarts ("restart") the bench's broker
// on the same ports, with the same accounts and bindings: what a broker restart or a
// broker outage looks like to the devices and the harness.
func (b *Bench) BrokerFault(ctx context.Context, what string) error {
	bf, ok := b.broker.(brokerFaulter)
	if !ok {
		return fmt.Errorf("broker %s: %w", b.broker.kind(), errNoBrokerFault)
	}
	switch what {
	case "stop":
		return bf.stop()
	case "start":
		return bf.start(ctx)
	case "restart":
		if err := bf.stop(); err != nil {
			return err
		}
		return bf.start(ctx)
	}
	return fmt.Errorf("%w: broker %q: want stop, start or restart", ErrBadOptions, what)
}

// restartedMosquitto is a Mosquitto process the fault control started on the first one's
// configuration (same ports, accounts and ACL).
type restartedMosquitto struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// stop kills the running Mosquitto (SIGKILL: a crash, not a clean shutdown) and waits for
// its exit.
func (m *mosquittoBackend) stop() error {
	m.faultMu.Lock()
	defer m.faultMu.Unlock()
	if r := m.restarted; r != nil {
		m.restarted = nil
		_ = r.cmd.Process.Kill()
		<-r.exited
		return nil
	}
	select {
	case <-m.m.Exited():
		return fmt.Errorf("mosquitto: stopped already")
	default:
	}
	if err := syscall.Kill(m.m.PID(), syscall.SIGKILL); err != nil {
		return fmt.Errorf("mosquitto PID %d: %w", m.m.PID(), err)
	}
	<-m.m.Exited()
	return nil
}

// start starts Mosquitto again on the first one's configuration and waits until its TLS
// port accepts connections.
func (m *mosquittoBackend) start(ctx context.Context) error {
	m.faultMu.Lock()
	defer m.faultMu.Unlock()
	select {
	case <-m.m.Exited():
	default:
		return fmt.Errorf("mosquitto PID %d runs already", m.m.PID())
	}
	if m.restarted != nil {
		return fmt.Errorf("mosquitto PID %d runs already", m.restarted.cmd.Process.Pid)
	}
	cmd := exec.Command(m.exe, "-c", m.m.ConfigFile())
	cmd.Dir = filepath.Dir(m.m.ConfigFile())
	logPath := filepath.Join(cmd.Dir, "restarted.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("mosquitto: %w", err)
	}
	defer logf.Close() // the process has its own copy
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := startTied(cmd); err != nil {
		return fmt.Errorf("mosquitto: start again: %w", err)
	}
	r := &restartedMosquitto{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(r.exited)
	}()
	m.restarted = r
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(m.m.TLSPort()))
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-r.exited:
			m.restarted = nil
			return fmt.Errorf("mosquitto: started again, but it exited (%v) before accepting connections on %s", cmd.ProcessState, addr)
		case <-ctx.Done():
			return fmt.Errorf("mosquitto: started again, but %s refuses connections: %w", addr, err)
		case <-tick.C:
		}
	}
}

// stopRestarted stops a Mosquitto the fault control started; it reports whether there
// was one.
func (m *mosquittoBackend) stopRestarted() bool {
	m.faultMu.Lock()
	defer m.faultMu.Unlock()
	r := m.restarted
	if r == nil {
		return false
	}
	m.restarted = nil
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-r.exited:
	case <-t.C:
		_ = r.cmd.Process.Kill()
		<-r.exited
	}
	return true
}

// stop stops the embedded broker as a crash would (broker.Broker.Stop).
func (e *embeddedBackend) stop() error { return e.b.Stop() }

// start starts the embedded broker again on its ports (broker.Broker.Resume).
func (e *embeddedBackend) start(ctx context.Context) error { return e.b.Resume(ctx) }
