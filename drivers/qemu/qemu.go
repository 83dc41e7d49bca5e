package qemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hilt-project/hilt/internal/rundir"
)

// Binary is the QEMU system emulator the package runs.
const Binary = "qemu-system-x86_64"

// DefaultMemoryMB is the guest's memory when Options.MemoryMB is 0.
const DefaultMemoryMB = 256

// Options say what to boot and how.
type Options struct {
	// Name names the VM in logs and errors (a device instance name).
	Name string
	// Kernel and Initramfs are the boot images (.cache/qemu/vmlinuz and
	// .cache/qemu/initramfs.cpio.gz after `make qemu-image`).
	Kernel, Initramfs string
	// Append is added to the kernel command line after "console=ttyS0,115200".
	Append string
	// MemoryMB is the guest's memory; 0 means DefaultMemoryMB.
	MemoryMB int
	// Disks are raw disk images, attached as virtio-blk disks in order (/dev/vda, /dev/vdb,
	// ...) with cache=writeback.
	Disks []string
	// Tap is an existing tap device (see CreateTap) for the guest's virtio-net card; empty
	// means no network card.
	Tap string
	// MAC is the card's address; empty means a random locally administered one.
	MAC string
	// ExtraArgs are appended to QEMU's command line as they are.
	ExtraArgs []string
	// Log receives the exact QEMU command line, QEMU's own output and monitor events.
	Log io.Writer
	// Console receives every byte the guest prints on its serial console while the VM reads
	// it (until ReleaseConsole).
	Console io.Writer
	// Binary is the emulator to run; empty means qemu-system-x86_64 from PATH.
	Binary string
	// NoReboot makes QEMU exit when the guest reboots (-no-reboot) instead of resetting the
	// machine in the same process; ShutdownReason then says "guest-reset".
	NoReboot bool
}

// VM is a running QEMU process.
type VM struct {
	name    string
	args    []string // argv, the binary first
	accel   string
	log     io.Writer
	runDir  string
	cmd     *exec.Cmd
	output  *tailWriter
	qmp     *qmpClient
	pty     string
	con     *console
	exited  chan struct{}
	waitErr error // from cmd.Wait, valid once exited is closed
	cleanup sync.Once

	mu       sync.Mutex // guards shutdown
	shutdown string     // the reason of QEMU's last SHUTDOWN event
}

// Start checks opts, starts QEMU paused, connects to its monitor, opens the serial console
// and lets the guest run. ctx bounds the start-up only; the VM runs until it powers off,
// PowerCut or Kill. On error nothing is left running.
func Start(ctx context.Context, opts Options) (*VM, error) {
	if opts.Name == "" {
		opts.Name = "vm"
	}
	bin := opts.Binary
	if bin == "" {
		bin = Binary
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("qemu %s: %w", opts.Name, ErrNoQEMU)
	}
	if err := opts.checkFiles(); err != nil {
		return nil, err
	}
	if opts.MAC == "" {
		opts.MAC = RandomMAC()
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	// The monitor socket's path must fit in sun_path (108 bytes): a short directory of its own.
	runDir, err := rundir.New(rundir.QEMUVM)
	if err != nil {
		return nil, fmt.Errorf("qemu %s: %w", opts.Name, err)
	}
	sock := filepath.Join(runDir, "qmp.sock")
	// QEMU connects to the monitor socket as a client at start-up: no waiting for a socket
	// file to appear.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(runDir)
		return nil, fmt.Errorf("qemu %s: monitor socket: %w", opts.Name, err)
	}
	defer ln.Close()

	accel := Accel()
	args := append([]string{path}, opts.commandLine(accel, sock)...)
	vm := &VM{
		name:   opts.Name,
		args:   args,
		accel:  accel,
		log:    opts.Log,
		runDir: runDir,
		output: newTailWriter(opts.Log, "qemu "+opts.Name+": "),
		exited: make(chan struct{}),
	}
	vm.logf("%s", vm.CommandLine())

	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = vm.output, vm.output
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		os.RemoveAll(runDir)
		return nil, fmt.Errorf("qemu %s: start %s: %w", opts.Name, path, err)
	}
	vm.cmd = cmd
	go func() {
		vm.waitErr = cmd.Wait()
		close(vm.exited)
		ln.Close()
	}()

	if err := vm.boot(ctx, ln, opts.Console); err != nil {
		vm.Kill()
		return nil, err
	}
	return vm, nil
}

// boot connects the monitor, opens the console and starts the guest.
func (vm *VM) boot(ctx context.Context, ln net.Listener, transcript io.Writer) error {
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	var conn net.Conn
	select {
	case a := <-ch:
		if a.err != nil {
			return vm.startError("connect to the monitor", a.err)
		}
		conn = a.c
	case <-ctx.Done():
		return vm.startError("connect to the monitor", ctx.Err())
	}
	q, err := newQMP(ctx, vm.name, conn, vm.event)
	if err != nil {
		conn.Close()
		return vm.startError("QMP", err)
	}
	vm.qmp = q

	pty, err := vm.findPTY(ctx)
	if err != nil {
		return vm.startError("find the console pty", err)
	}
	vm.pty = pty
	con, err := openConsole(vm.name, pty, transcript)
	if err != nil {
		return vm.startError("console", err)
	}
	vm.con = con
	if _, err := vm.qmp.execute(ctx, "cont", nil); err != nil {
		return vm.startError("start the guest", err)
	}
	vm.logf("guest running (accel %s), console on %s", vm.accel, pty)
	return nil
}

// startError names what failed during start-up and, when QEMU died, shows its output.
func (vm *VM) startError(step string, err error) error {
	select {
	case <-vm.exited:
		return fmt.Errorf("qemu %s: %s: %w", vm.name, step, vm.exitError())
	default:
		return fmt.Errorf("qemu %s: %s: %w%s", vm.name, step, err, formatTail("QEMU output", vm.output.tail()))
	}
}

var ptyRE = regexp.MustCompile(`^pty:(/dev/pts/\d+)$`)

func (vm *VM) findPTY(ctx context.Context) (string, error) {
	raw, err := vm.qmp.execute(ctx, "query-chardev", nil)
	if err != nil {
		return "", err
	}
	var devs []struct {
		Label    string `json:"label"`
		Filename string `json:"filename"`
	}
	if err := json.Unmarshal(raw, &devs); err != nil {
		return "", fmt.Errorf("query-chardev: %w", err)
	}
	for _, d := range devs {
		if d.Label == "serial0" {
			if m := ptyRE.FindStringSubmatch(d.Filename); m != nil {
				return m[1], nil
			}
			return "", fmt.Errorf("serial0 is %q, not a pty", d.Filename)
		}
	}
	return "", errors.New("QEMU reports no serial0")
}

func (vm *VM) event(name string, data json.RawMessage) {
	if name == "SHUTDOWN" {
		var ev struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(data, &ev) == nil {
			vm.mu.Lock()
			vm.shutdown = ev.Reason
			vm.mu.Unlock()
		}
	}
	if len(data) > 0 {
		vm.logf("event %s %s", name, data)
	} else {
		vm.logf("event %s", name)
	}
}

func (vm *VM) logf(format string, a ...any) {
	if vm.log != nil {
		fmt.Fprintf(vm.log, "qemu %s: %s\n", vm.name, fmt.Sprintf(format, a...))
	}
}

// Name is the VM's name.
func (vm *VM) Name() string { return vm.name }

// PTY is the host end of the guest's serial console (/dev/pts/N).
func (vm *VM) PTY() string { return vm.pty }

// Accel is the accelerator the VM runs on: "kvm" or "tcg".
func (vm *VM) Accel() string { return vm.accel }

// CommandLine is QEMU's command line, quoted for a shell, to reproduce the VM by hand. The
// monitor socket in it belongs to this run: drop -qmp and -S to boot by hand.
func (vm *VM) CommandLine() string { return ShellQuote(vm.args) }

// Args is QEMU's argv, the binary first.
func (vm *VM) Args() []string { return append([]string(nil), vm.args...) }

// Expect waits until the guest prints a console line that matches re and returns it. Lines
// are consumed: the next Expect looks only at lines after the match. When ctx ends or QEMU
// exits first, the *ConsoleError shows the last console lines.
func (vm *VM) Expect(ctx context.Context, re *regexp.Regexp) (string, error) {
	return vm.con.expect(ctx, re, func() error {
		// The console closes when QEMU closes its end of the pty, just before it exits.
		select {
		case <-vm.exited:
			return vm.exitError()
		case <-time.After(5 * time.Second):
			return nil
		}
	})
}

// SendLine writes line and a newline to the guest's console.
func (vm *VM) SendLine(ctx context.Context, line string) error { return vm.con.send(ctx, line) }

// WriteConsole writes p to the guest's console as it is, for a program that relays the
// console (typed keys, a terminal).
func (vm *VM) WriteConsole(ctx context.Context, p []byte) error { return vm.con.write(ctx, p) }

// ConsoleTail returns the last n lines the guest printed while the VM read the console.
func (vm *VM) ConsoleTail(n int) []string { return vm.con.tail(n) }

// ReleaseConsole stops reading the console and closes the VM's end of the pty, so that
// another program can open PTY(). While no program has the pty open, QEMU drops what the
// guest prints, as a UART with nothing attached would.
func (vm *VM) ReleaseConsole() { vm.con.release() }

// QMP runs one monitor command (https://www.qemu.org/docs/master/interop/qemu-qmp-ref.html)
// with args (nil for none) and returns its result.
func (vm *VM) QMP(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	return vm.qmp.execute(ctx, cmd, args)
}

// Reset presses the reset button: the guest reboots at once, losing its RAM; QEMU and the
// console pty stay. Under NoReboot QEMU exits instead (ShutdownReason
// "host-qmp-system-reset").
func (vm *VM) Reset(ctx context.Context) error {
	_, err := vm.QMP(ctx, "system_reset", nil)
	return err
}

// PowerCut cuts the power: QEMU quits at once, the guest's RAM and every write it had not
// yet handed to its disks are lost. It returns when QEMU has exited; when ctx ends first,
// QEMU is killed.
func (vm *VM) PowerCut(ctx context.Context) error {
	_, err := vm.QMP(ctx, "quit", nil)
	if err != nil && !errors.Is(err, errQMPClosed) {
		vm.Kill()
		return err
	}
	select {
	case <-vm.exited:
		vm.release()
		return nil
	case <-ctx.Done():
		vm.Kill()
		return fmt.Errorf("qemu %s: power cut: QEMU did not exit: %w", vm.name, ctx.Err())
	}
}

// ShutdownReason is the reason QEMU gave in its last SHUTDOWN event (QMP's ShutdownCause:
// "guest-reset" when the guest rebooted under NoReboot, "guest-shutdown" when it powered
// off, "host-qmp-quit" after PowerCut), or "" when there was none (QEMU killed or crashed).
func (vm *VM) ShutdownReason() string {
	select {
	case <-vm.exited:
		vm.release()
	default:
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.shutdown
}

// Exited is closed when QEMU has exited.
func (vm *VM) Exited() <-chan struct{} { return vm.exited }

// Wait waits for QEMU to exit. It returns nil when QEMU exited with status 0 (the guest
// powered off, or PowerCut); otherwise an *ExitError.
func (vm *VM) Wait() error {
	<-vm.exited
	vm.release()
	if vm.waitErr == nil {
		return nil
	}
	return vm.exitError()
}

// Kill kills QEMU (if it still runs), waits for it, and frees the console and the monitor.
// It is safe to call more than once.
func (vm *VM) Kill() {
	select {
	case <-vm.exited:
	default:
		_ = vm.cmd.Process.Kill()
		<-vm.exited
	}
	vm.release()
}

func (vm *VM) release() {
	vm.cleanup.Do(func() {
		if vm.con != nil {
			vm.con.release()
		}
		if vm.qmp != nil {
			// QEMU has exited: let the monitor's reader take the events QEMU sent last
			// (SHUTDOWN and its reason) before the connection is closed under it.
			select {
			case <-vm.qmp.done:
			case <-time.After(time.Second):
			}
			vm.qmp.close()
		}
		os.RemoveAll(vm.runDir)
	})
}

// exitError describes how QEMU exited; only valid once exited is closed.
func (vm *VM) exitError() error {
	var con []string
	if vm.con != nil {
		con = vm.con.tail(tailLines)
	}
	return &ExitError{VM: vm.name, Err: vm.waitErr, Output: vm.output.tail(), Console: con}
}

// checkFiles reports missing boot images and disks.
func (o *Options) checkFiles() error {
	if o.Kernel == "" {
		return fmt.Errorf("qemu %s: %w: no kernel given; %s", o.Name, ErrNoKernel, buildHint)
	}
	if _, err := os.Stat(o.Kernel); err != nil {
		return fmt.Errorf("qemu %s: %w: %s; %s", o.Name, ErrNoKernel, o.Kernel, buildHint)
	}
	if o.Initramfs == "" {
		return fmt.Errorf("qemu %s: %w: no initramfs given; %s", o.Name, ErrNoInitramfs, buildHint)
	}
	if _, err := os.Stat(o.Initramfs); err != nil {
		return fmt.Errorf("qemu %s: %w: %s; %s", o.Name, ErrNoInitramfs, o.Initramfs, buildHint)
	}
	for _, d := range o.Disks {
		if _, err := os.Stat(d); err != nil {
			return fmt.Errorf("qemu %s: disk: %w", o.Name, err)
		}
	}
	return nil
}

// commandLine is QEMU's arguments (without the binary) for accel ("kvm" or "tcg") and the
// monitor socket qmpSock.
func (o *Options) commandLine(accel, qmpSock string) []string {
	mem := o.MemoryMB
	if mem == 0 {
		mem = DefaultMemoryMB
	}
	cpu := "max"
	if accel == "kvm" {
		cpu = "host"
	}
	appendLine := "console=ttyS0,115200"
	if a := strings.TrimSpace(o.Append); a != "" {
		appendLine += " " + a
	}
	args := []string{
		"-name", "guest=" + escapeOpt(o.Name),
		"-machine", "q35", "-accel", accel, "-cpu", cpu, "-smp", "1", "-m", fmt.Sprint(mem),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-kernel", o.Kernel, "-initrd", o.Initramfs, "-append", appendLine,
		"-serial", "pty",
		"-qmp", "unix:" + qmpSock,
		"-S",
	}
	if o.NoReboot {
		args = append(args, "-no-reboot")
	}
	for i, d := range o.Disks {
		id := fmt.Sprintf("disk%d", i)
		args = append(args,
			"-drive", "file="+escapeOpt(d)+",format=raw,if=none,id="+id+",cache=writeback",
			"-device", "virtio-blk-pci,drive="+id)
	}
	if o.Tap != "" {
		args = append(args,
			"-netdev", "tap,id=net0,ifname="+o.Tap+",script=no,downscript=no",
			// No option ROM: the kernel is loaded directly, iPXE would only cost boot time.
			"-device", "virtio-net-pci,netdev=net0,mac="+o.MAC+",romfile=")
	}
	return append(args, o.ExtraArgs...)
}

// escapeOpt doubles commas, QEMU's escape inside an option value.
func escapeOpt(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// Accel is the accelerator this host offers: "kvm" or "tcg" (HostAccel says why).
func Accel() string {
	a, _ := HostAccel()
	return a
}

// HostAccel returns the accelerator this host offers, and when it is "tcg", why not KVM.
// KVM needs /dev/kvm to open and hardware virtualization behind it: the kvm_intel or
// kvm_amd module live, and the CPU's vmx or svm flag. A /dev/kvm without them is not
// enough: kvm_pvm, for one, serves a host without VMX, but only guests whose kernel is
// built for it, and QEMU with a stock guest kernel aborts on it ("failed to set MSR") or
// hangs before the first console line.
func HostAccel() (accel, why string) {
	return hostAccel("/dev/kvm", "/sys/module", "/proc/cpuinfo")
}

// hostAccel is HostAccel with the device, the kernel's module folder and the CPU
// description as arguments.
func hostAccel(dev, modules, cpuinfo string) (accel, why string) {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return "tcg", err.Error()
	}
	f.Close()
	// Both vendor modules can be there (built in, each has a folder); either one that
	// is live on a CPU with its flag will do.
	var not []string
	for _, v := range []struct{ module, flag string }{{"kvm_intel", "vmx"}, {"kvm_amd", "svm"}} {
		dir := filepath.Join(modules, v.module)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			not = append(not, fmt.Sprintf("%s: %v", v.module, err))
			continue
		}
		// initstate exists for a loadable module only: "live" once it is loaded.
		st, err := os.ReadFile(filepath.Join(dir, "initstate"))
		switch {
		case err == nil && strings.TrimSpace(string(st)) != "live":
			not = append(not, fmt.Sprintf("%s is %s, not live", v.module, strings.TrimSpace(string(st))))
			continue
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			not = append(not, fmt.Sprintf("%s: %v", v.module, err))
			continue
		}
		has, err := cpuFlag(cpuinfo, v.flag)
		switch {
		case err != nil:
			not = append(not, fmt.Sprintf("%s: %v", v.module, err))
		case !has:
			not = append(not, fmt.Sprintf("%s is present but %s shows no %s flag", v.module, cpuinfo, v.flag))
		default:
			return "kvm", ""
		}
	}
	if len(not) > 0 {
		return "tcg", strings.Join(not, "; ") + ": no hardware virtualization for KVM"
	}
	var others []string
	if ms, err := filepath.Glob(filepath.Join(modules, "kvm_*")); err == nil {
		for _, m := range ms {
			others = append(others, filepath.Base(m))
		}
	}
	loaded := "no KVM vendor module loaded"
	if len(others) > 0 {
		loaded = strings.Join(others, ", ") + " loaded"
	}
	return "tcg", fmt.Sprintf("%s is not hardware KVM (%s, neither kvm_intel nor kvm_amd): a stock guest kernel does not run on it", dev, loaded)
}

// cpuFlag reports whether the CPU description cpuinfo (/proc/cpuinfo) lists flag.
func cpuFlag(cpuinfo, flag string) (bool, error) {
	b, err := os.ReadFile(cpuinfo)
	if err != nil {
		return false, fmt.Errorf("read the CPU flags: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		name, value, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "flags" {
			continue
		}
		return slices.Contains(strings.Fields(value), flag), nil
	}
	return false, fmt.Errorf("read the CPU flags: no flags line in %s", cpuinfo)
}

// RandomMAC returns a random unicast, locally administered MAC address in QEMU's 52:54:00
// range.
func RandomMAC() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}

// ShellQuote joins args into one line a POSIX shell reads back as the same words.
func ShellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=+:,./@%") == "" {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// tailWriter forwards QEMU's output line by line to a log and keeps the last lines.
type tailWriter struct {
	mu      sync.Mutex
	log     io.Writer
	prefix  string
	partial []byte
	lines   []string
}

func newTailWriter(log io.Writer, prefix string) *tailWriter {
	return &tailWriter{log: log, prefix: prefix}
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(t.partial[:i]), "\r")
		t.partial = t.partial[i+1:]
		if line == "" {
			continue
		}
		if t.log != nil {
			fmt.Fprintf(t.log, "%s%s\n", t.prefix, line)
		}
		t.lines = append(t.lines, line)
		if len(t.lines) > tailLines {
			t.lines = t.lines[1:]
		}
	}
	return len(p), nil
}

func (t *tailWriter) tail() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := append([]string(nil), t.lines...)
	if len(t.partial) > 0 {
		lines = append(lines, string(t.partial))
	}
	return lines
}

// startTimeout bounds Start when the caller's context allows longer: QEMU connects to its
// monitor and answers within a second on an idle host.
const startTimeout = 30 * time.Second
