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
	"unsafe"

	"golang.org/x/sys/unix"
)

// synSnap is how much of each answer the socket filter keeps: the IP header (up to 60
// bytes with options) and the first 14 bytes of TCP (ports, sequence numbers, flags).
const synSnap = 60 + 14

// synBatch is how many SYNs go out between two looks at the answers.
const synBatch = 128

// synScanner is one SYN scan of one address: a raw socket (IPPROTO_TCP), connected to the
// address, that sends SYNs from one source port and, through a socket filter, receives
// only the packets to that port.
type synScanner struct {
	fd    int
	wake  int // eventfd: ctx ended
	src   netip.Addr
	dst   netip.Addr
	sport int
	key   uint32
	v6    bool
	pkt   [24]byte // TCP header with the MSS option
	rdbuf [synSnap]byte
	// A batch of answers for one recvmmsg (each truncated to synSnap by the filter).
	rd    [synBatch][synSnap]byte
	rdIov [synBatch]unix.Iovec
	rdHdr [synBatch]unix.Mmsghdr
	rdOut [][]byte
	// A batch of SYNs for one sendmmsg: the segments, and the kernel's view of them.
	batch    [synBatch][24]byte
	batchIov [synBatch]unix.Iovec
	batchHdr [synBatch]unix.Mmsghdr
	closer   []int
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
	// Connected to the target: sends need no address, and the kernel delivers only the
	// target's packets (for IPv6, whose raw sockets give no IP header, the filter below
	// cannot check the source). Reads then need no source address either: Recvfrom's
	// costs a getsockopt per packet in x/sys/unix.
	if err := unix.Connect(fd, sockaddr(ip, 0)); err != nil {
		return nil, fmt.Errorf("connect raw socket to %s: %w", ip, err)
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
	s.fill(p, port)
	icmp := false
	for {
		_, err := unix.Write(s.fd, p)
		switch {
		case err == unix.EINTR:
		case icmpReported(err) && !icmp:
			icmp = true // reported and cleared: send again, once
		default:
			return err
		}
	}
}

// icmpReported reports whether err can be an ICMP error (port, host or network
// unreachable, administratively prohibited) that the kernel reported on the connected
// socket, and cleared by returning it from the call that got it. The port it names is then
// simply unanswered (filtered): the error says nothing about the scan. A send that gets one
// twice in a row is failing on its own (a local route), and fails the scan.
func icmpReported(err error) bool {
	switch err {
	case unix.ECONNREFUSED, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENONET,
		unix.ENOPROTOOPT, unix.EACCES, unix.EPROTO:
		return true
	}
	return false
}

// sendBatch sends one SYN to each of the first synBatch ports (at most) with as few system
// calls as the kernel allows (sendmmsg): a scan's cost is mostly per packet, and the
// system call's entry is part of it. It returns how many were sent, in order, and the
// error that stopped it.
func (s *synScanner) sendBatch(ports []int) (int, error) {
	n := min(len(ports), synBatch)
	for i := range n {
		s.fill(s.batch[i][:], ports[i])
		s.batchIov[i] = unix.Iovec{Base: &s.batch[i][0]}
		s.batchIov[i].SetLen(len(s.batch[i]))
		s.batchHdr[i] = unix.Mmsghdr{}
		s.batchHdr[i].Hdr.Iov = &s.batchIov[i]
		s.batchHdr[i].Hdr.SetIovlen(1)
	}
	sent, icmp := 0, false
	for sent < n {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.batchHdr[sent])), uintptr(n-sent), 0, 0, 0)
		switch {
		case errno == unix.EINTR:
			continue
		case icmpReported(errno) && !icmp:
			icmp = true // reported and cleared: send again, once
			continue
		case errno != 0:
			return sent, errno
		}
		sent += int(r)
		icmp = false
	}
	return sent, nil
}

// readBatch reads the answers queued, up to synBatch of them, with one recvmmsg; none
// when the queue is empty. The slices it returns are valid until the next call.
func (s *synScanner) readBatch() ([][]byte, error) {
	for i := range s.rdIov {
		s.rdIov[i] = unix.Iovec{Base: &s.rd[i][0]}
		s.rdIov[i].SetLen(len(s.rd[i]))
		s.rdHdr[i] = unix.Mmsghdr{}
		s.rdHdr[i].Hdr.Iov = &s.rdIov[i]
		s.rdHdr[i].Hdr.SetIovlen(1)
	}
	for {
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&s.rdHdr[0])), synBatch, unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == 0:
		case errno == unix.EINTR, icmpReported(errno): // an ICMP error, now cleared: read on
			continue
		case errno == unix.EAGAIN:
			return nil, nil
		default:
			return nil, errno
		}
		got := s.rdOut[:0]
		for i := range int(r) {
			got = append(got, s.rd[i][:s.rdHdr[i].Len])
		}
		s.rdOut = got
		return got, nil
	}
}

// fill writes the SYN to port into p (24 bytes).
func (s *synScanner) fill(p []byte, port int) {
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

// window is how many SYNs a scan keeps in flight at once, from cfg.concurrency down to
// synMinWindow. A target on a veth link (a simulated device) answers each SYN before the
// next goes out, and the window never matters. A slower path drops what it cannot queue:
// the tap of an emulated device holds 1000 packets and its TCG guest answers a few tens of
// thousands a second, so 2000 SYNs at once lost thousands, which the scan then reported
// as filtered ports.
//
// A SYN that goes unanswered proves nothing by itself: a firewall that drops the port
// looks the same. A drop shows when the port answers a later SYN: the first was lost on
// the way (or its answer was). The window counts those, a round (as many SYNs settled as
// the window holds) at a time, much as TCP does:
//   - a round in which more than one SYN in 16 was lost halves the window; losses of
//     SYNs sent before that cut no longer count (they are its cause, seen a dial timeout
//     late);
//   - a round with less than one loss in 64 grows it by a quarter, at most once a dial
//     timeout, up to cfg.concurrency;
//   - ports that never answer count neither way: a firewall's silence leaves the window,
//     and the scan's time, as they were.
//
// Once a SYN has been lost, a port gets more tries before it counts as filtered (tries).
type window struct {
	size, min, max  int
	hold            time.Duration // the dial timeout
	answers, losses int           // in this round
	cut, grown      time.Time
	dropping        bool // the path has lost a SYN
}

// synMinWindow is the smallest window.
const synMinWindow = 32

// newWindow is the window of a scan that starts at now, with at most max SYNs in flight
// and a dial timeout of hold.
func newWindow(max int, hold time.Duration, now time.Time) *window {
	return &window{size: max, min: min(synMinWindow, max), max: max, hold: hold, grown: now}
}

// tries is how many SYNs a port gets before it counts as filtered: two, and four once
// the path has lost a SYN, where a second can be lost as the first was. A port the target
// itself ignores then costs two dial timeouts more.
func (w *window) tries() int {
	if w.dropping {
		return 4
	}
	return 2
}

// answered counts an answer to a port's first SYN.
func (w *window) answered(now time.Time) { w.answers++; w.settle(now) }

// recovered counts an answer to a port whose first SYN, sent at first, went unanswered
// for a dial timeout: that SYN (or its answer) was lost, or queued that long.
func (w *window) recovered(first, now time.Time) {
	w.dropping = true
	if first.Before(w.cut) {
		return
	}
	w.losses++
	w.settle(now)
}

// settle ends the round once it holds as many SYNs as the window, and sizes the next.
func (w *window) settle(now time.Time) {
	n := w.answers + w.losses
	if n < w.size {
		return
	}
	switch {
	case w.losses*16 > n:
		w.size = max(w.min, w.size/2)
		w.cut = now
	case w.losses*64 <= n && now.Sub(w.grown) >= w.hold && now.Sub(w.cut) >= w.hold:
		w.size = min(w.max, w.size+max(8, w.size/4))
		w.grown = now
	}
	w.answers, w.losses = 0, 0
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

// run sends a SYN to every port of cfg, at most a window of them in flight at a time (up
// to cfg.concurrency; see window), sends each one unanswered for cfg.dialTimeout again, no
// sooner (window.tries), and fills states: open (SYN-ACK), closed (RST) or filtered (no
// answer to any SYN). A SYN is in flight from when it is sent until it is answered or its
// dial timeout passes; SYNs sent again go first and take their places in the window like
// new ones.
//
// Sends are clocked, as TCP's are by its ACKs: each SYN spends a credit and an answer
// gives one back. A SYN that expires where the path has never lost one gives its credit
// back at once (a firewall's silence). Where the path drops, it was probably lost in a
// full queue, and sending another at once, with every other one lost in the same burst,
// fills that queue again: its credit is owed, and comes back a dial timeout later, when
// the queue has drained, at most a window's worth a dial timeout, and only while no
// answers come or none of them has shown a loss for a dial timeout (while answers show
// losses, they clock the sends, one per answer, at the pace the path drains). An
// unanswered SYN on such a path so holds its credit for at least two dial timeouts:
// filtered ports behind a lossy link scan at half speed or slower, not at a crawl. A scan
// with nothing in flight and no credit left takes the smallest window's worth of those
// owed at once, unpaced, to start again. Every move keeps the count: credits, SYNs in
// flight and credits owed add up to cfg.concurrency for the whole scan, never less than
// the window, which bounds what is in flight below that. (Without the clock, a
// burst lost through a 10 Mbit/s queue of 300 packets came back as the same burst at each
// try, and a thousand closed ports lost all four tries and were reported filtered; with
// the credits of expired SYNs kept back for good, the filtered ports behind that queue
// went 32 at a time, and 8192 ports took minutes.)
func (s *synScanner) run(ctx context.Context, cfg scanConfig, states []portState) error {
	defer wakeOnDone(ctx, s.wake)()
	const (
		unsent  uint8 = iota
		waiting       // a SYN in flight
		due           // its SYN unanswered past the dial timeout: in resend
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
	var resend []int32   // due for another SYN, oldest first
	var owed []time.Time // when each credit held back at an expiry is due back, in order
	var paced time.Time  // when the next credit owed may come back
	// pending: ports sent a SYN and not settled; inflight: those with a SYN in flight;
	// credit: how many more SYNs the clock lets go out (see above).
	head, next, pending, inflight, answered := 0, 0, 0, 0, 0
	credit := cfg.concurrency
	start := time.Now()
	lastLoss := start                   // when the last answer came to a port whose first SYN was lost
	lastAnswer := start                 // when the last answer came to a port asked about
	quietFor := cfg.dialTimeout / 4     // how long without an answer before credits owed come back
	firstAt := make([]time.Duration, n) // when each port's first SYN went out, from start
	win := newWindow(cfg.concurrency, cfg.dialTimeout, start)
	sentTo := func(i int, now time.Time) {
		tries[i]++
		if tries[i] == 1 {
			firstAt[i] = now.Sub(start)
		}
		status[i] = waiting
		inflight++
		credit--
		queue = append(queue, synSlot{idx: int32(i), try: tries[i], deadline: now.Add(cfg.dialTimeout)})
	}
	send := func(i int) error {
		if err := s.send(cfg.ports[i]); err != nil {
			return err
		}
		sentTo(i, time.Now())
		return nil
	}
	room := func() int { return min(win.size-inflight, credit) }
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(s.wake), Events: unix.POLLIN}}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// The SYNs due again first, then new ones, while the window has room: one batch.
		full := false
		for len(resend) > 0 && room() > 0 {
			if status[resend[0]] != due {
				resend = resend[1:] // answered meanwhile, to an earlier SYN
				continue
			}
			err := send(int(resend[0]))
			if busy(err) {
				full = true
				break
			}
			if err != nil {
				return fmt.Errorf("send SYN to port %d: %w", cfg.ports[resend[0]], err)
			}
			resend = resend[1:]
		}
		if k := min(n-next, room()); k > 0 && !full && len(resend) == 0 {
			sent, err := s.sendBatch(cfg.ports[next : next+k])
			now := time.Now()
			for i := next; i < next+sent; i++ {
				sentTo(i, now)
			}
			next += sent
			pending += sent
			if err != nil {
				if !busy(err) {
					return fmt.Errorf("send SYN to port %d: %w", cfg.ports[next], err)
				}
				full = true // the interface's queue is full: read answers, then go on
			}
		}
		// Read every answer queued.
		for {
			got, err := s.readBatch()
			if err != nil {
				return fmt.Errorf("read answers: %w", err)
			}
			at := time.Now()
			for _, b := range got {
				a, ok := s.parseAnswer(b)
				if !ok {
					continue
				}
				i := int(byPort[a.port]) - 1
				if i < 0 || (status[i] != waiting && status[i] != due) {
					continue // a port not asked about, or a duplicate
				}
				lastAnswer = at
				late := status[i] == due
				if !late {
					inflight--
					credit++ // a packet left the path (a due port's came back, or is owed, from its expiry)
				}
				status[i], states[i] = done, a.state
				pending--
				answered++
				if tries[i] > 1 || late {
					lastLoss = at
					win.recovered(start.Add(firstAt[i]), at)
				} else {
					win.answered(at)
				}
			}
			if len(got) < synBatch {
				break // the queue is empty
			}
		}
		// Expire the SYNs unanswered for too long: due again, then filtered.
		now := time.Now()
		// Credits owed come back when due, while no answers come or none shows a loss, at
		// most a window's worth a dial timeout: in a burst, what filled a queue once would
		// fill it again.
		gap := max(1, cfg.dialTimeout/time.Duration(win.size))
		paced = later(paced, now.Add(-gap*time.Duration(win.min)))
		quiet := now.Sub(lastAnswer) >= quietFor || now.Sub(lastLoss) >= cfg.dialTimeout
		for quiet && len(owed) > 0 && !owed[0].After(now) && !paced.After(now) {
			owed = owed[1:]
			paced = paced.Add(gap)
			credit++
		}
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
			inflight--
			if win.dropping {
				owed = append(owed, now.Add(cfg.dialTimeout)) // the queue that may have lost it drains first
			} else {
				credit++ // silence where nothing is lost: the target's, not a full queue
			}
			if int(sl.try) < win.tries() {
				status[sl.idx] = due
				resend = append(resend, sl.idx)
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
		if inflight == 0 && credit <= 0 {
			// Nothing in flight to clock the sends, and every credit owed: start again,
			// small, with the smallest window's worth of them now.
			k := min(win.min, len(owed))
			owed = owed[k:]
			credit += k
		}
		if (next < n || len(resend) > 0) && room() > 0 && !full {
			continue // room in the window: send more before waiting
		}
		// Wait for an answer, the next SYN to expire or the next credit owed.
		var until time.Time
		if head < len(queue) {
			until = queue[head].deadline
		}
		if len(owed) > 0 {
			calm := lastAnswer.Add(quietFor)
			if c := lastLoss.Add(cfg.dialTimeout); c.Before(calm) {
				calm = c
			}
			back := later(later(owed[0], paced), calm)
			if until.IsZero() || back.Before(until) {
				until = back
			}
		}
		wait := 0
		if !until.IsZero() {
			wait = max(0, int(time.Until(until)/time.Millisecond)+1)
		}
		if full {
			wait = 1 // the interface's queue drains by itself: no answer need wake us
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

// wakeOnDone writes to the eventfd wake when ctx ends, and returns what stops that: it
// waits for a write under way, so that the write never lands on the descriptor's number
// after the caller has closed it (and the number has named another file since).
func wakeOnDone(ctx context.Context, wake int) (stop func()) {
	fired := make(chan struct{})
	cancel := context.AfterFunc(ctx, func() {
		defer close(fired)
		unix.Write(wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	})
	return func() {
		if !cancel() {
			<-fired
		}
	}
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
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
