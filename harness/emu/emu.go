//go:build linux

package emu

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
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hilt-project/hilt/drivers/qemu"
	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/internal/rundir"
)

// Defaults.
const (
	DefaultInstances      = 2
	DefaultBootTimeout    = 60 * time.Second // one boot to the ready line, TCG on a busy host
	DefaultCommandTimeout = 10 * time.Second
	DefaultMemoryMB       = 256
	// DefaultCacheDir is where `make qemu-image` puts the kernel and initramfs, relative to
	// the working directory (the repository root).
	DefaultCacheDir = ".cache/qemu"
	// ModelLabel is the model the factory writes into each unit's record.
	ModelLabel = "Refdev Thermostat"
	// AdminUser is the owner account the bench provisions.
	AdminUser = "admin"
	// DataDiskMB and KeystoreDiskMB are the sizes of the two disks.
	DataDiskMB     = 32
	KeystoreDiskMB = 8
)

// Errors callers branch on.
var (
	// ErrBadOptions is wrapped by every error about the Options themselves.
	ErrBadOptions = errors.New("bad bench options")
	// ErrUnknownUnit is returned for a unit name the bench does not have.
	ErrUnknownUnit = errors.New("unknown unit")
	// ErrRunning is returned by Restart for a unit that is running.
	ErrRunning = errors.New("unit is running")
	// ErrProvision is wrapped when the device refuses to be provisioned.
	ErrProvision = errors.New("provisioning refused")
)

// Link is one unit's network link, as the broker callback sees it.
type Link struct {
	Unit  string     // the unit's name
	Tap   string     // the host's interface
	Host  netip.Addr // the host's address on the link: where the unit reaches the broker
	Guest netip.Addr // the unit's address
}

// BrokerInfo is what the factory writes into one unit's record about its broker.
type BrokerInfo struct {
	TLSAddr     string // host:port of MQTT over TLS, as the unit dials it
	PlainAddr   string // host:port of plaintext MQTT (a flawed unit uses it)
	CAPEM       string // the CA the broker's certificate chains to
	Username    string // the unit's own account
	Password    string
	TopicPrefix string // default "hilt"
}

// BrokerFunc gives each unit its broker. It is called once, when the links exist and before
// any unit boots, so that the broker can listen on (and certify) every host address; it
// returns one BrokerInfo per link, in order.
type BrokerFunc func(ctx context.Context, links []Link) ([]BrokerInfo, error)

// Options configures a bench.
type Options struct {
	// Names are the units' names; default the instance names of Profile, or dev1..devN with
	// N = Instances.
	Names []string
	// Instances is the number of units when Names is empty (default the number of instances
	// of Profile, or DefaultInstances).
	Instances int
	// Flaws are given to every unit (kernel command line hilt.flaw=, then --flaw NAME).
	Flaws []string
	// Dir is the run folder; default a new temporary folder, removed by Close unless KeepDir.
	// A given Dir is kept.
	Dir     string
	KeepDir bool
	// Kernel and Initramfs default to DefaultCacheDir/vmlinuz and
	// DefaultCacheDir/initramfs.cpio.gz (or $HILT_QEMU_CACHE/...).
	Kernel, Initramfs string
	// MemoryMB is each guest's memory (default DefaultMemoryMB).
	MemoryMB int
	// Broker gives the units their broker; nil leaves the broker fields of the factory
	// record empty (the units then run without MQTT).
	Broker BrokerFunc
	// ModelLabel is the model in each factory record (default ModelLabel).
	ModelLabel string
	// Profile is the static profile to fill in (fixtures/devices/qemu.yaml, loaded): its
	// model, declarations, timeouts, broker and update settings are kept, its instances
	// replaced by the running units. Nil: a minimal profile.
	Profile *profile.Profile
	// Log receives progress lines, QEMU command lines and QEMU's output (nil: none).
	Log io.Writer
	// BootTimeout bounds each boot to the ready line (default DefaultBootTimeout).
	BootTimeout time.Duration
	// CommandTimeout bounds each console or control port exchange (default
	// DefaultCommandTimeout).
	CommandTimeout time.Duration
}

// Unit is how to reach one emulated unit.
type Unit struct {
	Name   string
	ID     string // the logical ID the unit gave at provisioning
	PubKey string // its identity key (base64), or ""
	Link
	// Console is the unit's serial port for the harness: a symlink to PTY that stays valid
	// across power cuts.
	Console string
	PTY     string
	// ConsoleLog has everything the unit printed, every boot.
	ConsoleLog string
	// DataImage is the unit's flash; KeystoreImage its key store; KeystoreDir a copy of the
	// key store's files (label.txt, the physical label, included), refreshed after each boot
	// and before each ShutdownForScan.
	DataImage, KeystoreImage, KeystoreDir, LabelFile string
	Admin, MQTT                                      profile.Credential
	// FirstBoot is the first boot's time from starting QEMU to the ready line; LastBoot the
	// latest boot's (after Restart).
	FirstBoot, LastBoot time.Duration
	// Running says whether the unit's QEMU runs.
	Running bool
	// CommandLine is the latest QEMU command line, to reproduce the unit by hand.
	CommandLine string
	// Exits lists the times the unit's QEMU exited on its own, oldest first: neither a
	// guest reboot (the bench boots it again) nor an exit the harness caused. The unit
	// stayed off after each.
	Exits []Exit
}

// Exit is one exit of a unit's QEMU that nobody on the harness's side asked for.
type Exit struct {
	At time.Time
	// Reason is QEMU's shutdown reason ("guest-shutdown": the guest powered itself off;
	// "guest-panic", "host-signal", ...), or "" when QEMU sent none: it was killed or
	// crashed.
	Reason string
}

// Killed says whether the exit came from outside the guest: QEMU killed, crashed or
// signalled. Such an exit is the bench's failure, not the device's behaviour.
func (e Exit) Killed() bool { return e.Reason == "" || e.Reason == "host-signal" }

// String says when and why, as the bench's log does.
func (e Exit) String() string {
	why := e.Reason
	if why == "" {
		why = "no shutdown event: killed or crashed"
	}
	return fmt.Sprintf("QEMU exited on its own at %s (%s)", e.At.Format("15:04:05"), why)
}

// Bench is a running emulated bench.
type Bench struct {
	opts      Options
	dir       string
	removeDir bool
	runDir    string // short paths for control sockets
	runID     string
	units     []*unit
	prof      *profile.Profile

	// done is closed first thing in Close: the units' watchers (unit.watch) boot no unit
	// the bench is removing, and Close waits for them.
	done     chan struct{}
	watchers sync.WaitGroup

	logMu     sync.Mutex
	closeOnce sync.Once
	closeErr  error
}

// Start brings up the bench: links, broker, disks, then every unit, booted and provisioned.
// On error nothing it made is left behind.
func Start(ctx context.Context, opts Options) (b *Bench, err error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	b = &Bench{opts: opts, runID: randomHex(3)}
	b.done = make(chan struct{})
	defer func() {
		if err != nil {
			b.Close()
			b = nil
		}
	}()
	if err := b.makeDirs(); err != nil {
		return b, err
	}
	if removed, err := qemu.RemoveStaleTaps(ctx); err != nil {
		b.logf("warning: stale taps: %v", err)
	} else if len(removed) > 0 {
		b.logf("removed taps of dead runs: %s", strings.Join(removed, " "))
	}
	if removed, err := rundir.RemoveStale(rundir.Emu, rundir.EmuSock, rundir.QEMUVM); err != nil {
		b.logf("warning: stale folders: %v", err)
	} else if len(removed) > 0 {
		b.logf("removed folders of dead runs: %s", strings.Join(removed, " "))
	}
	if err := b.makeLinks(ctx); err != nil {
		return b, err
	}
	infos := make([]BrokerInfo, len(b.units))
	if opts.Broker != nil {
		links := make([]Link, len(b.units))
		for i, u := range b.units {
			links[i] = u.link
		}
		got, err := opts.Broker(ctx, links)
		if err != nil {
			return b, fmt.Errorf("emu: broker: %w", err)
		}
		if len(got) != len(links) {
			return b, fmt.Errorf("emu: broker: %d answers for %d units", len(got), len(links))
		}
		infos = got
	}
	batch := randomHex(16) // one production batch: every unit's seed starts with it
	for i, u := range b.units {
		if err := u.prepare(ctx, infos[i], batch); err != nil {
			return b, err
		}
	}

	// The units boot side by side, as many at a time as there are cores: a booting QEMU
	// (TCG) keeps one core busy.
	errs := make([]error, len(b.units))
	sem := make(chan struct{}, runtime.NumCPU())
	var wg sync.WaitGroup
	for i, u := range b.units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = u.bringUp(ctx)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return b, err
	}
	b.prof = b.makeProfile()
	return b, nil
}

func (o *Options) fill() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("emu: %w: %s", ErrBadOptions, fmt.Sprintf(format, a...))
	}
	if len(o.Names) == 0 && o.Instances == 0 && o.Profile != nil {
		for _, in := range o.Profile.Instances {
			o.Names = append(o.Names, in.Name)
		}
	}
	if len(o.Names) == 0 {
		n := o.Instances
		if n == 0 {
			n = DefaultInstances
		}
		if n < 1 || n > 64 {
			return bad("%d instances: want 1 to 64", n)
		}
		for i := 1; i <= n; i++ {
			o.Names = append(o.Names, fmt.Sprintf("dev%d", i))
		}
	}
	if len(o.Names) > 64 {
		return bad("%d units: at most 64", len(o.Names))
	}
	seen := map[string]bool{}
	for _, n := range o.Names {
		if n == "" || strings.ContainsAny(n, "/ \t\n") || seen[n] {
			return bad("unit name %q: want distinct names without spaces or slashes", n)
		}
		seen[n] = true
	}
	for _, f := range o.Flaws {
		if f == "" || strings.ContainsAny(f, ", \t\n\"") {
			return bad("flaw %q: a name without spaces or commas", f)
		}
	}
	cache := os.Getenv("HILT_QEMU_CACHE")
	if cache == "" {
		cache = DefaultCacheDir
	}
	if o.Kernel == "" && o.Profile != nil && o.Profile.QEMU != nil && o.Profile.QEMU.Kernel != "" {
		o.Kernel = o.Profile.Resolve(o.Profile.QEMU.Kernel)
	}
	if o.Initramfs == "" && o.Profile != nil && o.Profile.QEMU != nil && o.Profile.QEMU.Initramfs != "" {
		o.Initramfs = o.Profile.Resolve(o.Profile.QEMU.Initramfs)
	}
	if o.Kernel == "" {
		o.Kernel = filepath.Join(cache, "vmlinuz")
	}
	if o.Initramfs == "" {
		o.Initramfs = filepath.Join(cache, "initramfs.cpio.gz")
	}
	for _, p := range []*string{&o.Kernel, &o.Initramfs} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return bad("%s: %v", *p, err)
		}
		*p = abs
	}
	if _, err := os.Stat(o.Kernel); err != nil {
		return fmt.Errorf("emu: %w: %s: run `make qemu-image`", qemu.ErrNoKernel, o.Kernel)
	}
	if _, err := os.Stat(o.Initramfs); err != nil {
		return fmt.Errorf("emu: %w: %s: run `make qemu-image`", qemu.ErrNoInitramfs, o.Initramfs)
	}
	if o.MemoryMB == 0 {
		if o.Profile != nil && o.Profile.QEMU != nil && o.Profile.QEMU.MemoryMB > 0 {
			o.MemoryMB = o.Profile.QEMU.MemoryMB
		} else {
			o.MemoryMB = DefaultMemoryMB
		}
	}
	if o.ModelLabel == "" {
		o.ModelLabel = ModelLabel
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = DefaultBootTimeout
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	return nil
}

func (b *Bench) makeDirs() error {
	if b.opts.Dir == "" {
		d, err := rundir.New(rundir.Emu)
		if err != nil {
			return fmt.Errorf("emu: %w", err)
		}
		b.dir, b.removeDir = d, !b.opts.KeepDir
	} else {
		d, err := filepath.Abs(b.opts.Dir)
		if err != nil {
			return fmt.Errorf("emu: %w", err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("emu: %w", err)
		}
		b.dir = d
	}
	// Control sockets need short paths (sun_path is 108 bytes).
	r, err := rundir.New(rundir.EmuSock)
	if err != nil {
		return fmt.Errorf("emu: %w", err)
	}
	b.runDir = r
	return nil
}

// makeLinks makes one tap and console relay per unit.
func (b *Bench) makeLinks(ctx context.Context) error {
	nets, err := qemu.FreeSubnets(ctx, len(b.opts.Names))
	if err != nil {
		return fmt.Errorf("emu: %w", err)
	}
	for i, name := range b.opts.Names {
		u := &unit{bench: b, name: name, dir: filepath.Join(b.dir, name), mac: qemu.RandomMAC()}
		b.units = append(b.units, u)
		if err := os.MkdirAll(filepath.Join(u.dir, "keystore"), 0o700); err != nil {
			return fmt.Errorf("emu: %s: %w", name, err)
		}
		tap, err := qemu.CreateTap(ctx, fmt.Sprintf("hq%s%d", b.runID, i+1), nets[i])
		if err != nil {
			return fmt.Errorf("emu: %s: %w", name, err)
		}
		u.tap = tap
		u.link = Link{Unit: name, Tap: tap.Name, Host: tap.Host, Guest: tap.Guest}
		r, err := newRelay(name)
		if err != nil {
			return fmt.Errorf("emu: %w", err)
		}
		u.relay = r
		u.consoleLink = filepath.Join(u.dir, "console")
		if err := os.Symlink(r.path, u.consoleLink); err != nil {
			return fmt.Errorf("emu: %s: %w", name, err)
		}
		b.logf("%s: tap %s, host %s, unit %s, console %s -> %s", name, tap.Name, tap.Host, tap.Guest, u.consoleLink, r.path)
	}
	return nil
}

// makeProfile is the runtime profile: the static one given, with the running units.
func (b *Bench) makeProfile() *profile.Profile {
	on := true
	p := &profile.Profile{
		Model:   b.opts.ModelLabel,
		Backend: profile.BackendQEMU,
		Timeouts: profile.Timeouts{
			Command: profile.Duration{Duration: b.opts.CommandTimeout},
			Boot:    profile.Duration{Duration: b.opts.BootTimeout},
			Check:   profile.Duration{Duration: 5 * time.Minute},
		},
		Destructive: profile.Destructive{Wipe: &on, VersionBump: &on, PowerCut: &on},
		Broker:      profile.Broker{TopicPrefix: "hilt"},
	}
	if b.opts.Profile != nil {
		cp := *b.opts.Profile
		p = &cp
		p.Backend = profile.BackendQEMU
	}
	p.QEMU = &profile.QEMU{Kernel: b.opts.Kernel, Initramfs: b.opts.Initramfs, MemoryMB: b.opts.MemoryMB}
	p.Instances = nil
	for _, u := range b.Units() {
		p.Instances = append(p.Instances, profile.Instance{
			Name:             u.Name,
			Serial:           profile.Serial{Port: u.Console, Baud: 115200},
			Address:          u.Guest.String(),
			HarnessAddress:   u.Host.String(),
			CaptureInterface: u.Tap,
			Admin:            u.Admin,
			MQTT:             u.MQTT,
			Storage:          profile.Storage{DiskImage: u.DataImage, KeystoreDir: u.KeystoreDir},
			Label:            profile.Label{File: u.LabelFile},
			PubKey:           u.PubKey,
		})
	}
	return p
}

// Profile is the runtime device profile of the running units.
func (b *Bench) Profile() *profile.Profile { return b.prof }

// Dir is the run folder.
func (b *Bench) Dir() string { return b.dir }

// Units describes every unit, in order.
func (b *Bench) Units() []Unit {
	out := make([]Unit, len(b.units))
	for i, u := range b.units {
		out[i] = u.info()
	}
	return out
}

// Unit describes the named unit.
func (b *Bench) Unit(name string) (Unit, bool) {
	u, err := b.unit(name)
	if err != nil {
		return Unit{}, false
	}
	return u.info(), true
}

func (b *Bench) unit(name string) (*unit, error) {
	for _, u := range b.units {
		if u.name == name {
			return u, nil
		}
	}
	return nil, fmt.Errorf("emu: %q: %w", name, ErrUnknownUnit)
}

// PowerCut cuts the named unit's power at once: QEMU quits, the guest's RAM and every write
// it had not handed to its disks are lost. The unit stays off until Restart.
func (b *Bench) PowerCut(ctx context.Context, name string) error {
	u, err := b.unit(name)
	if err != nil {
		return err
	}
	return u.powerCut(ctx)
}

// ShutdownForScan syncs the named unit's disks, refreshes the key store copy, stops the
// firmware, unmounts both file systems and powers off: DataImage can then be scanned as raw
// storage, free blocks included. The unit stays off until Restart.
func (b *Bench) ShutdownForScan(ctx context.Context, name string) error {
	u, err := b.unit(name)
	if err != nil {
		return err
	}
	return u.shutdown(ctx)
}

// Restart boots the named unit, which must be off, and waits for its ready line (which the
// console relay passes on to the harness as well). The unit keeps its disks, address and
// console; it is not provisioned again.
func (b *Bench) Restart(ctx context.Context, name string) error {
	u, err := b.unit(name)
	if err != nil {
		return err
	}
	return u.restart(ctx)
}

// Close kills every unit's QEMU and removes the taps, console relays and (for a temporary
// run folder not kept) the run folder. It is idempotent and safe after a failed Start.
func (b *Bench) Close() error {
	b.closeOnce.Do(func() {
		close(b.done)
		var errs []error
		for _, u := range b.units {
			errs = append(errs, u.close())
		}
		// Every QEMU is dead: the watchers end (none boots a unit after done).
		b.watchers.Wait()
		if b.runDir != "" {
			errs = append(errs, os.RemoveAll(b.runDir))
		}
		if b.removeDir {
			errs = append(errs, os.RemoveAll(b.dir))
		}
		b.closeErr = errors.Join(errs...)
	})
	return b.closeErr
}

// lifetime returns a context that ends when the bench closes.
func (b *Bench) lifetime() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	select {
	case <-b.done: // at once, not when the goroutine below runs: watch asks right away
		cancel()
		return ctx, cancel
	default:
	}
	go func() {
		select {
		case <-b.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (b *Bench) logf(format string, a ...any) {
	if b.opts.Log == nil {
		return
	}
	b.logMu.Lock()
	defer b.logMu.Unlock()
	fmt.Fprintf(b.opts.Log, "emu: %s\n", fmt.Sprintf(format, a...))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
