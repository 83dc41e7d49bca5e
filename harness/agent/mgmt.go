package agent

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hilt-project/hilt/wire"
)

// ErrKeyMismatch is returned when a device's TLS certificate is not signed by the key
// pinned for it.
var ErrKeyMismatch = errors.New("device TLS key does not match the pinned identity key")

// Mgmt is the transport over a device's TLS management API (JSON lines).
type Mgmt struct {
	device, addr string
	pin          ed25519.PublicKey
	tlsMax       uint16
	seq          atomic.Int64

	mu   sync.Mutex
	conn *tls.Conn
	r    *bufio.Reader
}

var _ Transport = (*Mgmt)(nil)

// MgmtOption configures a Mgmt transport.
type MgmtOption func(*Mgmt)

// WithPin verifies the device certificate's key against pin (the key bound to the ID).
func WithPin(pin ed25519.PublicKey) MgmtOption { return func(m *Mgmt) { m.pin = pin } }

// WithMaxTLS caps the TLS version the harness offers (e.g. tls.VersionTLS12).
func WithMaxTLS(v uint16) MgmtOption { return func(m *Mgmt) { m.tlsMax = v } }

// NewMgmt returns a transport to the management API at addr; it connects on first use.
func NewMgmt(device, addr string, opts ...MgmtOption) *Mgmt {
	m := &Mgmt{device: device, addr: addr}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Iface implements Transport.
func (m *Mgmt) Iface() string { return "mgmt" }

// PeerInfo is what the management API's TLS handshake showed.
type PeerInfo struct {
	Version uint16
	CN      string
	Key     ed25519.PublicKey
}

// TLSConfig is the client configuration: the device's certificate is self-signed, so
// trust comes from the pinned key, checked in VerifyPeerCertificate.
func (m *Mgmt) TLSConfig() *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // verified below against the pinned identity key
		MaxVersion:         m.tlsMax,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if m.pin == nil {
				return nil
			}
			if len(raw) == 0 {
				return ErrKeyMismatch
			}
			c, err := x509.ParseCertificate(raw[0])
			if err != nil {
				return err
			}
			k, ok := c.PublicKey.(ed25519.PublicKey)
			if !ok || !k.Equal(m.pin) {
				return ErrKeyMismatch
			}
			// Self-signed by the pinned key (not a CA certificate, so not CheckSignatureFrom).
			return c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature)
		},
	}
}

// Handshake makes a fresh TLS connection and reports what the device showed.
func (m *Mgmt) Handshake(ctx context.Context) (PeerInfo, error) {
	d := tls.Dialer{Config: m.TLSConfig()}
	c, err := d.DialContext(ctx, "tcp", m.addr)
	if err != nil {
		return PeerInfo{}, fmt.Errorf("%s: mgmt TLS %s: %w", m.device, m.addr, err)
	}
	defer c.Close()
	st := c.(*tls.Conn).ConnectionState()
	pi := PeerInfo{Version: st.Version}
	if len(st.PeerCertificates) > 0 {
		pi.CN = st.PeerCertificates[0].Subject.CommonName
		pi.Key, _ = st.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	}
	return pi, nil
}

func (m *Mgmt) connect(ctx context.Context) error {
	if m.conn != nil {
		return nil
	}
	d := tls.Dialer{Config: m.TLSConfig()}
	c, err := d.DialContext(ctx, "tcp", m.addr)
	if err != nil {
		return fmt.Errorf("%s: mgmt %s: %w", m.device, m.addr, err)
	}
	m.conn, m.r = c.(*tls.Conn), bufio.NewReaderSize(c, 1<<20)
	return nil
}

// Do implements Transport.
func (m *Mgmt) Do(ctx context.Context, auth *wire.Auth, cmd string, args map[string]any) (json.RawMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	req := wire.Request{Corr: "m" + strconv.FormatInt(m.seq.Add(1), 10), Auth: auth, Cmd: cmd, Args: args}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		reused := m.conn != nil
		if err := m.connect(ctx); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNoAnswer, err)
		}
		resp, err := m.exchange(ctx, b, req.Corr)
		if err == nil {
			return decodeResponse(m.device, "mgmt", cmd, resp)
		}
		m.dropLocked()
		// A kept connection the device closed while idle (reboot, interface toggled) is
		// retried once on a fresh one; a fresh connection that fails is not retried, so a
		// command is never sent twice to a device that did answer.
		if !reused || attempt > 0 || ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %s over mgmt: %w: %w", m.device, cmd, ErrNoAnswer, err)
		}
	}
}

func (m *Mgmt) exchange(ctx context.Context, b []byte, corr string) (wire.Response, error) {
	setDeadline(ctx, m.conn)
	if _, err := m.conn.Write(append(b, '\n')); err != nil {
		return wire.Response{}, err
	}
	for {
		line, err := m.r.ReadBytes('\n')
		if err != nil {
			return wire.Response{}, err
		}
		var resp wire.Response
		if err := json.Unmarshal(line, &resp); err != nil {
			return wire.Response{}, fmt.Errorf("malformed response %.200q: %w", line, err)
		}
		if resp.Corr == corr || resp.Corr == "" {
			return resp, nil
		}
	}
}

// Reset drops the connection, e.g. after the device rebooted or a setting changed.
func (m *Mgmt) Reset() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropLocked()
}

func (m *Mgmt) dropLocked() {
	if m.conn != nil {
		m.conn.Close()
		m.conn, m.r = nil, nil
	}
}

// Close implements Transport.
func (m *Mgmt) Close() error { m.Reset(); return nil }

// Addr is the management API's address.
func (m *Mgmt) Addr() string { return m.addr }

// HostPort joins an address and port.
func HostPort(addr string, port int) string { return net.JoinHostPort(addr, strconv.Itoa(port)) }
