//go:build linux

package netprobe_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/netprobe"
)

// TestSYNScanPaths scans a target in a network namespace behind a router namespace, over
// paths that lose SYNs silently (as a real network or an emulated device's tap does):
//   - a queue that drops what it cannot hold: the router forwards the SYNs through a token
//     bucket of 10 Mbit/s with room for about 300 of them. Every port is closed (the
//     target's kernel resets them all), so every port must come back closed: a port
//     called filtered is a SYN the path dropped on each try, which a scan that keeps 2000
//     SYNs in flight does thousands of times;
//   - a firewall that drops every SYN to a port from 1024 up: those ports must come back
//     filtered and the others closed, and the scan must not take that
//     silence for congestion and slow down to a crawl (it did: the scan of 8192 ports
//     would have taken minutes, past the bound below);
//   - both: the firewall, and the token bucket on the ports it lets through. The closed
//     ports' burst overflows the bucket, and the filtered ports' silence must still not
//     be taken for losses in that burst (it was: the scan held back a send for each
//     expired SYN and crawled through the filtered ports a small window at a time);
//   - the same with every other port filtered: the closed ones' answers come all along,
//     between the filtered ones' silences, and each port must still come back as it is.
func TestSYNScanPaths(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s (iproute2) is needed for this test in CI: %v", tool, err)
			}
			t.Skipf("%s (iproute2) not installed: %v", tool, err)
		}
	}
	ctx := t.Context()
	id := fmt.Sprintf("%05d", os.Getpid()%100000)
	router, target := "hiltbr-"+id, "hiltbt-"+id
	hostIf, toRouter, toTarget, targetIf := "hbh"+id, "hbr"+id, "hbx"+id, "hbt"+id
	// Two /30s of a /24 in 10.255.0.0/16, routed through the host veth with a /32: a test
	// that finds a more specific route to them fails and says so.
	p := fmt.Sprintf("10.255.%d.", os.Getpid()%250)
	hostA, routerA, routerB, targetA := p+"1", p+"2", p+"5", p+"6"
	run := func(t *testing.T, args ...string) {
		t.Helper()
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", router).Run()
		exec.Command("ip", "netns", "del", target).Run()
		exec.Command("ip", "link", "del", hostIf).Run()
	})
	out, err := exec.CommandContext(ctx, "ip", "-4", "route", "show", "match", targetA).CombinedOutput()
	if err != nil {
		t.Fatalf("ip route show: %v: %s", err, out)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			if pre, err := netip.ParsePrefix(f[0]); err == nil && pre.Bits() >= 24 {
				t.Fatalf("%s is routed on this host already (%s): the test needs it free", targetA, l)
			}
		}
	}
	run(t, "ip", "netns", "add", router)
	run(t, "ip", "netns", "add", target)
	run(t, "ip", "link", "add", hostIf, "type", "veth", "peer", "name", toRouter, "netns", router)
	run(t, "ip", "link", "add", toTarget, "netns", router, "type", "veth", "peer", "name", targetIf, "netns", target)
	run(t, "ip", "addr", "add", hostA+"/30", "dev", hostIf)
	run(t, "ip", "link", "set", hostIf, "up")
	run(t, "ip", "route", "add", targetA+"/32", "via", routerA, "dev", hostIf)
	nsr := []string{"ip", "netns", "exec", router}
	run(t, append(nsr, "ip", "addr", "add", routerA+"/30", "dev", toRouter)...)
	run(t, append(nsr, "ip", "addr", "add", routerB+"/30", "dev", toTarget)...)
	run(t, append(nsr, "ip", "link", "set", toRouter, "up")...)
	run(t, append(nsr, "ip", "link", "set", toTarget, "up")...)
	run(t, append(nsr, "sysctl", "-qw", "net.ipv4.ip_forward=1")...)
	nst := []string{"ip", "netns", "exec", target}
	run(t, append(nst, "ip", "addr", "add", targetA+"/30", "dev", targetIf)...)
	run(t, append(nst, "ip", "link", "set", targetIf, "up")...)
	run(t, append(nst, "ip", "route", "add", "default", "via", routerB)...)

	// A firewall: the router sends TCP to the ports that match any of dports (value/mask
	// pairs of u32) into an HTB class of 8 bit/s with room for one packet, so that they
	// are dropped (this kernel may have no tc actions). The class's one packet of credit is
	// spent before the scan, by a connection attempt (to a filtered port, prime) that lets
	// nothing else through for a minute. lossy puts the token bucket below on the ports
	// let through.
	firewall := func(lossy bool, dports ...string) [][]string {
		fw := [][]string{
			append(nsr, "tc", "qdisc", "add", "dev", toTarget, "root", "handle", "1:", "htb", "default", "1"),
			append(nsr, "tc", "class", "add", "dev", toTarget, "parent", "1:", "classid", "1:1", "htb", "rate", "10gbit"),
			append(nsr, "tc", "class", "add", "dev", toTarget, "parent", "1:", "classid", "1:2", "htb", "rate", "8bit", "ceil", "8bit", "burst", "1", "cburst", "1"),
			append(nsr, "tc", "qdisc", "add", "dev", toTarget, "parent", "1:2", "handle", "20:", "pfifo", "limit", "1"),
		}
		for _, m := range dports {
			v, mask, _ := strings.Cut(m, "/")
			fw = append(fw, append(nsr, "tc", "filter", "add", "dev", toTarget, "parent", "1:", "protocol", "ip",
				"u32", "match", "ip", "protocol", "6", "0xff", "match", "ip", "dport", v, mask, "flowid", "1:2"))
		}
		if lossy {
			fw = append(fw, append(nsr, "tc", "qdisc", "add", "dev", toTarget, "parent", "1:1", "handle", "10:", "tbf", "rate", "10mbit", "burst", "4kb", "limit", "18kb"))
		}
		return fw
	}
	var from1024 []string // any of bits 10-15 set
	for bit := 10; bit < 16; bit++ {
		from1024 = append(from1024, fmt.Sprintf("0x%04x/0x%04x", 1<<bit, 1<<bit))
	}
	const odd = "0x0001/0x0001"
	tests := []struct {
		name     string
		setup    [][]string
		undo     [][]string
		prime    int // a filtered port: spend the firewall's credit on it first
		ports    int
		filtered func(port int) bool
		qdisc    []string // shown when the test fails
	}{
		{
			name:     "a queue that drops",
			setup:    [][]string{append(nsr, "tc", "qdisc", "add", "dev", toTarget, "root", "tbf", "rate", "10mbit", "burst", "4kb", "limit", "18kb")},
			undo:     [][]string{append(nsr, "tc", "qdisc", "del", "dev", toTarget, "root")},
			ports:    65535,
			filtered: func(int) bool { return false },
			qdisc:    append(nsr, "tc", "-s", "qdisc", "show", "dev", toTarget),
		},
		{
			name:     "a firewall that drops ports from 1024",
			setup:    firewall(false, from1024...),
			undo:     [][]string{append(nsr, "tc", "qdisc", "del", "dev", toTarget, "root")},
			prime:    1024,
			ports:    8192,
			filtered: func(port int) bool { return port >= 1024 },
			qdisc:    append(nsr, "tc", "-s", "class", "show", "dev", toTarget),
		},
		{
			name:     "a queue that drops behind a firewall",
			setup:    firewall(true, from1024...),
			undo:     [][]string{append(nsr, "tc", "qdisc", "del", "dev", toTarget, "root")},
			prime:    1024,
			ports:    8192,
			filtered: func(port int) bool { return port >= 1024 },
			qdisc:    append(nsr, "tc", "-s", "qdisc", "show", "dev", toTarget),
		},
		{
			name:     "a queue that drops, every other port filtered",
			setup:    firewall(true, odd),
			undo:     [][]string{append(nsr, "tc", "qdisc", "del", "dev", toTarget, "root")},
			prime:    1,
			ports:    8192,
			filtered: func(port int) bool { return port%2 == 1 },
			qdisc:    append(nsr, "tc", "-s", "qdisc", "show", "dev", toTarget),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				for _, c := range tt.undo {
					exec.Command(c[0], c[1:]...).Run()
				}
			}()
			for _, c := range tt.setup {
				run(t, c...)
			}
			if tt.prime != 0 {
				if c, err := net.DialTimeout("tcp", net.JoinHostPort(targetA, strconv.Itoa(tt.prime)), 300*time.Millisecond); err == nil {
					c.Close()
				}
			}
			var ports []int
			for port := 1; port <= tt.ports; port++ {
				ports = append(ports, port)
			}
			// A bound on a hang, not a speed target: these scans take seconds.
			sctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			t0 := time.Now()
			r, err := netprobe.ScanAttributed(sctx, targetA, "", netprobe.WithMethod(netprobe.ScanSYN), netprobe.WithPorts(ports...))
			if err != nil {
				t.Fatal(err)
			}
			// Logged, not asserted: how long a path takes is for a benchmark to measure.
			t.Logf("%d ports in %v", len(ports), time.Since(t0).Round(time.Millisecond))
			var wrong []string
			filtered := map[int]bool{}
			for _, port := range r.Filtered {
				filtered[port] = true
			}
			for _, port := range ports {
				if filtered[port] != tt.filtered(port) {
					wrong = append(wrong, fmt.Sprintf("%d (filtered: %v)", port, filtered[port]))
				}
			}
			if len(r.Open) != 0 || len(wrong) != 0 {
				out, _ := exec.Command(tt.qdisc[0], tt.qdisc[1:]...).CombinedOutput()
				t.Errorf("scan of %s: open %v; %d ports wrong (first %v); %s:\n%s",
					targetA, r.Open, len(wrong), wrong[:min(len(wrong), 10)], strings.Join(tt.qdisc[4:], " "), out)
			}
		})
	}
}
