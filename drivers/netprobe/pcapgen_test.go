package netprobe_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// frame is one packet of a generated capture.
type frame struct {
	ts   time.Time
	data []byte
}

// tcpSeg describes a TCP segment to serialise.
type tcpSeg struct {
	src, dst            netip.AddrPort
	seq, ack            uint32
	syn, ackf, fin, rst bool
	payload             []byte
}

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
)

// ipLayers returns the network layer for src -> dst and the Ethernet type.
func ipLayers(src, dst netip.Addr, proto layers.IPProtocol) (gopacket.NetworkLayer, gopacket.SerializableLayer, layers.EthernetType) {
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		return ip, ip, layers.EthernetTypeIPv4
	}
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
	return ip, ip, layers.EthernetTypeIPv6
}

// serialize builds an Ethernet frame (or a bare IP packet when raw) holding s.
func (s tcpSeg) serialize(t testing.TB, raw bool) []byte {
	t.Helper()
	nl, ipl, et := ipLayers(s.src.Addr(), s.dst.Addr(), layers.IPProtocolTCP)
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(s.src.Port()), DstPort: layers.TCPPort(s.dst.Port()),
		Seq: s.seq, Ack: s.ack, SYN: s.syn, ACK: s.ackf, FIN: s.fin, RST: s.rst, PSH: len(s.payload) > 0,
		Window: 65535,
	}
	if err := tcp.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	ls := []gopacket.SerializableLayer{ipl, tcp, gopacket.Payload(s.payload)}
	if !raw {
		ls = append([]gopacket.SerializableLayer{&layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: et}}, ls...)
	}
	return serializeLayers(t, ls...)
}

func udpFrame(t testing.TB, src, dst netip.AddrPort, payload []byte) []byte {
	t.Helper()
	nl, ipl, et := ipLayers(src.Addr(), dst.Addr(), layers.IPProtocolUDP)
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	if err := udp.SetNetworkLayerForChecksum(nl); err != nil {
		t.Fatal(err)
	}
	return serializeLayers(t, &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: et}, ipl, udp, gopacket.Payload(payload))
}

func serializeLayers(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return bytes.Clone(buf.Bytes())
}

// conn generates the packets of one TCP connection.
type conn struct {
	t          testing.TB
	c, s       netip.AddrPort
	cseq, sseq uint32
	at         time.Time
	frames     []frame
}

func newConn(t testing.TB, client, server string, at time.Time) *conn {
	return &conn{t: t, c: netip.MustParseAddrPort(client), s: netip.MustParseAddrPort(server), cseq: 1000, sseq: 50000, at: at}
}

func (cv *conn) add(s tcpSeg) {
	cv.at = cv.at.Add(time.Millisecond)
	cv.frames = append(cv.frames, frame{cv.at, s.serialize(cv.t, false)})
}

func (cv *conn) handshake() {
	cv.add(tcpSeg{src: cv.c, dst: cv.s, seq: cv.cseq, syn: true})
	cv.add(tcpSeg{src: cv.s, dst: cv.c, seq: cv.sseq, ack: cv.cseq + 1, syn: true, ackf: true})
	cv.cseq++
	cv.sseq++
	cv.add(tcpSeg{src: cv.c, dst: cv.s, seq: cv.cseq, ack: cv.sseq, ackf: true})
}

// client returns the segment carrying p from the client and advances its sequence.
func (cv *conn) client(p []byte) tcpSeg {
	s := tcpSeg{src: cv.c, dst: cv.s, seq: cv.cseq, ack: cv.sseq, ackf: true, payload: p}
	cv.cseq += uint32(len(p))
	return s
}

func (cv *conn) server(p []byte) tcpSeg {
	s := tcpSeg{src: cv.s, dst: cv.c, seq: cv.sseq, ack: cv.cseq, ackf: true, payload: p}
	cv.sseq += uint32(len(p))
	return s
}

func (cv *conn) close() {
	cv.add(tcpSeg{src: cv.c, dst: cv.s, seq: cv.cseq, ack: cv.sseq, ackf: true, fin: true})
	cv.add(tcpSeg{src: cv.s, dst: cv.c, seq: cv.sseq, ack: cv.cseq + 1, ackf: true, fin: true})
	cv.cseq++
	cv.sseq++
	cv.add(tcpSeg{src: cv.c, dst: cv.s, seq: cv.cseq, ack: cv.sseq, ackf: true})
}

// writePcapng writes frames as pcapng with one interface of link type lt.
func writePcapng(t testing.TB, frames []frame, lt layers.LinkType) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := pcapgo.NewNgWriter(&b, lt)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: f.ts, CaptureLength: len(f.data), Length: len(f.data)}
		if err := w.WritePacket(ci, f.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writePcap writes frames as classic pcap (nanosecond timestamps when nanos).
func writePcap(t testing.TB, frames []frame, lt layers.LinkType, nanos bool) []byte {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriter(&b)
	if nanos {
		w = pcapgo.NewWriterNanos(&b)
	}
	if err := w.WriteFileHeader(65536, lt); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: f.ts, CaptureLength: len(f.data), Length: len(f.data)}
		if err := w.WritePacket(ci, f.data); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

// relink rewrites Ethernet frames for another link type: Linux cooked (SLL), BSD
// loopback (Null) or raw IP.
func relink(frames []frame, lt layers.LinkType) []frame {
	out := make([]frame, len(frames))
	for i, f := range frames {
		etype := f.data[12:14]
		ip := f.data[14:]
		var d []byte
		switch lt {
		case layers.LinkTypeLinuxSLL:
			h := make([]byte, 16)
			binary.BigEndian.PutUint16(h[0:2], 0) // to us
			binary.BigEndian.PutUint16(h[2:4], 1) // ARPHRD_ETHER
			binary.BigEndian.PutUint16(h[4:6], 6)
			copy(h[6:12], macA)
			copy(h[14:16], etype)
			d = append(h, ip...)
		case layers.LinkTypeNull:
			fam := uint32(2)
			if binary.BigEndian.Uint16(etype) == 0x86dd {
				fam = 30
			}
			d = binary.LittleEndian.AppendUint32(nil, fam)
			d = append(d, ip...)
		case layers.LinkTypeRaw:
			d = bytes.Clone(ip)
		}
		out[i] = frame{f.ts, d}
	}
	return out
}

// mqttConnect builds an MQTT 3.1.1 CONNECT and returns it with the offset of the
// password in it.
func mqttConnect(clientID, user, pass string) ([]byte, int) {
	str := func(b []byte, s string) []byte {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		return append(b, s...)
	}
	var body []byte
	body = str(body, "MQTT")
	body = append(body, 4, 0xC2, 0, 60) // level 4; user, password, clean session; keep alive 60
	body = str(body, clientID)
	body = str(body, user)
	passAt := len(body) + 2
	body = str(body, pass)
	pkt := []byte{0x10}
	rl := len(body)
	for {
		b := byte(rl % 128)
		rl /= 128
		if rl > 0 {
			b |= 0x80
		}
		pkt = append(pkt, b)
		if rl == 0 {
			break
		}
	}
	return append(pkt, body...), len(pkt) + passAt
}
