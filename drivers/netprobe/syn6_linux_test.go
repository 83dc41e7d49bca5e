//go:build linux

package netprobe

import (
	"context"
	"net"
	"os"
	"slices"
	"testing"
	"time"
)

// TestSYNScanIPv6 runs a SYN scan of ::1 (root only): a listener's port is open, the
// ports around it closed, and the scan says it was a SYN scan.
func TestSYNScanIPv6(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a SYN scan needs a raw socket (root)")
	}
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	ports := []int{port - 1, port, port + 1}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := ScanAttributed(ctx, "::1", "", WithPorts(ports...), WithMethod(ScanSYN))
	if err != nil {
		t.Fatalf("SYN scan of ::1: %v", err)
	}
	if !slices.Equal(r.Open, []int{port}) {
		t.Errorf("open %v, want [%d]", r.Open, port)
	}
	if r.Method != ScanSYN {
		t.Errorf("method %q, want %q", r.Method, ScanSYN)
	}
}
