package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hilt-project/hilt/harness/broker"
	"github.com/hilt-project/hilt/harness/netns"
	"github.com/hilt-project/hilt/harness/pki"
	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/internal/buildpair"
)

// Defaults of Options.
const (
	DefaultDevices        = 2
	DefaultBootTimeout    = 30 * time.Second
	DefaultConnectTimeout = 30 * time.Second
	DefaultCommandTimeout = 10 * time.Second
	DefaultStopGrace      = 5 * time.Second
	// ModelLabel is the model the factory writes into every device's record.
	ModelLabel = "Refdev Thermostat"
	// AdminUser is the admin account the bench provisions on every device.
	AdminUser = "admin"
)

// Ports of the reference device (docs/PROTOCOL.md).
const (
	mgmtPort  = 8443
	debugPort = 2323
)

// Errors callers branch on.
var (
	// ErrBadOptions is wrapped by every error about the Options themselves.
	ErrBadOptions = errors.New("bad bench options")
	// ErrDeviceExited is wrapped by an *ExitError.
	ErrDeviceExited = errors.New("device exited")
	// ErrTimeout is wrapped when a device does not do something in time.
	ErrTimeout = errors.New("timed out")
)

// Options configures a bench.
type Options struct {
	// Devices is the number of devices (default DefaultDevices, at most netns.MaxDevices).
	Devices int
	// Flaws are passed to every device as --flaw NAME.
	Flaws []string
	// BrokerURL names an external broker (mqtts://user:pass@host:port, the user being the
	// harness account) instead of the embedded one.
	BrokerURL string
	// BrokerCAFile is the CA certificate an external broker's certificate chains to.
	BrokerCAFile string
	// DeviceBrokerAccounts are the devices' accounts on an external broker: none (devices use
	// the harness account), one (shared by all) or one per device.
	DeviceBrokerAccounts []broker.Account
	// Mosquitto starts a private Mosquitto instead of the embedded broker.
	Mosquitto bool
	// TopicPrefix is the devices' MQTT topic prefix (default "hilt").
	TopicPrefix string
	// Dir is the run folder; it must be empty or not exist. Default: a new temporary folder,
	// removed by Close unless KeepDir (or, if the bench dies without Close, by the next
	// bench's Start).
	Dir string
	// KeepDir keeps a temporary run folder after Close (a given Dir is always kept).
	KeepDir bool
	// Exe is the executable started as `Exe __refdev ...` (default: this executable), or
	// the hilt-refdev next to it when the two were built together (internal/buildpair:
	// the firmware alone starts faster and in less memory at every reboot).
	Exe string
	// ExtraDeviceArgs are appended to every device's command line.
	ExtraDeviceArgs []string
	// Log receives progress lines (nil: none).
	Log io.Writer
	// BrokerLog receives the broker's connection log (nil: none; it is always in the run
	// folder's broker.log).
	BrokerLog io.Writer
	// DeclarationsPath is the maker's declarations; default the reference device's, from
	// this checkout or the copy built into hilt (written into the run folder).
	DeclarationsPath string
	// Loopback skips network namespaces even as root.
	Loopback bool
	// BootTimeout bounds each device's first boot (default DefaultBootTimeout).
	BootTimeout time.Duration
	// ConnectTimeout bounds the wait for each device's first MQTT connection
	// (default DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// CommandTimeout bounds each console exchange while provisioning (default
	// DefaultCommandTimeout).
	CommandTimeout time.Duration
	// StopGrace is how long Close waits after SIGTERM before SIGKILL (default
	// DefaultStopGrace).
	StopGrace time.Duration
}

// DeviceInfo is how to reach one simulated device.
type DeviceInfo struct {
	Name string // dev1, dev2, ...
	ID   string // the ID from the device's last ready line
	// Address is the device's own address; HarnessAddress the host's, as the device sees it.
	Address        netip.Addr
	HarnessAddress netip.Addr
	// Address6 is the device's IPv6 address (a ULA) and HarnessAddress6 the host's on the
	// same link; both invalid in loopback mode or on a host without IPv6 (see netns).
	Address6        netip.Addr
	HarnessAddress6 netip.Addr
	// ControlAddress is set in loopback mode only (see netns).
	ControlAddress netip.Addr
	// Namespace and HostIf are the device's namespace and the host side of its link
	// (empty in loopback mode).
	Namespace string
	HostIf    string
	// SerialPath is the console: a link in the device's folder (<dir>/devN/console) to the
	// pty slave the harness opens, e.g. /dev/pts/5; Unplug removes it, Replug remakes it.
	SerialPath string
	PID        int
	// BootToReady is the time from process start to the first ready line.
	BootToReady time.Duration
	// Boots counts the ready lines seen (1 + reboots).
	Boots int
	// Admin is the account the bench provisioned; MQTT the device's broker account.
	Admin profile.Credential
	MQTT  profile.Credential
	// HWDir (key store, factory record, label) and DataDir (flash).
	HWDir   string
	DataDir string
	// PubKey is the identity key the device gave at provisioning (base64), or "".
	PubKey string
}

// Bench is a running simulated bench.
type Bench struct {
	opts        Options
	dir         string
	removeDir   bool
	net         *netns.Network
	broker      brokerBackend
	devices     []*device
	prof        *profile.Profile
	profilePath string
	brokerLog   *os.File
	startTime   time.Duration
	faults      *faultControl
	// devExe is the executable the devices run: opts.Exe or its paired hilt-refdev.
	devExe string

	logMu sync.Mutex

	exitMu   sync.Mutex
	exits    []*ExitError // devices that exited on their own, in the order they did
	exitedCh chan struct{}
	closing  bool

	closeOnce sync.Once
	closeErr  error
}

// Start brings up a bench: network, certificates, broker, then every device, booted,
// provisioned and connected. On error nothing it started is left behind.
func Start(ctx context.Context, opts Options) (b *Bench, err error) {
	t0 := time.Now()
	if err := opts.fill(); err != nil {
		return nil, err
	}
	var ext *externalBackend
	if opts.BrokerURL != "" {
		// Check an external broker's options before anything is made.
		if ext, err = newExternal(opts); err != nil {
			return nil, err
		}
	}
	b = &Bench{opts: opts, exitedCh: make(chan struct{})}
	var why string
	b.devExe, why = buildpair.Device(opts.Exe)
	if b.devExe == opts.Exe {
		b.logf("devices run %s __refdev (%s)", b.devExe, why)
	} else {
		b.logf("devices run %s (%s)", b.devExe, why)
	}
	defer func() {
		if err != nil {
			if cerr := b.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("clean up after failed start: %w", cerr))
			}
			b = nil
		}
	}()
	if err := b.makeDir(); err != nil {
		return b, err
	}
	if err := b.setupNetwork(ctx); err != nil {
		return b, err
	}
	if err := b.startBroker(ctx, ext); err != nil {
		return b, err
	}
	if err := b.startDevices(ctx); err != nil {
		return b, err
	}
	if err := b.startFaultControl(); err != nil {
		return b, err
	}
	if err := b.writeProfile(); err != nil {
		return b, err
	}
	b.startTime = time.Since(t0)
	b.logf("bench up: %d device(s) in %v; profile %s; fault control %s", len(b.devices), b.startTime.Round(time.Millisecond), b.profilePath, b.faults.path)
	return b, nil
}

// fill checks the options and applies defaults.
func (o *Options) fill() error {
	if o.Devices == 0 {
		o.Devices = DefaultDevices
	}
	if o.Devices < 1 || o.Devices > netns.MaxDevices {
		return fmt.Errorf("%w: %d devices: want 1..%d", ErrBadOptions, o.Devices, netns.MaxDevices)
	}
	for _, f := range o.Flaws {
		if f == "" || strings.ContainsAny(f, " \t\n") || strings.HasPrefix(f, "-") {
			return fmt.Errorf("%w: flaw %q: want a flaw name (hilt sim --list-flaws)", ErrBadOptions, f)
		}
	}
	if o.BrokerURL != "" && o.Mosquitto {
		return fmt.Errorf("%w: an external broker URL and Mosquitto exclude each other", ErrBadOptions)
	}
	if o.BrokerURL == "" && (o.BrokerCAFile != "" || len(o.DeviceBrokerAccounts) > 0) {
		return fmt.Errorf("%w: broker CA and device broker accounts apply to an external broker only", ErrBadOptions)
	}
	if o.TopicPrefix == "" {
		o.TopicPrefix = broker.DefaultTopicPrefix
	}
	if strings.ContainsAny(o.TopicPrefix, "+#") || strings.HasPrefix(o.TopicPrefix, "/") || strings.HasSuffix(o.TopicPrefix, "/") {
		return fmt.Errorf("%w: topic prefix %q", ErrBadOptions, o.TopicPrefix)
	}
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("%w: no device executable given and this one is unknown: %w", ErrBadOptions, err)
		}
		o.Exe = exe
	}
	exe, err := filepath.Abs(o.Exe)
	if err != nil {
		return fmt.Errorf("%w: device executable: %w", ErrBadOptions, err)
	}
	if st, err := os.Stat(exe); err != nil || st.IsDir() {
		return fmt.Errorf("%w: device executable %s: not a file (%v)", ErrBadOptions, exe, err)
	}
	o.Exe = exe
	if o.DeclarationsPath != "" {
		p, err := filepath.Abs(o.DeclarationsPath)
		if err != nil {
			return fmt.Errorf("%w: declarations: %w", ErrBadOptions, err)
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w: declarations: %w", ErrBadOptions, err)
		}
		o.DeclarationsPath = p
	}
	for _, d := range []*time.Duration{&o.BootTimeout, &o.ConnectTimeout, &o.CommandTimeout, &o.StopGrace} {
		if *d < 0 {
			return fmt.Errorf("%w: negative timeout %v", ErrBadOptions, *d)
		}
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = DefaultBootTimeout
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = DefaultConnectTimeout
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	if o.StopGrace == 0 {
		o.StopGrace = DefaultStopGrace
	}
	return nil
}

func (b *Bench) makeDir() error {
	if removed, err := cleanupStaleRunDirs(); err != nil {
		b.logf("warning: removing the run folders of dead benches: %v", err)
	} else if len(removed) > 0 {
		b.logf("removed the run folders of dead benches: %s", strings.Join(removed, ", "))
	}
	if b.opts.Dir == "" {
		d, err := newRunDir(b.opts.KeepDir)
		if err != nil {
			return fmt.Errorf("run folder: %w", err)
		}
		b.dir, b.removeDir = d, !b.opts.KeepDir
	} else {
		d, err := filepath.Abs(b.opts.Dir)
		if err != nil {
			return fmt.Errorf("%w: run folder: %w", ErrBadOptions, err)
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("run folder: %w", err)
		}
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("run folder: %w", err)
		}
		if len(entries) > 0 {
			return fmt.Errorf("%w: run folder %s is not empty", ErrBadOptions, d)
		}
		b.dir = d
	}
	f, err := os.OpenFile(filepath.Join(b.dir, "broker.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("run folder: %w", err)
	}
	b.brokerLog = f
	if b.opts.BrokerLog != nil {
		b.opts.BrokerLog = io.MultiWriter(f, b.opts.BrokerLog)
	} else {
		b.opts.BrokerLog = f
	}
	return nil
}

func (b *Bench) setupNetwork(ctx context.Context) error {
	if removed, err := netns.CleanupStale(ctx, ""); err != nil {
		b.logf("warning: stale run cleanup: %v", err)
	} else if len(removed) > 0 {
		b.logf("removed namespaces of dead runs: %s", strings.Join(removed, ", "))
	}
	n, err := netns.Setup(ctx, netns.Options{Devices: b.opts.Devices, Loopback: b.opts.Loopback})
	if err != nil {
		return fmt.Errorf("device network: %w", err)
	}
	b.net = n
	if fb := n.Fallback(); fb != nil {
		b.logf("NOTICE: %v", fb)
		return nil
	}
	hs := n.Hosts()
	b.logf("network: namespaces %s..%s, device addresses %s..%s", hs[0].Namespace, hs[len(hs)-1].Namespace, hs[0].Address, hs[len(hs)-1].Address)
	return nil
}

// Fallback returns why network namespaces are not in use (devices then share the host's
// stack on loopback addresses), or nil.
func (b *Bench) Fallback() *netns.FallbackError {
	if b.net == nil {
		return nil
	}
	return b.net.Fallback()
}

func (b *Bench) startBroker(ctx context.Context, e *externalBackend) error {
	h := broker.Account{Username: broker.HarnessUsername, Password: randomPassword()}
	var devices []broker.Account
	for i := 1; i <= b.opts.Devices; i++ {
		devices = append(devices, broker.Account{Username: fmt.Sprintf("hilt-dev%d-%s", i, b.net.RunID()), Password: randomPassword()})
	}
	if e != nil {
		if e.notice != "" {
			b.logf("NOTICE: %s", e.notice)
		}
		if n := e.loopbackNotice(b.net.Mode()); n != "" {
			b.logf("NOTICE: %s", n)
		}
		b.broker = e
		b.logf("broker: external %s", e.harnessURL())
		return nil
	}

	pkiDir := filepath.Join(b.dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	ca, err := pki.NewCA("hilt bench " + b.net.RunID() + " CA (TEST ONLY)")
	if err != nil {
		return err
	}
	hosts := []string{"127.0.0.1", "localhost"}
	for _, h := range b.net.Hosts() {
		if a := h.HarnessAddress.String(); a != "127.0.0.1" {
			hosts = append(hosts, a)
		}
	}
	leaf, err := ca.IssueServer(hosts)
	if err != nil {
		return err
	}
	caPath := filepath.Join(pkiDir, "ca.pem")
	if err := ca.WriteCert(caPath); err != nil {
		return err
	}
	if err := leaf.WriteFiles(filepath.Join(pkiDir, "broker.pem"), filepath.Join(pkiDir, "broker.key")); err != nil {
		return err
	}
	if b.opts.Mosquitto {
		m, err := startMosquitto(ctx, filepath.Join(b.dir, "mosquitto"), ca, leaf, h, devices, b.opts)
		if err != nil {
			return fmt.Errorf("broker: %w", err)
		}
		b.broker = m
		b.logf("broker: mosquitto PID %d, %s (TLS), plaintext port %d", m.m.PID(), m.m.URL(), m.m.PlainPort())
		return nil
	}
	emb, err := startEmbedded(ctx, leaf, ca.CertPEM(), caPath, h, devices, b.opts)
	if err != nil {
		return fmt.Errorf("broker: %w", err)
	}
	b.broker = emb
	b.logf("broker: embedded, TLS port %d, plaintext port %d", emb.b.TLSAddr().Port, emb.b.PlainAddr().Port)
	return nil
}

func (b *Bench) startDevices(ctx context.Context) error {
	// One production batch: the seed's first half is the batch's, the second each unit's.
	batch := randomHex(16)
	for _, h := range b.net.Hosts() {
		name := fmt.Sprintf("dev%d", h.Index)
		d := &device{
			index: h.Index,
			name:  name,
			host:  h,
			dir:   filepath.Join(b.dir, name),
			mqtt:  b.broker.deviceAccount(h.Index),
			admin: profile.Credential{User: AdminUser, Pass: randomPassword()},
		}
		d.hwDir, d.dataDir = filepath.Join(d.dir, "hw"), filepath.Join(d.dir, "data")
		for _, p := range []string{d.hwDir, d.dataDir} {
			if err := os.MkdirAll(p, 0o700); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		tlsAddr, plainAddr := b.broker.deviceAddrs(h)
		if err := d.writeFactory(FactoryRecord{
			Seed:         batch + randomHex(16),
			BrokerTLS:    tlsAddr,
			BrokerPlain:  plainAddr,
			BrokerCAPEM:  string(b.broker.caPEM()),
			MQTTUsername: d.mqtt.Username,
			MQTTPassword: d.mqtt.Password,
			TopicPrefix:  b.opts.TopicPrefix,
			ModelLabel:   ModelLabel,
		}); err != nil {
			return err
		}
		b.devices = append(b.devices, d)
	}

	// Boot, provision and connect every device at once; the first failure stops the rest.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(b.devices))
	var wg sync.WaitGroup
	for i, d := range b.devices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.bringUp(ctx, d); err != nil {
				errs[i] = err
				cancel()
			}
		}()
	}
	wg.Wait()
	// Report the devices that failed, not the ones stopped because another one failed.
	var real []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			real = append(real, err)
		}
	}
	if len(real) == 0 {
		real = errs
	}
	return errors.Join(real...)
}

// bringUp starts one device and waits until it is ready, provisioned and connected.
func (b *Bench) bringUp(ctx context.Context, d *device) error {
	if err := d.start(b, b.devExe, b.deviceArgs()); err != nil {
		return err
	}
	if err := d.waitReady(ctx, b.opts.BootTimeout); err != nil {
		return err
	}
	di := d.info()
	b.logf("%s: ready as %s after %v", d.name, di.ID, di.BootToReady.Round(time.Millisecond))
	if err := b.bindAccount(ctx, d, di.ID); err != nil {
		return err
	}
	key, err := d.provision(ctx, b, b.opts.CommandTimeout)
	if err != nil {
		return b.explain(d, err)
	}
	d.mu.Lock()
	d.pubkey = key
	d.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, b.opts.ConnectTimeout)
	defer cancel()
	if err := b.broker.waitConnected(cctx, d.mqtt.Username, di.ID, d.host.Address); err != nil {
		return b.explain(d, fmt.Errorf("%s (%s): the broker saw no connection from it: %w", d.name, di.ID, err))
	}
	b.logf("%s: connected to the broker as %q", d.name, d.mqtt.Username)
	return nil
}

// bindAccount binds the device's broker account to the ID the device reports, and says so
// when that moves the account or shares the ID with another device: the bench passes such
// identity trouble on to the checks rather than refusing the device.
func (b *Bench) bindAccount(ctx context.Context, d *device, id string) error {
	res, err := b.broker.bind(ctx, d.mqtt.Username, id)
	if err != nil {
		return fmt.Errorf("%s: broker account %q for device ID %s: %w", d.name, d.mqtt.Username, id, err)
	}
	if res.Previous != "" {
		b.logf("%s: warning: its broker account was bound to client ID %s; now to %s, the ID it reports", d.name, res.Previous, id)
	}
	if len(res.SharedWith) > 0 {
		b.logf("%s: warning: reports ID %s, as the devices of account(s) %s do: they share that ID's topics", d.name, id, strings.Join(res.SharedWith, ", "))
	}
	return nil
}

// exitNoticeWait bounds how long an error that looks like the device's end (EOF on its
// console, a lost connection) waits for the process's exit to be reported.
const exitNoticeWait = 2 * time.Second

// explain prefers the device's exit over whatever error its exit caused.
func (b *Bench) explain(d *device, err error) error {
	if errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
		select {
		case <-d.exited:
			return d.exitError()
		default:
			return err
		}
	}
	t := time.NewTimer(exitNoticeWait)
	defer t.Stop()
	select {
	case <-d.exited:
		return d.exitError()
	case <-t.C:
		return err
	}
}

// deviceArgs are the device's extra command line arguments (flaws, then ExtraDeviceArgs).
func (b *Bench) deviceArgs() []string {
	var args []string
	for _, f := range b.opts.Flaws {
		args = append(args, "--flaw", f)
	}
	return append(args, b.opts.ExtraDeviceArgs...)
}

// deviceExited is called when a device process has exited.
func (b *Bench) deviceExited(d *device) {
	d.mu.Lock()
	stopping := d.stopping
	d.mu.Unlock()
	if stopping {
		return
	}
	err := d.exitError()
	b.logf("%v", err)
	b.exitMu.Lock()
	defer b.exitMu.Unlock()
	if b.closing {
		return
	}
	b.exits = append(b.exits, err)
	if len(b.exits) == 1 {
		close(b.exitedCh)
	}
}

// Exited is closed when a device exits without the bench stopping it; Err then says which.
func (b *Bench) Exited() <-chan struct{} { return b.exitedCh }

// Err returns the *ExitError of the first device that exited on its own, or nil.
func (b *Bench) Err() error {
	b.exitMu.Lock()
	defer b.exitMu.Unlock()
	if len(b.exits) == 0 {
		return nil
	}
	return b.exits[0]
}

// Exits returns the *ExitError of every device that exited on its own before Close, in
// the order they exited: in a fleet more than one may crash, and each is its own report.
func (b *Bench) Exits() []*ExitError {
	b.exitMu.Lock()
	defer b.exitMu.Unlock()
	return slices.Clone(b.exits)
}

// Wait blocks until a device exits on its own (it returns that *ExitError) or ctx ends
// (it returns ctx's error).
func (b *Bench) Wait(ctx context.Context) error {
	select {
	case <-b.exitedCh:
		return b.Err()
	default:
	}
	select {
	case <-b.exitedCh:
		return b.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// WaitBoot waits until the named device has reported its n-th boot (1 is the first; a
// reboot makes it 2), or ctx ends, or the device exits.
func (b *Bench) WaitBoot(ctx context.Context, name string, n int) error {
	for _, d := range b.devices {
		if d.name == name {
			return d.waitBoots(ctx, n)
		}
	}
	return fmt.Errorf("%w: no device %q", ErrBadOptions, name)
}

// Dir returns the run folder.
func (b *Bench) Dir() string { return b.dir }

// StartTime returns how long Start took.
func (b *Bench) StartTime() time.Duration { return b.startTime }

// BrokerKind returns KindEmbedded, KindMosquitto or KindExternal.
func (b *Bench) BrokerKind() string { return b.broker.kind() }

// Devices returns how to reach each device.
func (b *Bench) Devices() []DeviceInfo {
	var out []DeviceInfo
	for _, d := range b.devices {
		out = append(out, d.info())
	}
	return out
}

// Profile returns the device profile of the bench (as written to ProfilePath).
func (b *Bench) Profile() *profile.Profile { return b.prof }

// ProfilePath returns the path of the profile the bench wrote (<dir>/profile.yaml).
func (b *Bench) ProfilePath() string { return b.profilePath }

// Close stops the devices (SIGTERM, SIGKILL after a grace), the broker and the network,
// and removes a temporary run folder. It is idempotent and safe on a half-started bench.
func (b *Bench) Close() error {
	b.closeOnce.Do(func() {
		b.exitMu.Lock()
		b.closing = true
		b.exitMu.Unlock()
		if b.faults != nil {
			b.faults.close()
		}
		var errs []error
		var wg sync.WaitGroup
		derrs := make([]error, len(b.devices))
		for i, d := range b.devices {
			wg.Add(1)
			go func() {
				defer wg.Done()
				derrs[i] = d.stop(b.opts.StopGrace)
			}()
		}
		wg.Wait()
		errs = append(errs, derrs...)
		if b.broker != nil {
			if err := b.broker.close(); err != nil {
				errs = append(errs, fmt.Errorf("broker: %w", err))
			}
		}
		if b.net != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if err := b.net.Close(ctx); err != nil {
				errs = append(errs, fmt.Errorf("device network: %w", err))
			}
			cancel()
		}
		if b.brokerLog != nil {
			b.brokerLog.Close()
		}
		if b.removeDir && b.dir != "" {
			if err := os.RemoveAll(b.dir); err != nil {
				errs = append(errs, fmt.Errorf("run folder: %w", err))
			}
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

func (b *Bench) logf(format string, a ...any) {
	if b.opts.Log == nil {
		return
	}
	b.logMu.Lock()
	defer b.logMu.Unlock()
	fmt.Fprintf(b.opts.Log, format+"\n", a...)
}

// randomHex returns n random bytes as hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return hex.EncodeToString(b)
}

// randomPassword returns 26 random base32 characters (130 bits).
func randomPassword() string { return rand.Text() }
