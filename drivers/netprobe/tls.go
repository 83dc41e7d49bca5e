package netprobe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
)

// TLSInfo is what a TLS handshake with a service showed.
type TLSInfo struct {
	// Addr is the address inspected.
	Addr string
	// Handshake is true when the handshake completed.
	Handshake bool
	// Version and CipherSuite are the negotiated ones (zero without a handshake), with
	// their names (tls.VersionName, tls.CipherSuiteName).
	Version         uint16
	VersionName     string
	CipherSuite     uint16
	CipherSuiteName string
	// ALPN is the negotiated application protocol, if any.
	ALPN string
	// PeerCertificates is the chain the server sent, leaf first; also filled when the
	// handshake failed because that chain did not verify.
	PeerCertificates []*x509.Certificate
	// Verified is true when the chain was verified against the configuration's roots
	// (false with InsecureSkipVerify).
	Verified bool
	// Error is why the handshake failed ("" if it did not).
	Error string
}

// InspectTLS connects to addr (host:port) and performs a TLS handshake with cfg (nil: a
// configuration that accepts any certificate and TLS 1.0 and up, to see what the server
// offers; cipher suites are Go's defaults, so a server that offers only suites Go
// refuses, such as RSA key exchange, fails the handshake). A failed
// handshake is a result (Handshake false, Error set); only failing to connect at all is
// an error. The connection is closed before InspectTLS returns.
func InspectTLS(ctx context.Context, addr string, cfg *tls.Config) (TLSInfo, error) {
	info := TLSInfo{Addr: addr}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return info, fmt.Errorf("netprobe: tls %s: %w: %w", addr, ErrBadAddress, err)
	}
	if cfg == nil {
		cfg = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	d := net.Dialer{}
	if _, ok := ctx.Deadline(); !ok {
		d.Timeout = DefaultReachTimeout
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return info, fmt.Errorf("netprobe: tls %s: connect: %w", addr, err)
	}
	defer conn.Close()
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		if ctx.Err() != nil {
			return info, fmt.Errorf("netprobe: tls %s: handshake: %w", addr, ctx.Err())
		}
		info.Error = err.Error()
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			info.PeerCertificates = cv.UnverifiedCertificates
		}
		return info, nil
	}
	st := tc.ConnectionState()
	info.Handshake = true
	info.Version, info.VersionName = st.Version, tls.VersionName(st.Version)
	info.CipherSuite, info.CipherSuiteName = st.CipherSuite, tls.CipherSuiteName(st.CipherSuite)
	info.ALPN = st.NegotiatedProtocol
	info.PeerCertificates = st.PeerCertificates
	info.Verified = len(st.VerifiedChains) > 0
	return info, nil
}
