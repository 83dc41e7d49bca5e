package runner

import (
	"context"
	"fmt"

	"github.com/hilt-project/hilt/harness/profile"
)

// startQEMU boots the emulated units of a qemu profile.
func startQEMU(ctx context.Context, o Options, p *profile.Profile) (*profile.Profile, func(), error) {
	return nil, nil, fmt.Errorf("%w: the qemu backend is not wired into hilt run yet", ErrBadInput)
}
