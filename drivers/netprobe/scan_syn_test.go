//go:build linux

package netprobe_test

import (
	"os"
	"slices"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/netprobe"
)

// needRoot skips a test of the SYN scan where raw sockets are not permitted.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the SYN scan needs root (a raw socket)")
	}
}

// TestScanMethods: the SYN scan and the connect scan agree, port by port, and say which ran.
func TestScanMethods(t *testing.T) {
	needRoot(t)
	_, devPort := listen(t, "127.0.0.2:0")
	_, hostPort := listen(t, "0.0.0.0:0")
	silent := silentPort(t)
	ports := []int{devPort, hostPort, silent}
	for p := 1; p <= 2048; p++ {
		ports = append(ports, p)
	}
	tests := []struct {
		name         string
		method       netprobe.ScanMethod
		addr         string
		wantMethod   netprobe.ScanMethod
		open         []int
		unverifiable []int
		filtered     []int
	}{
		{"auto is SYN as root", netprobe.ScanAuto, "127.0.0.2", netprobe.ScanSYN, []int{devPort}, []int{hostPort}, nil},
		{"SYN", netprobe.ScanSYN, "127.0.0.2", netprobe.ScanSYN, []int{devPort}, []int{hostPort}, nil},
		{"connect", netprobe.ScanConnect, "127.0.0.2", netprobe.ScanConnect, []int{devPort}, []int{hostPort}, nil},
		{"SYN, a silent port", netprobe.ScanSYN, "127.0.0.7", netprobe.ScanSYN, nil, []int{hostPort}, []int{silent}},
		{"connect, a silent port", netprobe.ScanConnect, "127.0.0.7", netprobe.ScanConnect, nil, []int{hostPort}, []int{silent}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t, 30*time.Second)
			res, err := netprobe.ScanAttributed(ctx, tt.addr, "127.0.0.3", netprobe.WithPorts(ports...),
				netprobe.WithMethod(tt.method), netprobe.WithDialTimeout(200*time.Millisecond))
			if err != nil {
				t.Fatal(err)
			}
			if res.Method != tt.wantMethod || res.Fallback != "" {
				t.Errorf("method %q (fallback %q), want %q", res.Method, res.Fallback, tt.wantMethod)
			}
			// Other tests' listeners may be open on 127.0.0.2 too: look for ours only.
			for _, p := range tt.open {
				if !slices.Contains(res.Open, p) {
					t.Errorf("port %d not in Open %v", p, res.Open)
				}
			}
			for _, p := range tt.unverifiable {
				if !slices.Contains(res.Unverifiable, p) || slices.Contains(res.Open, p) {
					t.Errorf("port %d: Open %v, Unverifiable %v; want it unverifiable", p, res.Open, res.Unverifiable)
				}
			}
			if !slices.Equal(res.Filtered, tt.filtered) {
				t.Errorf("Filtered %v, want %v", res.Filtered, tt.filtered)
			}
		})
	}
}

// BenchmarkScanTCP: a scan of 4096 loopback ports, one listener among them, per op, by
// each method (the SYN scan needs root). Compare CPU with -cpuprofile or `time`.
func BenchmarkScanTCP(b *testing.B) {
	_, open := listen(b, "127.0.0.2:0")
	ports := []int{open}
	for p := 1; p <= 4095; p++ {
		if p != open {
			ports = append(ports, p)
		}
	}
	for _, m := range []netprobe.ScanMethod{netprobe.ScanSYN, netprobe.ScanConnect} {
		b.Run(string(m), func(b *testing.B) {
			if m == netprobe.ScanSYN {
				needRoot(b)
			}
			ctx := testCtx(b, 10*time.Minute)
			for b.Loop() {
				res, err := netprobe.ScanAttributed(ctx, "127.0.0.2", "", netprobe.WithPorts(ports...), netprobe.WithMethod(m))
				if err != nil {
					b.Fatal(err)
				}
				if !slices.Contains(res.Open, open) {
					b.Fatalf("port %d not found open: %v", open, res.Open)
				}
			}
			b.ReportMetric(float64(len(ports))*float64(b.N)/b.Elapsed().Seconds(), "ports/s")
		})
	}
}
