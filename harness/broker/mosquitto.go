package broker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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

// mosquittoGrace is how long Close waits after SIGTERM before SIGKILL.
const mosquittoGrace = 5 * time.Second

// mosquittoPortTries bounds the retries when a chosen port is taken before Mosquitto binds it.
const mosquittoPortTries = 3

// ErrMosquittoExited is wrapped when Mosquitto exits before it is ready or while in use.
var ErrMosquittoExited = errors.New("mosquitto exited")

// MosquittoOptions configures StartMosquitto.
type MosquittoOptions struct {
	// CAPEM, CertPEM and KeyPEM are the TLS listener's CA and server certificate (required).
	CAPEM, CertPEM, KeyPEM []byte
	// Host is the address both listeners bind, default 0.0.0.0.
	Host string
	// TopicPrefix defaults to DefaultTopicPrefix.
	TopicPrefix string
	// Harness is the harness account (required).
	Harness Account
	// Devices are the device accounts; a ClientID set here is bound from the start.
	Devices []Account
	// Log receives Mosquitto's log lines; nil: none (Log() still has them).
	Log io.Writer
	// Exe and PasswdExe default to mosquitto and mosquitto_passwd on $PATH.
	Exe, PasswdExe string
	// Start starts the Mosquitto process (default: cmd.Start). The simulated bench passes
	// its own, which ties the process's life to the bench's.
	Start func(*exec.Cmd) error
}

// Mosquitto is a private Mosquitto broker process.
type Mosquitto struct {
	dir        string
	cmd        *exec.Cmd
	host       string
	tlsPort    int
	plainPort  int
	prefix     string
	harness    Account
	logw       io.Writer
	exited     chan struct{} // closed when the process has exited
	exitErr    error         // valid after exited is closed
	stopOnce   sync.Once
	closeError error

	reloadMu sync.Mutex // one reload at a time

	mu      sync.Mutex
	devices []Account
	lines   []string
	changed chan struct{} // closed and replaced on every log line
}

// StartMosquitto writes a configuration into dir (created if needed), starts Mosquitto and
// waits until it runs and accepts connections on its TLS port, or ctx ends.
func StartMosquitto(ctx context.Context, dir string, opts MosquittoOptions) (*Mosquitto, error) {
	if opts.Exe == "" {
		opts.Exe = "mosquitto"
	}
	if opts.PasswdExe == "" {
		opts.PasswdExe = "mosquitto_passwd"
	}
	if opts.Host == "" {
		opts.Host = "0.0.0.0"
	}
	if opts.TopicPrefix == "" {
		opts.TopicPrefix = DefaultTopicPrefix
	}
	if len(opts.CAPEM) == 0 || len(opts.CertPEM) == 0 || len(opts.KeyPEM) == 0 {
		return nil, errors.New("mosquitto: CA, certificate and key are required")
	}
	accounts := append([]Account{opts.Harness}, opts.Devices...)
	for _, a := range accounts {
		if a.Username == "" || a.Password == "" || strings.ContainsAny(a.Username+a.Password, ":\n\r \t") {
			return nil, fmt.Errorf("mosquitto: account %q: user name and password must be non-empty, without ':' or blanks", a.Username)
		}
	}
	for _, exe := range []string{opts.Exe, opts.PasswdExe} {
		if _, err := exec.LookPath(exe); err != nil {
			return nil, fmt.Errorf("mosquitto: %w (Debian: apt-get install mosquitto)", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mosquitto: dir %s: %w", dir, err)
	}
	m := &Mosquitto{
		dir:     dir,
		host:    opts.Host,
		prefix:  opts.TopicPrefix,
		harness: opts.Harness,
		devices: append([]Account(nil), opts.Devices...),
		logw:    opts.Log,
		changed: make(chan struct{}),
	}
	files := map[string][]byte{"ca.pem": opts.CAPEM, "server.pem": opts.CertPEM, "server.key": opts.KeyPEM}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return nil, fmt.Errorf("mosquitto: write %s: %w", name, err)
		}
	}
	if err := m.writePasswords(ctx, opts.PasswdExe, accounts); err != nil {
		return nil, err
	}
	if err := m.writeACL(); err != nil {
		return nil, err
	}
	if opts.Start == nil {
		opts.Start = (*exec.Cmd).Start
	}
	var lastErr error
	for range mosquittoPortTries {
		err := m.start(ctx, opts.Exe, opts.Start)
		if err == nil {
			return m, nil
		}
		lastErr = err
		if !strings.Contains(err.Error(), "Address already in use") || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func (m *Mosquitto) writePasswords(ctx context.Context, exe string, accounts []Account) error {
	p := filepath.Join(m.dir, "passwd")
	var b strings.Builder
	for _, a := range accounts {
		fmt.Fprintf(&b, "%s:%s\n", a.Username, a.Password)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("mosquitto: write password file: %w", err)
	}
	out, err := exec.CommandContext(ctx, exe, "-U", p).CombinedOutput()
	if err != nil {
		return fmt.Errorf("mosquitto: %s -U %s: %w: %s", exe, p, err, bytes.TrimSpace(out))
	}
	return nil
}

// writeACL writes the ACL file: the harness under <prefix>/#, a bound device under
// <prefix>/<id>/#, an unbound device under <prefix>/+/#.
func (m *Mosquitto) writeACL() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b strings.Builder
	b.WriteString("# written by hilt: harness account, then device accounts\n")
	fmt.Fprintf(&b, "user %s\ntopic readwrite %s/#\n\n", m.harness.Username, m.prefix)
	for _, d := range m.devices {
		id := d.ClientID
		if id == "" {
			id = "+" // until Bind: the device's ID is not known before its first boot
		}
		fmt.Fprintf(&b, "user %s\ntopic readwrite %s/%s/#\n\n", d.Username, m.prefix, id)
	}
	p := filepath.Join(m.dir, "acl")
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("mosquitto: write ACL file: %w", err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("mosquitto: write ACL file: %w", err)
	}
	return nil
}

func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (m *Mosquitto) start(ctx context.Context, exe string, startCmd func(*exec.Cmd) error) error {
	var err error
	if m.tlsPort, err = freePort(m.host); err != nil {
		return fmt.Errorf("mosquitto: pick a port: %w", err)
	}
	if m.plainPort, err = freePort(m.host); err != nil {
		return fmt.Errorf("mosquitto: pick a port: %w", err)
	}
	conf := []string{
		"# written by hilt for one run",
		"per_listener_settings false",
		"allow_anonymous false",
		"persistence false",
		"password_file " + filepath.Join(m.dir, "passwd"),
		"acl_file " + filepath.Join(m.dir, "acl"),
		"log_dest stderr",
		"log_type error",
		"log_type warning",
		"log_type notice",
		"log_type information",
		"connection_messages true",
		"log_timestamp_format %H:%M:%S",
	}
	if os.Geteuid() == 0 {
		// Otherwise Mosquitto drops to user mosquitto and cannot read the run's files.
		conf = append(conf, "user root")
	}
	conf = append(conf,
		"",
		fmt.Sprintf("listener %d %s", m.tlsPort, m.host),
		"cafile "+filepath.Join(m.dir, "ca.pem"),
		"certfile "+filepath.Join(m.dir, "server.pem"),
		"keyfile "+filepath.Join(m.dir, "server.key"),
		"tls_version tlsv1.2",
		"",
		fmt.Sprintf("listener %d %s", m.plainPort, m.host),
		"",
	)
	confPath := filepath.Join(m.dir, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(strings.Join(conf, "\n")), 0o600); err != nil {
		return fmt.Errorf("mosquitto: write %s: %w", confPath, err)
	}

	cmd := exec.Command(exe, "-c", confPath)
	cmd.Dir = m.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return fmt.Errorf("mosquitto: %w", err)
	}
	cmd.Stdout = cmd.Stderr
	m.mu.Lock()
	m.lines = nil
	m.mu.Unlock()
	if err := startCmd(cmd); err != nil {
		return fmt.Errorf("mosquitto: start %s: %w", exe, err)
	}
	m.cmd = cmd
	m.exited = make(chan struct{})
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			m.addLine(sc.Text())
		}
	}()
	go func() {
		<-logDone
		m.exitErr = cmd.Wait()
		close(m.exited)
		m.addLine("") // wake waiters
	}()

	// Wait for the "running" line, then for one successful TCP connection.
	if _, err := m.waitLine(ctx, 0, func(l string) bool { return strings.Contains(l, " running") }); err != nil {
		m.kill()
		return err
	}
	d := net.Dialer{}
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(m.tlsPort)))
	if err != nil {
		m.kill()
		return fmt.Errorf("mosquitto: running but its TLS port %d refuses connections: %w", m.tlsPort, err)
	}
	c.Close()
	return nil
}

func (m *Mosquitto) addLine(l string) {
	m.mu.Lock()
	if l != "" {
		m.lines = append(m.lines, l)
	}
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
	if m.logw != nil && l != "" {
		fmt.Fprintf(m.logw, "mosquitto: %s\n", l)
	}
}

// waitLine waits for a log line at index >= from that matches, and returns its index.
func (m *Mosquitto) waitLine(ctx context.Context, from int, match func(string) bool) (int, error) {
	for {
		m.mu.Lock()
		for i := from; i < len(m.lines); i++ {
			if match(m.lines[i]) {
				m.mu.Unlock()
				return i, nil
			}
		}
		from = len(m.lines)
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-m.exited:
			return 0, fmt.Errorf("mosquitto: %w (%v); log:\n%s", ErrMosquittoExited, m.exitErr, m.Log())
		case <-ctx.Done():
			return 0, fmt.Errorf("mosquitto: waiting for its log: %w; log so far:\n%s", ctx.Err(), m.Log())
		case <-changed:
		}
	}
}

// URL returns the TLS listener's URL as the host reaches it (mqtts://127.0.0.1:port).
func (m *Mosquitto) URL() string { return "mqtts://" + m.hostAddr(m.tlsPort) }

// PlainURL returns the plaintext listener's URL as the host reaches it.
func (m *Mosquitto) PlainURL() string { return "mqtt://" + m.hostAddr(m.plainPort) }

func (m *Mosquitto) hostAddr(port int) string {
	h := m.host
	if h == "0.0.0.0" || h == "::" {
		h = "127.0.0.1"
	}
	return net.JoinHostPort(h, strconv.Itoa(port))
}

// TLSPort returns the TLS listener's port.
func (m *Mosquitto) TLSPort() int { return m.tlsPort }

// PlainPort returns the plaintext listener's port.
func (m *Mosquitto) PlainPort() int { return m.plainPort }

// CAFile returns the path of the CA certificate the TLS listener's certificate chains to.
func (m *Mosquitto) CAFile() string { return filepath.Join(m.dir, "ca.pem") }

// ConfigFile returns the path of the generated mosquitto.conf.
func (m *Mosquitto) ConfigFile() string { return filepath.Join(m.dir, "mosquitto.conf") }

// Harness returns the harness account.
func (m *Mosquitto) Harness() Account { return m.harness }

// Devices returns the device accounts, with their bound client IDs.
func (m *Mosquitto) Devices() []Account {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Account(nil), m.devices...)
}

// PID returns Mosquitto's process ID.
func (m *Mosquitto) PID() int { return m.cmd.Process.Pid }

// Log returns Mosquitto's log so far.
func (m *Mosquitto) Log() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return strings.Join(m.lines, "\n")
}

// Bind restricts a device account to <prefix>/<clientID>/# (see Broker.Bind for the
// semantics) and makes Mosquitto reload its ACL; it returns once Mosquitto has begun the
// reload, after which every packet it reads is checked against the new ACL.
func (m *Mosquitto) Bind(ctx context.Context, username, clientID string) (Binding, error) {
	if err := validClientID(clientID); err != nil {
		return Binding{}, fmt.Errorf("mosquitto: bind account %q: %w", username, err)
	}
	m.mu.Lock()
	var res Binding
	idx := -1
	for i, d := range m.devices {
		switch {
		case d.Username == username:
			idx = i
		case d.ClientID == clientID:
			res.SharedWith = append(res.SharedWith, d.Username)
		}
	}
	if idx < 0 {
		m.mu.Unlock()
		return Binding{}, fmt.Errorf("mosquitto: bind %q: %w", username, ErrUnknownAccount)
	}
	old := m.devices[idx].ClientID
	if old == clientID {
		m.mu.Unlock()
		return res, nil
	}
	if old != "" {
		res.Previous = old
	}
	m.devices[idx].ClientID = clientID
	m.mu.Unlock()
	if err := m.reload(ctx); err != nil {
		return res, fmt.Errorf("mosquitto: bind account %q: %w", username, err)
	}
	return res, nil
}

// reloadNotice bounds the wait for Mosquitto to start a reload after SIGHUP. Mosquitto
// forgets a SIGHUP that arrives while it is reloading, so a reload that does not start is
// asked for again.
const reloadNotice = time.Second

// reload writes the ACL file and waits until Mosquitto has started a reload after that
// (it reads the files after it logs "Reloading config").
func (m *Mosquitto) reload(ctx context.Context) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	if err := m.writeACL(); err != nil {
		return err
	}
	for {
		m.mu.Lock()
		from := len(m.lines)
		m.mu.Unlock()
		if err := m.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			return fmt.Errorf("reload (SIGHUP): %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, reloadNotice)
		_, err := m.waitLine(wctx, from, func(l string) bool { return strings.Contains(l, "Reloading config") })
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || errors.Is(err, ErrMosquittoExited) {
			return err
		}
	}
}

// Exited is closed when the Mosquitto process has exited.
func (m *Mosquitto) Exited() <-chan struct{} { return m.exited }

func (m *Mosquitto) kill() {
	_ = m.cmd.Process.Kill()
	<-m.exited
}

// Close stops Mosquitto: SIGTERM, then SIGKILL after a grace period. It is idempotent.
func (m *Mosquitto) Close() error {
	m.stopOnce.Do(func() {
		select {
		case <-m.exited:
			m.closeError = fmt.Errorf("mosquitto: %w before Close (%v)", ErrMosquittoExited, m.exitErr)
			return
		default:
		}
		_ = m.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(mosquittoGrace)
		defer t.Stop()
		select {
		case <-m.exited:
		case <-t.C:
			m.kill()
			m.closeError = fmt.Errorf("mosquitto: did not stop within %v of SIGTERM; killed", mosquittoGrace)
		}
	})
	return m.closeError
}
