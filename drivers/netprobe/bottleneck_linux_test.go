//go:build linux

package netprobe_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hilt-project/hilt/drivers/netprobe"
)

// TestSYNScanBottleneck scans a target behind a router whose link to it drops what it
// cannot queue, as the tap of an emulated device and a slow device on a real network do:
// the router namespace forwards the SYNs through a token bucket of 10 Mbit/s with room
// for about 300 of them, and its drops are silent to the scanner (a drop in the host's
// own queue is not: the send fails with ENOBUFS). Every port of the target is closed (its
// kernel resets them all), so every port must be found closed: a port the scan calls
// filtered is a SYN the path dropped twice, which a scan that keeps 2000 SYNs in flight
// does thousands of times.
func TestSYNScanBottleneck(t *testing.T) {
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
	// Two /30s of a /24 in 10.255.0.0/16; a test that finds the target routed already
	// fails and says so.
	p := fmt.Sprintf("10.255.%d.", os.Getpid()%250)
	hostA, routerA, routerB, targetA := p+"1", p+"2", p+"5", p+"6"
	run := func(args ...string) {
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
	if out, err := exec.CommandContext(ctx, "ip", "-4", "route", "show", "match", p+"0/24").CombinedOutput(); err != nil {
		t.Fatalf("ip route show: %v: %s", err, out)
	} else {
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" && !strings.HasPrefix(l, "default") {
				t.Fatalf("%s0/24 is routed on this host already (%s): the test needs it free", p, l)
			}
		}
	}
	run("ip", "netns", "add", router)
	run("ip", "netns", "add", target)
	run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", toRouter, "netns", router)
	run("ip", "link", "add", toTarget, "netns", router, "type", "veth", "peer", "name", targetIf, "netns", target)
	run("ip", "addr", "add", hostA+"/30", "dev", hostIf)
	run("ip", "link", "set", hostIf, "up")
	run("ip", "route", "add", targetA+"/32", "via", routerA, "dev", hostIf)
	nsr := []string{"ip", "netns", "exec", router}
	run(append(nsr, "ip", "addr", "add", routerA+"/30", "dev", toRouter)...)
	run(append(nsr, "ip", "addr", "add", routerB+"/30", "dev", toTarget)...)
	run(append(nsr, "ip", "link", "set", toRouter, "up")...)
	run(append(nsr, "ip", "link", "set", toTarget, "up")...)
	run(append(nsr, "sysctl", "-qw", "net.ipv4.ip_forward=1")...)
	run(append(nsr, "tc", "qdisc", "add", "dev", toTarget, "root", "tbf", "rate", "10mbit", "burst", "4kb", "limit", "18kb")...)
	nst := []string{"ip", "netns", "exec", target}
	run(append(nst, "ip", "addr", "add", targetA+"/30", "dev", targetIf)...)
	run(append(nst, "ip", "link", "set", targetIf, "up")...)
	run(append(nst, "ip", "route", "add", "default", "via", routerB)...)

	r, err := netprobe.ScanAttributed(ctx, targetA, "", netprobe.WithMethod(netprobe.ScanSYN))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Open) != 0 || len(r.Filtered) != 0 {
		out, _ := exec.Command("ip", "netns", "exec", router, "tc", "-s", "qdisc", "show", "dev", toTarget).CombinedOutput()
		t.Errorf("scan of %s behind a 10 Mbit/s queue: open %v, %d filtered (first %v), want all closed; the router's queue:\n%s",
			targetA, r.Open, len(r.Filtered), r.Filtered[:min(len(r.Filtered), 10)], out)
	}
}
