//go:build linux

package netprobe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
	"golang.org/x/sys/unix"
)

// Capture is a running packet capture, written to a pcapng file as packets arrive.
//
// It reads an AF_PACKET socket of its own, in the same way as gopacket's
// pcapgo.EthernetHandle, but non-blocking and in Go's netpoller: EthernetHandle blocks
// in recvmsg, which closing its socket does not interrupt, so a capture on a quiet
// interface could not be stopped; and it sizes its buffer to the MTU, which cuts the
// Ethernet header's worth off every full-size frame.
type Capture struct {
	iface string
	out   string
	cfg   captureConfig
	link  layers.LinkType
	lo    bool

	sock *os.File
	rc   syscall.RawConn
	f    *os.File
	w    *pcapgo.NgWriter

	done     chan struct{}
	stopOnce sync.Once
	mu       sync.Mutex
	stopCtx  func() bool // releases the context watch

	// Written by the reader goroutine; read after done is closed.
	stats CaptureStats
	err   error

	result struct {
		stats CaptureStats
		err   error
	}
}

// StartCapture starts capturing on the network interface iface into the pcapng file out
// (created or truncated). Every packet is flushed to the file as it is written, so that
// a harness that crashes leaves a readable capture. The capture runs until Stop, or
// until ctx is done. Packets that reach the interface after StartCapture returns are
// captured.
//
// Without the right to open a packet socket it fails with ErrCaptureNotPermitted,
// naming the interface.
func StartCapture(ctx context.Context, iface string, out string, opts ...CaptureOption) (*Capture, error) {
	cfg := captureConfig{snapLen: DefaultSnapLen}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.hostErr != nil {
		return nil, fmt.Errorf("netprobe: capture on %s: host filter: %w: %w", iface, ErrBadAddress, cfg.hostErr)
	}
	if cfg.snapLen <= 0 || cfg.snapLen > DefaultSnapLen {
		cfg.snapLen = DefaultSnapLen
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("netprobe: capture on %s: %w", iface, err)
	}
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, fmt.Errorf("netprobe: capture on %s: %w", iface, err)
	}
	link, err := linkTypeOf(iface)
	if err != nil {
		return nil, fmt.Errorf("netprobe: capture on %s: %w", iface, err)
	}

	// Protocol 0: the socket receives nothing until it is bound to the interface. Opened
	// with ETH_P_ALL, it would queue every interface's packets until bind (and count those
	// that overflow its buffer as drops): with many devices on the host, a burst of another
	// device's traffic (its port scan) in that window made a capture look incomplete.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, fmt.Errorf("netprobe: capture on %s: %w: %w", iface, ErrCaptureNotPermitted, err)
		}
		return nil, fmt.Errorf("netprobe: capture on %s: packet socket: %w", iface, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netprobe: capture on %s: bind: %w", iface, err)
	}
	// Reading the statistics resets them: the drops Stop reports are the capture's own.
	_, _ = unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	// A large receive buffer rides out bursts; kernel timestamps date packets as they
	// arrived, not as they were read.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	sock := os.NewFile(uintptr(fd), "packet:"+iface)
	rc, err := sock.SyscallConn()
	if err == nil {
		// Stop relies on a read deadline: the socket must be in the netpoller.
		err = sock.SetReadDeadline(time.Time{})
	}
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("netprobe: capture on %s: %w", iface, err)
	}

	f, err := os.Create(out)
	if err != nil {
		sock.Close()
		return nil, fmt.Errorf("netprobe: capture on %s: %w", iface, err)
	}
	w, err := pcapgo.NewNgWriterInterface(f, pcapgo.NgInterface{
		Name:       iface,
		LinkType:   link,
		SnapLength: uint32(cfg.snapLen),
	}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "hilt"}})
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		sock.Close()
		f.Close()
		return nil, fmt.Errorf("netprobe: capture on %s: write %s: %w", iface, out, err)
	}

	c := &Capture{
		iface: iface, out: out, cfg: cfg, link: link, lo: ifi.Flags&net.FlagLoopback != 0,
		sock: sock, rc: rc, f: f, w: w, done: make(chan struct{}),
	}
	go c.run()
	c.mu.Lock()
	c.stopCtx = context.AfterFunc(ctx, func() { c.Stop() })
	c.mu.Unlock()
	return c, nil
}

// Path returns the file the capture writes.
func (c *Capture) Path() string { return c.out }

// Stop ends the capture: it writes the packets already received, closes the file and
// returns what was written. Calling it again returns the same.
func (c *Capture) Stop() (CaptureStats, error) {
	c.stopOnce.Do(func() {
		c.mu.Lock()
		if c.stopCtx != nil {
			c.stopCtx()
		}
		c.mu.Unlock()
		// Wake the reader: it drains what the socket holds, then returns.
		_ = c.sock.SetReadDeadline(time.Now())
		<-c.done
		stats, err := c.stats, c.err
		var tp *unix.TpacketStats
		if cerr := c.rc.Control(func(fd uintptr) {
			tp, _ = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
		}); cerr == nil && tp != nil {
			stats.Dropped = int64(tp.Drops)
		}
		if cerr := c.sock.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if ferr := c.w.Flush(); ferr != nil && err == nil {
			err = ferr
		}
		if ferr := c.f.Close(); ferr != nil && err == nil {
			err = ferr
		}
		if err != nil {
			err = fmt.Errorf("netprobe: capture on %s to %s: %w", c.iface, c.out, err)
		}
		c.result.stats, c.result.err = stats, err
	})
	return c.result.stats, c.result.err
}

func (c *Capture) run() {
	defer close(c.done)
	buf := make([]byte, c.cfg.snapLen)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))*2)
	for {
		var (
			n, oobn int
			from    unix.Sockaddr
			rerr    error
		)
		read := func(fd uintptr) bool {
			n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_TRUNC)
			return rerr != unix.EAGAIN
		}
		err := c.rc.Read(read)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			// Stop: take what is already queued, without waiting for more.
			for {
				cerr := c.rc.Control(func(fd uintptr) { read(fd) })
				if cerr != nil || rerr != nil {
					break
				}
				if !c.packet(buf, n, oob[:oobn], from) {
					return
				}
			}
			return
		}
		if err != nil {
			c.err = err
			return
		}
		if rerr != nil {
			if rerr == unix.EINTR {
				continue
			}
			c.err = rerr
			return
		}
		if !c.packet(buf, n, oob[:oobn], from) {
			return
		}
	}
}

// packet filters and writes one packet; false means stop (a write failed).
func (c *Capture) packet(buf []byte, n int, oob []byte, from unix.Sockaddr) bool {
	// On loopback every packet is seen leaving and arriving; keep one copy.
	if ll, ok := from.(*unix.SockaddrLinklayer); ok && c.lo && ll.Pkttype == unix.PACKET_OUTGOING {
		return true
	}
	capLen := min(n, len(buf))
	data := buf[:capLen]
	if c.cfg.host.IsValid() && !involves(data, c.link, c.cfg.host) {
		return true
	}
	ci := gopacket.CaptureInfo{Timestamp: packetTime(oob), CaptureLength: capLen, Length: n}
	if err := c.w.WritePacket(ci, data); err != nil {
		c.err = err
		return false
	}
	if err := c.w.Flush(); err != nil {
		c.err = err
		return false
	}
	c.stats.Packets++
	c.stats.Bytes += int64(capLen)
	return true
}

func packetTime(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
				ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
				return time.Unix(int64(ts.Sec), int64(ts.Nsec))
			}
		}
	}
	return time.Now()
}

// involves reports whether the frame is an IP packet to or from host, or an ARP packet
// about it.
func involves(data []byte, link layers.LinkType, host netip.Addr) bool {
	off := 0
	var etype uint16
	switch link {
	case layers.LinkTypeEthernet:
		if len(data) < 14 {
			return false
		}
		etype, off = binary.BigEndian.Uint16(data[12:14]), 14
		for (etype == 0x8100 || etype == 0x88a8) && len(data) >= off+4 {
			etype, off = binary.BigEndian.Uint16(data[off+2:off+4]), off+4
		}
	case layers.LinkTypeRaw:
		if len(data) == 0 {
			return false
		}
		etype = 0x0800
		if data[0]>>4 == 6 {
			etype = 0x86dd
		}
	default:
		return true
	}
	p := data[off:]
	match := func(b []byte) bool {
		a, ok := netip.AddrFromSlice(b)
		return ok && a.Unmap() == host
	}
	switch etype {
	case 0x0800:
		return len(p) >= 20 && (match(p[12:16]) || match(p[16:20]))
	case 0x86dd:
		return len(p) >= 40 && (match(p[8:24]) || match(p[24:40]))
	case 0x0806:
		return len(p) >= 28 && (match(p[14:18]) || match(p[24:28]))
	}
	return false
}

// linkTypeOf says what the frames of iface look like from a raw packet socket.
func linkTypeOf(iface string) (layers.LinkType, error) {
	b, err := os.ReadFile("/sys/class/net/" + iface + "/type")
	if err != nil {
		return layers.LinkTypeEthernet, nil // no sysfs: assume Ethernet
	}
	t, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("interface type %q: %w", b, err)
	}
	switch t {
	case unix.ARPHRD_ETHER, unix.ARPHRD_LOOPBACK:
		return layers.LinkTypeEthernet, nil
	case unix.ARPHRD_NONE, unix.ARPHRD_TUNNEL, unix.ARPHRD_IPGRE:
		return layers.LinkTypeRaw, nil
	}
	return 0, fmt.Errorf("interface hardware type %d: %w", t, ErrCaptureNotSupported)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
