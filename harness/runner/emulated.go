package runner

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hilt-project/hilt/harness/profile"
)

// StartEmulated boots the emulated units a qemu profile describes, with their broker and
// control socket, exactly as hilt run does before its checks, for a person to explore by
// hand (hilt qemu). It returns the runtime profile (its Path is valid while the bench runs)
// and stop, which kills the units, removes what the bench made and says per unit how it
// booted, and which QEMU was killed or crashed meanwhile; the bench log and console logs
// stay in o.Out/.hilt.
func StartEmulated(ctx context.Context, o Options, profilePath string) (*profile.Profile, func(), error) {
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	static, err := profile.Load(profilePath)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrBadInput, err)
	}
	if static.Backend != profile.BackendQEMU {
		return nil, nil, fmt.Errorf("%w: %s: backend %q; hilt qemu starts the units of a qemu profile (backend: qemu, as fixtures/devices/qemu.yaml)",
			ErrBadInput, profilePath, static.Backend)
	}
	if err := os.MkdirAll(filepath.Join(o.Out, ".hilt"), 0o755); err != nil {
		return nil, nil, err
	}
	p, stop, err := startQEMU(ctx, o, static)
	if err != nil {
		if stop != nil {
			stop(func(error) {})
		}
		return nil, nil, err
	}
	return p, func() {
		stop(func(err error) { fmt.Fprintf(o.Stdout, "hilt: %v\n", err) })
	}, nil
}
