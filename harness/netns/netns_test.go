package netns

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
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a small helper program instead of running tests.
const helperEnv = "HILT_NETNS_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "listen":
		helperListen()
	case "setup":
		helperSetup()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// helperListen listens on $ADDR, prints "listening", dials $DIAL (if set) and prints the
// result, then serves until stdin closes.
func helperListen() {
	ln, err := net.Listen("tcp", os.Getenv("ADDR"))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from helper\n")
			c.Close()
		}
	}()
	fmt.Println("listening")
	if d := os.Getenv("DIAL"); d != "" {
		c, err := net.DialTimeout("tcp", d, 5*time.Second)
		if err != nil {
			fmt.Println("dial error", err)
		} else {
			fmt.Println("dial ok")
			c.Close()
		}
	}
	io.Copy(io.Discard, os.Stdin)
	os.Exit(0)
}

// helperSetup runs Setup (as whatever user it was started as) and prints the outcome.
func helperSetup() {
	n, err := Setup(context.Background(), Options{Devices: 1, StateDir: os.Getenv("STATE")})
	out := map[string]any{}
	if err != nil {
		out["error"] = err.Error()
	} else {
		out["mode"] = n.Mode()
		if fb := n.Fallback(); fb != nil {
			out["reason"] = fb.Reason
			out["not_permitted"] = errors.Is(fb, ErrNotPermitted)
		}
		n.Close(context.Background())
	}
	json.NewEncoder(os.Stdout).Encode(out)
	os.Exit(0)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to make network namespaces (run: sudo go test ./harness/netns/...)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs iproute2's ip command")
	}
}

func namespaces(t *testing.T) map[string]bool {
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

func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", "dev", name).Run() == nil
}

// startHelper starts the listen helper for host h; it returns when the helper listens and
// has printed its dial result (if dial is set).
func startHelper(t *testing.T, h Host, addr, dial string) (*exec.Cmd, string) {
	t.Helper()
	cmd := h.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=listen", "ADDR="+addr, "DIAL="+dial)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper in %s: %v", h.Namespace, err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	want := 1
	if dial != "" {
		want = 2
	}
	var got []string
	for len(got) < want && lines.Scan() {
		got = append(got, lines.Text())
	}
	if len(got) == 0 || got[0] != "listening" {
		t.Fatalf("helper in %s: got %q, want listening", h.Namespace, got)
	}
	return cmd, strings.Join(got[1:], "")
}

func TestSetupNamespaces(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stateDir := t.TempDir()
	n, err := Setup(ctx, Options{Devices: 2, StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close(context.Background()) })
	if n.Mode() != ModeNamespace || n.Fallback() != nil {
		t.Fatalf("mode %s (fallback %v), want %s", n.Mode(), n.Fallback(), ModeNamespace)
	}
	hosts := n.Hosts()
	if len(hosts) != 2 {
		t.Fatalf("got %d hosts, want 2", len(hosts))
	}
	have := namespaces(t)
	seen := map[netip.Addr]bool{}
	for _, h := range hosts {
		if !have[h.Namespace] {
			t.Errorf("namespace %s not in ip netns list", h.Namespace)
		}
		if !linkExists(h.HostIf) {
			t.Errorf("host interface %s missing", h.HostIf)
		}
		if len(h.HostIf) > 15 {
			t.Errorf("interface name %q longer than 15", h.HostIf)
		}
		if !h.Prefix.Contains(h.Address) || !h.Prefix.Contains(h.HarnessAddress) || h.Address == h.HarnessAddress {
			t.Errorf("device %d: address %v, harness %v, link %v: want both distinct inside the link", h.Index, h.Address, h.HarnessAddress, h.Prefix)
		}
		if seen[h.Address] {
			t.Errorf("device %d: address %v used twice", h.Index, h.Address)
		}
		seen[h.Address] = true
		if !ipv6Available() {
			continue
		}
		if !h.Address6.Is6() || !h.Address6.IsPrivate() || !h.Prefix6.Contains(h.Address6) || !h.Prefix6.Contains(h.HarnessAddress6) || h.Address6 == h.HarnessAddress6 {
			t.Errorf("device %d: IPv6 address %v, harness %v, link %v: want both distinct ULAs inside the link", h.Index, h.Address6, h.HarnessAddress6, h.Prefix6)
		}
		if seen[h.Address6] {
			t.Errorf("device %d: IPv6 address %v used twice", h.Index, h.Address6)
		}
		seen[h.Address6] = true
		// Quiet: no link-local address on either side of the link.
		for _, args := range [][]string{{"-6", "addr", "show", "dev", h.HostIf}, {"-n", h.Namespace, "-6", "addr", "show", "dev", "eth0"}} {
			out, err := exec.Command("ip", args...).CombinedOutput()
			if err != nil {
				t.Errorf("ip %v: %v (%s)", args, err, out)
			} else if strings.Contains(string(out), "fe80:") || strings.Contains(string(out), "tentative") {
				t.Errorf("ip %v: got %s, want no link-local or tentative address", args, out)
			}
		}
	}
	if hosts[0].Address6.IsValid() && hosts[0].Prefix6.Overlaps(hosts[1].Prefix6) {
		t.Errorf("IPv6 links %v and %v overlap", hosts[0].Prefix6, hosts[1].Prefix6)
	}
	if _, err := os.Stat(filepath.Join(stateDir, n.RunID()+".json")); err != nil {
		t.Errorf("state file: %v", err)
	}

	// A listener on the host's 0.0.0.0 must not answer on a device address, and the device
	// must reach the host through its default route.
	hostLn, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hostLn.Close()
	go func() {
		for {
			c, err := hostLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	hostPort := hostLn.Addr().(*net.TCPAddr).Port
	for _, h := range hosts {
		dev := netip.AddrPortFrom(h.Address, 7000).String()
		_, dial := startHelper(t, h, dev, netip.AddrPortFrom(h.HarnessAddress, uint16(hostPort)).String())
		if dial != "dial ok" {
			t.Errorf("device %d dialing the host at %v: %s", h.Index, h.HarnessAddress, dial)
		}
		c, err := net.DialTimeout("tcp", dev, 5*time.Second)
		if err != nil {
			t.Errorf("dial device %d listener %s: %v", h.Index, dev, err)
		} else {
			c.Close()
		}
		if h.Address6.IsValid() {
			// At once (nodad), both ways: the host's 0.0.0.0 listener is dual-stack.
			dev6 := netip.AddrPortFrom(h.Address6, 7000).String()
			_, dial := startHelper(t, h, dev6, netip.AddrPortFrom(h.HarnessAddress6, uint16(hostPort)).String())
			if dial != "dial ok" {
				t.Errorf("device %d dialing the host at %v: %s", h.Index, h.HarnessAddress6, dial)
			}
			if c, err := net.DialTimeout("tcp", dev6, 5*time.Second); err != nil {
				t.Errorf("dial device %d listener %s: %v", h.Index, dev6, err)
			} else {
				c.Close()
			}
		}
		hostOnDev := netip.AddrPortFrom(h.Address, uint16(hostPort)).String()
		if c, err := net.DialTimeout("tcp", hostOnDev, 5*time.Second); err == nil {
			c.Close()
			t.Errorf("host listener 0.0.0.0:%d answers on device address %s", hostPort, hostOnDev)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s: got %v, want connection refused", hostOnDev, err)
		}
	}
	// Each device's listener answers only on its own address.
	other := netip.AddrPortFrom(hosts[1].Address, 7000).String()
	if c, err := net.DialTimeout("tcp", other, 5*time.Second); err != nil {
		t.Errorf("dial %s: %v", other, err)
	} else {
		c.Close()
	}

	if err := n.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := n.Close(ctx); err != nil {
		t.Errorf("second close: %v", err)
	}
	have = namespaces(t)
	for _, h := range hosts {
		if have[h.Namespace] {
			t.Errorf("namespace %s still there after Close", h.Namespace)
		}
		if linkExists(h.HostIf) {
			t.Errorf("interface %s still there after Close", h.HostIf)
		}
	}
	if _, err := os.Stat(filepath.Join(stateDir, n.RunID()+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file after Close: got %v, want not exist", err)
	}
}

func TestCleanupStale(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	stateDir := t.TempDir()
	dead, err := Setup(ctx, Options{Devices: 2, StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close(context.Background()) })
	live, err := Setup(ctx, Options{Devices: 1, StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { live.Close(context.Background()) })

	// Something still runs inside the dead run's namespace, as a SIGKILLed bench leaves it.
	h := dead.Hosts()[0]
	helper, _ := startHelper(t, h, netip.AddrPortFrom(h.Address, 7001).String(), "")

	// Simulate a dead owner: the PID of a process that has exited.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(stateDir, dead.RunID()+".json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var st runState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	st.PID = gone.Process.Pid
	if err := writeState(stateDir, st); err != nil {
		t.Fatal(err)
	}

	removed, err := CleanupStale(ctx, stateDir)
	if err != nil {
		t.Fatalf("CleanupStale: %v", err)
	}
	if got, want := strings.Join(removed, ","), strings.Join(st.Namespaces, ","); got != want {
		t.Errorf("removed %q, want %q", got, want)
	}
	have := namespaces(t)
	for _, ns := range st.Namespaces {
		if have[ns] {
			t.Errorf("stale namespace %s still there", ns)
		}
	}
	for _, hv := range st.HostIfs {
		if linkExists(hv) {
			t.Errorf("stale interface %s still there", hv)
		}
	}
	if err := helper.Process.Signal(syscall.Signal(0)); err == nil {
		// Still a zombie until reaped: check that it is no longer running.
		if s, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", helper.Process.Pid)); len(s) > 0 && !strings.Contains(string(s), ") Z") {
			t.Errorf("process %d in the stale namespace still runs", helper.Process.Pid)
		}
	}
	if !have[live.Hosts()[0].Namespace] {
		t.Errorf("live run's namespace %s was removed", live.Hosts()[0].Namespace)
	}
	if err := dead.Close(ctx); err != nil {
		t.Errorf("Close after stale cleanup: %v", err)
	}
}

func TestLoopback(t *testing.T) {
	n, err := Setup(context.Background(), Options{Devices: 3, Loopback: true, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close(context.Background())
	if n.Mode() != ModeLoopback {
		t.Fatalf("mode %s, want %s", n.Mode(), ModeLoopback)
	}
	if fb := n.Fallback(); fb == nil || !errors.Is(fb, ErrRequested) {
		t.Fatalf("Fallback() = %v, want ErrRequested", fb)
	}
	seen := map[netip.Addr]bool{}
	for _, h := range n.Hosts() {
		for _, a := range []netip.Addr{h.Address, h.ControlAddress} {
			if !a.IsLoopback() {
				t.Errorf("device %d: %v is not a loopback address", h.Index, a)
			}
		}
		if seen[h.Address] || h.Address == h.ControlAddress {
			t.Errorf("device %d: address %v not unique", h.Index, h.Address)
		}
		seen[h.Address] = true
		if h.Namespace != "" || h.HostIf != "" {
			t.Errorf("device %d: namespace %q / interface %q in loopback mode", h.Index, h.Namespace, h.HostIf)
		}
		if h.Address6.IsValid() || h.HarnessAddress6.IsValid() || h.Prefix6.IsValid() {
			t.Errorf("device %d: IPv6 %v/%v/%v in loopback mode, want none (devices share ::1)", h.Index, h.Address6, h.HarnessAddress6, h.Prefix6)
		}
		// Binding works on any 127/8 address on Linux.
		ln, err := net.Listen("tcp", netip.AddrPortFrom(h.Address, 0).String())
		if err != nil {
			t.Errorf("listen on %v: %v", h.Address, err)
			continue
		}
		ln.Close()
	}
}

// TestFallbackUnprivileged runs Setup as an unprivileged user and expects the loopback
// fallback with a reason naming the missing privilege.
func TestFallbackUnprivileged(t *testing.T) {
	requireRoot(t)
	// t.TempDir's parent is private to root: the unprivileged helper needs its own.
	dir, err := os.MkdirTemp("", "hilt-netns-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "netns.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), helperEnv+"=setup", "STATE="+filepath.Join(dir, "state"), "TMPDIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper as nobody: %v (%s)", err, out)
	}
	var got struct {
		Mode         Mode   `json:"mode"`
		Reason       string `json:"reason"`
		NotPermitted bool   `json:"not_permitted"`
		Error        string `json:"error"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	if got.Mode != ModeLoopback || !got.NotPermitted || !strings.Contains(got.Reason, "not running as root") {
		t.Errorf("unprivileged Setup: got %+v, want loopback, not permitted, reason naming root", got)
	}
}

func TestSetupBadInput(t *testing.T) {
	tests := []struct {
		name string
		opts Options
	}{
		{"no devices", Options{Devices: 0}},
		{"too many devices", Options{Devices: MaxDevices + 1}},
		{"bad run ID", Options{Devices: 1, RunID: "Bad-ID"}},
		{"long run ID", Options{Devices: 1, RunID: "abcdefghi"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Loopback = true
			if _, err := Setup(context.Background(), tc.opts); err == nil {
				t.Errorf("Setup(%+v): got nil error", tc.opts)
			}
		})
	}
}

// TestDefaultStateDirEnv: HILT_STATE_DIR moves the state folder; unset, root's is /run/hilt.
func TestDefaultStateDirEnv(t *testing.T) {
	t.Setenv(StateDirEnv, "/srv/lab-a/hilt")
	if got := DefaultStateDir(); got != "/srv/lab-a/hilt" {
		t.Errorf("with %s set: DefaultStateDir() = %q, want /srv/lab-a/hilt", StateDirEnv, got)
	}
	t.Setenv(StateDirEnv, "")
	want := filepath.Join(os.TempDir(), "hilt-runs")
	if os.Geteuid() == 0 {
		want = "/run/hilt"
	}
	if got := DefaultStateDir(); got != want {
		t.Errorf("with %s empty: DefaultStateDir() = %q, want %q", StateDirEnv, got, want)
	}
}
