package sim

import (
	"bufio"
	"bytes"
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
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.bug.st/serial"

	"github.com/hilt-project/hilt/harness/broker"
	"github.com/hilt-project/hilt/harness/netns"
	"github.com/hilt-project/hilt/harness/pki"
	"github.com/hilt-project/hilt/harness/profile"
)

// fakeDev is the fake device binary, built once by TestMain.
var fakeDev string

// helperEnv makes the test binary run a bench in a child process (for the stale-run test).
const helperEnv = "HILT_SIM_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "bench" {
		benchHelper()
		return
	}
	if fakeDev = os.Getenv("HILT_SIM_FAKEDEV"); fakeDev != "" {
		// A prebuilt fake device (for running the tests as another user).
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "hilt-sim-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fakeDev = filepath.Join(dir, "fakedev")
	out, err := exec.Command("go", "build", "-o", fakeDev, "./internal/fakedev").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build the fake device: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// benchHelper starts a bench, prints its run ID and device PIDs as JSON, and waits to be
// killed.
func benchHelper() {
	b, err := Start(context.Background(), Options{Devices: 2, Exe: os.Getenv("FAKEDEV")})
	if err != nil {
		fmt.Println(`{"error":` + strconv.Quote(err.Error()) + `}`)
		os.Exit(1)
	}
	var out struct {
		RunID string `json:"run_id"`
		PIDs  []int  `json:"pids"`
		NS    []string
		Dir   string `json:"dir"`
	}
	out.RunID, out.Dir = b.net.RunID(), b.Dir()
	for _, d := range b.Devices() {
		out.PIDs = append(out.PIDs, d.PID)
		out.NS = append(out.NS, d.Namespace)
	}
	json.NewEncoder(os.Stdout).Encode(out)
	select {}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make network namespaces (run: sudo go test ./harness/sim/...)")
	}
}

// logWriter sends the bench's progress to the test log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func startBench(t *testing.T, opts Options) *Bench {
	t.Helper()
	if opts.Exe == "" {
		opts.Exe = fakeDev
	}
	if opts.Log == nil {
		opts.Log = logWriter{t}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t0 := time.Now()
	b, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("bench of %d device(s) up in %v", len(b.Devices()), time.Since(t0))
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// openTCPPorts scans every TCP port of addr and returns the open ones.
func openTCPPorts(t *testing.T, addr netip.Addr) []int {
	t.Helper()
	var mu sync.Mutex
	var open []int
	ports := make(chan int)
	var wg sync.WaitGroup
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range ports {
				c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(p)).String(), 2*time.Second)
				if err == nil {
					c.Close()
					mu.Lock()
					open = append(open, p)
					mu.Unlock()
				}
			}
		}()
	}
	for p := 1; p <= 65535; p++ {
		ports <- p
	}
	close(ports)
	wg.Wait()
	sort.Ints(open)
	return open
}

func namespaceSet(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	m := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			m[f[0]] = true
		}
	}
	return m
}

// alive says whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(s[i+1:], " Z")
}

// fakeChildren returns the PIDs of this process's children that run the fake device.
func fakeChildren(t *testing.T) []int {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		f := strings.Fields(s[i+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(os.Getpid()) && strings.Contains(s[:i], "fakedev") && f[0] != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// consoleCommand sends a line over the device's console as the harness does (opening the
// pty slave with go.bug.st/serial) and returns the answer line.
func consoleCommand(t *testing.T, path, line string) string {
	t.Helper()
	port, err := serial.Open(path, &serial.Mode{BaudRate: 115200})
	if err != nil {
		t.Fatalf("open console %s: %v", path, err)
	}
	defer port.Close()
	if err := port.SetReadTimeout(200 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(port, line+"\n"); err != nil {
		t.Fatalf("write console %s: %v", path, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var got bytes.Buffer
	buf := make([]byte, 1024)
	for time.Now().Before(deadline) {
		n, err := port.Read(buf)
		if err != nil {
			t.Fatalf("read console %s: %v", path, err)
		}
		got.Write(buf[:n])
		for _, l := range strings.Split(got.String(), "\n") {
			l = strings.TrimPrefix(strings.TrimRight(l, "\r"), prompt)
			if strings.HasPrefix(l, "OK") || strings.HasPrefix(l, "ERR") {
				return l
			}
		}
	}
	t.Fatalf("console %s: no answer to %q within 10s; got %q", path, line, got.String())
	return ""
}

func TestBenchNamespaces(t *testing.T) {
	requireRoot(t)
	hostLn, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	hostPort := hostLn.Addr().(*net.TCPAddr).Port

	b := startBench(t, Options{Devices: 2})
	devs := b.Devices()
	if len(devs) != 2 {
		t.Fatalf("got %d devices, want 2", len(devs))
	}
	if b.Fallback() != nil {
		t.Fatalf("fell back to loopback as root: %v", b.Fallback())
	}
	have := namespaceSet(t)
	if devs[0].Namespace == devs[1].Namespace || devs[0].Address == devs[1].Address {
		t.Errorf("devices share namespace %q / address %v", devs[0].Namespace, devs[0].Address)
	}
	for _, d := range devs {
		if !have[d.Namespace] {
			t.Errorf("%s: namespace %s not in ip netns list", d.Name, d.Namespace)
		}
		if d.PID <= 0 || !alive(d.PID) || d.Boots != 1 || d.BootToReady <= 0 {
			t.Errorf("%s: PID %d alive %v boots %d boot-to-ready %v", d.Name, d.PID, alive(d.PID), d.Boots, d.BootToReady)
		}
		if !strings.HasPrefix(d.ID, "rd-") || len(d.Admin.Pass) < 16 || d.PubKey == "" {
			t.Errorf("%s: ID %q, admin password of %d chars, pubkey %q", d.Name, d.ID, len(d.Admin.Pass), d.PubKey)
		}
		// The device's own listener answers, on its own address.
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(d.Address, mgmtPort).String(), 5*time.Second)
		if err != nil {
			t.Errorf("%s: dial mgmt: %v", d.Name, err)
			continue
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if want := "fakedev " + d.ID + "\n"; line != want {
			t.Errorf("%s: mgmt says %q, want %q", d.Name, line, want)
		}
	}
	// A full scan of each device's address finds its listener only: not the bench's own
	// broker ports, not the test's 0.0.0.0 listener.
	for _, d := range devs {
		if got := openTCPPorts(t, d.Address); len(got) != 1 || got[0] != mgmtPort {
			t.Errorf("%s: open TCP ports on %v = %v, want [%d] (host listener on 0.0.0.0:%d)", d.Name, d.Address, got, mgmtPort, hostPort)
		}
	}

	// The profile loads and says how to reach everything.
	p, err := profile.Load(b.ProfilePath())
	if err != nil {
		t.Fatalf("load the bench's profile: %v", err)
	}
	if p.Backend != profile.BackendSim || p.Broker.Kind != KindEmbedded || p.Declarations == nil || len(p.Instances) != 2 {
		t.Fatalf("profile: backend %q, broker kind %q, declarations %v, %d instances", p.Backend, p.Broker.Kind, p.Declarations != nil, len(p.Instances))
	}
	for i, in := range p.Instances {
		d := devs[i]
		if in.Address != d.Address.String() || in.CaptureInterface != d.HostIf || in.ControlAddress != "" || in.Serial.Port != d.SerialPath {
			t.Errorf("instance %s: %+v does not match device %+v", in.Name, in, d)
		}
		if _, err := os.Stat(p.Resolve(in.Label.File)); err != nil {
			t.Errorf("instance %s: label: %v", in.Name, err)
		}
		if _, err := os.Stat("/proc/sys/net/ipv6/conf/default"); err == nil && (!d.Address6.IsValid() || in.Address6 != d.Address6.String()) {
			t.Errorf("instance %s: address6 %q, device's IPv6 address %v: want the device's ULA", in.Name, in.Address6, d.Address6)
		}
	}
	if _, err := os.Stat(p.Resolve(p.Update.SigningKey)); err != nil {
		t.Errorf("signing key: %v", err)
	}

	// The console works through go.bug.st/serial while the bench holds the slave.
	if got := consoleCommand(t, devs[0].SerialPath, "ping"); !strings.HasPrefix(got, "OK ") {
		t.Errorf("console ping: %q", got)
	}
	if got := consoleCommand(t, devs[0].SerialPath, "provision x yyyyyyyyyyyy"); !strings.HasPrefix(got, "ERR") {
		t.Errorf("second provisioning: %q, want ERR (already provisioned by the bench)", got)
	}

	// Broker: the harness account sees both devices online; a device account cannot take
	// another device's client ID or use its own with another ID.
	ca, err := os.ReadFile(p.Broker.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := broker.Dial(ctx, broker.ClientConfig{URL: p.Broker.URL, Username: p.Broker.Username, Password: p.Broker.Password, ClientID: "harness-test", CAPEM: ca})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Disconnect(0)
	for _, d := range devs {
		if err := broker.WaitOnline(ctx, h, "hilt", d.ID); err != nil {
			t.Errorf("%s: %v", d.Name, err)
		}
	}
	for _, tc := range []struct{ user, pass, id string }{
		{devs[0].MQTT.User, devs[0].MQTT.Pass, devs[1].ID},
		{devs[0].MQTT.User, devs[0].MQTT.Pass, "something-else"},
		{devs[0].MQTT.User, "wrong", devs[0].ID},
	} {
		if c, err := broker.Dial(ctx, broker.ClientConfig{URL: p.Broker.URL, Username: tc.user, Password: tc.pass, ClientID: tc.id, CAPEM: ca}); err == nil {
			c.Disconnect(0)
			t.Errorf("device account %s connected as client %q, want refused", tc.user, tc.id)
		}
	}
	// The run CA is what the device trusts: the broker's certificate names each harness address.
	for _, d := range devs {
		c, err := broker.Dial(ctx, broker.ClientConfig{URL: "mqtts://" + netip.AddrPortFrom(d.HarnessAddress, uint16(mustPort(t, p.Broker.URL))).String(), Username: p.Broker.Username, Password: p.Broker.Password, ClientID: "harness-test-" + d.Name, CAPEM: ca})
		if err != nil {
			t.Errorf("broker at %s (as %s reaches it): %v", d.HarnessAddress, d.Name, err)
			continue
		}
		c.Disconnect(0)
	}

	// A reboot (re-exec, same PID) is seen as boot 2 and is not an exit.
	if got := consoleCommand(t, devs[1].SerialPath, "reboot"); !strings.HasPrefix(got, "OK") {
		t.Fatalf("reboot: %q", got)
	}
	if err := b.WaitBoot(ctx, "dev2", 2); err != nil {
		t.Fatal(err)
	}
	if d := b.Devices()[1]; d.PID != devs[1].PID || d.Boots != 2 {
		t.Errorf("after reboot: PID %d (was %d), boots %d, want same PID and 2", d.PID, devs[1].PID, d.Boots)
	}
	select {
	case <-b.Exited():
		t.Errorf("a reboot reported as exit: %v", b.Err())
	default:
	}

	// Close leaves nothing behind.
	dir := b.Dir()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	have = namespaceSet(t)
	for _, d := range devs {
		if have[d.Namespace] {
			t.Errorf("%s: namespace %s left after Close", d.Name, d.Namespace)
		}
		if alive(d.PID) {
			t.Errorf("%s: PID %d runs after Close", d.Name, d.PID)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run folder %s after Close: %v, want removed", dir, err)
	}
	if pids := fakeChildren(t); len(pids) > 0 {
		t.Errorf("fake devices still running: %v", pids)
	}
}

func mustPort(t *testing.T, url string) int {
	t.Helper()
	u, err := broker.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(u.Host)
	n, _ := strconv.Atoi(p)
	return n
}

func TestBenchLoopback(t *testing.T) {
	dir := t.TempDir()
	b := startBench(t, Options{Devices: 2, Loopback: true, Dir: filepath.Join(dir, "run")})
	fb := b.Fallback()
	if fb == nil || !errors.Is(fb, netns.ErrRequested) {
		t.Fatalf("Fallback() = %v, want ErrRequested", fb)
	}
	p := b.Profile()
	for i, d := range b.Devices() {
		in := p.Instances[i]
		if !d.Address.IsLoopback() || in.ControlAddress == "" || in.ControlAddress == in.Address || in.CaptureInterface != "" {
			t.Errorf("%s: address %v, control %q, capture %q: want own loopback address, a control address, no capture", d.Name, d.Address, in.ControlAddress, in.CaptureInterface)
		}
		if d.Address6.IsValid() || in.Address6 != "" {
			t.Errorf("%s: IPv6 address %v (profile %q) in loopback mode, want none", d.Name, d.Address6, in.Address6)
		}
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(d.Address, mgmtPort).String(), 5*time.Second)
		if err != nil {
			t.Errorf("%s: %v", d.Name, err)
			continue
		}
		c.Close()
		// The device's port is its own: the control address does not answer on it.
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(in.ControlAddress, strconv.Itoa(mgmtPort)), 5*time.Second); err == nil {
			c.Close()
			t.Errorf("%s: control address answers on %d", d.Name, mgmtPort)
		}
	}
	if _, err := profile.Load(b.ProfilePath()); err != nil {
		t.Errorf("load profile: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "profile.yaml")); err != nil {
		t.Errorf("a given run folder must be kept: %v", err)
	}
}

// TestStartFailures checks that each failure names the device and the cause and that
// nothing is left behind.
func TestStartFailures(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		is   error
		want []string
	}{
		{"unknown flaw", Options{Flaws: []string{"no-such-flaw"}}, ErrDeviceExited, []string{"dev", "exited before it was ready", "exit status 2", `unknown flaw "no-such-flaw"`}},
		{"broker refuses the device", Options{Devices: 1, Flaws: []string{"wrong-mqtt-password"}, ConnectTimeout: 2 * time.Second}, broker.ErrNoConnect, []string{"dev1", "wrong password"}},
		{"never ready", Options{Devices: 1, Flaws: []string{"never-ready"}, BootTimeout: time.Second}, ErrTimeout, []string{"dev1", "no ready line"}},
		{"exits after ready", Options{Devices: 1, Flaws: []string{"exit-after-ready"}}, ErrDeviceExited, []string{"dev1", "exit status 3", "exiting after ready"}},
		{"no console prompt", Options{Devices: 1, Flaws: []string{"no-prompt"}, CommandTimeout: 500 * time.Millisecond}, ErrTimeout, []string{"dev1", "console", "refdev> "}},
	}
	for _, tc := range tests {
		for _, loopback := range []bool{false, true} {
			if !loopback && os.Geteuid() != 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s/loopback=%v", tc.name, loopback), func(t *testing.T) {
				before := tempRuns(t)
				tc.opts.Exe, tc.opts.Log, tc.opts.Loopback = fakeDev, logWriter{t}, loopback
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				b, err := Start(ctx, tc.opts)
				if err == nil {
					b.Close()
					t.Fatal("Start: got nil error")
				}
				if b != nil {
					t.Errorf("Start returned a bench with an error")
				}
				if !errors.Is(err, tc.is) {
					t.Errorf("error %v: want errors.Is %v", err, tc.is)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				assertNothingLeft(t, before)
			})
		}
	}
}

// tempRuns lists the temporary run folders.
func tempRuns(t *testing.T) map[string]bool {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("hilt-sim-%d-*", os.Getpid())))
	out := map[string]bool{}
	for _, p := range m {
		out[p] = true
	}
	return out
}

// assertNothingLeft checks for processes, run state of this process and temporary folders.
func assertNothingLeft(t *testing.T, runsBefore map[string]bool) {
	t.Helper()
	if pids := fakeChildren(t); len(pids) > 0 {
		t.Errorf("fake devices left running: %v", pids)
	}
	for p := range tempRuns(t) {
		if !runsBefore[p] {
			t.Errorf("temporary run folder %s left", p)
		}
	}
	states, _ := filepath.Glob(filepath.Join(netns.DefaultStateDir(), "*.json"))
	for _, s := range states {
		b, err := os.ReadFile(s)
		if err != nil {
			continue
		}
		var st struct {
			PID        int      `json:"pid"`
			Namespaces []string `json:"namespaces"`
		}
		if json.Unmarshal(b, &st) == nil && st.PID == os.Getpid() {
			t.Errorf("run state %s of this process left (namespaces %v)", s, st.Namespaces)
		}
	}
}

// TestStartCancelled cancels Start while devices boot: nothing may be left.
func TestStartCancelled(t *testing.T) {
	before := tempRuns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	b, err := Start(ctx, Options{Devices: 2, Exe: fakeDev, Flaws: []string{"never-ready"}, Log: logWriter{t}, Loopback: os.Geteuid() != 0})
	if err == nil {
		b.Close()
		t.Fatal("Start: got nil error")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Start: got %v, want the context's deadline", err)
	}
	assertNothingLeft(t, before)
}

func TestBadOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"too many devices", Options{Devices: netns.MaxDevices + 1}},
		{"negative devices", Options{Devices: -1}},
		{"flaw with a space", Options{Flaws: []string{"a b"}}},
		{"flaw like a flag", Options{Flaws: []string{"--listen"}}},
		{"missing executable", Options{Exe: "/nonexistent/hilt"}},
		{"external and mosquitto", Options{BrokerURL: "mqtts://u:p@h", Mosquitto: true}},
		{"CA without external broker", Options{BrokerCAFile: "/x"}},
		{"plaintext external broker", Options{BrokerURL: "mqtt://u:p@127.0.0.1:1883"}},
		{"external broker without CA", Options{BrokerURL: "mqtts://u:p@127.0.0.1:8883"}},
		{"external broker without account", Options{BrokerURL: "mqtts://127.0.0.1:8883", BrokerCAFile: "/etc/hostname"}},
		{"bad topic prefix", Options{TopicPrefix: "a/#"}},
		{"missing declarations", Options{DeclarationsPath: "/nonexistent.yaml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tempRuns(t)
			if tc.opts.Exe == "" {
				tc.opts.Exe = fakeDev
			}
			tc.opts.Loopback = true
			b, err := Start(context.Background(), tc.opts)
			if err == nil {
				b.Close()
				t.Fatal("Start: got nil error")
			}
			if !errors.Is(err, ErrBadOptions) {
				t.Errorf("error %v: want ErrBadOptions", err)
			}
			assertNothingLeft(t, before)
		})
	}
	nonEmpty := t.TempDir()
	os.WriteFile(filepath.Join(nonEmpty, "x"), nil, 0o600)
	if _, err := Start(context.Background(), Options{Exe: fakeDev, Dir: nonEmpty, Loopback: true}); !errors.Is(err, ErrBadOptions) {
		t.Errorf("non-empty run folder: got %v, want ErrBadOptions", err)
	}
}

func TestDeviceExitReported(t *testing.T) {
	b := startBench(t, Options{Devices: 3, Loopback: os.Geteuid() != 0})
	devs := b.Devices()
	crash := func(d DeviceInfo) {
		t.Helper()
		port, err := serial.Open(d.SerialPath, &serial.Mode{BaudRate: 115200})
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(port, "crash\n")
		port.Close()
	}
	crash(devs[0])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := b.Wait(ctx)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Device != "dev1" || ee.PID != devs[0].PID || !strings.Contains(ee.Stderr, "crashing as asked") || ee.BeforeReady {
		t.Fatalf("Wait: got %v, want dev1's ExitError with its stderr", err)
	}
	if !errors.Is(b.Err(), ErrDeviceExited) {
		t.Errorf("Err() = %v", b.Err())
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := b.Wait(ctx2); !errors.Is(err, ErrDeviceExited) {
		t.Errorf("Wait after the exit: %v", err)
	}
	// A second crash is kept beside the first, not lost behind it; dev2 runs on.
	crash(devs[2])
	select {
	case <-b.devices[2].exited:
	case <-ctx.Done():
		t.Fatalf("dev3 did not exit: %v", ctx.Err())
	}
	var got []string
	for _, e := range b.Exits() {
		got = append(got, fmt.Sprintf("%s/%d", e.Device, e.PID))
	}
	want := []string{fmt.Sprintf("dev1/%d", devs[0].PID), fmt.Sprintf("dev3/%d", devs[2].PID)}
	if !slices.Equal(got, want) {
		t.Errorf("Exits: got %v, want %v", got, want)
	}
	if err := b.Err(); !errors.As(err, &ee) || ee.Device != "dev1" {
		t.Errorf("Err after a second exit: %v, want dev1's", err)
	}
	// What Close stops is not an exit of its own.
	if err := b.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if n := len(b.Exits()); n != 2 {
		t.Errorf("Exits after Close: %d, want 2 (dev2 was stopped, it did not exit)", n)
	}
}

func TestBusyAddressLoopback(t *testing.T) {
	ln, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", mgmtPort))
	if err != nil {
		t.Skipf("cannot take 0.0.0.0:%d for the test: %v", mgmtPort, err)
	}
	defer ln.Close()
	before := tempRuns(t)
	_, err = Start(context.Background(), Options{Devices: 1, Exe: fakeDev, Loopback: true, Log: logWriter{t}})
	if err == nil || !strings.Contains(err.Error(), "busy") || !strings.Contains(err.Error(), "dev1") {
		t.Fatalf("Start with 0.0.0.0:%d taken: got %v, want a busy-address error naming dev1", mgmtPort, err)
	}
	assertNothingLeft(t, before)
}

// TestStaleAfterKill kills a process running a bench with SIGKILL: its devices die with it
// (death signal), and the next run's stale cleanup removes its namespaces.
func TestStaleAfterKill(t *testing.T) {
	requireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=bench", "FAKEDEV="+fakeDev)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var got struct {
		Error string   `json:"error"`
		RunID string   `json:"run_id"`
		PIDs  []int    `json:"pids"`
		NS    []string `json:"NS"`
		Dir   string   `json:"dir"`
	}
	if err := json.NewDecoder(stdout).Decode(&got); err != nil || got.Error != "" {
		t.Fatalf("helper bench: %v %s", err, got.Error)
	}
	defer os.RemoveAll(got.Dir)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, pid := range got.PIDs {
		if err := netns.KillAndWait(ctx, pid); err != nil {
			t.Errorf("device PID %d: %v", pid, err)
		}
	}
	if have := namespaceSet(t); !have[got.NS[0]] {
		t.Fatalf("namespace %s gone before stale cleanup: nothing to test", got.NS[0])
	}
	removed, err := netns.CleanupStale(ctx, "")
	if err != nil {
		t.Fatalf("CleanupStale: %v", err)
	}
	// The next bench also removes the dead bench's run folder.
	if _, err := os.Stat(got.Dir); err != nil {
		t.Fatalf("run folder of the killed bench: %v", err)
	}
	dirs, err := cleanupStaleRunDirs()
	if err != nil {
		t.Errorf("cleanupStaleRunDirs: %v", err)
	}
	if _, err := os.Stat(got.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run folder %s of the killed bench left (removed %v)", got.Dir, dirs)
	}
	have := namespaceSet(t)
	for _, ns := range got.NS {
		if have[ns] {
			t.Errorf("namespace %s of the killed run left after stale cleanup (removed %v)", ns, removed)
		}
	}
}

// TestDeathSignal checks that devices die with the bench: the helper is SIGKILLed and its
// devices must exit without anyone killing them.
func TestDeathSignal(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=bench", "FAKEDEV="+fakeDev)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var got struct {
		Error string `json:"error"`
		PIDs  []int  `json:"pids"`
		Dir   string `json:"dir"`
	}
	if err := json.NewDecoder(stdout).Decode(&got); err != nil || got.Error != "" {
		t.Fatalf("helper bench: %v %s", err, got.Error)
	}
	defer os.RemoveAll(got.Dir)
	fds := map[int]int{}
	for _, pid := range got.PIDs {
		fd, err := pidfdOpen(pid)
		if err != nil {
			t.Fatalf("pidfd of %d: %v", pid, err)
		}
		fds[pid] = fd
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for pid, fd := range fds {
		if err := pollExit(fd, 10*time.Second); err != nil {
			t.Errorf("device PID %d did not die with its bench: %v", pid, err)
		}
	}
	if os.Geteuid() == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		netns.CleanupStale(ctx, "")
	}
}

// requireMosquitto skips without Mosquitto, except in CI (CI=true), where it fails.
func requireMosquitto(t *testing.T) {
	t.Helper()
	for _, exe := range []string{"mosquitto", "mosquitto_passwd"} {
		if _, err := exec.LookPath(exe); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed, and CI=true: install it (apt-get install -y mosquitto)", exe)
			}
			t.Skipf("%s is not installed (apt-get install -y mosquitto); skipping", exe)
		}
	}
}

// waitAllOnline connects with the profile's harness account and waits for every device's
// online status.
func waitAllOnline(t *testing.T, b *Bench) {
	t.Helper()
	p := b.Profile()
	ca, err := os.ReadFile(p.Broker.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := broker.Dial(ctx, broker.ClientConfig{URL: p.Broker.URL, Username: p.Broker.Username, Password: p.Broker.Password, ClientID: "harness-test", CAPEM: ca})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Disconnect(0)
	for _, d := range b.Devices() {
		if err := broker.WaitOnline(ctx, h, p.Broker.TopicPrefix, d.ID); err != nil {
			t.Errorf("%s: %v", d.Name, err)
		}
	}
}

func TestBenchMosquitto(t *testing.T) {
	requireMosquitto(t)
	b := startBench(t, Options{Devices: 2, Mosquitto: true, Loopback: os.Geteuid() != 0})
	p := b.Profile()
	if p.Broker.Kind != KindMosquitto || b.BrokerKind() != KindMosquitto {
		t.Errorf("broker kind %q, want %q", p.Broker.Kind, KindMosquitto)
	}
	waitAllOnline(t, b)
	if _, err := profile.Load(b.ProfilePath()); err != nil {
		t.Errorf("load profile: %v", err)
	}
}

// TestBenchExternal runs a bench against a broker it did not start (a Mosquitto the test
// starts), with one account per device, on loopback (the test broker's certificate cannot
// name namespace addresses chosen at random).
func TestBenchExternal(t *testing.T) {
	requireMosquitto(t)
	ca, err := pki.NewCA("external test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := broker.Account{Username: "ext-harness", Password: "ext-harness-password"}
	devs := []broker.Account{{Username: "ext-dev1", Password: "ext-dev1-password"}, {Username: "ext-dev2", Password: "ext-dev2-password"}}
	m, err := broker.StartMosquitto(ctx, t.TempDir(), broker.MosquittoOptions{
		CAPEM: ca.CertPEM(), CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM, Host: "127.0.0.1",
		Harness: h, Devices: devs,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	url := fmt.Sprintf("mqtts://%s:%s@127.0.0.1:%d", h.Username, h.Password, m.TLSPort())
	b := startBench(t, Options{Devices: 2, Loopback: true, BrokerURL: url, BrokerCAFile: m.CAFile(), DeviceBrokerAccounts: devs})
	p := b.Profile()
	if p.Broker.Kind != KindExternal || p.Broker.Username != h.Username || strings.Contains(p.Broker.URL, h.Password) {
		t.Errorf("profile broker %+v: want kind external, the harness account, no password in the URL", p.Broker)
	}
	for i, d := range b.Devices() {
		if d.MQTT.User != devs[i].Username {
			t.Errorf("%s: broker account %q, want %q", d.Name, d.MQTT.User, devs[i].Username)
		}
	}
	waitAllOnline(t, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// The bench leaves an external broker running.
	select {
	case <-m.Exited():
		t.Errorf("the external broker stopped with the bench")
	default:
	}
}

// TestIdentityTrouble: devices that report the same ID, or whose ID changes, still come up:
// judging their identity is the checks' business, not the bench's.
func TestIdentityTrouble(t *testing.T) {
	loopback := os.Geteuid() != 0
	t.Run("shared ID", func(t *testing.T) {
		b := startBench(t, Options{Devices: 2, Flaws: []string{"shared-id"}, Loopback: loopback})
		d := b.Devices()
		if d[0].ID != d[1].ID {
			t.Fatalf("IDs %s and %s, want the same", d[0].ID, d[1].ID)
		}
	})
	t.Run("ID changes on reboot", func(t *testing.T) {
		b := startBench(t, Options{Devices: 1, Flaws: []string{"id-changes-on-reboot"}, Loopback: loopback})
		first := b.Devices()[0]
		if got := consoleCommand(t, first.SerialPath, "reboot"); !strings.HasPrefix(got, "OK") {
			t.Fatalf("reboot: %q", got)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := b.WaitBoot(ctx, "dev1", 2); err != nil {
			t.Fatal(err)
		}
		now := b.Devices()[0]
		if now.ID == first.ID {
			t.Fatalf("ID %s did not change", now.ID)
		}
		// The device's account follows its new ID: it comes back online under it.
		waitAllOnline(t, b)
	})
}
