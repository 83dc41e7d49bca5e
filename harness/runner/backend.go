package runner

import (
	"fmt"
	"os"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/suites"
)

// backendFor returns what checks may ask of whoever runs the profile's units.
func backendFor(p *profile.Profile) suites.Backend {
	switch p.Backend {
	case profile.BackendSim:
		return simBackend{p: p}
	case profile.BackendQEMU:
		return qemuBackend{p: p}
	}
	return nil
}

// simBackend: a simulated unit's flash is a folder the device syncs on every write, so
// it can be read while the unit runs; power loss cannot be modelled (a killed process
// keeps its unsynced writes in the host's page cache).
type simBackend struct{ p *profile.Profile }

func (simBackend) Kind() string { return "sim" }

func (simBackend) PowerCut(SpecContext, string) error {
	return fmt.Errorf("simulated unit: %w (a killed host process keeps its unsynced writes in the host's page cache, so power loss is modelled only on the emulated unit)", suites.ErrUnsupported)
}

func (b simBackend) WithStorage(_ SpecContext, device string, fn func(string) error) error {
	in, ok := b.p.Instance(device)
	if !ok || in.Storage.DataDir == "" {
		return fmt.Errorf("%s: the profile names no data folder: %w", device, suites.ErrUnsupported)
	}
	dir := b.p.Resolve(in.Storage.DataDir)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("%s: data folder: %w", device, err)
	}
	return fn(dir)
}
