package netprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Sentinel errors, for errors.Is.
var (
	// ErrUnreachable: probes got errors other than "refused" or a timeout (host or
	// network unreachable, no local address): the result would prove nothing.
	ErrUnreachable = errors.New("target unreachable")
	// ErrBadAddress: the address or port cannot be used.
	ErrBadAddress = errors.New("bad address")
	// errSYNUnavailable: no raw socket (not root, no CAP_NET_RAW), or not Linux.
	errSYNUnavailable = errors.New("SYN scan unavailable")
)

// ScanMethod is how a TCP scan probes.
type ScanMethod string

// Scan methods.
const (
	// ScanAuto (the default) runs a SYN scan where it can, the connect scan otherwise.
	ScanAuto ScanMethod = ""
	// ScanSYN sends one SYN per port from a raw socket (Linux, root or CAP_NET_RAW)
	// and reads the answers: SYN-ACK open, RST closed, silence (after one retransmission,
	// three on a path that has lost a SYN) filtered. No socket per port, no handshake completed: the host's stack resets each
	// SYN-ACK, since nothing of its own asked for it.
	ScanSYN ScanMethod = "syn"
	// ScanConnect completes a TCP connection per port (any user, any OS).
	ScanConnect ScanMethod = "connect"
)

// ScanOption configures ScanTCP and ScanAttributed.
type ScanOption func(*scanConfig)

type scanConfig struct {
	ports       []int
	concurrency int
	dialTimeout time.Duration
	method      ScanMethod
}

// Scan defaults.
const (
	DefaultConcurrency = 2000
	DefaultDialTimeout = 300 * time.Millisecond
)

// WithPorts limits the scan to ports (default: 1-65535).
func WithPorts(ports ...int) ScanOption {
	return func(c *scanConfig) { c.ports = slices.Clone(ports) }
}

// WithConcurrency sets how many connection attempts run at once (default 2000). Each
// uses a file descriptor.
func WithConcurrency(n int) ScanOption { return func(c *scanConfig) { c.concurrency = n } }

// WithDialTimeout sets how long one attempt may take before the port counts as filtered
// (default 300ms). A SYN scan sends a SYN unanswered that long again, no sooner, and counts
// the port as filtered once two SYNs, or four once the path has lost one, have each gone
// unanswered that long.
func WithDialTimeout(d time.Duration) ScanOption { return func(c *scanConfig) { c.dialTimeout = d } }

// WithMethod chooses how to probe (default ScanAuto: a SYN scan where permitted, with
// the connect scan as the fallback). ScanSYN fails where a SYN scan cannot run.
func WithMethod(m ScanMethod) ScanOption { return func(c *scanConfig) { c.method = m } }

func newScanConfig(opts []ScanOption) (scanConfig, error) {
	c := scanConfig{concurrency: DefaultConcurrency, dialTimeout: DefaultDialTimeout}
	for _, o := range opts {
		o(&c)
	}
	if c.ports == nil {
		c.ports = make([]int, 65535)
		for i := range c.ports {
			c.ports[i] = i + 1
		}
	}
	for _, p := range c.ports {
		if p < 1 || p > 65535 {
			return c, fmt.Errorf("%w: port %d", ErrBadAddress, p)
		}
	}
	switch c.method {
	case ScanAuto, ScanSYN, ScanConnect:
	default:
		return c, fmt.Errorf("unknown scan method %q", c.method)
	}
	c.concurrency = max(1, min(c.concurrency, len(c.ports)))
	if c.dialTimeout <= 0 {
		c.dialTimeout = DefaultDialTimeout
	}
	return c, nil
}

// ScanResult is the outcome of ScanAttributed.
type ScanResult struct {
	// Open lists the ports open on the device and not on the control address.
	Open []int
	// Unverifiable lists the ports open on the device address that are open on the
	// control address too: the host's own listeners answer there, so these cannot be
	// blamed on (or credited to) the device.
	Unverifiable []int
	// Filtered lists the device's ports that neither accepted nor refused in time.
	Filtered []int
	// Method is how the device was scanned (ScanSYN or ScanConnect).
	Method ScanMethod
	// Fallback says why a ScanAuto scan of the device did not run as a SYN scan (empty
	// when it did).
	Fallback string
}

// portScan is the outcome of one scan of one address.
type portScan struct {
	open, filtered []int
	method         ScanMethod
	fallback       string
}

// ScanTCP probes every port of addr (an IP address or a host name, without a port) and
// returns the open ones, sorted: by default a SYN scan where permitted, else a connect
// scan (WithMethod; the package doc says how each works). A refused connection (RST) is a
// closed port; an attempt that times out counts as filtered, not open. Any other failure
// (unreachable host, no local address) makes the scan fail with ErrUnreachable, since a
// scan that could not reach the device must not read as "no open ports".
func ScanTCP(ctx context.Context, addr string, opts ...ScanOption) ([]int, error) {
	cfg, err := newScanConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("netprobe: scan %s: %w", addr, err)
	}
	r, err := scanTCP(ctx, addr, cfg)
	return r.open, err
}

// ScanAttributed scans addr, the device, and control, an address with no device behind
// it on the same host stack (another 127.x address, the harness's side of the device's
// link), at the same time (so with twice the file descriptors of one connect scan). A
// port open on both is Unverifiable: a listener of the host answers on it. With control
// empty it scans addr alone (nothing is Unverifiable): ScanTCP with the details.
func ScanAttributed(ctx context.Context, addr, control string, opts ...ScanOption) (ScanResult, error) {
	cfg, err := newScanConfig(opts)
	if err != nil {
		return ScanResult{}, fmt.Errorf("netprobe: scan %s: %w", addr, err)
	}
	if control == "" {
		dev, err := scanTCP(ctx, addr, cfg)
		if err != nil {
			return ScanResult{}, err
		}
		return ScanResult{Open: dev.open, Filtered: dev.filtered, Method: dev.method, Fallback: dev.fallback}, nil
	}
	var (
		wg           sync.WaitGroup
		dev, ctl     portScan
		devErr, cErr error
	)
	wg.Add(2)
	go func() { defer wg.Done(); dev, devErr = scanTCP(ctx, addr, cfg) }()
	go func() { defer wg.Done(); ctl, cErr = scanTCP(ctx, control, cfg) }()
	wg.Wait()
	if err := errors.Join(devErr, cErr); err != nil {
		return ScanResult{}, err
	}
	res := ScanResult{Filtered: dev.filtered, Method: dev.method, Fallback: dev.fallback}
	for _, p := range dev.open {
		if _, found := slices.BinarySearch(ctl.open, p); found {
			res.Unverifiable = append(res.Unverifiable, p)
		} else {
			res.Open = append(res.Open, p)
		}
	}
	return res, nil
}

// resolve returns the one IP address to probe for host.
func resolve(ctx context.Context, host string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap(), nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: %w", ErrBadAddress, err)
	}
	if len(ips) == 0 {
		return netip.Addr{}, fmt.Errorf("%w: %s has no address", ErrBadAddress, host)
	}
	return ips[0].Unmap(), nil
}

type portState int

const (
	portClosed portState = iota
	portOpen
	portFiltered
	portError
)

func scanTCP(ctx context.Context, host string, cfg scanConfig) (portScan, error) {
	ip, err := resolve(ctx, host)
	if err != nil {
		return portScan{}, fmt.Errorf("netprobe: scan %s: %w", host, err)
	}
	states := make([]portState, len(cfg.ports))
	errs := make([]error, len(cfg.ports))
	r := portScan{method: ScanConnect}
	if cfg.method != ScanConnect {
		err = probeSYN(ctx, ip, cfg, states)
		switch {
		case err == nil:
			r.method = ScanSYN
		case ctx.Err() != nil:
		case cfg.method == ScanSYN:
			return portScan{}, fmt.Errorf("netprobe: SYN scan of %s: %w", host, err)
		default:
			// Not permitted, or no answer at all (the connect scan tells an unreachable
			// device from a silent one), or the raw socket failed: connect instead.
			r.fallback = err.Error()
			clear(states)
		}
	}
	if r.method == ScanConnect && ctx.Err() == nil {
		err = probePorts(ctx, ip, cfg, states, errs)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return portScan{}, fmt.Errorf("netprobe: scan %s: %w", host, ctxErr)
	}
	if err != nil {
		return portScan{}, fmt.Errorf("netprobe: scan %s: %w", host, err)
	}
	var failed []int
	var firstErr error
	for i, s := range states {
		switch s {
		case portOpen:
			r.open = append(r.open, cfg.ports[i])
		case portFiltered:
			r.filtered = append(r.filtered, cfg.ports[i])
		case portError:
			failed = append(failed, cfg.ports[i])
			if firstErr == nil {
				firstErr = errs[i]
			}
		}
	}
	slices.Sort(r.open)
	slices.Sort(r.filtered)
	if len(failed) > 0 {
		return r, fmt.Errorf("netprobe: scan %s: %w: %d of %d ports (first, port %d: %w)",
			host, ErrUnreachable, len(failed), len(cfg.ports), failed[0], firstErr)
	}
	return r, nil
}

// dialState tells a refused connection from a silent port from a real failure.
func dialState(ctx context.Context, err error) portState {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return portClosed
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return portOpen // the handshake completed, then the service hung up
	case ctx.Err() != nil:
		return portError // reported as the context's error by the caller
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return portFiltered
	}
	return portError
}

// DefaultReachTimeout bounds TCPReachable when ctx has no deadline.
const DefaultReachTimeout = 3 * time.Second

// TCPReachable reports whether a TCP connection to addr (host:port) can be made. A
// refused or silent port is not reachable (false, nil); a failure that proves nothing
// (unreachable network, bad address, ctx cancelled) is an error.
func TCPReachable(ctx context.Context, addr string) (bool, error) {
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return false, fmt.Errorf("netprobe: reach %s: %w: %w", addr, ErrBadAddress, err)
	}
	d := net.Dialer{}
	if _, ok := ctx.Deadline(); !ok {
		d.Timeout = DefaultReachTimeout
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		conn.Close()
		return true, nil
	}
	if errors.Is(err, context.Canceled) {
		return false, fmt.Errorf("netprobe: reach %s: %w", addr, err)
	}
	switch dialState(context.Background(), err) {
	case portOpen:
		return true, nil
	case portClosed, portFiltered:
		return false, nil
	}
	return false, fmt.Errorf("netprobe: reach %s: %w: %w", addr, ErrUnreachable, err)
}
