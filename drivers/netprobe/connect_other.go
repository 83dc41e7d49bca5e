//go:build !linux

package netprobe

import (
	"context"
	"net"
	"net/netip"
	"sync"
)

// probePorts probes the TCP ports of ip with a pool of dialers.
func probePorts(ctx context.Context, ip netip.Addr, cfg scanConfig, states []portState, errs []error) error {
	next := make(chan int)
	var wg sync.WaitGroup
	for range cfg.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: cfg.dialTimeout}
			for i := range next {
				ap := netip.AddrPortFrom(ip, uint16(cfg.ports[i]))
				conn, err := d.DialContext(ctx, "tcp", ap.String())
				if err == nil {
					conn.Close()
					states[i] = portOpen
					continue
				}
				states[i], errs[i] = dialState(ctx, err), err
			}
		}()
	}
feed:
	for i := range cfg.ports {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return ctx.Err()
}
