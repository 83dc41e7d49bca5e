package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// CommandError is a failed ip(8) invocation, with what it printed.
type CommandError struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *CommandError) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	return "ip " + strings.Join(e.Args, " ") + ": " + msg
}

// Unwrap returns the exec error.
func (e *CommandError) Unwrap() error { return e.Err }

// permissionDenied says whether ip failed for lack of privilege.
func (e *CommandError) permissionDenied() bool {
	return errors.Is(e.Err, os.ErrPermission) ||
		strings.Contains(e.Stderr, "Operation not permitted") ||
		strings.Contains(e.Stderr, "Permission denied")
}

// notFound says whether ip failed because the object is already gone.
func (e *CommandError) notFound() bool {
	s := e.Stderr
	return strings.Contains(s, "Cannot find device") ||
		strings.Contains(s, "No such file or directory") ||
		strings.Contains(s, "does not exist") ||
		strings.Contains(s, "Invalid netns name")
}

// ip runs `ip args...` and returns its standard output.
func ip(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "ip", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", ctxErr, err)
		}
		return nil, &CommandError{Args: args, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// usedPrefixes returns every prefix of one family ("-4" or "-6") that the host's addresses
// and routes cover, except the default route.
func usedPrefixes(ctx context.Context, family string) ([]netip.Prefix, error) {
	var used []netip.Prefix
	out, err := ip(ctx, "-j", family, "addr", "show")
	if err != nil {
		return nil, fmt.Errorf("list host addresses: %w", err)
	}
	var links []struct {
		AddrInfo []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		return nil, fmt.Errorf("list host addresses: parse ip -j output: %w", err)
	}
	for _, l := range links {
		for _, a := range l.AddrInfo {
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				continue
			}
			if p, err := addr.Prefix(a.PrefixLen); err == nil {
				used = append(used, p)
			}
		}
	}
	out, err = ip(ctx, "-j", family, "route", "show", "table", "all")
	if err != nil {
		return nil, fmt.Errorf("list host routes: %w", err)
	}
	var routes []struct {
		Dst string `json:"dst"`
	}
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("list host routes: parse ip -j output: %w", err)
	}
	for _, r := range routes {
		if r.Dst == "" || r.Dst == "default" {
			continue
		}
		if p, err := netip.ParsePrefix(r.Dst); err == nil && p.Addr().Zone() == "" {
			used = append(used, p.Masked())
		} else if a, err := netip.ParseAddr(r.Dst); err == nil {
			used = append(used, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return used, nil
}

// overlapsAny says whether p overlaps any of used.
func overlapsAny(p netip.Prefix, used []netip.Prefix) bool {
	for _, u := range used {
		if p.Overlaps(u) {
			return true
		}
	}
	return false
}

// writeSysctl writes value to /proc/sys/<key path> in the current network namespace,
// if that sysctl exists (IPv6 may be compiled out).
func writeSysctl(path, value string) error {
	full := filepath.Join("/proc/sys", path)
	if _, err := os.Stat(full); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := os.WriteFile(full, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", path, value, err)
	}
	return nil
}

// ipv6Available says whether this kernel has IPv6 (not compiled out, not ipv6.disable=1).
func ipv6Available() bool {
	_, err := os.Stat("/proc/sys/net/ipv6/conf/default")
	return err == nil
}

// quietIPv6 sets the IPv6 configuration conf (an interface name, "default" or "all") of
// the current network namespace so that the interface sends nothing of its own accord: no
// link-local address (and so no router solicitation from it), no router solicitations, no
// duplicate address detection, no router advertisements taken. It then switches IPv6 on.
// MLD reports for the groups of its addresses remain (ICMPv6, never a TCP or UDP flow).
func quietIPv6(conf string) error {
	for _, kv := range [][2]string{
		{"addr_gen_mode", "1"},
		{"accept_ra", "0"},
		{"router_solicitations", "0"},
		{"accept_dad", "0"},
		{"dad_transmits", "0"},
		{"disable_ipv6", "0"},
	} {
		if err := writeSysctl("net/ipv6/conf/"+conf+"/"+kv[0], kv[1]); err != nil {
			return err
		}
	}
	return nil
}

// inNamespace runs fn on an OS thread that has joined the named network namespace.
// The thread goes back to the original namespace afterwards, or is discarded if it cannot.
func inNamespace(name string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/run/netns", name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open namespace %s: %w", name, err)
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it exits with this goroutine and is not reused.
			errc <- fmt.Errorf("leave namespace %s: %w", name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
