package netprobe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/hilt-project/hilt/harness/secretscan"
)

// AnalyzeOptions says what to look for in a capture.
type AnalyzeOptions struct {
	// Host, if set, is the device's IP address: only its flows are analysed.
	Host string
	// Secrets are searched for in every flow, in every encoding of package secretscan.
	Secrets []string
}

// FlowKey names a flow. The client is the side that opened it: the sender of the SYN;
// failing that (a capture started mid-connection), the side without a well-known port,
// the side with the higher TCP port, or the sender of the first UDP datagram.
type FlowKey struct {
	Proto  string // "tcp" or "udp"
	Client netip.AddrPort
	Server netip.AddrPort
}

func (k FlowKey) String() string {
	return fmt.Sprintf("%s %s -> %s", k.Proto, k.Client, k.Server)
}

// FlowClass is what a flow carries, judged from the start of its streams.
type FlowClass string

// Flow classes.
const (
	// ClassTLS: the client's stream starts with a TLS record header.
	ClassTLS FlowClass = "tls"
	// ClassDTLS: a UDP flow whose first datagram is a DTLS record.
	ClassDTLS FlowClass = "dtls"
	// ClassMQTTCleartext: the client's stream starts with an MQTT CONNECT.
	ClassMQTTCleartext FlowClass = "mqtt-cleartext"
	// ClassCleartextOther: payload that is neither TLS nor MQTT.
	ClassCleartextOther FlowClass = "cleartext-other"
	// ClassEmpty: no payload in either direction (a scan, a refused connection).
	ClassEmpty FlowClass = "empty"
)

// Direction is one side of a flow's conversation.
type Direction string

// Directions.
const (
	ClientToServer Direction = "client->server"
	ServerToClient Direction = "server->client"
)

// Flow is one TCP connection or UDP conversation in a capture.
type Flow struct {
	Key   FlowKey
	Class FlowClass
	// Packets and Bytes (as captured, headers included) of the flow, both directions.
	Packets int64
	Bytes   int64
	// ClientBytes and ServerBytes are the payload bytes each side sent, as reassembled
	// (retransmissions counted once).
	ClientBytes int64
	ServerBytes int64
	// Missing counts payload bytes absent from the capture (sequence gaps): the secret
	// search could not see them.
	Missing     int64
	First, Last time.Time
}

// Hit is a secret found in a flow.
type Hit struct {
	// Secret is the secret, redacted (secretscan.Redact); SecretIndex its index in
	// AnalyzeOptions.Secrets.
	Secret      string
	SecretIndex int
	Encoding    string
	Flow        FlowKey
	Direction   Direction
	// Offset is where the first occurrence starts in the direction's reassembled stream.
	Offset int64
	// Count is how many times the secret was found in that encoding in that direction.
	Count int
}

// MQTTCred is the user name and password of a cleartext MQTT CONNECT: what
// `tshark -Y mqtt.passwd` shows.
type MQTTCred struct {
	Src         netip.Addr
	Flow        FlowKey
	ClientID    string
	Username    string
	Password    string
	HasUsername bool
	HasPassword bool
}

// Analysis is what a capture holds.
type Analysis struct {
	// Packets counts every packet in the file.
	Packets int64
	Flows   []Flow
	Hits    []Hit
	Creds   []MQTTCred
	// Truncated: the file ends inside a packet (a capture cut short); what precedes it
	// was analysed.
	Truncated bool
}

// Cleartext returns the flows that carried payload outside TLS or DTLS.
func (a Analysis) Cleartext() []Flow {
	var out []Flow
	for _, f := range a.Flows {
		if f.Class == ClassMQTTCleartext || f.Class == ClassCleartextOther {
			out = append(out, f)
		}
	}
	return out
}

// AnalyzeFile analyses the pcap or pcapng file at path (see Analyze).
func AnalyzeFile(ctx context.Context, path string, opts AnalyzeOptions) (Analysis, error) {
	f, err := os.Open(path)
	if err != nil {
		return Analysis{}, fmt.Errorf("netprobe: analyze: %w", err)
	}
	defer f.Close()
	a, err := Analyze(ctx, f, opts)
	if err != nil {
		return a, fmt.Errorf("netprobe: analyze %s: %w", path, err)
	}
	return a, nil
}

// Analyze reads a capture (pcap or pcapng, told apart by their magic numbers), decodes
// its Ethernet, Linux cooked, loopback or raw IP frames, groups the TCP and UDP packets
// into flows, reassembles each TCP direction in sequence order (out-of-order segments
// are held back, retransmissions counted once), classifies every flow, searches every
// direction for the secrets, and extracts the credentials of cleartext MQTT CONNECTs.
//
// Memory stays bounded whatever the length of the capture: a flow direction keeps the
// secret automaton's state (no window of bytes), the few bytes that classify it (the
// whole CONNECT for MQTT, at most 64 KiB), and at most 256 KiB of out-of-order segments.
// A malformed file gives ErrNotCapture or ErrCorruptCapture, with the analysis of what
// preceded the fault. IP fragments are not reassembled (their payload is not searched).
func Analyze(ctx context.Context, r io.Reader, opts AnalyzeOptions) (Analysis, error) {
	an := &analyzer{flows: map[flowID]*flowState{}, parsers: map[gopacket.LayerType]*gopacket.DecodingLayerParser{}}
	if opts.Host != "" {
		h, err := netip.ParseAddr(opts.Host)
		if err != nil {
			return Analysis{}, fmt.Errorf("host %q: %w: %w", opts.Host, ErrBadAddress, err)
		}
		an.host = h.Unmap()
	}
	if len(opts.Secrets) > 0 {
		an.secrets = opts.Secrets
		an.set = secretscan.Compile(opts.Secrets)
	}
	src, err := newPacketSource(r)
	if err != nil {
		return Analysis{}, err
	}
	for {
		if an.res.Packets%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return an.finish(), err
			}
		}
		data, ts, link, err := src.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errTruncated) {
			an.res.Truncated = true
			break
		}
		if err != nil {
			return an.finish(), fmt.Errorf("packet %d: %w", an.res.Packets+1, err)
		}
		an.packet(data, ts, link)
	}
	return an.finish(), nil
}

// Reassembly limits.
const (
	classifyLen   = 16       // bytes that tell TLS, MQTT and the rest apart
	maxConnectLen = 64 << 10 // the most of an MQTT CONNECT kept for its credentials
	maxPending    = 256 << 10
)

type flowID struct {
	proto uint8
	a, b  netip.AddrPort // a < b
}

type seg struct {
	seq  uint32
	data []byte
}

// half is one direction of a flow.
type half struct {
	started      bool
	next         uint32 // next expected sequence number
	pending      []seg  // out-of-order segments, by sequence
	pendingBytes int
	data         int64 // payload bytes delivered
	missing      int64 // bytes skipped over gaps
	prefix       []byte
	stream       *secretscan.Stream
	fin          bool
}

type flowState struct {
	key       FlowKey
	clientIsA bool
	packets   int64
	bytes     int64
	first     time.Time
	last      time.Time
	c2s, s2c  half
	done      bool
	class     FlowClass
	hits      []Hit
	cred      *MQTTCred
}

type analyzer struct {
	host    netip.Addr
	secrets []string
	set     *secretscan.Set
	flows   map[flowID]*flowState
	order   []*flowState
	res     Analysis

	parsers map[gopacket.LayerType]*gopacket.DecodingLayerParser
	eth     layers.Ethernet
	dot1q   layers.Dot1Q
	sll     layers.LinuxSLL
	lo      layers.Loopback
	ip4     layers.IPv4
	ip6     layers.IPv6
	tcp     layers.TCP
	udp     layers.UDP
	decoded []gopacket.LayerType
}

// decode runs the decoding layer parser that fits the link type.
func (an *analyzer) decode(data []byte, link layers.LinkType) []gopacket.LayerType {
	var first gopacket.LayerType
	switch link {
	case layers.LinkTypeEthernet:
		first = layers.LayerTypeEthernet
	case layers.LinkTypeLinuxSLL:
		first = layers.LayerTypeLinuxSLL
	case layers.LinkTypeNull, layers.LinkTypeLoop:
		first = layers.LayerTypeLoopback
	case layers.LinkTypeRaw, layers.LinkTypeIPv4, layers.LinkTypeIPv6, 12, 14:
		if len(data) == 0 {
			return nil
		}
		first = layers.LayerTypeIPv4
		if data[0]>>4 == 6 {
			first = layers.LayerTypeIPv6
		}
	default:
		return nil
	}
	p := an.parsers[first]
	if p == nil {
		p = gopacket.NewDecodingLayerParser(first, &an.eth, &an.dot1q, &an.sll, &an.lo, &an.ip4, &an.ip6, &an.tcp, &an.udp)
		p.IgnoreUnsupported = true
		an.parsers[first] = p
	}
	// A layer that fails to decode ends the list; what was decoded before stays.
	_ = p.DecodeLayers(data, &an.decoded)
	return an.decoded
}

func (an *analyzer) packet(data []byte, ts time.Time, link layers.LinkType) {
	an.res.Packets++
	var src, dst netip.Addr
	var proto uint8
	for _, lt := range an.decode(data, link) {
		switch lt {
		case layers.LayerTypeIPv4:
			src, _ = netip.AddrFromSlice(an.ip4.SrcIP.To4())
			dst, _ = netip.AddrFromSlice(an.ip4.DstIP.To4())
		case layers.LayerTypeIPv6:
			src, _ = netip.AddrFromSlice(an.ip6.SrcIP.To16())
			dst, _ = netip.AddrFromSlice(an.ip6.DstIP.To16())
			src, dst = src.Unmap(), dst.Unmap()
		case layers.LayerTypeTCP:
			proto = 6
		case layers.LayerTypeUDP:
			proto = 17
		}
	}
	if proto == 0 || !src.IsValid() || !dst.IsValid() {
		return
	}
	if an.host.IsValid() && src != an.host && dst != an.host {
		return
	}
	var sp, dp uint16
	if proto == 6 {
		sp, dp = uint16(an.tcp.SrcPort), uint16(an.tcp.DstPort)
	} else {
		sp, dp = uint16(an.udp.SrcPort), uint16(an.udp.DstPort)
	}
	s, d := netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	id := flowID{proto: proto, a: s, b: d}
	srcIsA := true
	if s.Compare(d) > 0 {
		id.a, id.b, srcIsA = d, s, false
	}

	fs := an.flows[id]
	newConn := proto == 6 && an.tcp.SYN && !an.tcp.ACK
	if fs == nil || (fs.done && newConn) {
		fs = an.newFlow(id, proto, s, d, srcIsA, ts)
	}
	fs.packets++
	fs.bytes += int64(len(data))
	if fs.first.IsZero() || ts.Before(fs.first) {
		fs.first = ts
	}
	if ts.After(fs.last) {
		fs.last = ts
	}
	if fs.done {
		return // a late packet of a finished connection: counted, not reassembled
	}
	h := &fs.s2c
	fromClient := srcIsA == fs.clientIsA
	if fromClient {
		h = &fs.c2s
	}
	if proto == 17 {
		an.datagram(h, an.udp.Payload)
		return
	}
	an.segment(h, fromClient, &an.tcp)
	switch {
	case an.tcp.RST:
		an.finalize(fs)
	case fs.c2s.fin && fs.s2c.fin && len(fs.c2s.pending) == 0 && len(fs.s2c.pending) == 0:
		an.finalize(fs)
	}
}

func (an *analyzer) newFlow(id flowID, proto uint8, s, d netip.AddrPort, srcIsA bool, ts time.Time) *flowState {
	// Who is the client: the sender of a SYN, the receiver of a SYN-ACK; else, when
	// only one side uses a well-known port (below 1024), the other side; else for TCP
	// the side with the higher port, for UDP the sender of the first datagram.
	clientIsSrc := true
	wellKnown := func(p uint16) bool { return p < 1024 }
	switch {
	case proto == 6 && an.tcp.SYN && !an.tcp.ACK:
	case proto == 6 && an.tcp.SYN && an.tcp.ACK:
		clientIsSrc = false
	case wellKnown(s.Port()) != wellKnown(d.Port()):
		clientIsSrc = wellKnown(d.Port())
	case proto == 6:
		clientIsSrc = s.Port() > d.Port()
	}
	fs := &flowState{clientIsA: clientIsSrc == srcIsA, first: ts, last: ts}
	fs.key = FlowKey{Proto: "tcp", Client: s, Server: d}
	if proto == 17 {
		fs.key.Proto = "udp"
	}
	if !clientIsSrc {
		fs.key.Client, fs.key.Server = d, s
	}
	an.flows[id] = fs
	an.order = append(an.order, fs)
	return fs
}

func (an *analyzer) datagram(h *half, payload []byte) {
	if len(payload) == 0 {
		return
	}
	if h.data == 0 {
		h.prefix = append(h.prefix, payload[:min(len(payload), classifyLen)]...)
	}
	h.data += int64(len(payload))
	if an.set != nil {
		if h.stream == nil {
			h.stream = an.set.NewStream()
		}
		h.stream.Write(payload)
		h.stream.Skip(0) // no match across datagrams
	}
}

func (an *analyzer) segment(h *half, fromClient bool, tcp *layers.TCP) {
	seq := tcp.Seq
	if tcp.SYN {
		if h.started {
			return // a retransmitted SYN
		}
		h.started, h.next = true, seq+1
		seq++
	}
	if tcp.FIN {
		h.fin = true
	}
	payload := tcp.Payload
	if len(payload) == 0 {
		return
	}
	if !h.started {
		h.started, h.next = true, seq
	}
	an.insert(h, fromClient, seq, payload)
}

func (an *analyzer) insert(h *half, fromClient bool, seq uint32, payload []byte) {
	diff := int32(seq - h.next)
	if diff <= 0 {
		skip := int(-int64(diff))
		if skip >= len(payload) {
			return // all of it seen before: a retransmission
		}
		an.deliver(h, fromClient, payload[skip:])
		h.next = seq + uint32(len(payload))
		an.drain(h, fromClient)
		return
	}
	// Ahead of what is expected: hold it back until the gap is filled.
	if h.pendingBytes+len(payload) > maxPending && len(h.pending) > 0 {
		an.skipGap(h, fromClient) // too much held back: give up on the oldest gap
		an.insert(h, fromClient, seq, payload)
		return
	}
	i, _ := slices.BinarySearchFunc(h.pending, seq, func(s seg, q uint32) int {
		return cmp.Compare(int32(s.seq-h.next), int32(q-h.next))
	})
	h.pending = slices.Insert(h.pending, i, seg{seq: seq, data: slices.Clone(payload)})
	h.pendingBytes += len(payload)
}

// drain delivers the held-back segments that have become contiguous.
func (an *analyzer) drain(h *half, fromClient bool) {
	for len(h.pending) > 0 {
		s := h.pending[0]
		diff := int32(s.seq - h.next)
		if diff > 0 {
			return
		}
		h.pending = h.pending[1:]
		h.pendingBytes -= len(s.data)
		if skip := int(-int64(diff)); skip < len(s.data) {
			an.deliver(h, fromClient, s.data[skip:])
			h.next = s.seq + uint32(len(s.data))
		}
	}
	if len(h.pending) == 0 {
		h.pending = nil
	}
}

// skipGap jumps over the gap before the first held-back segment (bytes the capture
// missed).
func (an *analyzer) skipGap(h *half, fromClient bool) {
	if len(h.pending) == 0 {
		return
	}
	gap := int64(h.pending[0].seq - h.next)
	h.missing += gap
	if h.stream != nil {
		h.stream.Skip(gap)
	}
	h.next = h.pending[0].seq
	an.drain(h, fromClient)
}

func (an *analyzer) deliver(h *half, fromClient bool, data []byte) {
	h.data += int64(len(data))
	rest := data
	for len(rest) > 0 {
		room := prefixWant(h.prefix, fromClient) - len(h.prefix)
		if room <= 0 {
			break
		}
		take := min(room, len(rest))
		h.prefix = append(h.prefix, rest[:take]...)
		rest = rest[take:]
	}
	if an.set != nil {
		if h.stream == nil {
			h.stream = an.set.NewStream()
			h.stream.Skip(h.missing)
		}
		h.stream.Write(data)
	}
}

// prefixWant is how much of the start of a stream to keep: enough to classify it, and
// for a client that starts with an MQTT CONNECT, the whole CONNECT.
func prefixWant(prefix []byte, fromClient bool) int {
	if fromClient && len(prefix) >= 2 && prefix[0] == 0x10 {
		if n, ok := mqttConnectLen(prefix); ok {
			return max(classifyLen, min(n, maxConnectLen))
		}
	}
	return classifyLen
}

func (an *analyzer) finalize(fs *flowState) {
	if fs.done {
		return
	}
	for _, h := range []*half{&fs.c2s, &fs.s2c} {
		for len(h.pending) > 0 {
			fromClient := h == &fs.c2s
			an.skipGap(h, fromClient)
		}
	}
	fs.class = classify(fs)
	if fs.class == ClassMQTTCleartext {
		if c, ok := parseMQTTConnect(fs.c2s.prefix); ok && (c.hasUsername || c.hasPassword) {
			fs.cred = &MQTTCred{
				Src: fs.key.Client.Addr(), Flow: fs.key, ClientID: c.clientID,
				Username: c.username, Password: c.password,
				HasUsername: c.hasUsername, HasPassword: c.hasPassword,
			}
		}
	}
	for _, d := range []struct {
		h   *half
		dir Direction
	}{{&fs.c2s, ClientToServer}, {&fs.s2c, ServerToClient}} {
		if d.h.stream == nil {
			continue
		}
		type k struct {
			secret int
			enc    string
		}
		at := map[k]int{}
		for _, sh := range d.h.stream.Hits() {
			key := k{sh.Secret, sh.Encoding}
			if i, ok := at[key]; ok {
				fs.hits[i].Count++
				continue
			}
			at[key] = len(fs.hits)
			fs.hits = append(fs.hits, Hit{
				Secret: secretscan.Redact(an.secrets[sh.Secret]), SecretIndex: sh.Secret, Encoding: sh.Encoding,
				Flow: fs.key, Direction: d.dir, Offset: sh.Offset, Count: 1,
			})
		}
	}
	// Keep the counts, drop the buffers.
	for _, h := range []*half{&fs.c2s, &fs.s2c} {
		h.prefix, h.stream, h.pending = nil, nil, nil
	}
	fs.done = true
}

func classify(fs *flowState) FlowClass {
	udp := fs.key.Proto == "udp"
	switch {
	case fs.c2s.data > 0:
		return classifyStart(fs.c2s.prefix, true, udp)
	case fs.s2c.data > 0:
		return classifyStart(fs.s2c.prefix, false, udp)
	}
	return ClassEmpty
}

func classifyStart(p []byte, fromClient, udp bool) FlowClass {
	// A TLS record: content type 20-24, version 3.x. (Checking the type range rather than
	// only a handshake (22) keeps a connection whose capture started mid-way as TLS.)
	if len(p) >= 3 && p[0] >= 20 && p[0] <= 24 {
		if !udp && p[1] == 3 && p[2] <= 4 {
			return ClassTLS
		}
		if udp && p[1] == 0xfe {
			return ClassDTLS
		}
	}
	if !udp && fromClient && looksLikeMQTTConnect(p) {
		return ClassMQTTCleartext
	}
	return ClassCleartextOther
}

func (an *analyzer) finish() Analysis {
	res := an.res
	for _, fs := range an.order {
		an.finalize(fs)
		res.Flows = append(res.Flows, Flow{
			Key: fs.key, Class: fs.class, Packets: fs.packets, Bytes: fs.bytes,
			ClientBytes: fs.c2s.data, ServerBytes: fs.s2c.data,
			Missing: fs.c2s.missing + fs.s2c.missing, First: fs.first, Last: fs.last,
		})
		res.Hits = append(res.Hits, fs.hits...)
		if fs.cred != nil {
			res.Creds = append(res.Creds, *fs.cred)
		}
	}
	return res
}
