//go:build linux

package netprobe_test

import (
	"context"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hilt-project/hilt/drivers/netprobe"
)

// silentPort returns a port on 127.0.0.7 that drops SYNs: a listener with a backlog of
// one whose queue is already full (Linux drops a SYN to a full accept queue).
func silentPort(t *testing.T) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 7}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*unix.SockaddrInet4).Port
	addr := net.JoinHostPort("127.0.0.7", itoa(port))
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			break // the queue is full: SYNs are dropped from now on
		}
		t.Cleanup(func() { c.Close() })
		if i == 5 {
			t.Fatal("the accept queue never filled")
		}
	}
	return port
}

func TestScanFiltered(t *testing.T) {
	silent := silentPort(t)
	_, open := listen(t, "127.0.0.7:0")
	ctx := testCtx(t, 10*time.Second)
	res, err := netprobe.ScanAttributed(ctx, "127.0.0.7", "127.0.0.8",
		netprobe.WithPorts(silent, open), netprobe.WithDialTimeout(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Filtered, []int{silent}) || !slices.Equal(res.Open, []int{open}) {
		t.Errorf("got open %v filtered %v, want open [%d] filtered [%d]", res.Open, res.Filtered, open, silent)
	}
	if ok, err := netprobe.TCPReachable(testCtx(t, 200*time.Millisecond), net.JoinHostPort("127.0.0.7", itoa(silent))); ok || err != nil {
		t.Errorf("TCPReachable(silent port): got %v, %v; want false, nil", ok, err)
	}

	// Cancelling the context ends a scan that waits on silent ports at once.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = netprobe.ScanTCP(short, "127.0.0.7", netprobe.WithPorts(silent), netprobe.WithDialTimeout(5*time.Second))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cancelled scan returned after %v", d)
	}
}
