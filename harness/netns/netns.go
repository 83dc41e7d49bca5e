package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
)

// MaxDevices is the most devices one run can have: one /30 each inside one /24.
const MaxDevices = 64

// Mode says how devices are separated from the host.
type Mode string

// Modes: a network namespace per device, or loopback addresses on the host's stack.
const (
	ModeNamespace Mode = "netns"
	ModeLoopback  Mode = "loopback"
)

// Sentinel errors wrapped in a FallbackError's Err.
var (
	// ErrNotPermitted means namespaces could not be made for lack of privilege.
	ErrNotPermitted = errors.New("not permitted to create network namespaces")
	// ErrRequested means the caller asked for loopback.
	ErrRequested = errors.New("loopback requested")
	// ErrUnsupported means this system has no network namespaces or no iproute2.
	ErrUnsupported = errors.New("network namespaces unsupported here")
)

// FallbackError says why Setup fell back to loopback. It is not returned from Setup as a
// failure: Network.Fallback hands it out so that the caller can print it.
type FallbackError struct {
	// Reason is a short sentence for the user.
	Reason string
	// Err is ErrNotPermitted, ErrRequested or ErrUnsupported, possibly wrapping the cause.
	Err error
}

func (e *FallbackError) Error() string {
	return "no network namespaces (" + e.Reason + "): devices share the host's network stack on " +
		"loopback addresses; ports that also answer on the control address cannot be attributed " +
		"to a device, and packet capture is not possible"
}

// Unwrap returns the underlying reason.
func (e *FallbackError) Unwrap() error { return e.Err }

// Options configures Setup.
type Options struct {
	// Devices is the number of devices (1..MaxDevices).
	Devices int
	// RunID names the run's namespaces and interfaces; default a random 6-hex-digit ID.
	// It must be 1..8 characters of [a-z0-9].
	RunID string
	// StateDir holds the run state files; default DefaultStateDir().
	StateDir string
	// Loopback skips namespaces even when they could be made.
	Loopback bool
}

// Host is one device's network surface.
type Host struct {
	// Index is the device number, from 1.
	Index int
	// Namespace is the device's network namespace ("" in loopback mode).
	Namespace string
	// HostIf is the host side of the device's veth pair ("" in loopback mode).
	HostIf string
	// Address is the device's own address.
	Address netip.Addr
	// HarnessAddress is the host's address as the device reaches it.
	HarnessAddress netip.Addr
	// Prefix is the device's link (a /30; invalid in loopback mode).
	Prefix netip.Prefix
	// Address6 is the device's own IPv6 address, a ULA (fd00::/8) on its link; invalid where
	// the device has none (loopback mode, or a host without IPv6).
	Address6 netip.Addr
	// HarnessAddress6 is the host side's IPv6 address on the device's link (invalid when
	// Address6 is).
	HarnessAddress6 netip.Addr
	// Prefix6 is the device's IPv6 link (a /64 of the run's ULA /48; invalid when Address6 is).
	Prefix6 netip.Prefix
	// ControlAddress, in loopback mode, is an address with no device on it that shares the
	// device's stack (invalid in namespace mode).
	ControlAddress netip.Addr
}

// Command returns a command that runs name inside the device's namespace (or directly, in
// loopback mode). The caller starts it and owns the process.
func (h Host) Command(name string, arg ...string) *exec.Cmd {
	if h.Namespace == "" {
		return exec.Command(name, arg...)
	}
	return exec.Command("ip", append([]string{"netns", "exec", h.Namespace, name}, arg...)...)
}

// Network is the set of device hosts of one run.
type Network struct {
	runID    string
	mode     Mode
	hosts    []Host
	fallback *FallbackError
	stateDir string

	mu     sync.Mutex
	closed bool
}

// RunID returns the run's ID, part of every namespace and interface name.
func (n *Network) RunID() string { return n.runID }

// Mode returns how devices are separated.
func (n *Network) Mode() Mode { return n.mode }

// Hosts returns the devices' network surfaces, in device order.
func (n *Network) Hosts() []Host { return append([]Host(nil), n.hosts...) }

// Fallback returns why namespaces are not in use, or nil when they are.
func (n *Network) Fallback() *FallbackError { return n.fallback }

var runIDPattern = regexp.MustCompile(`^[a-z0-9]{1,8}$`)

// Setup makes the network surfaces for opts.Devices devices. It uses namespaces when it can
// and falls back to loopback (see Network.Fallback) when it may not; any other failure is an
// error, and then nothing that Setup made is left behind.
func Setup(ctx context.Context, opts Options) (*Network, error) {
	if opts.Devices < 1 || opts.Devices > MaxDevices {
		return nil, fmt.Errorf("netns: %d devices: want 1..%d", opts.Devices, MaxDevices)
	}
	if opts.RunID == "" {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("netns: run ID: %w", err)
		}
		opts.RunID = hex.EncodeToString(b[:])
	}
	if !runIDPattern.MatchString(opts.RunID) {
		return nil, fmt.Errorf("netns: run ID %q: want 1..8 characters of [a-z0-9]", opts.RunID)
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir()
	}
	if opts.Loopback {
		return setupLoopback(opts, &FallbackError{Reason: "loopback requested", Err: ErrRequested})
	}
	n, err := setupNamespaces(ctx, opts)
	var fb *FallbackError
	if errors.As(err, &fb) {
		return setupLoopback(opts, fb)
	}
	return n, err
}

// Close removes the run's namespaces and interfaces (killing whatever still runs inside)
// and its state file. It is idempotent.
func (n *Network) Close(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil
	}
	n.closed = true
	if n.mode != ModeNamespace {
		return nil
	}
	st := runState{RunID: n.runID}
	for _, h := range n.hosts {
		st.Namespaces = append(st.Namespaces, h.Namespace)
		st.HostIfs = append(st.HostIfs, h.HostIf)
	}
	return removeRun(ctx, n.stateDir, st)
}

// StateDirEnv names the environment variable that moves the run state files (and the lock
// that orders runs) to another folder. Runs only see, and only clean up after, the runs that
// share their state folder: a lab gives each group of benches its own, and tests that
// assert what a run removed give themselves one that no concurrent test touches.
const StateDirEnv = "HILT_STATE_DIR"

// DefaultStateDir is where run state files live: $HILT_STATE_DIR if set, else /run/hilt
// for root, else $TMPDIR/hilt-runs.
func DefaultStateDir() string {
	if d := os.Getenv(StateDirEnv); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/run/hilt"
	}
	return filepath.Join(os.TempDir(), "hilt-runs")
}

// NamespaceName returns the namespace name of device i of a run.
func NamespaceName(runID string, i int) string { return fmt.Sprintf("hilt-%s-%d", runID, i) }

// HostIfName returns the host-side interface name of device i of a run.
func HostIfName(runID string, i int) string { return fmt.Sprintf("hv%s%d", runID, i) }
