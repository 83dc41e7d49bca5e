//go:build !hilt_netprobe

package suites

import . "github.com/onsi/ginkgo/v2"

// Stand-ins until drivers/netprobe lands: DP-01 ends as harness errors.

func (e *Env) dp01(ctx SpecContext, c *C) { c.Errorf("drivers/netprobe is not built in: no capture") }
