package runner

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/suites"
)

// qemuBackend drives an emulated unit through its QMP socket.
type qemuBackend struct{ p *profile.Profile }

func (qemuBackend) Kind() string { return "qemu" }

func (b qemuBackend) PowerCut(ctx SpecContext, device string) error {
	return fmt.Errorf("%s: %w (QMP power control is not wired yet)", device, suites.ErrUnsupported)
}

func (b qemuBackend) WithStorage(ctx SpecContext, device string, fn func(string) error) error {
	return fmt.Errorf("%s: %w (QMP storage access is not wired yet)", device, suites.ErrUnsupported)
}
