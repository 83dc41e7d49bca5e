package qemu

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors callers branch on (with errors.Is).
var (
	// ErrNoQEMU: the emulator binary is not installed.
	ErrNoQEMU = errors.New(Binary + " not found: install it (Debian/Ubuntu: apt-get install qemu-system-x86)")
	// ErrNoKernel: the kernel image is missing.
	ErrNoKernel = errors.New("no kernel")
	// ErrNoInitramfs: the initramfs is missing.
	ErrNoInitramfs = errors.New("no initramfs")
	// ErrExited: QEMU is no longer running (powered off, quit, killed or crashed).
	ErrExited = errors.New("QEMU exited")
	// ErrConsoleReleased: the VM no longer reads the console; whoever took it over does.
	ErrConsoleReleased = errors.New("console released")
)

// buildHint says how to make the kernel and initramfs.
const buildHint = "build them with `make qemu-image` (kernel via scripts/fetch-kernel.sh, initramfs via fixtures/qemu/mkimage)"

// ConsoleError is a wait on the guest's console that failed: the context ended (the guest
// never printed what was awaited) or QEMU exited. It carries the last console lines.
type ConsoleError struct {
	VM      string   // the VM's name
	Pattern string   // what was awaited
	Tail    []string // the last lines the guest printed
	Err     error    // context.DeadlineExceeded, context.Canceled, or an *ExitError
}

func (e *ConsoleError) Error() string {
	return fmt.Sprintf("qemu %s: waiting for %q on the console: %v%s", e.VM, e.Pattern, e.Err, formatTail("last console lines", e.Tail))
}

// Unwrap returns the cause.
func (e *ConsoleError) Unwrap() error { return e.Err }

// ExitError says that QEMU exited, and how: its exit status, its own last output lines and
// the guest's last console lines.
type ExitError struct {
	VM      string
	Err     error    // from waiting for the process; nil when QEMU exited with status 0
	Output  []string // QEMU's last lines on stdout and stderr
	Console []string // the guest's last console lines
}

func (e *ExitError) Error() string {
	how := "exited"
	if e.Err != nil {
		how = "exited: " + e.Err.Error()
	}
	return fmt.Sprintf("qemu %s: %s%s%s", e.VM, how, formatTail("QEMU output", e.Output), formatTail("last console lines", e.Console))
}

// Unwrap makes errors.Is(err, ErrExited) hold.
func (e *ExitError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrExited, e.Err}
	}
	return []error{ErrExited}
}

// QMPError is an error answer of QEMU's monitor.
type QMPError struct {
	VM      string
	Command string
	Class   string
	Desc    string
}

func (e *QMPError) Error() string {
	return fmt.Sprintf("qemu %s: QMP %s: %s: %s", e.VM, e.Command, e.Class, e.Desc)
}

func formatTail(what string, lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return "\n" + what + ":\n  " + strings.Join(lines, "\n  ")
}
