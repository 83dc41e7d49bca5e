package suites

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hilt-project/hilt/drivers/netprobe"
	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/harness/pki"
	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/wire"
)

// Network helpers of the DC, DP and LA checks: raw management lines, TLS handshakes with a
// capped version, the untrusted TLS server of DP-02, and flows of a capture.

// errNotReached says a TCP connection could not be made at all.
var errNotReached = errors.New("port not reachable")

// tlsHandshake connects to addr and makes a TLS handshake with cfg; it returns the version
// agreed. A connection that cannot be made wraps errNotReached; a refused handshake does not.
func tlsHandshake(ctx context.Context, addr string, cfg *tls.Config) (uint16, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", errNotReached, addr, err)
	}
	defer conn.Close()
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return 0, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return tc.ConnectionState().Version, nil
}

// mgmtRawLine sends one line as given to the management API on a fresh connection and
// reads one answer. closed is true when the device closed the connection instead of
// answering; err is a fault of the connection (no answer in time included).
func (e *Env) mgmtRawLine(ctx context.Context, line string) (resp wire.Response, closed bool, err error) {
	cctx, cancel := context.WithTimeout(ctx, e.cmdTimeout())
	defer cancel()
	d := tls.Dialer{Config: e.S.Mgmt.TLSConfig()}
	conn, err := d.DialContext(cctx, "tcp", e.S.Mgmt.Addr())
	if err != nil {
		return resp, false, fmt.Errorf("mgmt %s: %w", e.S.Mgmt.Addr(), err)
	}
	defer conn.Close()
	dl, _ := cctx.Deadline()
	conn.SetDeadline(dl)
	if _, err := conn.Write([]byte(line + "\n")); err != nil {
		return resp, false, fmt.Errorf("mgmt %s: write: %w", e.S.Mgmt.Addr(), err)
	}
	b, err := bufio.NewReader(conn).ReadBytes('\n')
	switch {
	case len(b) == 0 && (errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)):
		return resp, true, nil
	case err != nil && len(b) == 0:
		return resp, false, fmt.Errorf("mgmt %s: read the answer: %w", e.S.Mgmt.Addr(), err)
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return resp, false, fmt.Errorf("mgmt %s: malformed answer %.200q: %w", e.S.Mgmt.Addr(), b, err)
	}
	return resp, false, nil
}

func isReset(err error) bool { return errors.Is(err, syscall.ECONNRESET) }

// dataWait is how long the untrusted server waits for application data after a handshake.
const dataWait = 3 * time.Second

// tlsAttempt is what the untrusted server saw of one connection.
type tlsAttempt struct {
	Remote string
	// First holds the first bytes the client sent; TLS says whether they open a TLS record.
	First []byte
	TLS   bool
	// Completed says the handshake completed; Data is what the client sent after it.
	Completed    bool
	Data         []byte
	HandshakeErr error
}

func (a tlsAttempt) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "connection from %s\nfirst bytes: % x\nTLS: %v\n", a.Remote, a.First, a.TLS)
	if a.Completed {
		fmt.Fprintf(&b, "handshake completed; %d bytes of application data: %q\n", len(a.Data), a.Data)
	} else {
		fmt.Fprintf(&b, "handshake failed: %v\n", a.HandshakeErr)
	}
	return b.String()
}

// untrustedTLS is a TLS server with a certificate from a CA nobody trusts.
type untrustedTLS struct {
	ln       net.Listener
	attempts chan tlsAttempt
	wg       sync.WaitGroup
}

// startUntrustedTLS listens on host:0 with a certificate for host from a throwaway CA.
func startUntrustedTLS(host string) (*untrustedTLS, error) {
	leaf, err := pki.UntrustedServerCert([]string{host})
	if err != nil {
		return nil, err
	}
	cert, err := leaf.TLSCertificate()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", host, err)
	}
	s := &untrustedTLS{ln: ln, attempts: make(chan tlsAttempt, 16)}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				a := serveOnce(conn, cfg)
				select {
				case s.attempts <- a:
				default:
				}
			}()
		}
	}()
	return s, nil
}

func serveOnce(conn net.Conn, cfg *tls.Config) tlsAttempt {
	defer conn.Close()
	rec := &firstBytes{Conn: conn}
	a := tlsAttempt{Remote: conn.RemoteAddr().String()}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	tc := tls.Server(rec, cfg)
	err := tc.Handshake()
	a.First = rec.first
	a.TLS = len(a.First) > 0 && a.First[0] == 0x16 // a TLS handshake record
	if err != nil {
		a.HandshakeErr = err
		return a
	}
	a.Completed = true
	conn.SetDeadline(time.Now().Add(dataWait))
	buf := make([]byte, 4096)
	n, _ := io.ReadAtLeast(tc, buf, 1)
	a.Data = buf[:n]
	return a
}

// Addr is the server's host:port.
func (s *untrustedTLS) Addr() string { return s.ln.Addr().String() }

// Next returns the next connection attempt, or ctx's error when none came.
func (s *untrustedTLS) Next(ctx context.Context) (tlsAttempt, error) {
	select {
	case a := <-s.attempts:
		return a, nil
	case <-ctx.Done():
		return tlsAttempt{}, ctx.Err()
	}
}

// Close stops the server and waits for its connections to end.
func (s *untrustedTLS) Close() {
	s.ln.Close()
	s.wg.Wait()
}

// firstBytes records the first bytes read through a connection.
type firstBytes struct {
	net.Conn
	first []byte
}

func (f *firstBytes) Read(p []byte) (int, error) {
	n, err := f.Conn.Read(p)
	if len(f.first) < 16 {
		f.first = append(f.first, p[:min(n, 16-len(f.first))]...)
	}
	return n, err
}

// describeMQTT says what application data looks like: an MQTT CONNECT or unknown bytes.
func describeMQTT(b []byte) string {
	if len(b) > 0 && b[0] == 0x10 {
		return fmt.Sprintf("an MQTT CONNECT: % x", b[:min(len(b), 32)])
	}
	return fmt.Sprintf("% x", b[:min(len(b), 32)])
}

// flowDecl is a declared flow with its server port resolved.
type flowDecl struct {
	Name, Direction string
	Port            int
}

// brokerPort is the port of a broker URL (mqtts://host:port), with the scheme's default.
func brokerPort(raw string) int {
	u, err := url.Parse(raw)
	if err != nil {
		return 0
	}
	if p, err := strconv.Atoi(u.Port()); err == nil {
		return p
	}
	if u.Scheme == "mqtt" || u.Scheme == "tcp" {
		return 1883
	}
	return 8883
}

// portState says whether addr accepts a TCP connection (open), refuses it or stays silent
// for a whole second (closed), or neither (an error: unreachable network, ...). Each
// attempt gets its own second, cut short only by the end of the check: a probe near the
// end of a bounded poll must not read a deadline as a closed port.
func portState(ctx context.Context, addr string) (open, closed bool, err error) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	ok, err := netprobe.TCPReachable(dctx, addr)
	switch {
	case ctx.Err() != nil:
		return false, false, ctx.Err()
	case err != nil:
		return false, false, err
	}
	return ok, !ok, nil
}

// anyFlow reports whether flows hold a TLS flow of the declared kind for the device at addr.
func anyFlow(flows []netprobe.Flow, addr string, d flowDecl) bool {
	dev, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	dev = dev.Unmap()
	for _, f := range flows {
		if f.Key.Proto != "tcp" || int(f.Key.Server.Port()) != d.Port || f.Class != netprobe.ClassTLS {
			continue
		}
		end := f.Key.Client.Addr() // "out": the device connects
		if d.Direction == "in" {
			end = f.Key.Server.Addr()
		}
		if end.Unmap() == dev {
			return true
		}
	}
	return false
}

func flowString(f netprobe.Flow) string {
	return fmt.Sprintf("%s %s (client %d bytes, server %d bytes)", f.Key, f.Class, f.ClientBytes, f.ServerBytes)
}

// addrFamily names the family of a device address for reports: "IPv4" or "IPv6".
func addrFamily(host string) string {
	if a, err := netip.ParseAddr(host); err == nil && a.Unmap().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// addrList lists addresses with their families for reports: "10.1.2.6 (IPv4), fd00::2 (IPv6)".
func addrList(hosts []string) string {
	var parts []string
	for _, h := range hosts {
		parts = append(parts, fmt.Sprintf("%s (%s)", h, addrFamily(h)))
	}
	return strings.Join(parts, ", ")
}

// reachable answers whether the interface's port on host (one of the device's addresses)
// accepts a connection and answers a ping.
func (e *Env) reachable(ctx context.Context, d profile.Interface, host string) bool {
	addr := agent.HostPort(host, e.port(d))
	if open, _, err := portState(ctx, addr); err != nil || !open {
		return false
	}
	var t agent.Transport
	switch {
	case d.Name == wire.IfaceDebug:
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		dt, err := agent.DialDebug(dctx, e.S.Name, addr)
		if err != nil {
			return false
		}
		defer dt.Close()
		t = dt
	case host == e.S.Inst.Address:
		e.S.Mgmt.Reset()
		t = e.S.Mgmt
	default:
		m := agent.NewMgmt(e.S.Name, addr) // a ping is all it carries: no key pinned
		defer m.Close()
		t = m
	}
	return doWithin(ctx, probeWait, t, nil, "ping", nil) == nil
}

// portStates probes the interface's port on every host and sorts the hosts by what they
// did: accepted a connection, refused it (or stayed silent), or could not be probed.
func (e *Env) portStates(ctx context.Context, d profile.Interface, hosts []string) (open, closed []string, errs map[string]error) {
	errs = map[string]error{}
	for _, h := range hosts {
		o, cl, err := portState(ctx, agent.HostPort(h, e.port(d)))
		switch {
		case err != nil:
			errs[h] = err
		case o:
			open = append(open, h)
		case cl:
			closed = append(closed, h)
		}
	}
	return open, closed, errs
}

// toggleTCP enables, disables and enables again a network interface over the console,
// probing its port on every address the profile gives for the device (IPv4 and IPv6) each
// time, and leaves it as it was. The interface must answer on the device's main address
// while enabled; on another address it need not listen at all, but while it is disabled it
// must be closed on every address, and where it answered before it must answer again once
// enabled: a stack with one listener per family can close one and forget the other.
func (e *Env) toggleTCP(ctx context.Context, c *C, f *findings, d profile.Interface, was bool) {
	port := e.port(d)
	hosts := e.S.Inst.Addresses()
	primary := e.S.Inst.Address
	var others []string
	for _, h := range hosts {
		if h != primary {
			others = append(others, h)
		}
	}
	set := func(on bool) {
		c.Must(e.setIface(ctx, wire.IfaceConsole, d.Name, on), fmt.Sprintf("switch %s %s on the console", d.Name, onOff(on, true)))
	}
	up := func(ctx context.Context) bool { return e.reachable(ctx, d, primary) }
	set(true)
	if ok, _ := pollUntil(ctx, probeWait, 100*time.Millisecond, up); !ok {
		c.Errorf("%s does not answer on port %d of %s while enabled: cannot test disabling it", d.Name, port, primary)
	}
	listening, silent, errs := e.portStates(ctx, d, others)
	for _, h := range others {
		if err := errs[h]; err != nil {
			c.Errorf("%s while enabled: cannot probe port %d on the device's %s address %s (from the profile): %v", d.Name, port, addrFamily(h), h, err)
		}
	}
	if len(silent) > 0 {
		c.Note("%s does not listen on %s while enabled (the device need not)", d.Name, addrList(silent))
	}

	set(false)
	var still []string
	var probeErrs map[string]error
	down := func(ctx context.Context) bool {
		still, _, probeErrs = e.portStates(ctx, d, hosts)
		return len(still) == 0 && len(probeErrs) == 0
	}
	ok, took := pollUntil(ctx, probeWait, 100*time.Millisecond, down)
	switch {
	case !ok && len(still) > 0:
		var where []string
		for _, h := range still {
			w := fmt.Sprintf("%s port %d (%s)", h, port, addrFamily(h))
			if e.reachable(ctx, d, h) {
				w += " and answers commands there"
			}
			where = append(where, w)
		}
		for h, err := range probeErrs {
			where = append(where, fmt.Sprintf("(%s could not be probed: %v)", h, err))
		}
		f.add("%s still accepts connections on %s %s after it was disabled (probed: %s)", d.Name, strings.Join(where, "; "), took.Round(time.Millisecond), addrList(hosts))
	case !ok:
		var why []string
		for h, err := range probeErrs {
			why = append(why, fmt.Sprintf("%s: %v", h, err))
		}
		c.Errorf("%s while disabled: cannot probe port %d on every address of the device: %s", d.Name, port, strings.Join(why, "; "))
	}

	set(true)
	if ok, _ := pollUntil(ctx, probeWait, 100*time.Millisecond, up); !ok {
		f.add("%s does not answer on port %d of %s after it was enabled again", d.Name, port, primary)
	}
	for _, h := range listening {
		back := func(ctx context.Context) bool {
			open, _, _ := e.portStates(ctx, d, []string{h})
			return len(open) == 1
		}
		if ok, _ := pollUntil(ctx, probeWait, 100*time.Millisecond, back); !ok {
			f.add("%s answered on port %d of %s (%s) before it was disabled, and no longer does after it was enabled again", d.Name, port, h, addrFamily(h))
		}
	}
	if !was {
		set(false)
	}
}
