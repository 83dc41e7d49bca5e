package netprobe

import (
	"errors"
	"net/netip"
)

// Capture errors, for errors.Is.
var (
	// ErrCaptureNotPermitted: the harness may not open a packet socket (not root, no
	// CAP_NET_RAW). A check that needs a capture must turn this into an error verdict,
	// never a pass.
	ErrCaptureNotPermitted = errors.New("packet capture not permitted (needs root or CAP_NET_RAW)")
	// ErrCaptureNotSupported: no packet capture on this operating system.
	ErrCaptureNotSupported = errors.New("packet capture not supported on this system")
)

// CaptureStats counts what a capture wrote.
type CaptureStats struct {
	// Packets and Bytes (as captured) written to the file.
	Packets int64
	Bytes   int64
	// Dropped counts the packets the kernel dropped because the harness did not read
	// them fast enough; when not zero the capture is incomplete.
	Dropped int64
}

// CaptureOption configures StartCapture.
type CaptureOption func(*captureConfig)

type captureConfig struct {
	host    netip.Addr
	hostErr error
	snapLen int
}

// DefaultSnapLen is how much of each packet a capture keeps unless told otherwise: all
// of it, up to the largest offloaded segment.
const DefaultSnapLen = 262144

// WithHostFilter keeps only the packets to or from ip (IPv4 or IPv6; ARP packets about
// it too).
func WithHostFilter(ip string) CaptureOption {
	return func(c *captureConfig) {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			c.hostErr = err
			return
		}
		c.host = a.Unmap()
	}
}

// WithSnapLen keeps at most n bytes of each packet.
func WithSnapLen(n int) CaptureOption { return func(c *captureConfig) { c.snapLen = n } }
