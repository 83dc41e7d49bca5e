//go:build linux

package netprobe

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// synSnap is how much of each answer the socket filter keeps: the IP header (up to 60
// bytes with options) and the first 14 bytes of TCP (ports, sequence numbers, flags).
const synSnap = 60 + 14

// synBatch is how many SYNs go out between two looks at the answers.
const synBatch = 128

// synScanner is one SYN scan of one address: a raw socket (IPPROTO_TCP) that sends SYNs
// from one source port and, through a socket filter, receives only the packets to that
// port (for IPv4 only the target's; for IPv6, whose raw sockets deliver no IP header, the
// source is checked on each answer).
type synScanner struct {
	fd     int
	wake   int // eventfd: ctx ended
	src    netip.Addr
	dst    netip.Addr
	sport  int
	key    uint32
	dstSA  unix.Sockaddr
	v6     bool
	pkt    [24]byte // TCP header with the MSS option
	rdbuf  [synSnap]byte
	closer []int
}

// openSYN opens the sockets of a SYN scan of ip. It fails with errSYNUnavailable (wrapped)
// when a raw socket is not permitted (not root, no CAP_NET_RAW).
func openSYN(ip netip.Addr) (*synScanner, error) {
	ip = ip.Unmap()
	family := unix.AF_INET
	s := &synScanner{fd: -1, wake: -1, dst: ip, v6: ip.Is6()}
	if s.v6 {
		family = unix.AF_INET6
	}
	s.dstSA = sockaddr(ip, 0)
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("%w: raw socket: %w", errSYNUnavailable, err)
		}
		return nil, fmt.Errorf("raw socket: %w", err)
	}
	s.fd = fd
	s.closer = append(s.closer, fd)
	// The source address the route to ip uses: a connected UDP socket learns it.
	if s.src, err = sourceFor(ip); err != nil {
		return nil, err
	}
	// Reserve the source port: a bound TCP socket keeps the kernel from giving it to a
	// connection of its own while the scan runs. The host's stack answers the device's
	// SYN-ACKs to it with a RST (nothing listens), which ends each half-open connection.
	res, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("reserve a source port: %w", err)
	}
	s.closer = append(s.closer, res)
	if err := unix.Bind(res, sockaddr(s.src, 0)); err != nil {
		return nil, fmt.Errorf("reserve a source port: %w", err)
	}
	sa, err := unix.Getsockname(res)
	if err != nil {
		return nil, fmt.Errorf("reserve a source port: %w", err)
	}
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		s.sport = a.Port
	case *unix.SockaddrInet6:
		s.sport = a.Port
	}
	// Send from that address, so that the checksum's pseudo-header is right.
	if err := unix.Bind(fd, sockaddr(s.src, 0)); err != nil {
		return nil, fmt.Errorf("bind raw socket: %w", err)
	}
	if s.v6 {
		// IPv6 raw sockets: the kernel computes (and on receipt checks) the TCP checksum
		// at offset 16, with the pseudo-header of the addresses it uses.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_CHECKSUM, 16); err != nil {
			return nil, fmt.Errorf("raw socket checksum: %w", err)
		}
	}
	var prog []unix.SockFilter
	if s.v6 {
		prog = synFilter6(s.sport)
	} else {
		prog = synFilter(ip, s.sport)
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}); err != nil {
		return nil, fmt.Errorf("attach socket filter: %w", err)
	}
	// Room for the answers of a whole window (each costs a full buffer in the queue).
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	// What arrived before the filter was attached is anybody's traffic: drop it.
	for {
		if _, err := unix.Read(fd, s.rdbuf[:]); err != nil {
			break
		}
	}
	if s.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	s.closer = append(s.closer, s.wake)
	var k [4]byte
	rand.Read(k[:])
	s.key = binary.BigEndian.Uint32(k[:])
	ok = true
	return s, nil
}

func (s *synScanner) close() {
	for _, fd := range s.closer {
		unix.Close(fd)
	}
	s.closer = nil
}

// sockaddr is ip and port as a socket address of ip's family.
func sockaddr(ip netip.Addr, port int) unix.Sockaddr {
	if ip.Is4() {
		return &unix.SockaddrInet4{Addr: ip.As4(), Port: port}
	}
	return &unix.SockaddrInet6{Addr: ip.As16(), Port: port}
}

// addrOf is the address of a socket address.
func addrOf(sa unix.Sockaddr) netip.Addr {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrFrom4(a.Addr)
	case *unix.SockaddrInet6:
		return netip.AddrFrom16(a.Addr)
	}
	return netip.Addr{}
}

// sourceFor returns the local address the kernel would use to reach ip.
func sourceFor(ip netip.Addr) (netip.Addr, error) {
	family := unix.AF_INET
	if ip.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route lookup: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, sockaddr(ip, 9)); err != nil {
		return netip.Addr{}, fmt.Errorf("%w: route to %s: %w", ErrUnreachable, ip, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("route lookup: %w", err)
	}
	return addrOf(sa), nil
}

// synFilter is a classic BPF program for a raw IPv4 socket (the packet starts at the IP
// header): keep synSnap bytes of the packets from ip to TCP port sport, drop the rest.
func synFilter(ip netip.Addr, sport int) []unix.SockFilter {
	a := ip.As4()
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 12},                                    // 0: A = source address
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jf: 4, K: binary.BigEndian.Uint32(a[:])}, // 1: not ip: drop
		{Code: unix.BPF_LDX | unix.BPF_B | unix.BPF_MSH, K: 0},                                    // 2: X = IP header length
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_IND, K: 2},                                     // 3: A = TCP destination port
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jf: 1, K: uint32(sport)},                 // 4: not sport: drop
		{Code: unix.BPF_RET | unix.BPF_K, K: synSnap},                                             // 5: keep
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},                                                   // 6: drop
	}
}

// synFilter6 is a classic BPF program for a raw IPv6 socket (the packet starts at the TCP
// header): keep synSnap bytes of the packets to TCP port sport, drop the rest.
func synFilter6(sport int) []unix.SockFilter {
	return []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 2},                     // 0: A = TCP destination port
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jf: 1, K: uint32(sport)}, // 1: not sport: drop
		{Code: unix.BPF_RET | unix.BPF_K, K: synSnap},                             // 2: keep
		{Code: unix.BPF_RET | unix.BPF_K, K: 0},                                   // 3: drop
	}
}

// seq is the initial sequence number of the SYN to port: a keyed function of the port, so
// that an answer proves it answers this scan's SYN to that port (its ack is seq+1).
func (s *synScanner) seq(port int) uint32 { return s.key ^ (uint32(port) * 0x9E3779B1) }

// send sends one SYN to port.
func (s *synScanner) send(port int) error {
	p := s.pkt[:]
	binary.BigEndian.PutUint16(p[0:], uint16(s.sport))
	binary.BigEndian.PutUint16(p[2:], uint16(port))
	binary.BigEndian.PutUint32(p[4:], s.seq(port))
	binary.BigEndian.PutUint32(p[8:], 0)
	p[12] = 6 << 4 // data offset: 6 words (the MSS option)
	p[13] = 0x02   // SYN
	binary.BigEndian.PutUint16(p[14:], 1024)
	binary.BigEndian.PutUint16(p[16:], 0) // checksum, below
	binary.BigEndian.PutUint16(p[18:], 0)
	p[20], p[21] = 2, 4 // MSS 1460
	binary.BigEndian.PutUint16(p[22:], 1460)
	if !s.v6 { // IPv6: the kernel fills it in (IPV6_CHECKSUM)
		binary.BigEndian.PutUint16(p[16:], tcpChecksum(s.src.As4(), s.dst.As4(), p))
	}
	for {
		err := unix.Sendto(s.fd, p, 0, s.dstSA)
		if err != unix.EINTR {
			return err
		}
	}
}

// tcpChecksum is the Internet checksum of a TCP segment with its IPv4 pseudo-header.
func tcpChecksum(src, dst [4]byte, seg []byte) uint16 {
	sum := uint32(binary.BigEndian.Uint16(src[0:])) + uint32(binary.BigEndian.Uint16(src[2:])) +
		uint32(binary.BigEndian.Uint16(dst[0:])) + uint32(binary.BigEndian.Uint16(dst[2:])) +
		uint32(unix.IPPROTO_TCP) + uint32(len(seg))
	for i := 0; i+1 < len(seg); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(seg[i:]))
	}
	if len(seg)%2 == 1 {
		sum += uint32(seg[len(seg)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// synAnswer is what one answer says.
type synAnswer struct {
	port  int
	state portState // portOpen (SYN-ACK) or portClosed (RST)
}

// parseAnswer reads an answer from the target (the filter let only those through): it
// counts if it is a SYN-ACK or a RST acknowledging this scan's SYN to its port.
func (s *synScanner) parseAnswer(b []byte) (synAnswer, bool) {
	t := b
	if !s.v6 { // an IPv4 raw socket delivers the IP header, an IPv6 one does not
		if len(b) < 20 || b[0]>>4 != 4 {
			return synAnswer{}, false
		}
		ihl := int(b[0]&0x0f) * 4
		if ihl < 20 || len(b) < ihl+14 || b[9] != unix.IPPROTO_TCP {
			return synAnswer{}, false
		}
		t = b[ihl:]
	}
	if len(t) < 14 {
		return synAnswer{}, false
	}
	port := int(binary.BigEndian.Uint16(t[0:]))
	if int(binary.BigEndian.Uint16(t[2:])) != s.sport || binary.BigEndian.Uint32(t[8:]) != s.seq(port)+1 {
		return synAnswer{}, false
	}
	flags := t[13]
	switch {
	case flags&0x04 != 0: // RST
		return synAnswer{port: port, state: portClosed}, true
	case flags&0x12 == 0x12: // SYN-ACK
		return synAnswer{port: port, state: portOpen}, true
	}
	return synAnswer{}, false
}

// synSlot is a SYN in flight, in the order sent (hence of deadlines).
type synSlot struct {
	idx      int32
	try      uint8
	deadline time.Time
}

// errNoAnswer: the target answered none of the SYNs; the connect scan tells an
// unreachable device from a silent one.
var errNoAnswer = errors.New("no answer to any SYN")

// run sends a SYN to every port of cfg, at most cfg.concurrency unanswered at a time,
// sends the unanswered ones again once after cfg.dialTimeout, and fills states: open
// (SYN-ACK), closed (RST) or filtered (no answer to either SYN).
func (s *synScanner) run(ctx context.Context, cfg scanConfig, states []portState) error {
	stop := context.AfterFunc(ctx, func() { unix.Write(s.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0}) })
	defer stop()
	const (
		unsent uint8 = iota
		waiting
		done
	)
	n := len(cfg.ports)
	status := make([]uint8, n)
	tries := make([]uint8, n)
	var byPort [65536]int32 // index+1 of each port in cfg.ports
	for i, p := range cfg.ports {
		byPort[p] = int32(i + 1)
	}
	var queue []synSlot
	head, next, pending, answered := 0, 0, 0, 0
	send := func(i int) error {
		if err := s.send(cfg.ports[i]); err != nil {
			return err
		}
		tries[i]++
		status[i] = waiting
		queue = append(queue, synSlot{idx: int32(i), try: tries[i], deadline: time.Now().Add(cfg.dialTimeout)})
		return nil
	}
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(s.wake), Events: unix.POLLIN}}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Send new SYNs while the window has room.
		full := false
		for sent := 0; next < n && pending < cfg.concurrency && sent < synBatch; sent++ {
			if err := send(next); err != nil {
				if busy(err) {
					full = true // the interface's queue is full: read answers, then go on
					break
				}
				return fmt.Errorf("send SYN to port %d: %w", cfg.ports[next], err)
			}
			next++
			pending++
		}
		// Read every answer queued.
		for {
			m, from, err := unix.Recvfrom(s.fd, s.rdbuf[:], 0)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				if err == unix.EAGAIN {
					break
				}
				return fmt.Errorf("read answers: %w", err)
			}
			if s.v6 && addrOf(from) != s.dst {
				continue // the IPv6 filter cannot see the source: another host's packet
			}
			a, ok := s.parseAnswer(s.rdbuf[:m])
			if !ok {
				continue
			}
			i := int(byPort[a.port]) - 1
			if i < 0 || status[i] != waiting {
				continue // a port not asked about, or a duplicate
			}
			status[i], states[i] = done, a.state
			pending--
			answered++
		}
		// Expire the SYNs unanswered for too long: send once more, then filtered.
		now := time.Now()
		for head < len(queue) {
			sl := queue[head]
			if status[sl.idx] != waiting || sl.try != tries[sl.idx] {
				head++ // answered, or sent again since
				continue
			}
			if sl.deadline.After(now) {
				break
			}
			head++
			if sl.try < 2 {
				if err := send(int(sl.idx)); busy(err) {
					full = true // not sent: try again shortly
					queue = append(queue, synSlot{idx: sl.idx, try: sl.try, deadline: now.Add(time.Millisecond)})
				} else if err != nil {
					return fmt.Errorf("send SYN to port %d: %w", cfg.ports[sl.idx], err)
				}
				continue
			}
			if answered == 0 {
				// Not one answer to a whole window sent twice: let the connect scan
				// tell an unreachable device from a silent one, without waiting for
				// every port to time out first.
				return errNoAnswer
			}
			status[sl.idx], states[sl.idx] = done, portFiltered
			pending--
		}
		if head > 4096 && head*2 > len(queue) { // keep the queue from growing without bound
			queue = append(queue[:0], queue[head:]...)
			head = 0
		}
		if next >= n && pending == 0 {
			break
		}
		if next < n && pending < cfg.concurrency && !full {
			continue // room in the window: send more before waiting
		}
		wait := 0
		if head < len(queue) {
			wait = int(time.Until(queue[head].deadline)/time.Millisecond) + 1
		}
		if full {
			wait = 1
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds, max(wait, 0)); err != nil && err != unix.EINTR {
			return fmt.Errorf("poll: %w", err)
		}
	}
	if answered == 0 {
		return errNoAnswer
	}
	return nil
}

// busy reports whether a send failed only because the interface's queue is full.
func busy(err error) bool { return err == unix.ENOBUFS || err == unix.EAGAIN }

// probeSYN scans the ports of ip with SYNs from a raw socket (root or CAP_NET_RAW).
func probeSYN(ctx context.Context, ip netip.Addr, cfg scanConfig, states []portState) error {
	s, err := openSYN(ip)
	if err != nil {
		return err
	}
	defer s.close()
	return s.run(ctx, cfg, states)
}
