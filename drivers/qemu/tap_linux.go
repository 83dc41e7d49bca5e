package qemu

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrNotPermitted: making a tap device needs root (CAP_NET_ADMIN).
var ErrNotPermitted = errors.New("not permitted: tap devices need root (CAP_NET_ADMIN)")

// Tap is a tap device on the host and the point-to-point IPv4 link over it: the host's end
// is the first address of Net, the guest's the second.
type Tap struct {
	Name  string
	Net   netip.Prefix
	Host  netip.Addr
	Guest netip.Addr
}

// GuestPrefix is the guest's address with the link's prefix length (for hilt.ip=).
func (t *Tap) GuestPrefix() netip.Prefix { return netip.PrefixFrom(t.Guest, t.Net.Bits()) }

// tapAlias marks the taps this package makes with the PID of the process that made them,
// so that RemoveStaleTaps can tell the taps of a dead process.
const tapAlias = "hilt-qemu pid="

// CreateTap makes the tap device name (at most 15 bytes) with the host's end of subnet on it,
// switches IPv6 off on it (so that a capture on it holds only the guest's own traffic) and
// brings it up. QEMU attaches to it with Options.Tap. The tap is persistent: it stays while
// QEMU restarts, so a capture on it goes on. Close removes it; RemoveStaleTaps removes the
// taps of processes that died before they could.
func CreateTap(ctx context.Context, name string, subnet netip.Prefix) (*Tap, error) {
	if len(name) == 0 || len(name) > 15 {
		return nil, fmt.Errorf("tap %q: a name of 1 to 15 bytes", name)
	}
	subnet = subnet.Masked()
	if !subnet.Addr().Is4() || subnet.Bits() > 30 {
		return nil, fmt.Errorf("tap %s: %s: want an IPv4 subnet of /30 or larger", name, subnet)
	}
	host := subnet.Addr().Next()
	t := &Tap{Name: name, Net: subnet, Host: host, Guest: host.Next()}
	if _, err := ipCmd(ctx, "tuntap", "add", "dev", name, "mode", "tap"); err != nil {
		return nil, fmt.Errorf("tap %s: %w", name, err)
	}
	if err := t.setup(ctx); err != nil {
		_ = t.Close(context.WithoutCancel(ctx))
		return nil, err
	}
	return t, nil
}

func (t *Tap) setup(ctx context.Context) error {
	sysctl := filepath.Join("/proc/sys/net/ipv6/conf", t.Name, "disable_ipv6")
	if _, err := os.Stat(sysctl); err == nil {
		if err := os.WriteFile(sysctl, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("tap %s: switch IPv6 off: %w", t.Name, err)
		}
	}
	if _, err := ipCmd(ctx, "addr", "add", netip.PrefixFrom(t.Host, t.Net.Bits()).String(), "dev", t.Name); err != nil {
		return fmt.Errorf("tap %s: %w", t.Name, err)
	}
	if _, err := ipCmd(ctx, "link", "set", "dev", t.Name, "alias", fmt.Sprintf("%s%d", tapAlias, os.Getpid())); err != nil {
		return fmt.Errorf("tap %s: %w", t.Name, err)
	}
	if _, err := ipCmd(ctx, "link", "set", "dev", t.Name, "up"); err != nil {
		return fmt.Errorf("tap %s: %w", t.Name, err)
	}
	return nil
}

// Close removes the tap device. A tap that is already gone is no error.
func (t *Tap) Close(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", t.Name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := ipCmd(ctx, "link", "del", "dev", t.Name); err != nil {
		return fmt.Errorf("tap %s: %w", t.Name, err)
	}
	return nil
}

// RemoveStaleTaps removes the taps made by CreateTap in processes that are gone (killed
// before they could clean up) and returns their names.
func RemoveStaleTaps(ctx context.Context) ([]string, error) {
	out, err := ipCmd(ctx, "-j", "link", "show")
	if err != nil {
		return nil, err
	}
	var links []struct {
		Name  string `json:"ifname"`
		Alias string `json:"ifalias"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("ip -j link show: %w", err)
	}
	var removed []string
	var errs []error
	for _, l := range links {
		pid, ok := strings.CutPrefix(l.Alias, tapAlias)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(pid)
		if err != nil || n <= 0 || syscall.Kill(n, 0) != syscall.ESRCH {
			continue
		}
		if _, err := ipCmd(ctx, "link", "del", "dev", l.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, l.Name)
	}
	return removed, errors.Join(errs...)
}

// FreeSubnets returns n (at most 64) /30 subnets of one /24 in 10.0.0.0/8 that no address or
// route of the host covers, chosen at random.
func FreeSubnets(ctx context.Context, n int) ([]netip.Prefix, error) {
	if n < 1 || n > 64 {
		return nil, fmt.Errorf("free subnets: %d /30s asked, want 1 to 64", n)
	}
	used, err := usedPrefixes(ctx)
	if err != nil {
		return nil, err
	}
	for try := 0; try < 100; try++ {
		var r [2]byte
		_, _ = rand.Read(r[:])
		if r[0] == 0 || r[0] == 255 {
			continue
		}
		block := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, r[0], r[1], 0}), 24)
		if overlaps(block, used) {
			continue
		}
		nets := make([]netip.Prefix, n)
		for i := range nets {
			nets[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, r[0], r[1], byte(4 * i)}), 30)
		}
		return nets, nil
	}
	return nil, errors.New("free subnets: no unused /24 found in 10.0.0.0/8")
}

func overlaps(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}

// usedPrefixes lists the IPv4 prefixes of the host's addresses and routes, but the default
// route.
func usedPrefixes(ctx context.Context) ([]netip.Prefix, error) {
	var used []netip.Prefix
	out, err := ipCmd(ctx, "-j", "-4", "addr", "show")
	if err != nil {
		return nil, err
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("ip -j addr show: %w", err)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			if addr, err := netip.ParseAddr(a.Local); err == nil {
				if p, err := addr.Prefix(a.PrefixLen); err == nil {
					used = append(used, p)
				}
			}
		}
	}
	out, err = ipCmd(ctx, "-j", "-4", "route", "show", "table", "all")
	if err != nil {
		return nil, err
	}
	var routes []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("ip -j route show: %w", err)
	}
	for _, r := range routes {
		if p, err := netip.ParsePrefix(r.Dst); err == nil {
			used = append(used, p.Masked())
		} else if a, err := netip.ParseAddr(r.Dst); err == nil && a.Is4() {
			used = append(used, netip.PrefixFrom(a, 32))
		}
	}
	return used, nil
}

// ipCmd runs iproute2's ip.
func ipCmd(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if strings.Contains(msg, "Operation not permitted") {
			return nil, fmt.Errorf("ip %s: %w", strings.Join(args, " "), ErrNotPermitted)
		}
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("ip %s: %w (install iproute2)", strings.Join(args, " "), err)
		}
		return nil, fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return stdout.Bytes(), nil
}
