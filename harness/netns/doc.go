// Package netns gives every simulated device a network surface of its own, so that probing
// a device's address only ever sees the device's own listeners.
//
// As root, Setup makes one network namespace per device, named hilt-<runid>-<i>, joined to
// the host by a veth pair: the host side is hv<runid><i> (it is the device's capture
// interface), the device side is eth0 inside the namespace. Every run takes one free /24 in
// 10.0.0.0/8 (chosen at random, checked against the host's addresses and routes) and gives
// device i the /30 10.a.b.4(i-1): the host side .1, the device .2, with a default route via
// the host side. Where the host has IPv6, every run also takes a random unique local /48
// (fd00::/8, checked against the host's IPv6 addresses and routes) and gives device i the
// /64 with subnet ID i: the host side ::1, the device ::2 (Host.Address6), both added with
// nodad so that they are usable at once. Both ends are kept quiet so that captures hold only
// the device's own traffic: no link-local address, no router solicitations, no DAD probes
// (MLD reports, ICMPv6, remain); on a host without IPv6 it is switched off on both ends and
// Address6 is invalid. A device process is started inside its namespace with Host.Command, which
// runs `ip netns exec <ns> <cmd...>`: iproute2 execs the command directly, so its PID is the
// device's.
//
// Each run writes a state file (<StateDir>/<runid>.json: owner PID and start time, the
// namespaces and interfaces) before it makes anything, under a lock on the state directory.
// CleanupStale removes the namespaces and interfaces of runs whose owner is gone (a SIGKILLed
// run), killing what still runs inside them.
//
// Without root, or where `ip netns add` is refused (EPERM in a container), Setup falls back
// to loopback and says why with a *FallbackError: each device gets its own 127.a.b.c address
// and the network gets a control address, another unused 127.x address with no device on
// it. Every listener bound to 0.0.0.0 on the host answers on both, so a port that also
// answers on the control address cannot be attributed to the device. No capture interface
// exists in that mode, and no device has an IPv6 address (they would all share ::1).
//
// Tests that make namespaces run only as root (`sudo go test ./harness/netns/...`) and are
// skipped otherwise; they need iproute2's ip command.
package netns
