package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCA(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	c := ca.Certificate()
	if !c.IsCA {
		t.Errorf("IsCA = false, want true")
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key = %T, want ECDSA P-256", c.PublicKey)
	}
	if got := c.NotAfter.Sub(time.Now()); got > Validity || got < Validity-time.Minute {
		t.Errorf("CA valid for %v more, want about %v", got, Validity)
	}
}

func TestIssueServer(t *testing.T) {
	ca, err := NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		hosts  []string
		verify string
		ok     bool
	}{
		{"ip SAN", []string{"10.1.2.1", "127.0.0.1"}, "127.0.0.1", true},
		{"second ip SAN", []string{"10.1.2.1", "127.0.0.1"}, "10.1.2.1", true},
		{"dns SAN", []string{"localhost", "127.0.0.1"}, "localhost", true},
		{"other ip", []string{"10.1.2.1"}, "10.1.2.5", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			leaf, err := ca.IssueServer(tc.hosts)
			if err != nil {
				t.Fatal(err)
			}
			tc0, err := leaf.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(tc0.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			_, err = cert.Verify(x509.VerifyOptions{
				Roots:     ca.Pool(),
				DNSName:   tc.verify,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if got := err == nil; got != tc.ok {
				t.Errorf("verify for %s: got ok=%v (%v), want ok=%v", tc.verify, got, err, tc.ok)
			}
		})
	}
	if _, err := ca.IssueServer(nil); !errors.Is(err, ErrNoHosts) {
		t.Errorf("IssueServer(nil): got %v, want ErrNoHosts", err)
	}
}

// TestUntrusted checks that a TLS client trusting the run CA refuses the untrusted server
// and accepts the trusted one, over a real loopback handshake.
func TestUntrusted(t *testing.T) {
	ca, err := NewCA("run CA")
	if err != nil {
		t.Fatal(err)
	}
	good, err := ca.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := UntrustedServerCert([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		leaf *Leaf
		ok   bool
	}{{"trusted", good, true}, {"untrusted", bad, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cert, err := tc.leaf.TLSCertificate()
			if err != nil {
				t.Fatal(err)
			}
			ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
			d := &net.Dialer{Timeout: 5 * time.Second}
			c, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{RootCAs: ca.Pool()})
			if err == nil {
				c.Close()
			}
			if got := err == nil; got != tc.ok {
				t.Errorf("handshake: got ok=%v (%v), want ok=%v", got, err, tc.ok)
			}
		})
	}
}

func TestWriteFiles(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("run CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServer([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	caPath, certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "s.pem"), filepath.Join(dir, "s.key")
	if err := ca.WriteCert(caPath); err != nil {
		t.Fatal(err)
	}
	if err := leaf.WriteFiles(certPath, keyPath); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(certPath, keyPath); err != nil {
		t.Errorf("load written pair: %v", err)
	}
	st, err := os.Stat(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("key file mode = %o, want 600", got)
	}
	if err := leaf.WriteFiles(filepath.Join(dir, "missing", "x.pem"), keyPath); err == nil {
		t.Errorf("WriteFiles into a missing dir: got nil error")
	}
}
