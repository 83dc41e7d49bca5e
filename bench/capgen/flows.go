package capgen

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// pkt is one planned packet of a flow; sequence numbers are filled in when it is sent.
type pkt struct {
	fromClient bool
	syn, fin   bool
	payload    []byte
	// cred is set on the segment that completes a CONNECT carrying a password.
	cred *Cred
}

// flow is a planned connection.
type flow struct {
	kind           Kind
	client, server netip.AddrPort
	cseq, sseq     uint32 // next sequence number of each side
	cid, sid       uint16 // IP IDs
	pkts           []pkt
	next           int
}

// fillTCP sets t for packet p and advances the sender's sequence number.
func (f *flow) fillTCP(t *layers.TCP, p pkt) {
	*t = layers.TCP{Window: 64240}
	src, dst := f.client, f.server
	seq, ack := &f.cseq, f.sseq
	if !p.fromClient {
		src, dst = dst, src
		seq, ack = &f.sseq, f.cseq
	}
	t.SrcPort, t.DstPort = layers.TCPPort(src.Port()), layers.TCPPort(dst.Port())
	t.Seq = *seq
	t.SYN, t.FIN, t.PSH = p.syn, p.fin, len(p.payload) > 0
	if p.fromClient && p.syn {
		t.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}
	}
	if !p.syn || !p.fromClient {
		t.ACK, t.Ack = true, ack
	}
	adv := uint32(len(p.payload))
	if p.syn || p.fin {
		adv++
	}
	*seq += adv
}

// tcpFlow starts planning a TCP connection: random initial sequence numbers and the
// three-way handshake.
func (g *gen) tcpFlow(kind Kind, server netip.Addr, port uint16) *flow {
	c, s := g.endpoints(server, port)
	f := &flow{kind: kind, client: c, server: s, cseq: g.rng.Uint32(), sseq: g.rng.Uint32(),
		cid: uint16(g.rng.Uint32()), sid: uint16(g.rng.Uint32())}
	f.pkts = append(f.pkts, pkt{fromClient: true, syn: true}, pkt{syn: true}, pkt{fromClient: true})
	return f
}

// send plans a data segment and, on most, an ACK from the other side (a delayed ACK
// covers the rest); ackNow forces the ACK.
func (g *gen) send(f *flow, fromClient bool, payload []byte, ackNow bool) {
	f.pkts = append(f.pkts, pkt{fromClient: fromClient, payload: payload})
	if ackNow || g.rng.IntN(2) == 0 {
		f.pkts = append(f.pkts, pkt{fromClient: !fromClient})
	}
}

// close plans the client's close: FIN, FIN, ACK.
func (f *flow) close() {
	f.pkts = append(f.pkts, pkt{fromClient: true, fin: true}, pkt{fin: true}, pkt{fromClient: true})
}

// --- TLS ---

// tlsRecord wraps body in a TLS 1.2 record of type typ.
func tlsRecord(typ byte, body []byte) []byte {
	r := []byte{typ, 0x03, 0x03, 0, 0}
	binary.BigEndian.PutUint16(r[3:], uint16(len(body)))
	return append(r, body...)
}

// handshake wraps a TLS handshake message.
func handshake(typ byte, body []byte) []byte {
	h := []byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}
	return append(h, body...)
}

func (g *gen) clientHello(sni string) []byte {
	b := []byte{0x03, 0x03}
	b = append(b, g.randBytes(32)...) // random
	b = append(b, 32)
	b = append(b, g.randBytes(32)...) // session ID
	suites := []uint16{0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0x009c, 0x009d}
	b = binary.BigEndian.AppendUint16(b, uint16(2*len(suites)))
	for _, s := range suites {
		b = binary.BigEndian.AppendUint16(b, s)
	}
	b = append(b, 1, 0) // compression: null
	// server_name extension
	name := []byte(sni)
	ext := binary.BigEndian.AppendUint16(nil, 0x0000)
	ext = binary.BigEndian.AppendUint16(ext, uint16(len(name)+5))
	ext = binary.BigEndian.AppendUint16(ext, uint16(len(name)+3))
	ext = append(ext, 0)
	ext = binary.BigEndian.AppendUint16(ext, uint16(len(name)))
	ext = append(ext, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ext)))
	b = append(b, ext...)
	// The 0x0301 record version of a first ClientHello.
	r := tlsRecord(0x16, handshake(0x01, b))
	r[2] = 0x01
	return r
}

func (g *gen) tlsFlow(port uint16) *flow {
	server := netip.AddrFrom4([4]byte{10, 30, 0, byte(1 + g.rng.IntN(16))})
	f := g.tcpFlow(KindTLS, server, port)
	g.send(f, true, g.clientHello(fmt.Sprintf("svc-%d.example", g.rng.IntN(100))), true)
	sh := []byte{0x03, 0x03}
	sh = append(sh, g.randBytes(32)...)
	sh = append(sh, 32)
	sh = append(sh, g.randBytes(32)...)
	sh = append(sh, 0xc0, 0x2f, 0) // ECDHE-RSA-AES128-GCM-SHA256, no compression
	cert := g.randBytes(600 + g.rng.IntN(400))
	certs := append([]byte{0, byte((len(cert) + 3) >> 8), byte(len(cert) + 3), 0, byte(len(cert) >> 8), byte(len(cert))}, cert...)
	kx := append([]byte{0x03, 0x00, 0x1d, 32}, g.randBytes(32)...) // named curve x25519, its key
	kx = append(kx, 0x08, 0x04, 0x01, 0x00)                        // rsa_pss_rsae_sha256, 256 bytes
	kx = append(kx, g.randBytes(256)...)
	srv := append(handshake(0x02, sh), handshake(0x0b, certs)...)
	srv = append(srv, handshake(0x0c, kx)...)
	srv = append(srv, handshake(0x0e, nil)...)
	g.send(f, false, tlsRecord(0x16, srv), true)
	fin := tlsRecord(0x16, handshake(0x10, append([]byte{32}, g.randBytes(32)...)))
	fin = append(fin, tlsRecord(0x14, []byte{1})...)
	fin = append(fin, tlsRecord(0x16, g.randBytes(40))...)
	g.send(f, true, fin, true)
	g.send(f, false, append(tlsRecord(0x14, []byte{1}), tlsRecord(0x16, g.randBytes(40))...), true)
	for range 8 + g.rng.IntN(392) {
		n := 24 + g.rng.IntN(176)
		if g.rng.IntN(10) < 3 {
			n = 200 + g.rng.IntN(1200)
		}
		g.send(f, g.rng.IntN(3) > 0, tlsRecord(0x17, g.randBytes(n)), false)
	}
	g.send(f, true, tlsRecord(0x15, g.randBytes(26)), true) // encrypted close_notify
	f.close()
	return f
}

// --- MQTT ---

// mqttString appends an MQTT UTF-8 string.
func mqttString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// mqttPacket prefixes body with the fixed header: type and flags, remaining length.
func mqttPacket(first byte, body []byte) []byte {
	p := []byte{first}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		p = append(p, d)
		if n == 0 {
			break
		}
	}
	return append(p, body...)
}

// mqttConnect builds an MQTT 3.1.1 CONNECT; it returns the packet and the offset of the
// password's bytes in it (-1 without one).
func mqttConnect(clientID, user, pass string, hasUser, hasPass bool) ([]byte, int) {
	flags := byte(0x02) // clean session
	if hasUser {
		flags |= 0x80
	}
	if hasPass {
		flags |= 0x40
	}
	body := mqttString(nil, "MQTT")
	body = append(body, 4, flags, 0, 60)
	body = mqttString(body, clientID)
	if hasUser {
		body = mqttString(body, user)
	}
	at := -1
	if hasPass {
		at = len(body) + 2
		body = mqttString(body, pass)
	}
	p := mqttPacket(0x10, body)
	if at >= 0 {
		at += len(p) - len(body)
	}
	return p, at
}

func (g *gen) mqttFlow(split bool) *flow {
	f := g.tcpFlow(KindMQTT, netip.AddrFrom4([4]byte{10, 30, 1, 1}), PortMQTT)
	clientID := fmt.Sprintf("sensor-%05d", g.seq)
	user := fmt.Sprintf("dev-%05d", g.seq)
	pass := g.randText(12 + g.rng.IntN(13))
	hasUser, hasPass := true, true
	if !split {
		switch r := g.rng.IntN(100); {
		case r < 3:
			hasUser, hasPass = false, false
		case r < 8:
			hasPass = false
		}
	}
	conn, at := mqttConnect(clientID, user, pass, hasUser, hasPass)
	var cred *Cred
	if hasPass {
		cred = &Cred{Src: f.client.Addr(), Username: user, Password: pass}
	} else if hasUser {
		g.sum.NoPassword++
	}
	if split {
		cut := at + len(pass)/2
		g.sum.Split = *cred
		f.pkts = append(f.pkts, pkt{fromClient: true, payload: conn[:cut]}, pkt{fromClient: false})
		f.pkts = append(f.pkts, pkt{fromClient: true, payload: conn[cut:], cred: cred})
	} else {
		f.pkts = append(f.pkts, pkt{fromClient: true, payload: conn, cred: cred})
	}
	g.send(f, false, []byte{0x20, 0x02, 0x00, 0x00}, true) // CONNACK: accepted
	topic := "hilt/" + clientID + "/telemetry"
	for i := range 10 + g.rng.IntN(590) {
		switch r := g.rng.IntN(40); {
		case r == 0:
			g.send(f, true, []byte{0xc0, 0x00}, false) // PINGREQ
			g.send(f, false, []byte{0xd0, 0x00}, false)
		case r < 3:
			cmd := fmt.Sprintf(`{"cmd":"config.set","key":"telemetry_interval","value":%d}`, 1+g.rng.IntN(60))
			g.send(f, false, mqttPacket(0x30, append(mqttString(nil, "hilt/"+clientID+"/cmd"), cmd...)), false)
		default:
			msg := fmt.Sprintf(`{"seq":%d,"t":%.1f,"h":%d,"fw":"1.0.0","up":%d}`, i, 15+float64(g.rng.IntN(200))/10, 20+g.rng.IntN(60), g.rng.IntN(1<<20))
			g.send(f, true, mqttPacket(0x30, append(mqttString(nil, topic), msg...)), false)
		}
	}
	g.send(f, true, []byte{0xe0, 0x00}, true) // DISCONNECT
	f.close()
	return f
}

// --- HTTP ---

func (g *gen) httpFlow() *flow {
	f := g.tcpFlow(KindHTTP, netip.AddrFrom4([4]byte{10, 30, 2, 1}), PortHTTP)
	for i := range 1 + g.rng.IntN(25) {
		req := fmt.Sprintf("GET /api/v1/status?unit=%d&i=%d HTTP/1.1\r\nHost: 10.30.2.1\r\nUser-Agent: refdev/1.0\r\nAccept: application/json\r\n\r\n", g.seq, i)
		g.send(f, true, []byte(req), false)
		body := fmt.Sprintf(`{"unit":%d,"state":"ok","readings":[`, g.seq)
		for j := range 1 + g.rng.IntN(40) {
			if j > 0 {
				body += ","
			}
			body += fmt.Sprintf("%d", g.rng.IntN(10000))
		}
		body += "]}"
		resp := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		g.send(f, false, []byte(resp), true)
	}
	f.close()
	return f
}

// --- DNS ---

func (g *gen) dnsFlow() *flow {
	c, s := g.endpoints(netip.AddrFrom4([4]byte{10, 30, 3, 1}), PortDNS)
	f := &flow{kind: KindDNS, client: c, server: s, cid: uint16(g.rng.Uint32()), sid: uint16(g.rng.Uint32())}
	name := []byte(fmt.Sprintf("svc-%d.example", g.rng.IntN(100)))
	id := uint16(g.rng.Uint32())
	q := layers.DNSQuestion{Name: name, Type: layers.DNSTypeA, Class: layers.DNSClassIN}
	query := &layers.DNS{ID: id, RD: true, QDCount: 1, Questions: []layers.DNSQuestion{q}}
	ip := netip.AddrFrom4([4]byte{10, 30, 0, byte(1 + g.rng.IntN(16))}).AsSlice()
	answer := &layers.DNS{ID: id, QR: true, RD: true, RA: true, QDCount: 1, ANCount: 1, Questions: []layers.DNSQuestion{q},
		Answers: []layers.DNSResourceRecord{{Name: name, Type: layers.DNSTypeA, Class: layers.DNSClassIN, TTL: 300, IP: ip}}}
	f.pkts = append(f.pkts, pkt{fromClient: true, payload: g.dnsBytes(query)}, pkt{payload: g.dnsBytes(answer)})
	return f
}

// dnsBytes serialises d; a failure is kept in g.err, which ends the run.
func (g *gen) dnsBytes(d *layers.DNS) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := d.SerializeTo(buf, gopacket.SerializeOptions{FixLengths: true}); err != nil {
		g.err = cmp.Or(g.err, fmt.Errorf("serialize DNS %s: %w", d.Questions[0].Name, err))
	}
	return append([]byte(nil), buf.Bytes()...)
}
