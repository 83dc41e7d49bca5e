//go:build linux

package netprobe

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// answer builds the IPv4 packet a target sends back: from port to sport, acknowledging
// ack, with flags; ihl is the IP header length in bytes (20, or more with options).
func answer(ihl, port, sport int, ack uint32, flags byte) []byte {
	b := make([]byte, ihl+20)
	b[0] = 4<<4 | byte(ihl/4)
	b[9] = 6 // TCP
	t := b[ihl:]
	binary.BigEndian.PutUint16(t[0:], uint16(port))
	binary.BigEndian.PutUint16(t[2:], uint16(sport))
	binary.BigEndian.PutUint32(t[8:], ack)
	t[12] = 5 << 4
	t[13] = flags
	return b
}

func TestParseAnswer(t *testing.T) {
	s := &synScanner{sport: 40000, key: 0x5eed1234}
	const rst, synAck, ack, syn = 0x14, 0x12, 0x10, 0x02
	tests := []struct {
		name   string
		pkt    []byte
		want   synAnswer
		counts bool
	}{
		{"SYN-ACK: open", answer(20, 8443, 40000, s.seq(8443)+1, synAck), synAnswer{8443, portOpen}, true},
		{"RST: closed", answer(20, 22, 40000, s.seq(22)+1, rst), synAnswer{22, portClosed}, true},
		{"IP options", answer(24, 80, 40000, s.seq(80)+1, synAck), synAnswer{80, portOpen}, true},
		{"ack of another port's SYN", answer(20, 80, 40000, s.seq(81)+1, synAck), synAnswer{}, false},
		{"ack of no SYN of ours", answer(20, 80, 40000, 12345, rst), synAnswer{}, false},
		{"to another source port", answer(20, 80, 40001, s.seq(80)+1, synAck), synAnswer{}, false},
		{"a plain ACK", answer(20, 80, 40000, s.seq(80)+1, ack), synAnswer{}, false},
		{"a SYN (ours, looped back)", answer(20, 80, 40000, s.seq(80)+1, syn), synAnswer{}, false},
		{"truncated", answer(20, 80, 40000, s.seq(80)+1, synAck)[:30], synAnswer{}, false},
		{"not IPv4", append([]byte{6 << 4}, answer(20, 80, 40000, s.seq(80)+1, synAck)[1:]...), synAnswer{}, false},
		{"empty", nil, synAnswer{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := s.parseAnswer(tt.pkt)
			if ok != tt.counts || got != tt.want {
				t.Errorf("parseAnswer = %+v, %v; want %+v, %v", got, ok, tt.want, tt.counts)
			}
		})
	}
}

func TestTCPChecksum(t *testing.T) {
	// A checksum written into its segment makes the segment's sum (with the
	// pseudo-header) verify: the checksum of the whole is zero.
	tests := []struct {
		name     string
		src, dst string
		seg      []byte
	}{
		{"SYN with MSS", "10.14.50.1", "10.14.50.2", []byte{0x9c, 0x40, 0x20, 0xfb, 1, 2, 3, 4, 0, 0, 0, 0, 0x60, 0x02, 4, 0, 0, 0, 0, 0, 2, 4, 5, 0xb4}},
		{"odd length", "127.0.0.1", "127.0.0.2", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 0, 19, 20, 21}},
		{"high addresses", "255.255.255.254", "254.255.255.255", make([]byte, 20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, dst := netip.MustParseAddr(tt.src).As4(), netip.MustParseAddr(tt.dst).As4()
			seg := append([]byte(nil), tt.seg...)
			binary.BigEndian.PutUint16(seg[16:], 0)
			binary.BigEndian.PutUint16(seg[16:], tcpChecksum(src, dst, seg))
			if got := tcpChecksum(src, dst, seg); got != 0 && got != 0xffff {
				t.Errorf("checksum over the checksummed segment = %#04x, want 0", got)
			}
		})
	}
}

func TestSYNFilterJumps(t *testing.T) {
	// Every jump of the filter lands on an instruction, and both ends return.
	prog := synFilter(netip.MustParseAddr("10.14.50.2"), 40000)
	for i, ins := range prog {
		if ins.Code&0x07 == 0x05 { // BPF_JMP
			for _, off := range []uint8{ins.Jt, ins.Jf} {
				if j := i + 1 + int(off); j >= len(prog) {
					t.Errorf("instruction %d jumps to %d, past the end (%d)", i, j, len(prog))
				}
			}
		}
	}
	if last := prog[len(prog)-1]; last.Code&0x07 != 0x06 || last.K != 0 {
		t.Errorf("the last instruction is %+v, want ret 0", last)
	}
}
