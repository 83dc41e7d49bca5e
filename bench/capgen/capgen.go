package capgen

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"
)

// Defaults of Options.
const (
	DefaultPackets    = 1_000_000
	DefaultSeed       = 1
	DefaultConcurrent = 64
)

// Ports of the generated services.
const (
	PortMQTT    = 1883
	PortMQTTTLS = 8883
	PortHTTPS   = 443
	PortHTTP    = 80
	PortDNS     = 53
)

// Options say what to generate.
type Options struct {
	// Packets is how many packets to write at least: no flow starts after that many, and
	// the flows then in progress are completed (default DefaultPackets).
	Packets int
	// Seed seeds the generator (default DefaultSeed).
	Seed uint64
	// Concurrent is how many flows are in progress at once, their packets interleaved
	// (default DefaultConcurrent).
	Concurrent int
}

// Kind is what a flow carries.
type Kind string

// Kinds of flows.
const (
	KindTLS  Kind = "tls"  // TLS 1.2 records to 443 or 8883: handshake, then application data
	KindMQTT Kind = "mqtt" // MQTT 3.1.1 in the clear to 1883: CONNECT, PUBLISHes, PINGs
	KindHTTP Kind = "http" // HTTP/1.1 in the clear to 80: keep-alive GETs and JSON answers
	KindDNS  Kind = "dns"  // one DNS query and its answer, UDP to 53
)

// Cred is a password sent in a cleartext MQTT CONNECT, with its sender and user name.
type Cred struct {
	Src      netip.Addr
	Username string
	Password string
}

func (c Cred) String() string { return c.Src.String() + " " + c.Username + " " + c.Password }

// Compare orders credentials by sender, user name and password.
func (c Cred) Compare(d Cred) int {
	return cmp.Or(c.Src.Compare(d.Src), cmp.Compare(c.Username, d.Username), cmp.Compare(c.Password, d.Password))
}

// Summary is what a generated capture holds.
type Summary struct {
	// Packets and Bytes (frames, as captured) written.
	Packets int64
	Bytes   int64
	// Flows counts the flows by kind.
	Flows map[Kind]int
	// Creds are the cleartext MQTT CONNECTs that carry a password, sorted (Cred.Compare).
	// CONNECTs with a user name and no password are not listed (tshark's mqtt.passwd
	// filter does not show them); NoPassword counts them.
	Creds      []Cred
	NoPassword int
	// Split is the CONNECT whose password is cut across two TCP segments.
	Split Cred
	// First and Last are the first and last packets' times.
	First, Last time.Time
}

// WriteFile writes the capture to path (created or truncated).
func WriteFile(path string, o Options) (Summary, error) {
	f, err := os.Create(path)
	if err != nil {
		return Summary{}, fmt.Errorf("capgen: %w", err)
	}
	s, err := Write(f, o)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("capgen: %s: %w", path, cerr)
	}
	if err != nil {
		return s, fmt.Errorf("capgen: %s: %w", path, err)
	}
	return s, nil
}

// Write writes the capture to w as pcapng.
func Write(w io.Writer, o Options) (Summary, error) {
	if o.Packets <= 0 {
		o.Packets = DefaultPackets
	}
	if o.Seed == 0 {
		o.Seed = DefaultSeed
	}
	if o.Concurrent <= 0 {
		o.Concurrent = DefaultConcurrent
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	// Fixed section and interface options (the defaults name the machine's OS and
	// architecture), so that the file depends on Options alone.
	ngw, err := pcapgo.NewNgWriterInterface(bw,
		pcapgo.NgInterface{Name: "capgen0", LinkType: layers.LinkTypeEthernet, TimestampResolution: 9},
		pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "hilt bench/capgen"}})
	if err != nil {
		return Summary{}, err
	}
	g := &gen{
		o:    o,
		rng:  rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15)),
		w:    ngw,
		buf:  gopacket.NewSerializeBuffer(),
		ts:   time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		used: map[[2]netip.AddrPort]bool{},
		sum:  Summary{Flows: map[Kind]int{}},
	}
	if err := g.run(); err != nil {
		return g.sum, err
	}
	if err := ngw.Flush(); err != nil {
		return g.sum, err
	}
	if err := bw.Flush(); err != nil {
		return g.sum, err
	}
	slices.SortFunc(g.sum.Creds, Cred.Compare)
	return g.sum, nil
}

// Link-layer addresses: every client sits behind the same router.
var (
	macRouter = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}
	macServer = net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x02}
)

// gen is one generation run.
type gen struct {
	o     Options
	rng   *rand.Rand
	w     *pcapgo.NgWriter
	buf   gopacket.SerializeBuffer
	ts    time.Time
	used  map[[2]netip.AddrPort]bool // every 4-tuple given out: none is reused
	sum   Summary
	seq   int  // flows started
	split bool // the split CONNECT has been planned
	err   error

	eth layers.Ethernet
	ip  layers.IPv4
	tcp layers.TCP
	udp layers.UDP
}

func (g *gen) run() error {
	var active []*flow
	for {
		for int(g.sum.Packets) < g.o.Packets && len(active) < g.o.Concurrent {
			active = append(active, g.newFlow())
		}
		if g.err != nil {
			return g.err
		}
		if len(active) == 0 {
			return nil
		}
		i := g.rng.IntN(len(active))
		f := active[i]
		if err := g.emit(f); err != nil {
			return err
		}
		if f.next == len(f.pkts) {
			active[i] = active[len(active)-1]
			active = active[:len(active)-1]
		}
	}
}

// newFlow plans a flow of a kind drawn at random.
func (g *gen) newFlow() *flow {
	g.seq++
	r := g.rng.IntN(100)
	var f *flow
	switch {
	case r < 35:
		port := uint16(PortHTTPS)
		if g.rng.IntN(10) < 3 {
			port = PortMQTTTLS
		}
		f = g.tlsFlow(port)
	case r < 60:
		split := !g.split && int(g.sum.Packets) >= g.o.Packets*2/5
		g.split = g.split || split
		f = g.mqttFlow(split)
	case r < 85:
		f = g.httpFlow()
	default:
		f = g.dnsFlow()
	}
	g.sum.Flows[f.kind]++
	return f
}

// endpoints returns a fresh client address and port and the server's, never used before.
func (g *gen) endpoints(server netip.Addr, port uint16) (netip.AddrPort, netip.AddrPort) {
	srv := netip.AddrPortFrom(server, port)
	for {
		n := g.rng.IntN(4096)
		c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 20, byte(n >> 8), byte(n&0xff) | 1}), uint16(32768+g.rng.IntN(28232)))
		k := [2]netip.AddrPort{c, srv}
		if !g.used[k] {
			g.used[k] = true
			return c, srv
		}
	}
}

// randBytes returns n bytes from the generator.
func (g *gen) randBytes(n int) []byte {
	b := make([]byte, (n+7)&^7)
	for i := 0; i < len(b); i += 8 {
		v := g.rng.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b[:n]
}

// randText returns n characters of [A-Za-z0-9].
func (g *gen) randText(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.rng.IntN(len(alphabet))]
	}
	return string(b)
}

// emit writes the flow's next packet.
func (g *gen) emit(f *flow) error {
	p := f.pkts[f.next]
	f.next++
	g.ts = g.ts.Add(time.Duration(1+g.rng.IntN(120)) * time.Microsecond)
	src, dst := f.client, f.server
	if !p.fromClient {
		src, dst = dst, src
	}
	g.eth = layers.Ethernet{SrcMAC: macRouter, DstMAC: macServer, EthernetType: layers.EthernetTypeIPv4}
	if !p.fromClient {
		g.eth.SrcMAC, g.eth.DstMAC = macServer, macRouter
	}
	id := &f.cid
	if !p.fromClient {
		id = &f.sid
	}
	*id++
	g.ip = layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Id: *id,
		SrcIP: src.Addr().AsSlice(), DstIP: dst.Addr().AsSlice()}
	var err error
	if f.kind == KindDNS {
		g.ip.Protocol = layers.IPProtocolUDP
		g.udp = layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
		if err := g.udp.SetNetworkLayerForChecksum(&g.ip); err != nil {
			return err
		}
		err = gopacket.SerializeLayers(g.buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			&g.eth, &g.ip, &g.udp, gopacket.Payload(p.payload))
	} else {
		g.ip.Protocol = layers.IPProtocolTCP
		f.fillTCP(&g.tcp, p)
		if err := g.tcp.SetNetworkLayerForChecksum(&g.ip); err != nil {
			return err
		}
		err = gopacket.SerializeLayers(g.buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			&g.eth, &g.ip, &g.tcp, gopacket.Payload(p.payload))
	}
	if err != nil {
		return fmt.Errorf("serialize packet %d: %w", g.sum.Packets+1, err)
	}
	data := g.buf.Bytes()
	ci := gopacket.CaptureInfo{Timestamp: g.ts, CaptureLength: len(data), Length: len(data)}
	if err := g.w.WritePacket(ci, data); err != nil {
		return err
	}
	if g.sum.Packets == 0 {
		g.sum.First = g.ts
	}
	g.sum.Last = g.ts
	g.sum.Packets++
	g.sum.Bytes += int64(len(data))
	if p.cred != nil {
		g.sum.Creds = append(g.sum.Creds, *p.cred)
	}
	return nil
}
