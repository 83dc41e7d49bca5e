package runner

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/suites"
)

// qemuBackend is an emulated unit's power and storage, as a check process sees them: the
// hilt run process that owns the unit's QEMU does the work, asked over the bench's control
// socket (qemu.control in the runtime profile; qemu_control.go).
type qemuBackend struct{ p *profile.Profile }

func (qemuBackend) Kind() string { return "qemu" }

// PowerCut cuts the unit's power (QMP quit: RAM and unsynced writes lost) and powers it on
// again; it returns while the unit boots, and the check waits for the ready line.
func (b qemuBackend) PowerCut(ctx SpecContext, device string) error {
	sock, err := b.control(device)
	if err != nil {
		return err
	}
	if err := controlPowerCut(ctx, sock, device); err != nil {
		return fmt.Errorf("%s: power cut: %w", device, err)
	}
	return nil
}

// WithStorage shuts the unit down cleanly (file systems unmounted), calls fn with its data
// disk image, and starts the unit again; it returns once the unit is ready.
func (b qemuBackend) WithStorage(ctx SpecContext, device string, fn func(string) error) error {
	sock, err := b.control(device)
	if err != nil {
		return err
	}
	return controlStorage(ctx, sock, opStorage, device, fn)
}

// WithFiles is WithStorage with the file system of the unit's data disk mounted on a
// folder (the same one every time for a unit) in place of the raw image: for checks that
// handle the files the declarations name (storage.image_slots) rather than scan raw
// storage. The folder is unmounted before the unit starts again.
func (b qemuBackend) WithFiles(ctx SpecContext, device string, fn func(string) error) error {
	sock, err := b.control(device)
	if err != nil {
		return err
	}
	return controlStorage(ctx, sock, opFiles, device, fn)
}

func (b qemuBackend) control(device string) (string, error) {
	if b.p.QEMU == nil || b.p.QEMU.Control == "" {
		return "", fmt.Errorf("%s: the profile names no bench control socket (qemu.control; hilt run writes it for the units it starts): %w", device, suites.ErrUnsupported)
	}
	return b.p.QEMU.Control, nil
}
