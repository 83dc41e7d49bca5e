package netns

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// loopbackTries bounds the random search for an unused loopback address.
const loopbackTries = 256

// setupLoopback gives every device its own 127.a.b.c address and the network a control
// address, none of them bound by any socket on the host.
func setupLoopback(opts Options, why *FallbackError) (*Network, error) {
	taken := boundLoopbackAddrs()
	pick := func() (netip.Addr, error) {
		for range loopbackTries {
			var b [3]byte
			if _, err := rand.Read(b[:]); err != nil {
				return netip.Addr{}, fmt.Errorf("netns: pick a loopback address: %w", err)
			}
			// Leave 127.0.x.x (127.0.0.1, Debian's 127.0.1.1) and network/broadcast-like ends.
			if b[0] == 0 || b[0] == 255 || b[2] == 0 || b[2] == 255 {
				continue
			}
			a := netip.AddrFrom4([4]byte{127, b[0], b[1], b[2]})
			if !taken[a] {
				taken[a] = true
				return a, nil
			}
		}
		return netip.Addr{}, fmt.Errorf("netns: no unused loopback address after %d tries", loopbackTries)
	}
	control, err := pick()
	if err != nil {
		return nil, err
	}
	n := &Network{runID: opts.RunID, mode: ModeLoopback, fallback: why, stateDir: opts.StateDir}
	for i := 1; i <= opts.Devices; i++ {
		a, err := pick()
		if err != nil {
			return nil, err
		}
		n.hosts = append(n.hosts, Host{
			Index:          i,
			Address:        a,
			HarnessAddress: netip.MustParseAddr("127.0.0.1"),
			ControlAddress: control,
		})
	}
	return n, nil
}

// boundLoopbackAddrs returns the 127/8 addresses that some IPv4 socket on this host is bound
// to by address (from /proc/net/{tcp,udp}; empty where those files do not exist).
func boundLoopbackAddrs() map[netip.Addr]bool {
	taken := map[netip.Addr]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/udp"} {
		file, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 2 {
				continue
			}
			host, _, ok := strings.Cut(fields[1], ":")
			if !ok || len(host) != 8 {
				continue
			}
			b, err := hex.DecodeString(host)
			if err != nil {
				continue
			}
			// /proc/net/tcp prints the address in host byte order (little-endian here).
			a := netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]})
			if a.IsLoopback() {
				taken[a] = true
			}
		}
		file.Close()
	}
	return taken
}
