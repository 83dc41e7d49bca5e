package netprobe

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"

	"github.com/google/gopacket/layers"
)

// Capture file errors, for errors.Is.
var (
	// ErrNotCapture: the data is neither pcap nor pcapng.
	ErrNotCapture = errors.New("not a pcap or pcapng capture")
	// ErrCorruptCapture: a record or block is malformed.
	ErrCorruptCapture = errors.New("corrupt capture")
)

// errTruncated: the data ends inside a record or block (a capture cut short).
var errTruncated = errors.New("capture ends inside a packet")

// Limits that keep a corrupt or hostile file from making the reader allocate without
// bound (gopacket's pcapgo readers allocate whatever length a record claims).
const (
	maxPacketLen = 256 << 10
	maxBlockLen  = 1 << 20
)

// packetSource yields the packets of a capture file. The data slice is valid until the
// next call.
type packetSource interface {
	next() (data []byte, ts time.Time, link layers.LinkType, err error)
}

// newPacketSource sniffs the format of r.
func newPacketSource(r io.Reader) (packetSource, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	magic, err := br.Peek(4)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: %d bytes", ErrNotCapture, len(magic))
		}
		return nil, err
	}
	switch {
	case binary.LittleEndian.Uint32(magic) == 0x0A0D0D0A:
		return &ngSource{r: br}, nil
	default:
		return newPcapSource(br)
	}
}

// readFull reads len(b) bytes; running out of data midway is errTruncated, and a clean
// end (no byte at all) is io.EOF when eofOK.
func readFull(r io.Reader, b []byte, eofOK bool) error {
	n, err := io.ReadFull(r, b)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF) && n == 0 && eofOK:
		return io.EOF
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return errTruncated
	}
	return err
}

// pcap (libpcap classic format)

type pcapSource struct {
	r     *bufio.Reader
	order binary.ByteOrder
	nano  bool
	link  layers.LinkType
	hdr   [16]byte
	buf   []byte
}

func newPcapSource(r *bufio.Reader) (*pcapSource, error) {
	var h [24]byte
	if err := readFull(r, h[:], false); err != nil {
		if errors.Is(err, errTruncated) {
			return nil, fmt.Errorf("%w: short header", ErrNotCapture)
		}
		return nil, err
	}
	s := &pcapSource{r: r}
	switch binary.LittleEndian.Uint32(h[0:4]) {
	case 0xa1b2c3d4:
		s.order = binary.LittleEndian
	case 0xd4c3b2a1:
		s.order = binary.BigEndian
	case 0xa1b23c4d:
		s.order, s.nano = binary.LittleEndian, true
	case 0x4d3cb2a1:
		s.order, s.nano = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("%w: magic %x", ErrNotCapture, h[0:4])
	}
	// The link type's upper bits may carry FCS information; the type is the low 16.
	s.link = layers.LinkType(s.order.Uint32(h[20:24]) & 0xffff)
	return s, nil
}

func (s *pcapSource) next() ([]byte, time.Time, layers.LinkType, error) {
	if err := readFull(s.r, s.hdr[:], true); err != nil {
		return nil, time.Time{}, 0, err
	}
	sec, frac := s.order.Uint32(s.hdr[0:4]), s.order.Uint32(s.hdr[4:8])
	capLen := s.order.Uint32(s.hdr[8:12])
	if capLen > maxPacketLen {
		return nil, time.Time{}, 0, fmt.Errorf("%w: record of %d bytes", ErrCorruptCapture, capLen)
	}
	if cap(s.buf) < int(capLen) {
		s.buf = make([]byte, capLen)
	}
	data := s.buf[:capLen]
	if err := readFull(s.r, data, false); err != nil {
		return nil, time.Time{}, 0, err
	}
	nsec := int64(frac)
	if !s.nano {
		nsec *= 1000
	}
	return data, time.Unix(int64(sec), nsec).UTC(), s.link, nil
}

// pcapng

type ngInterface struct {
	link    layers.LinkType
	snapLen uint32
	tsBase2 bool  // resolution is 2^-tsExp, else 10^-tsExp
	tsExp   uint8 // default 6: microseconds
}

type ngSource struct {
	r      *bufio.Reader
	order  binary.ByteOrder
	ifaces []ngInterface
	hdr    [8]byte
	buf    []byte
}

func (s *ngSource) next() ([]byte, time.Time, layers.LinkType, error) {
	for {
		if err := readFull(s.r, s.hdr[:], true); err != nil {
			return nil, time.Time{}, 0, err
		}
		typ := binary.LittleEndian.Uint32(s.hdr[0:4])
		if typ == 0x0A0D0D0A {
			if err := s.sectionHeader(); err != nil {
				return nil, time.Time{}, 0, err
			}
			continue
		}
		if s.order == nil {
			return nil, time.Time{}, 0, fmt.Errorf("%w: block before the section header", ErrCorruptCapture)
		}
		typ = s.order.Uint32(s.hdr[0:4])
		body, err := s.body(s.order.Uint32(s.hdr[4:8]), 0)
		if err != nil {
			return nil, time.Time{}, 0, err
		}
		switch typ {
		case 1: // interface description
			if len(body) < 8 {
				return nil, time.Time{}, 0, fmt.Errorf("%w: short interface block", ErrCorruptCapture)
			}
			ifc := ngInterface{link: layers.LinkType(s.order.Uint16(body[0:2])), snapLen: s.order.Uint32(body[4:8]), tsExp: 6}
			s.interfaceOptions(&ifc, body[8:])
			s.ifaces = append(s.ifaces, ifc)
		case 6, 2: // enhanced packet; obsolete packet
			if len(body) < 20 {
				return nil, time.Time{}, 0, fmt.Errorf("%w: short packet block", ErrCorruptCapture)
			}
			var id uint32
			if typ == 6 {
				id = s.order.Uint32(body[0:4])
			} else {
				id = uint32(s.order.Uint16(body[0:2]))
			}
			if id >= uint32(len(s.ifaces)) {
				return nil, time.Time{}, 0, fmt.Errorf("%w: packet on undeclared interface %d", ErrCorruptCapture, id)
			}
			capLen := s.order.Uint32(body[12:16])
			if capLen > uint32(len(body)-20) {
				return nil, time.Time{}, 0, fmt.Errorf("%w: packet of %d bytes in a block of %d", ErrCorruptCapture, capLen, len(body))
			}
			ifc := s.ifaces[id]
			ts := uint64(s.order.Uint32(body[4:8]))<<32 | uint64(s.order.Uint32(body[8:12]))
			return body[20 : 20+capLen], ifc.time(ts), ifc.link, nil
		case 3: // simple packet
			if len(body) < 4 || len(s.ifaces) == 0 {
				return nil, time.Time{}, 0, fmt.Errorf("%w: bad simple packet block", ErrCorruptCapture)
			}
			n := min(s.order.Uint32(body[0:4]), uint32(len(body)-4))
			if sl := s.ifaces[0].snapLen; sl > 0 {
				n = min(n, sl)
			}
			return body[4 : 4+n], time.Time{}, s.ifaces[0].link, nil
		}
		// Other blocks (statistics, name resolution, custom) are skipped.
	}
}

// body reads the rest of a block whose total length is total (trailer included), of
// which the type, the length and consumed more bytes are read, and returns it without
// the trailing length.
func (s *ngSource) body(total uint32, consumed int) ([]byte, error) {
	if total < uint32(12+consumed) || total%4 != 0 || total > maxBlockLen {
		return nil, fmt.Errorf("%w: block length %d", ErrCorruptCapture, total)
	}
	n := int(total) - 8 - consumed
	if cap(s.buf) < n {
		s.buf = make([]byte, n)
	}
	b := s.buf[:n]
	if err := readFull(s.r, b, false); err != nil {
		return nil, err
	}
	if s.order.Uint32(b[n-4:]) != total {
		return nil, fmt.Errorf("%w: block trailer %d, header %d", ErrCorruptCapture, s.order.Uint32(b[n-4:]), total)
	}
	return b[:n-4], nil
}

func (s *ngSource) sectionHeader() error {
	var bom [4]byte
	if err := readFull(s.r, bom[:], false); err != nil {
		return err
	}
	switch {
	case binary.LittleEndian.Uint32(bom[:]) == 0x1A2B3C4D:
		s.order = binary.LittleEndian
	case binary.BigEndian.Uint32(bom[:]) == 0x1A2B3C4D:
		s.order = binary.BigEndian
	default:
		return fmt.Errorf("%w: byte-order magic %x", ErrNotCapture, bom)
	}
	if _, err := s.body(s.order.Uint32(s.hdr[4:8]), 4); err != nil {
		return err
	}
	s.ifaces = s.ifaces[:0]
	return nil
}

func (s *ngSource) interfaceOptions(ifc *ngInterface, opts []byte) {
	for len(opts) >= 4 {
		code, l := s.order.Uint16(opts[0:2]), int(s.order.Uint16(opts[2:4]))
		opts = opts[4:]
		if code == 0 || l > len(opts) {
			return
		}
		if code == 9 && l >= 1 { // if_tsresol
			ifc.tsBase2, ifc.tsExp = opts[0]&0x80 != 0, opts[0]&0x7f
		}
		opts = opts[(l+3)&^3:]
	}
}

// time converts a timestamp in the interface's resolution.
func (ifc ngInterface) time(ts uint64) time.Time {
	if ifc.tsBase2 {
		e := min(ifc.tsExp, 63)
		sec := ts >> e
		frac := ts & (1<<e - 1)
		var nsec uint64
		if e > 0 {
			hi, lo := bits.Mul64(frac, 1e9) // frac < 2^e, so (frac*1e9)>>e < 1e9
			nsec = hi<<(64-e) | lo>>e
		}
		return time.Unix(int64(sec), int64(nsec)).UTC()
	}
	e := ifc.tsExp
	if e > 19 {
		return time.Time{}
	}
	unit := uint64(1)
	for range e {
		unit *= 10
	}
	sec, frac := ts/unit, ts%unit
	var nsec uint64
	if e <= 9 {
		for range 9 - e {
			frac *= 10
		}
		nsec = frac
	} else {
		for range e - 9 {
			frac /= 10
		}
		nsec = frac
	}
	return time.Unix(int64(sec), int64(nsec)).UTC()
}
