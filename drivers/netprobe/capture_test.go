//go:build linux

package netprobe_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/netprobe"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("packet capture needs root or CAP_NET_RAW; running as uid %d (run the test as root to cover StartCapture)", os.Geteuid())
	}
}

// echoServer echoes each connection's bytes back until the client closes.
func echoServer(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

// exchange sends msg to addr from a client bound to from, reads the echo, and closes.
func exchange(t *testing.T, from, addr string, msg []byte) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != string(msg) {
		t.Fatalf("echo: got %q, %v", got, err)
	}
	c.Close()
}

func TestCaptureLoopback(t *testing.T) {
	requireRoot(t)
	ctx := testCtx(t, 30*time.Second)
	const device = "127.0.0.5"
	dev := echoServer(t, device+":0")
	other := echoServer(t, "127.0.0.6:0")

	out := filepath.Join(t.TempDir(), "lo.pcapng")
	c, err := netprobe.StartCapture(ctx, "lo", out, netprobe.WithHostFilter(device))
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("login admin " + secret0 + "\n")
	exchange(t, "127.0.0.1", dev.Addr().String(), msg)
	exchange(t, "127.0.0.1", other.Addr().String(), []byte("not the device "+secret0))
	stats, err := c.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if again, err := c.Stop(); err != nil || again != stats {
		t.Errorf("second Stop: %+v, %v; want the same stats", again, err)
	}
	if stats.Packets < 6 || stats.Bytes == 0 {
		t.Errorf("stats %+v: want the handshake, data, echo and close of one connection", stats)
	}
	t.Logf("captured %+v", stats)

	a, err := netprobe.AnalyzeFile(ctx, out, netprobe.AnalyzeOptions{Host: device, Secrets: []string{secret0}})
	if err != nil {
		t.Fatal(err)
	}
	if a.Packets != stats.Packets {
		t.Errorf("file holds %d packets, Stop counted %d", a.Packets, stats.Packets)
	}
	if len(a.Flows) != 1 {
		t.Fatalf("flows %v: want only the device's connection (the host filter keeps 127.0.0.6 out)", a.Flows)
	}
	f := a.Flows[0]
	if f.Key.Server.String() != dev.Addr().String() || f.Class != netprobe.ClassCleartextOther ||
		f.ClientBytes != int64(len(msg)) || f.ServerBytes != int64(len(msg)) {
		t.Errorf("flow %+v", f)
	}
	if len(a.Hits) != 2 || a.Hits[0].Direction != netprobe.ClientToServer || a.Hits[1].Direction != netprobe.ServerToClient {
		t.Errorf("hits %+v: want the secret in both directions", a.Hits)
	}
}

func TestCaptureStopsOnQuietInterfaceAndContext(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := filepath.Join(t.TempDir(), "quiet.pcapng")
	// A filter nothing matches: the reader sits in the netpoller with nothing to read.
	c, err := netprobe.StartCapture(ctx, "lo", out, netprobe.WithHostFilter("127.0.0.254"))
	if err != nil {
		t.Fatal(err)
	}
	cancel() // ends the capture
	stats, err := c.Stop()
	if err != nil || stats.Packets != 0 {
		t.Fatalf("got %+v, %v; want an empty capture", stats, err)
	}
	a, err := netprobe.AnalyzeFile(context.Background(), out, netprobe.AnalyzeOptions{})
	if err != nil || a.Packets != 0 {
		t.Fatalf("empty capture file: %+v, %v", a, err)
	}
}

func TestCaptureErrors(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	dir := t.TempDir()
	tests := []struct {
		name, iface, out string
		opts             []netprobe.CaptureOption
		want             error
	}{
		{"bad host filter", "lo", filepath.Join(dir, "a"), []netprobe.CaptureOption{netprobe.WithHostFilter("nope")}, netprobe.ErrBadAddress},
		{"no such interface", "nosuch0", filepath.Join(dir, "b"), nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := netprobe.StartCapture(ctx, tt.iface, tt.out, tt.opts...)
			if err == nil {
				c.Stop()
				t.Fatal("StartCapture succeeded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
			if !errors.Is(err, netprobe.ErrCaptureNotPermitted) && os.Geteuid() == 0 && !strings.Contains(err.Error(), tt.iface) {
				t.Errorf("%q does not name the interface", err)
			}
		})
	}
}
