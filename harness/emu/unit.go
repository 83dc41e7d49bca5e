//go:build linux

package emu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hilt-project/hilt/drivers/qemu"
	"github.com/hilt-project/hilt/harness/profile"
)

// Console lines of the device protocol (docs/PROTOCOL.md) the bench waits for.
var (
	readyRE = regexp.MustCompile(`^refdev ready$`)
	// An answer follows the prompt "refdev> ", which has no line end of its own.
	answerRE = regexp.MustCompile(`^(?:refdev> )*(OK|ERR) ?(.*)$`)
)

// factoryRecord is the factory record docs/PROTOCOL.md describes, written to the key store
// before the first boot.
type factoryRecord struct {
	Seed         string `json:"seed"`
	BrokerTLS    string `json:"broker_tls,omitempty"`
	BrokerPlain  string `json:"broker_plain,omitempty"`
	BrokerCAPEM  string `json:"broker_ca_pem,omitempty"`
	MQTTUsername string `json:"mqtt_username,omitempty"`
	MQTTPassword string `json:"mqtt_password,omitempty"`
	TopicPrefix  string `json:"topic_prefix,omitempty"`
	ModelLabel   string `json:"model_label"`
}

// unit is one emulated device and everything the bench made for it.
type unit struct {
	bench       *Bench
	name, dir   string
	mac         string // kept across restarts: the unit has one network card
	tap         *qemu.Tap
	link        Link
	relay       *relay
	consoleLink string
	consoleLog  *os.File
	dataImage   string
	ksImage     string
	ksDir       string
	admin, mqtt profile.Credential

	opMu sync.Mutex // serialises boots, power cuts and shutdowns

	mu        sync.Mutex // guards what follows
	vm        *qemu.VM
	ctl       *ctlClient
	id        string
	pubkey    string
	firstBoot time.Duration
	lastBoot  time.Duration
	cmdline   string
	exits     []Exit
}

func (u *unit) info() Unit {
	u.mu.Lock()
	defer u.mu.Unlock()
	return Unit{
		Name:          u.name,
		ID:            u.id,
		PubKey:        u.pubkey,
		Link:          u.link,
		Console:       u.consoleLink,
		PTY:           u.relayPath(),
		ConsoleLog:    filepath.Join(u.dir, "console.log"),
		DataImage:     u.dataImage,
		KeystoreImage: u.ksImage,
		KeystoreDir:   u.ksDir,
		LabelFile:     filepath.Join(u.ksDir, "label.txt"),
		Admin:         u.admin,
		MQTT:          u.mqtt,
		FirstBoot:     u.firstBoot,
		LastBoot:      u.lastBoot,
		Running:       u.vm != nil,
		CommandLine:   u.cmdline,
		Exits:         slices.Clone(u.exits),
	}
}

func (u *unit) relayPath() string {
	if u.relay == nil {
		return ""
	}
	return u.relay.path
}

func (u *unit) logf(format string, a ...any) {
	u.bench.logf("%s: %s", u.name, fmt.Sprintf(format, a...))
}

// prepare writes the factory record and makes both disks. batch is the production batch's
// half of the seed (32 hex digits, the same for every unit of the bench); the unit's own
// half is random.
func (u *unit) prepare(ctx context.Context, bi BrokerInfo, batch string) error {
	own := make([]byte, 16)
	if _, err := rand.Read(own); err != nil {
		return fmt.Errorf("emu: %s: seed: %w", u.name, err)
	}
	rec := factoryRecord{
		Seed:         batch + hex.EncodeToString(own),
		BrokerTLS:    bi.TLSAddr,
		BrokerPlain:  bi.PlainAddr,
		BrokerCAPEM:  bi.CAPEM,
		MQTTUsername: bi.Username,
		MQTTPassword: bi.Password,
		TopicPrefix:  bi.TopicPrefix,
		ModelLabel:   u.bench.opts.ModelLabel,
	}
	u.mqtt = profile.Credential{User: bi.Username, Pass: bi.Password}
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("emu: %s: factory record: %w", u.name, err)
	}
	u.ksDir = filepath.Join(u.dir, "keystore")
	if err := os.WriteFile(filepath.Join(u.ksDir, "factory.json"), raw, 0o600); err != nil {
		return fmt.Errorf("emu: %s: factory record: %w", u.name, err)
	}
	u.dataImage = filepath.Join(u.dir, "data.img")
	u.ksImage = filepath.Join(u.dir, "keystore.img")
	if err := qemu.MakeExt4(ctx, u.dataImage, DataDiskMB, "hilt-data", ""); err != nil {
		return fmt.Errorf("emu: %s: %w", u.name, err)
	}
	if err := qemu.MakeExt4(ctx, u.ksImage, KeystoreDiskMB, "hilt-ks", u.ksDir); err != nil {
		return fmt.Errorf("emu: %s: %w", u.name, err)
	}
	f, err := os.OpenFile(filepath.Join(u.dir, "console.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("emu: %s: %w", u.name, err)
	}
	u.consoleLog = f
	return nil
}

// boot starts the unit's QEMU and waits for the ready line.
func (u *unit) boot(ctx context.Context) error {
	vm, begin, err := u.start(ctx)
	if err != nil {
		return err
	}
	return u.awaitReady(ctx, vm, begin)
}

// start starts a QEMU for the unit and connects its control port; the guest runs. A
// watcher follows the process from then on (see watch).
func (u *unit) start(ctx context.Context) (*qemu.VM, time.Time, error) {
	o := u.bench.opts
	sock := filepath.Join(u.bench.runDir, u.name+".ctl")
	_ = os.Remove(sock)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("emu: %s: control socket: %w", u.name, err)
	}
	defer ln.Close()
	defer os.Remove(sock)

	app := fmt.Sprintf("panic=-1 ipv6.disable=1 hilt.ip=%s hilt.gw=%s", u.tap.GuestPrefix(), u.tap.Host)
	if len(o.Flaws) > 0 {
		app += " hilt.flaw=" + strings.Join(o.Flaws, ",")
	}
	begin := time.Now()
	vm, err := qemu.Start(ctx, qemu.Options{
		Name:      u.name,
		Kernel:    o.Kernel,
		Initramfs: o.Initramfs,
		Append:    app,
		MemoryMB:  o.MemoryMB,
		Disks:     []string{u.dataImage, u.ksImage},
		Tap:       u.tap.Name,
		MAC:       u.mac,
		// A guest reboot ends this QEMU; watch boots the unit in a new one (faster than a
		// reset of the same process under TCG, docs/QEMU.md).
		NoReboot: true,
		// The control port: the second UART (ttyS1), a socket QEMU connects to.
		ExtraArgs: []string{"-chardev", "socket,id=ctl,path=" + sock, "-device", "isa-serial,chardev=ctl,index=1"},
		Log:       o.Log,
		Console:   io.MultiWriter(u.consoleLog, u.relay),
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("emu: %s: %w", u.name, err)
	}
	// QEMU connected while it started, before the guest ran.
	conn, err := acceptCtx(ctx, ln)
	if err != nil {
		vm.Kill()
		return nil, time.Time{}, fmt.Errorf("emu: %s: control port: %w", u.name, err)
	}
	u.relay.attach(vm)
	u.mu.Lock()
	u.vm, u.ctl, u.cmdline = vm, newCtl(u.name, conn), vm.CommandLine()
	u.mu.Unlock()
	u.bench.watchers.Add(1)
	go u.watch(vm)
	return vm, begin, nil
}

// awaitReady waits for vm's ready line and records the boot time from begin. When the line
// does not come, vm is killed (unless the harness already replaced or stopped it).
func (u *unit) awaitReady(ctx context.Context, vm *qemu.VM, begin time.Time) error {
	bctx, cancel := context.WithTimeout(ctx, u.bench.opts.BootTimeout)
	defer cancel()
	if _, err := vm.Expect(bctx, readyRE); err != nil {
		u.mu.Lock()
		mine := u.vm == vm
		if mine {
			u.ctl.close()
			u.vm, u.ctl = nil, nil
		}
		u.mu.Unlock()
		if mine {
			vm.Kill()
			u.relay.attach(nil)
		}
		return fmt.Errorf("emu: %s: %w", u.name, err)
	}
	d := time.Since(begin)
	u.mu.Lock()
	if u.firstBoot == 0 {
		u.firstBoot = d
	}
	u.lastBoot = d
	u.mu.Unlock()
	u.logf("ready %v after starting QEMU (accel %s)", d.Round(time.Millisecond), vm.Accel())
	return nil
}

// watch follows one QEMU process of the unit until it exits. QEMU runs with -no-reboot, so
// a guest that reboots itself (an update, a decommission, a reboot command) ends it with
// reason guest-reset: watch then boots the unit in a new QEMU on the same disks, tap and
// console relay, as the reset would have. Exits the harness caused (power cut, shutdown for
// a scan, the bench closing) are theirs to handle; any other exit (the guest powered off,
// QEMU crashed or was killed) leaves the unit off, logged with its last console lines.
func (u *unit) watch(vm *qemu.VM) {
	defer u.bench.watchers.Done()
	<-vm.Exited()
	ctx, cancel := u.bench.lifetime()
	defer cancel()
	u.opMu.Lock()
	if ctx.Err() != nil || u.currentVM() != vm {
		u.opMu.Unlock()
		return
	}
	reason := vm.ShutdownReason()
	werr := vm.Wait()
	u.off()
	// guest-reset: the guest rebooted itself; host-qmp-system-reset: someone pressed the
	// reset button (QMP system_reset), which -no-reboot also turns into an exit.
	if reason != "guest-reset" && reason != "host-qmp-system-reset" {
		u.opMu.Unlock()
		e := Exit{At: time.Now(), Reason: reason}
		u.mu.Lock()
		u.exits = append(u.exits, e)
		u.mu.Unlock()
		u.logf("%v: %v; last console lines:\n  %s", e, werr, strings.Join(vm.ConsoleTail(5), "\n  "))
		return
	}
	u.logf("the guest rebooted (%s): QEMU exited (-no-reboot); booting the unit in a new QEMU", reason)
	sctx, scancel := context.WithTimeout(ctx, u.bench.opts.BootTimeout)
	nvm, begin, err := u.start(sctx)
	scancel()
	u.opMu.Unlock()
	if err != nil {
		u.logf("reboot: %v", err)
		return
	}
	// Outside opMu: a power cut may land while the unit boots, as on a board.
	if err := u.awaitReady(ctx, nvm, begin); err != nil {
		u.logf("reboot: %v", err)
	}
}

func acceptCtx(ctx context.Context, ln net.Listener) (net.Conn, error) {
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-ctx.Done():
		ln.Close()
		if r := <-ch; r.c != nil {
			r.c.Close()
		}
		return nil, ctx.Err()
	}
}

// bringUp boots the unit from its factory state and provisions the owner.
func (u *unit) bringUp(ctx context.Context) error {
	u.opMu.Lock()
	defer u.opMu.Unlock()
	if err := u.boot(ctx); err != nil {
		return err
	}
	admin := profile.Credential{User: AdminUser, Pass: rand.Text()}
	if _, err := u.command(ctx, "provision "+admin.User+" "+admin.Pass); err != nil {
		return fmt.Errorf("emu: %s: provision: %w", u.name, err)
	}
	out, err := u.command(ctx, "pubkey")
	if err != nil {
		return fmt.Errorf("emu: %s: pubkey: %w", u.name, err)
	}
	var key struct {
		ID     string `json:"id"`
		PubKey string `json:"pubkey"`
	}
	if err := json.Unmarshal([]byte(out), &key); err != nil {
		return fmt.Errorf("emu: %s: pubkey: %q is not the expected JSON: %w", u.name, out, err)
	}
	u.mu.Lock()
	u.admin, u.id, u.pubkey = admin, key.ID, key.PubKey
	u.mu.Unlock()
	u.logf("provisioned (admin user %q), ID %s", admin.User, key.ID)
	if err := u.refreshKeystore(ctx); err != nil {
		return err
	}
	return nil
}

// command sends one console command and returns the result of an OK answer.
func (u *unit) command(ctx context.Context, line string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, u.bench.opts.CommandTimeout)
	defer cancel()
	vm := u.currentVM()
	if vm == nil {
		return "", errors.New("unit is off")
	}
	if err := vm.SendLine(ctx, line); err != nil {
		return "", err
	}
	got, err := vm.Expect(ctx, answerRE)
	if err != nil {
		return "", err
	}
	m := answerRE.FindStringSubmatch(got)
	if m[1] == "ERR" {
		return "", fmt.Errorf("%w: the device answered ERR %s", ErrProvision, m[2])
	}
	return m[2], nil
}

func (u *unit) currentVM() *qemu.VM {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.vm
}

// refreshKeystore copies the key store's files into KeystoreDir.
func (u *unit) refreshKeystore(ctx context.Context) error {
	u.mu.Lock()
	ctl := u.ctl
	u.mu.Unlock()
	if ctl == nil {
		return fmt.Errorf("emu: %s: key store: unit is off", u.name)
	}
	ctx, cancel := context.WithTimeout(ctx, u.bench.opts.CommandTimeout)
	defer cancel()
	files, err := ctl.keystore(ctx)
	if err != nil {
		return fmt.Errorf("emu: %w", err)
	}
	if err := mirror(u.ksDir, files); err != nil {
		return fmt.Errorf("emu: %s: key store copy: %w", u.name, err)
	}
	return nil
}

// off forgets the VM after it exited.
func (u *unit) off() {
	u.relay.attach(nil)
	u.mu.Lock()
	if u.ctl != nil {
		u.ctl.close()
	}
	u.vm, u.ctl = nil, nil
	u.mu.Unlock()
}

func (u *unit) powerCut(ctx context.Context) error {
	u.opMu.Lock()
	defer u.opMu.Unlock()
	vm := u.currentVM()
	if vm == nil {
		return nil
	}
	err := vm.PowerCut(ctx)
	u.off()
	if err != nil {
		return fmt.Errorf("emu: %s: %w", u.name, err)
	}
	u.logf("power cut")
	return nil
}

func (u *unit) shutdown(ctx context.Context) error {
	u.opMu.Lock()
	defer u.opMu.Unlock()
	vm := u.currentVM()
	if vm == nil {
		return nil
	}
	if err := u.refreshKeystore(ctx); err != nil {
		u.logf("warning: %v", err)
	}
	u.mu.Lock()
	ctl := u.ctl
	u.mu.Unlock()
	cctx, cancel := context.WithTimeout(ctx, u.bench.opts.CommandTimeout)
	defer cancel()
	if _, err := ctl.call(cctx, "halt"); err != nil {
		return fmt.Errorf("emu: %s: shut down: %w", u.name, err)
	}
	select {
	case <-vm.Exited():
	case <-cctx.Done():
		vm.Kill()
		u.off()
		return fmt.Errorf("emu: %s: shut down: QEMU did not exit after the guest halted: %w", u.name, cctx.Err())
	}
	err := vm.Wait()
	u.off()
	if err != nil {
		return fmt.Errorf("emu: %s: shut down: %w", u.name, err)
	}
	u.logf("shut down for a storage scan; disks unmounted cleanly")
	return nil
}

func (u *unit) restart(ctx context.Context) error {
	u.opMu.Lock()
	defer u.opMu.Unlock()
	if u.currentVM() != nil {
		return fmt.Errorf("emu: %s: restart: %w: cut its power or shut it down first", u.name, ErrRunning)
	}
	if err := u.boot(ctx); err != nil {
		return err
	}
	if err := u.refreshKeystore(ctx); err != nil {
		u.logf("warning: %v", err)
	}
	return nil
}

// close kills the unit's QEMU and removes what the bench made for it.
func (u *unit) close() error {
	// Kill first, without opMu: a boot in progress then ends at once.
	if vm := u.currentVM(); vm != nil {
		vm.Kill()
	}
	u.opMu.Lock()
	defer u.opMu.Unlock()
	if vm := u.currentVM(); vm != nil {
		vm.Kill()
	}
	if u.relay != nil {
		u.off()
		u.relay.close()
	}
	var errs []error
	if u.tap != nil {
		errs = append(errs, u.tap.Close(context.Background()))
	}
	if u.consoleLog != nil {
		errs = append(errs, u.consoleLog.Close())
	}
	if u.consoleLink != "" {
		if err := os.Remove(u.consoleLink); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
