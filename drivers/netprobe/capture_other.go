//go:build !linux

package netprobe

import (
	"context"
	"fmt"
)

// Capture is a running packet capture (Linux only).
type Capture struct{}

// StartCapture fails with ErrCaptureNotSupported outside Linux.
func StartCapture(ctx context.Context, iface string, out string, opts ...CaptureOption) (*Capture, error) {
	return nil, fmt.Errorf("netprobe: capture on %s: %w", iface, ErrCaptureNotSupported)
}

// Path returns the file the capture writes.
func (c *Capture) Path() string { return "" }

// Stop does nothing outside Linux.
func (c *Capture) Stop() (CaptureStats, error) { return CaptureStats{}, nil }
