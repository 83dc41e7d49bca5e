//go:build linux

package qemu_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/qemu"
	"github.com/hilt-project/hilt/fixtures/qemu/qemutest"
)

var (
	readyRE = regexp.MustCompile(`^refdev ready$`)
	// bootBudget bounds one boot to the ready line: about 4 s under TCG on an idle host,
	// several times that on a busy one.
	bootBudget = 90 * time.Second
)

// guest is one emulated stand-in device: its tap, disks and boot options.
type guest struct {
	tap  *qemu.Tap
	opts qemu.Options
}

// newGuest makes a tap, a data disk and a key store disk with a factory record, and the
// options to boot the stand-in device on them.
func newGuest(t *testing.T, c qemutest.Cache, initramfs, name string) *guest {
	t.Helper()
	ctx := context.Background()
	nets, err := qemu.FreeSubnets(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	tapName := fmt.Sprintf("hqt%d%s", os.Getpid()%100000, name)
	if len(tapName) > 15 {
		tapName = tapName[:15]
	}
	tap, err := qemu.CreateTap(ctx, tapName, nets[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tap.Close(context.Background()); err != nil {
			t.Errorf("remove tap: %v", err)
		}
	})
	dir := t.TempDir()
	ks := filepath.Join(dir, "ks")
	if err := os.Mkdir(ks, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ks, "factory.json"), []byte(`{"seed":"`+strings.Repeat("ab", 32)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	data, keys := filepath.Join(dir, "data.img"), filepath.Join(dir, "ks.img")
	if err := qemu.MakeExt4(ctx, data, 16, "hilt-data", ""); err != nil {
		t.Fatal(err)
	}
	if err := qemu.MakeExt4(ctx, keys, 4, "hilt-ks", ks); err != nil {
		t.Fatal(err)
	}
	return &guest{tap: tap, opts: qemu.Options{
		Name:      name,
		Kernel:    c.Kernel,
		Initramfs: initramfs,
		Append:    fmt.Sprintf("panic=-1 ipv6.disable=1 hilt.ip=%s hilt.gw=%s", tap.GuestPrefix(), tap.Host),
		Disks:     []string{data, keys},
		Tap:       tap.Name,
		Log:       testLog{t},
	}}
}

// start boots the guest and waits for the ready line; it returns the VM and the boot time.
func (g *guest) start(t *testing.T) (*qemu.VM, time.Duration, *strings.Builder) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootBudget)
	defer cancel()
	var transcript strings.Builder
	opts := g.opts
	opts.Console = &transcript
	vm, err := qemu.Start(ctx, opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(vm.Kill)
	t.Logf("reproduce with: %s", vm.CommandLine())
	begin := time.Now()
	if _, err := vm.Expect(ctx, readyRE); err != nil {
		t.Fatalf("boot: %v", err)
	}
	return vm, time.Since(begin), &transcript
}

// command sends a console command and returns the answer line, prompt removed.
func command(t *testing.T, vm *qemu.VM, line string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := vm.SendLine(ctx, line); err != nil {
		t.Fatal(err)
	}
	got, err := vm.Expect(ctx, regexp.MustCompile(`^(refdev> )*(OK|ERR) `))
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	for strings.HasPrefix(got, "refdev> ") {
		got = strings.TrimPrefix(got, "refdev> ")
	}
	return got
}

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestBoot(t *testing.T) {
	c := qemutest.Require(t)
	img := qemutest.Initramfs(t, c, qemutest.StandIn)
	g := newGuest(t, c, img, "b0")

	vm, boot, transcript := g.start(t)
	t.Logf("boot to ready: %v (accel %s)", boot.Round(time.Millisecond), vm.Accel())

	t.Run("console from the first kernel line", func(t *testing.T) {
		first, _, _ := strings.Cut(transcript.String(), "\n")
		if !regexp.MustCompile(`^\[ +0\.000000\] Linux version `).MatchString(first) {
			t.Errorf("first console line %q, want the kernel's first line: nothing before cont may be lost", first)
		}
		if !strings.HasPrefix(vm.PTY(), "/dev/pts/") {
			t.Errorf("PTY() = %q, want /dev/pts/N", vm.PTY())
		}
	})

	t.Run("guest reachable on its address", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", net.JoinHostPort(g.tap.Guest.String(), "8443"), 5*time.Second)
		if err != nil {
			t.Fatalf("connect to the guest's 8443 over %s: %v", g.tap.Name, err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "standin rd-") {
			t.Errorf("guest's 8443 said %q, %v; want the stand-in's greeting", line, err)
		}
	})

	t.Run("host reachable from the guest", func(t *testing.T) {
		ln, err := net.Listen("tcp", net.JoinHostPort(g.tap.Host.String(), "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() {
			if c, err := ln.Accept(); err == nil {
				c.Close()
			}
		}()
		if got := command(t, vm, "dial "+ln.Addr().String()); got != "OK {}" {
			t.Errorf("guest dialling %s: got %q, want OK {}", ln.Addr(), got)
		}
	})

	t.Run("QMP and the reset button", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), bootBudget)
		defer cancel()
		raw, err := vm.QMP(ctx, "query-status", nil)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			Running bool `json:"running"`
		}
		if err := json.Unmarshal(raw, &st); err != nil || !st.Running {
			t.Errorf("query-status: got %s, %v; want running", raw, err)
		}
		if err := vm.Reset(ctx); err != nil {
			t.Fatalf("reset: %v", err)
		}
		if _, err := vm.Expect(ctx, readyRE); err != nil {
			t.Fatalf("after reset: %v", err)
		}
		if got := command(t, vm, "boots"); got != `OK {"boots":2}` {
			t.Errorf("boots after reset: got %q, want 2", got)
		}
	})

	t.Run("guest reboot keeps QEMU and the pty", func(t *testing.T) {
		pty := vm.PTY()
		if got := command(t, vm, "reboot"); got != "OK {}" {
			t.Fatalf("reboot: got %q", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), bootBudget)
		defer cancel()
		begin := time.Now()
		if _, err := vm.Expect(ctx, regexp.MustCompile(`Linux version`)); err != nil {
			t.Fatalf("after reboot: %v", err)
		}
		if _, err := vm.Expect(ctx, readyRE); err != nil {
			t.Fatalf("after reboot: %v", err)
		}
		t.Logf("reboot to ready: %v", time.Since(begin).Round(time.Millisecond))
		if got := command(t, vm, "boots"); got != `OK {"boots":3}` {
			t.Errorf("boots after reboot: got %q, want 3", got)
		}
		if vm.PTY() != pty {
			t.Errorf("pty changed from %s to %s", pty, vm.PTY())
		}
	})

	t.Run("power cut mid-write, then boot", func(t *testing.T) {
		if got := command(t, vm, "stream"); got != "OK {}" {
			t.Fatalf("stream: got %q", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := vm.PowerCut(ctx); err != nil {
			t.Fatalf("power cut: %v", err)
		}
		if err := vm.Wait(); err != nil {
			t.Errorf("Wait after a power cut: %v, want nil", err)
		}
		if r := vm.ShutdownReason(); r != "host-qmp-quit" {
			t.Errorf("ShutdownReason after a power cut: got %q, want host-qmp-quit", r)
		}
		if _, err := vm.QMP(ctx, "query-status", nil); err == nil {
			t.Errorf("QMP after a power cut: no error")
		}
		vm2, boot, transcript := g.start(t)
		t.Logf("boot after power cut to ready: %v", boot.Round(time.Millisecond))
		if got := command(t, vm2, "boots"); got != `OK {"boots":4}` {
			t.Errorf("boots after power cut: got %q, want 4 (fsynced writes survive)", got)
		}
		// The data disk was mounted when the power went: its journal must be replayed.
		if !strings.Contains(transcript.String(), "EXT4-fs (vda): recovery complete") {
			t.Errorf("no ext4 journal recovery of the data disk on the console after the power cut")
		}
		vm2.Kill()
		if err := vm2.Wait(); !errors.Is(err, qemu.ErrExited) {
			t.Errorf("Wait after Kill: got %v, want ErrExited", err)
		}
		if r := vm2.ShutdownReason(); r != "" {
			t.Errorf("ShutdownReason after Kill: got %q, want none", r)
		}
	})

	t.Run("with NoReboot the guest's reboot ends QEMU", func(t *testing.T) {
		g.opts.NoReboot = true
		vm3, _, _ := g.start(t)
		if got := command(t, vm3, "reboot"); got != "OK {}" {
			t.Fatalf("reboot: got %q", got)
		}
		select {
		case <-vm3.Exited():
		case <-time.After(bootBudget):
			t.Fatal("QEMU still runs after the guest rebooted with -no-reboot")
		}
		if err := vm3.Wait(); err != nil {
			t.Errorf("Wait: %v, want nil", err)
		}
		if r := vm3.ShutdownReason(); r != "guest-reset" {
			t.Errorf("ShutdownReason: got %q, want guest-reset", r)
		}
	})
}

func TestFatalInitPowersOff(t *testing.T) {
	c := qemutest.Require(t)
	img := qemutest.Initramfs(t, c, qemutest.StandIn)
	g := newGuest(t, c, img, "f0")
	g.opts.Append = "panic=-1" // no hilt.ip: /init cannot configure the device
	ctx, cancel := context.WithTimeout(context.Background(), bootBudget)
	defer cancel()
	vm, err := qemu.Start(ctx, g.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Kill()
	_, err = vm.Expect(ctx, readyRE)
	var ce *qemu.ConsoleError
	if !errors.As(err, &ce) || !errors.Is(err, qemu.ErrExited) {
		t.Fatalf("Expect: got %v, want a *ConsoleError saying QEMU exited", err)
	}
	if !strings.Contains(err.Error(), "hilt-init: FATAL: kernel command line: no hilt.ip") || !strings.Contains(err.Error(), "qemu f0") {
		t.Errorf("error %q: want it to name f0 and show init's FATAL line", err)
	}
	if err := vm.Wait(); err != nil {
		t.Errorf("Wait: %v, want nil (the guest powered off)", err)
	}
	if r := vm.ShutdownReason(); r != "guest-shutdown" {
		t.Errorf("ShutdownReason: got %q, want guest-shutdown", r)
	}
}
