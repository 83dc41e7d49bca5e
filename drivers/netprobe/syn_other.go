//go:build !linux

package netprobe

import (
	"context"
	"fmt"
	"net/netip"
)

// probeSYN: SYN scans need Linux raw sockets; elsewhere the connect scan runs.
func probeSYN(context.Context, netip.Addr, scanConfig, []portState) error {
	return fmt.Errorf("%w: not Linux", errSYNUnavailable)
}
