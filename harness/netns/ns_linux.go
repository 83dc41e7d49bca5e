package netns

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"time"
)

// subnetTries bounds the random search for a free /24.
const subnetTries = 64

// setupNamespaces makes one namespace per device. It returns a *FallbackError when it may
// not, and cleans up after itself on any failure.
func setupNamespaces(ctx context.Context, opts Options) (n *Network, err error) {
	if euid := os.Geteuid(); euid != 0 {
		return nil, &FallbackError{Reason: fmt.Sprintf("not running as root (euid %d)", euid), Err: ErrNotPermitted}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, &FallbackError{Reason: "the ip command (iproute2) is not installed", Err: fmt.Errorf("%w: %w", ErrUnsupported, err)}
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return nil, &FallbackError{Reason: "this kernel has no network namespaces", Err: fmt.Errorf("%w: %w", ErrUnsupported, err)}
	}

	unlock, err := lockDir(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	defer unlock()

	start, err := procStartTime(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("netns: own start time: %w", err)
	}
	st := runState{RunID: opts.RunID, PID: os.Getpid(), StartTime: start, Created: time.Now().UTC()}
	for i := 1; i <= opts.Devices; i++ {
		st.Namespaces = append(st.Namespaces, NamespaceName(opts.RunID, i))
		st.HostIfs = append(st.HostIfs, HostIfName(opts.RunID, i))
	}
	if _, err := os.Stat(statePath(opts.StateDir, opts.RunID)); err == nil {
		return nil, fmt.Errorf("netns: run %s already exists in %s", opts.RunID, opts.StateDir)
	}
	// The state file comes first so that a run killed half way is still found as stale.
	if err := writeState(opts.StateDir, st); err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	defer func() {
		if err == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), killGrace)
		defer cancel()
		if cerr := removeRun(cctx, opts.StateDir, st); cerr != nil {
			err = errors.Join(err, fmt.Errorf("netns: clean up after failed setup: %w", cerr))
		}
	}()

	subnet, err := pickSubnet(ctx)
	if err != nil {
		return nil, fmt.Errorf("netns: %w", err)
	}
	var ula netip.Prefix // stays invalid on a host without IPv6: the devices get none
	if ipv6Available() {
		if ula, err = pickULA(ctx); err != nil {
			return nil, fmt.Errorf("netns: %w", err)
		}
	}
	n = &Network{runID: opts.RunID, mode: ModeNamespace, stateDir: opts.StateDir}
	for i := 1; i <= opts.Devices; i++ {
		h, err := makeHost(ctx, opts.RunID, i, subnet, ula)
		if err != nil {
			return nil, err
		}
		n.hosts = append(n.hosts, h)
	}
	return n, nil
}

// pickSubnet chooses a random /24 in 10.0.0.0/8 that overlaps no host address or route.
func pickSubnet(ctx context.Context) (netip.Prefix, error) {
	used, err := usedPrefixes(ctx, "-4")
	if err != nil {
		return netip.Prefix{}, err
	}
	for range subnetTries {
		// 10.1.0.0 .. 10.254.255.0: leave 10.0/16 and 10.255/16 to others.
		r, err := rand.Int(rand.Reader, big.NewInt(254*256))
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("pick a subnet: %w", err)
		}
		v := int(r.Int64()) + 256
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(v >> 8), byte(v), 0}), 24)
		if !overlapsAny(p, used) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("pick a subnet: no free /24 in 10.0.0.0/8 after %d tries", subnetTries)
}

// pickULA chooses a random unique local /48 (RFC 4193: fd00::/8 and a 40-bit global ID)
// that overlaps no IPv6 address or route of the host.
func pickULA(ctx context.Context) (netip.Prefix, error) {
	used, err := usedPrefixes(ctx, "-6")
	if err != nil {
		return netip.Prefix{}, err
	}
	for range subnetTries {
		var b [16]byte
		b[0] = 0xfd
		if _, err := rand.Read(b[1:6]); err != nil {
			return netip.Prefix{}, fmt.Errorf("pick an IPv6 prefix: %w", err)
		}
		p := netip.PrefixFrom(netip.AddrFrom16(b), 48)
		if !overlapsAny(p, used) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("pick an IPv6 prefix: no free /48 in fd00::/8 after %d tries", subnetTries)
}

// link6 returns device i's IPv6 link inside the run's ULA /48 (subnet ID i), the host
// side's address (::1) and the device's (::2).
func link6(ula netip.Prefix, i int) (link netip.Prefix, host, dev netip.Addr) {
	b := ula.Addr().As16()
	b[6], b[7] = byte(i>>8), byte(i)
	link = netip.PrefixFrom(netip.AddrFrom16(b), 64)
	b[15] = 1
	host = netip.AddrFrom16(b)
	b[15] = 2
	return link, host, netip.AddrFrom16(b)
}

// makeHost makes device i's namespace and link inside subnet, with an IPv6 link inside
// ula when ula is valid.
func makeHost(ctx context.Context, runID string, i int, subnet, ula netip.Prefix) (Host, error) {
	ns, hv := NamespaceName(runID, i), HostIfName(runID, i)
	b := subnet.Addr().As4()
	b[3] = byte(4 * (i - 1))
	link := netip.PrefixFrom(netip.AddrFrom4(b), 30)
	b[3]++
	hostAddr := netip.AddrFrom4(b)
	b[3]++
	devAddr := netip.AddrFrom4(b)
	h := Host{Index: i, Namespace: ns, HostIf: hv, Address: devAddr, HarnessAddress: hostAddr, Prefix: link}
	v6 := ula.IsValid()
	if v6 {
		h.Prefix6, h.HarnessAddress6, h.Address6 = link6(ula, i)
	}

	fail := func(step string, err error) (Host, error) {
		return Host{}, fmt.Errorf("netns: device %d (%s): %s: %w", i, ns, step, err)
	}
	if _, err := ip(ctx, "netns", "add", ns); err != nil {
		var ce *CommandError
		if errors.As(err, &ce) && ce.permissionDenied() {
			return Host{}, &FallbackError{Reason: "ip netns add was refused: " + ce.Error(), Err: fmt.Errorf("%w: %w", ErrNotPermitted, err)}
		}
		return fail("create namespace", err)
	}
	// Set IPv6 up before eth0 exists so that it inherits the setting: with IPv6, quiet (no
	// link-local address, router solicitations or DAD probes from the device side in
	// captures); without, off.
	if err := inNamespace(ns, func() error {
		if v6 {
			if err := quietIPv6("default"); err != nil {
				return err
			}
			return quietIPv6("all")
		}
		if err := writeSysctl("net/ipv6/conf/default/disable_ipv6", "1"); err != nil {
			return err
		}
		return writeSysctl("net/ipv6/conf/all/disable_ipv6", "1")
	}); err != nil {
		return fail("configure IPv6", err)
	}
	type step struct {
		name string
		args []string
	}
	steps := []step{
		{"create veth pair", []string{"link", "add", hv, "type", "veth", "peer", "name", "eth0", "netns", ns}},
		{"host side address", []string{"addr", "add", netip.PrefixFrom(hostAddr, 30).String(), "dev", hv}},
		{"device side address", []string{"-n", ns, "addr", "add", netip.PrefixFrom(devAddr, 30).String(), "dev", "eth0"}},
	}
	if v6 {
		// nodad: usable at once, and no probes in captures.
		steps = append(steps,
			step{"host side IPv6 address", []string{"addr", "add", netip.PrefixFrom(h.HarnessAddress6, 64).String(), "dev", hv, "nodad"}},
			step{"device side IPv6 address", []string{"-n", ns, "addr", "add", netip.PrefixFrom(h.Address6, 64).String(), "dev", "eth0", "nodad"}})
	}
	steps = append(steps,
		step{"loopback up", []string{"-n", ns, "link", "set", "lo", "up"}},
		step{"device side up", []string{"-n", ns, "link", "set", "eth0", "up"}},
		step{"host side up", []string{"link", "set", hv, "up"}},
		step{"default route", []string{"-n", ns, "route", "add", "default", "via", hostAddr.String()}})
	for k, s := range steps {
		if k == 1 {
			// The host side was made with the host's defaults: quieten it (or switch IPv6
			// off on it) while it is still down.
			if err := hostSideIPv6(hv, v6); err != nil {
				return fail("configure IPv6 on host side", err)
			}
		}
		if _, err := ip(ctx, s.args...); err != nil {
			return fail(s.name, err)
		}
	}
	return h, nil
}

// hostSideIPv6 makes the host side hv of a link quiet on IPv6 (v6) or switches IPv6 off on it.
func hostSideIPv6(hv string, v6 bool) error {
	if v6 {
		return quietIPv6(hv)
	}
	return writeSysctl("net/ipv6/conf/"+hv+"/disable_ipv6", "1")
}
