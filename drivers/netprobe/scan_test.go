package netprobe_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/netprobe"
)

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// listen opens a TCP listener that accepts and closes connections.
func listen(t testing.TB, addr string) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

func TestScanTCPFull(t *testing.T) {
	// The "device" listens on 127.0.0.2 only; 127.0.0.3 is the control address.
	_, devPort := listen(t, "127.0.0.2:0")
	_, hostPort := listen(t, "0.0.0.0:0") // a listener of the host, on every address
	ctx := testCtx(t, 60*time.Second)
	var opts []netprobe.ScanOption
	if testing.Short() {
		ports := []int{devPort, hostPort}
		for p := 1; p <= 1024; p++ {
			ports = append(ports, p)
		}
		opts = append(opts, netprobe.WithPorts(ports...))
	}

	start := time.Now()
	open, err := netprobe.ScanTCP(ctx, "127.0.0.2", opts...)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TCP scan of 127.0.0.2: %v, open %v", elapsed, open)
	for _, p := range []int{devPort, hostPort} {
		if _, found := slices.BinarySearch(open, p); !found {
			t.Errorf("port %d not found open in %v", p, open)
		}
	}
	if !slices.IsSorted(open) {
		t.Errorf("open ports not sorted: %v", open)
	}

	res, err := netprobe.ScanAttributed(ctx, "127.0.0.2", "127.0.0.3", opts...)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Open, devPort) {
		t.Errorf("device port %d not in Open %v", devPort, res.Open)
	}
	if !slices.Contains(res.Unverifiable, hostPort) || slices.Contains(res.Open, hostPort) {
		t.Errorf("host port %d: Open %v, Unverifiable %v; want it unverifiable only", hostPort, res.Open, res.Unverifiable)
	}
}

func TestScanTCPOptions(t *testing.T) {
	_, p1 := listen(t, "127.0.0.4:0")
	_, p2 := listen(t, "127.0.0.4:0")
	closed := freePort(t, "127.0.0.4")
	ctx := testCtx(t, 10*time.Second)
	tests := []struct {
		name    string
		opts    []netprobe.ScanOption
		want    []int
		wantErr error
	}{
		{"listed ports", []netprobe.ScanOption{netprobe.WithPorts(p2, closed, p1)}, sorted(p1, p2), nil},
		{"one at a time", []netprobe.ScanOption{netprobe.WithPorts(p1, closed), netprobe.WithConcurrency(1)}, []int{p1}, nil},
		{"only closed", []netprobe.ScanOption{netprobe.WithPorts(closed)}, nil, nil},
		{"bad port", []netprobe.ScanOption{netprobe.WithPorts(0)}, nil, netprobe.ErrBadAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := netprobe.ScanTCP(ctx, "127.0.0.4", tt.opts...)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error: got %v, want %v", err, tt.wantErr)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	// An address that is on no interface: the kernel cannot route to it from here.
	_, err := netprobe.ScanTCP(ctx, "192.0.2.1", netprobe.WithPorts(80), netprobe.WithDialTimeout(200*time.Millisecond))
	if err != nil && !errors.Is(err, netprobe.ErrUnreachable) {
		t.Errorf("TEST-NET address: got %v, want nil (filtered) or ErrUnreachable", err)
	}
	if _, err := netprobe.ScanTCP(ctx, "no-such-host.invalid"); !errors.Is(err, netprobe.ErrBadAddress) {
		t.Errorf("unknown host: got %v, want ErrBadAddress", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := netprobe.ScanTCP(cctx, "127.0.0.2"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v, want context.Canceled", err)
	}
}

func TestTCPReachable(t *testing.T) {
	_, open := listen(t, "127.0.0.1:0")
	closed := freePort(t, "127.0.0.1")
	ctx := testCtx(t, 10*time.Second)
	tests := []struct {
		addr    string
		want    bool
		wantErr error
	}{
		{net.JoinHostPort("127.0.0.1", itoa(open)), true, nil},
		{net.JoinHostPort("127.0.0.1", itoa(closed)), false, nil},
		{"127.0.0.1", false, netprobe.ErrBadAddress},
	}
	for _, tt := range tests {
		got, err := netprobe.TCPReachable(ctx, tt.addr)
		if got != tt.want || !errors.Is(err, tt.wantErr) {
			t.Errorf("TCPReachable(%s): got %v, %v; want %v, %v", tt.addr, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestProbeUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if string(buf[:n]) == "ping" {
				pc.WriteTo([]byte("pong"), from)
			} // anything else is ignored, like a service that drops bad requests
		}
	}()
	port := pc.LocalAddr().(*net.UDPAddr).Port
	closed := freeUDPPort(t)
	tests := []struct {
		name    string
		port    int
		payload string
		want    netprobe.UDPResult
	}{
		{"answers", port, "ping", netprobe.UDPResult{Open: true, Reply: []byte("pong")}},
		{"closed", closed, "ping", netprobe.UDPResult{Closed: true}},
		{"silent", port, "junk", netprobe.UDPResult{OpenOrFiltered: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := netprobe.ProbeUDP(testCtx(t, 300*time.Millisecond), "127.0.0.1", tt.port, []byte(tt.payload))
			if err != nil {
				t.Fatal(err)
			}
			if got.Open != tt.want.Open || got.Closed != tt.want.Closed || got.OpenOrFiltered != tt.want.OpenOrFiltered || string(got.Reply) != string(tt.want.Reply) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestInspectTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	addr := ln.Addr().String()
	ctx := testCtx(t, 10*time.Second)
	tests := []struct {
		name          string
		cfg           *tls.Config
		wantHandshake bool
		wantVersion   uint16
		wantVerified  bool
		wantErrText   string
		wantCerts     int
	}{
		{"any certificate", nil, true, tls.VersionTLS13, false, "", 1},
		{"verified", &tls.Config{RootCAs: pool}, true, tls.VersionTLS13, true, "", 1},
		{"client max 1.2", &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}, false, 0, false, "protocol version", 0},
		{"unknown CA", &tls.Config{}, false, 0, false, "certificate", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, err := netprobe.InspectTLS(ctx, addr, tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if info.Handshake != tt.wantHandshake || info.Version != tt.wantVersion || info.Verified != tt.wantVerified {
				t.Errorf("got handshake %v version %s verified %v, want %v %s %v (error %q)",
					info.Handshake, info.VersionName, info.Verified, tt.wantHandshake, tls.VersionName(tt.wantVersion), tt.wantVerified, info.Error)
			}
			if !strings.Contains(info.Error, tt.wantErrText) || (tt.wantErrText == "") != (info.Error == "") {
				t.Errorf("error text %q, want it to mention %q", info.Error, tt.wantErrText)
			}
			if len(info.PeerCertificates) != tt.wantCerts {
				t.Errorf("got %d peer certificates, want %d", len(info.PeerCertificates), tt.wantCerts)
			}
			if info.Handshake && (info.CipherSuiteName == "" || !strings.HasPrefix(info.CipherSuiteName, "TLS_")) {
				t.Errorf("cipher suite %q", info.CipherSuiteName)
			}
		})
	}
	if _, err := netprobe.InspectTLS(ctx, net.JoinHostPort("127.0.0.1", itoa(freePort(t, "127.0.0.1"))), nil); err == nil {
		t.Errorf("closed port: got no error")
	}
}

func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "rd-0123456789abcdef"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

func freePort(t testing.TB, host string) int {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func freeUDPPort(t testing.TB) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

func sorted(p ...int) []int { slices.Sort(p); return p }

func itoa(i int) string { return strconv.Itoa(i) }
