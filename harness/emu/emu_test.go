//go:build linux

package emu

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/qemu"
	"github.com/hilt-project/hilt/drivers/serial"
	"github.com/hilt-project/hilt/fixtures/qemu/qemutest"
	"github.com/hilt-project/hilt/harness/broker"
	"github.com/hilt-project/hilt/harness/pki"
	"github.com/hilt-project/hilt/harness/profile"
)

type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// embeddedBroker is a BrokerFunc starting harness/broker with a certificate for every host
// address and one account per unit.
func embeddedBroker(t *testing.T, brk **broker.Broker) BrokerFunc {
	return func(ctx context.Context, links []Link) ([]BrokerInfo, error) {
		ca, err := pki.NewCA("hilt emu test CA (TEST ONLY)")
		if err != nil {
			return nil, err
		}
		hosts := []string{"127.0.0.1"}
		for _, l := range links {
			hosts = append(hosts, l.Host.String())
		}
		leaf, err := ca.IssueServer(hosts)
		if err != nil {
			return nil, err
		}
		cert, err := leaf.TLSCertificate()
		if err != nil {
			return nil, err
		}
		var accounts []broker.Account
		for _, l := range links {
			accounts = append(accounts, broker.Account{Username: "emu-" + l.Unit, Password: rand.Text()})
		}
		b, err := broker.Start(ctx, broker.Options{
			Certificate: cert,
			Harness:     broker.Account{Username: broker.HarnessUsername, Password: rand.Text()},
			Devices:     accounts,
		})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { b.Close() })
		*brk = b
		infos := make([]BrokerInfo, len(links))
		for i, l := range links {
			infos[i] = BrokerInfo{
				TLSAddr:   net.JoinHostPort(l.Host.String(), strconv.Itoa(b.TLSAddr().Port)),
				PlainAddr: net.JoinHostPort(l.Host.String(), strconv.Itoa(b.PlainAddr().Port)),
				CAPEM:     string(ca.CertPEM()),
				Username:  accounts[i].Username,
				Password:  accounts[i].Password,
			}
		}
		return infos, nil
	}
}

// TestBench boots two reference devices, checks what the profile says about them, and
// power-cycles one while the harness keeps its console open.
func TestBench(t *testing.T) {
	c := qemutest.Require(t)
	img := qemutest.Initramfs(t, c, qemutest.Refdev)
	var brk *broker.Broker
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	begin := time.Now()
	b, err := Start(ctx, Options{
		Instances: 2,
		Kernel:    c.Kernel,
		Initramfs: img,
		Broker:    embeddedBroker(t, &brk),
		Profile:   &profile.Profile{Model: "refdev", DeclarationsFile: "../declarations/refdev.yaml"},
		Log:       testLog{t},
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	t.Logf("bench up in %v", time.Since(begin).Round(time.Millisecond))
	units := b.Units()
	for _, u := range units {
		t.Logf("%s: boot to ready %v; reproduce with: %s", u.Name, u.FirstBoot.Round(time.Millisecond), u.CommandLine)
	}

	t.Run("identity differs between units of one image", func(t *testing.T) {
		idRE := regexp.MustCompile(`^rd-[0-9a-f]{16}$`)
		for _, u := range units {
			if !idRE.MatchString(u.ID) {
				t.Errorf("%s: ID %q, want rd- and 16 hex digits", u.Name, u.ID)
			}
		}
		if units[0].ID == units[1].ID || units[0].PubKey == units[1].PubKey {
			t.Errorf("units share identity: %s/%s and %s/%s", units[0].ID, units[0].PubKey, units[1].ID, units[1].PubKey)
		}
	})

	t.Run("profile", func(t *testing.T) {
		p := b.Profile()
		if p.Backend != profile.BackendQEMU || p.Model != "refdev" || len(p.Instances) != 2 {
			t.Fatalf("profile: backend %q model %q, %d instances; want qemu, refdev, 2", p.Backend, p.Model, len(p.Instances))
		}
		for i, in := range p.Instances {
			u := units[i]
			checks := []struct{ field, got, want string }{
				{"serial.port", in.Serial.Port, u.Console},
				{"address", in.Address, u.Guest.String()},
				{"harness_address", in.HarnessAddress, u.Host.String()},
				{"capture_interface", in.CaptureInterface, u.Tap},
				{"storage.disk_image", in.Storage.DiskImage, u.DataImage},
				{"storage.keystore_dir", in.Storage.KeystoreDir, u.KeystoreDir},
				{"label.file", in.Label.File, filepath.Join(u.KeystoreDir, "label.txt")},
				{"admin.user", in.Admin.User, AdminUser},
				{"mqtt.user", in.MQTT.User, "emu-" + u.Name},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s: %s = %q, want %q", in.Name, c.field, c.got, c.want)
				}
			}
			if len(in.Admin.Pass) < 10 {
				t.Errorf("%s: admin password %q: want 10 characters or more", in.Name, in.Admin.Pass)
			}
			label, err := os.ReadFile(in.Label.File)
			if err != nil || !strings.Contains(string(label), "S/N: "+u.ID) {
				t.Errorf("%s: label %q, %v; want the unit's ID on it", in.Name, label, err)
			}
			for _, f := range []string{"factory.json", "datakey"} {
				if _, err := os.Stat(filepath.Join(in.Storage.KeystoreDir, f)); err != nil {
					t.Errorf("%s: key store copy: %v", in.Name, err)
				}
			}
		}
	})

	t.Run("units reach the broker and are reachable", func(t *testing.T) {
		for _, u := range units {
			wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
			if _, err := brk.WaitConnect(wctx, u.MQTT.User, u.Guest); err != nil {
				t.Errorf("%s: broker: %v", u.Name, err)
			}
			wcancel()
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(u.Guest.String(), "8443"), 5*time.Second)
			if err != nil {
				t.Errorf("%s: mgmt port over %s: %v", u.Name, u.Tap, err)
				continue
			}
			conn.Close()
		}
	})

	u := units[0]
	port, err := serial.Open(ctx, u.Console)
	if err != nil {
		t.Fatalf("open %s's console %s: %v", u.Name, u.Console, err)
	}
	defer port.Close()
	ask := func(t *testing.T, line string) string {
		t.Helper()
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		defer acancel()
		if err := port.Send(actx, line); err != nil {
			t.Fatal(err)
		}
		m, err := port.Expect(actx, serial.Regex(`(?m)^(?:refdev> )*((?:OK|ERR) [^\r\n]*)\r?\n`))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return strings.TrimSpace(m.Groups[1])
	}
	awaitReady := func(t *testing.T) {
		t.Helper()
		actx, acancel := context.WithTimeout(ctx, DefaultBootTimeout)
		defer acancel()
		if _, err := port.Expect(actx, serial.Regex(`(?m)^refdev ready\r?\n`)); err != nil {
			t.Fatalf("the harness's console saw no ready line: %v", err)
		}
	}

	t.Run("console relay carries a power cut and the boot after it", func(t *testing.T) {
		if got := ask(t, "login "+u.Admin.User+" "+u.Admin.Pass); !strings.HasPrefix(got, "OK ") {
			t.Fatalf("login: %s", got)
		}
		// Cut the power while the device writes its settings.
		if err := port.Send(ctx, "config.set telemetry_interval 17"); err != nil {
			t.Fatal(err)
		}
		if err := b.PowerCut(ctx, u.Name); err != nil {
			t.Fatalf("power cut: %v", err)
		}
		if got, _ := b.Unit(u.Name); got.Running {
			t.Errorf("after the power cut the unit still runs")
		}
		if err := b.Restart(ctx, u.Name); err != nil {
			t.Fatalf("restart: %v", err)
		}
		awaitReady(t)
		got, _ := b.Unit(u.Name)
		t.Logf("boot to ready after the power cut: %v", got.LastBoot.Round(time.Millisecond))
		if a := ask(t, "ping"); !strings.HasPrefix(a, `OK {"pong":true`) {
			t.Errorf("ping after the power cut: %s", a)
		}
		if err := b.Restart(ctx, u.Name); !errors.Is(err, ErrRunning) {
			t.Errorf("restart of a running unit: got %v, want ErrRunning", err)
		}
	})

	t.Run("shutdown for a scan leaves a clean disk", func(t *testing.T) {
		if err := b.ShutdownForScan(ctx, u.Name); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		out, err := exec.Command("e2fsck", "-fn", u.DataImage).CombinedOutput()
		if err != nil {
			t.Errorf("e2fsck -fn %s: %v\n%s", u.DataImage, err, out)
		}
		raw, err := os.ReadFile(u.DataImage)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte(u.Admin.Pass)) {
			t.Errorf("the admin password is on %s in the clear", u.DataImage)
		}
		if err := b.Restart(ctx, u.Name); err != nil {
			t.Fatalf("restart: %v", err)
		}
		awaitReady(t)
		if a := ask(t, "id"); a != `OK {"id":"`+u.ID+`"}` {
			t.Errorf("id after the scan: %s, want %s", a, u.ID)
		}
	})

	t.Run("a QEMU killed from outside is recorded, the harness's own exits are not", func(t *testing.T) {
		if got, _ := b.Unit(u.Name); len(got.Exits) > 0 {
			t.Errorf("%s: exits %v after a power cut and a scan, which the harness made", u.Name, got.Exits)
		}
		other := units[1].Name
		ou, err := b.unit(other)
		if err != nil {
			t.Fatal(err)
		}
		ou.currentVM().Kill() // SIGKILL, as an OOM killer or a person would
		deadline := time.Now().Add(10 * time.Second)
		got, _ := b.Unit(other)
		for len(got.Exits) == 0 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond) // the watcher records the exit; bounded by deadline
			got, _ = b.Unit(other)
		}
		if len(got.Exits) != 1 || !got.Exits[0].Killed() || got.Running {
			t.Fatalf("%s after its QEMU was killed: exits %v, running %v; want one exit, killed, and the unit off", other, got.Exits, got.Running)
		}
		if s := got.Exits[0].String(); !strings.Contains(s, "killed or crashed") {
			t.Errorf("exit reads %q, want it to say killed or crashed", s)
		}
	})

	t.Run("close removes everything", func(t *testing.T) {
		dir := b.Dir()
		if err := b.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Errorf("second close: %v", err)
		}
		for _, u := range units {
			if _, err := os.Stat(filepath.Join("/sys/class/net", u.Tap)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("tap %s still there after close", u.Tap)
			}
		}
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("run folder %s still there after close", dir)
		}
	})
}

func TestStartBadOptions(t *testing.T) {
	dir := t.TempDir()
	k := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(k, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want error
	}{
		{"duplicate names", Options{Names: []string{"a", "a"}, Kernel: k, Initramfs: k}, ErrBadOptions},
		{"too many", Options{Instances: 65, Kernel: k, Initramfs: k}, ErrBadOptions},
		{"bad flaw", Options{Flaws: []string{"a,b"}, Kernel: k, Initramfs: k}, ErrBadOptions},
		{"no kernel", Options{Kernel: filepath.Join(dir, "none"), Initramfs: k}, qemu.ErrNoKernel},
		{"no initramfs", Options{Kernel: k, Initramfs: filepath.Join(dir, "none")}, qemu.ErrNoInitramfs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Start(context.Background(), tc.opts)
			if b != nil || !errors.Is(err, tc.want) {
				t.Errorf("Start: got %v, %v; want nil and %v", b, err, tc.want)
			}
		})
	}
}

// The static profile loads, and its units are what the bench starts.
func TestStaticProfile(t *testing.T) {
	p, err := profile.Load(filepath.Join("..", "..", "fixtures", "devices", "qemu.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Backend != profile.BackendQEMU || len(p.Instances) != 2 || p.QEMU == nil {
		t.Fatalf("qemu.yaml: backend %q, %d instances, qemu %v; want qemu, 2, set", p.Backend, len(p.Instances), p.QEMU)
	}
	for _, kind := range []string{"wipe", "version_bump", "power_cut"} {
		if !p.Allowed(kind) {
			t.Errorf("destructive %s is off, want on", kind)
		}
	}
	if got, want := p.Resolve(p.QEMU.Kernel), filepath.Join("..", "..", ".cache", "qemu", "vmlinuz"); got != want {
		t.Errorf("kernel resolves to %s, want %s", got, want)
	}
	o := Options{Profile: p, Kernel: p.Path, Initramfs: p.Path}
	if err := o.fill(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"dev1", "dev2"}; !slices.Equal(o.Names, want) {
		t.Errorf("units: got %v, want %v from the profile", o.Names, want)
	}
	if o.MemoryMB != 256 {
		t.Errorf("memory: got %d MB, want the profile's 256", o.MemoryMB)
	}
}
