package netprobe_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/gopacket/layers"

	"github.com/hilt-project/hilt/drivers/netprobe"
)

const (
	secret0 = "hunter2-Secret!"
	secret1 = "wifi-PSK-0451"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// scenario is a capture of a device (10.0.0.2) and its expected analysis.
type scenario struct {
	frames  []frame
	passAt  int64 // offset of the MQTT password in the CONNECT
	connect []byte
}

func buildScenario(t testing.TB) scenario {
	var sc scenario
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

	// 1. TLS to the management port.
	c1 := newConn(t, "10.0.0.2:40001", "10.0.0.1:8443", at(0))
	c1.handshake()
	c1.add(c1.client([]byte{0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}))
	c1.add(c1.server([]byte{0x16, 0x03, 0x03, 0x00, 0x02, 9, 9}))
	c1.close()

	// 2. Cleartext MQTT: the CONNECT's password is split across two segments that
	// arrive out of order, and the first one is retransmitted.
	c2 := newConn(t, "10.0.0.2:40002", "10.0.0.9:1883", at(1))
	c2.handshake()
	connect, passAt := mqttConnect("rd-0001", "device", secret0)
	cut := passAt + 5
	first, second := c2.client(connect[:cut]), c2.client(connect[cut:])
	c2.add(second)
	c2.add(first)
	c2.add(first)
	c2.add(c2.server([]byte{0x20, 2, 0, 0}))
	c2.close()
	sc.passAt, sc.connect = int64(passAt), connect

	// 3. Other cleartext: a secret base64-encoded two bytes into a larger value.
	c3 := newConn(t, "10.0.0.2:40003", "10.0.0.1:80", at(2))
	c3.handshake()
	c3.add(c3.client([]byte("GET /cfg?blob=" + base64.StdEncoding.EncodeToString([]byte("k="+secret1+";")) + " HTTP/1.0\r\n\r\n")))
	c3.add(c3.server([]byte("HTTP/1.0 204 No Content\r\n\r\n")))
	c3.close()

	// 4. A refused connection.
	c4 := newConn(t, "10.0.0.2:40004", "10.0.0.1:23", at(3))
	c4.add(tcpSeg{src: c4.c, dst: c4.s, seq: 7, syn: true})
	c4.add(tcpSeg{src: c4.s, dst: c4.c, ack: 8, rst: true, ackf: true})

	// 5. UDP with the secret in hex.
	udp := frame{at(4), udpFrame(t, netip.MustParseAddrPort("10.0.0.2:5000"), netip.MustParseAddrPort("10.0.0.1:9999"),
		[]byte("cfg "+hex.EncodeToString([]byte(secret0))))}

	// 6. A segment the capture missed, then a secret.
	c6 := newConn(t, "10.0.0.2:40006", "10.0.0.1:8080", at(5))
	c6.handshake()
	c6.add(c6.client([]byte("AAAA")))
	_ = c6.client([]byte("BBBB")) // never captured
	c6.add(c6.client([]byte(secret1)))
	c6.close()

	// 7. Other hosts, and IPv6: only without the host filter.
	c7 := newConn(t, "10.0.0.7:40007", "10.0.0.8:1883", at(6))
	c7.handshake()
	other, _ := mqttConnect("x", "other", secret0)
	c7.add(c7.client(other))
	c8 := newConn(t, "[fd00::2]:40008", "[fd00::1]:2323", at(7))
	c8.handshake()
	c8.add(c8.client([]byte("login admin " + secret1 + "\n")))
	c8.close()

	for _, c := range []*conn{c1, c2, c3, c4} {
		sc.frames = append(sc.frames, c.frames...)
	}
	sc.frames = append(sc.frames, udp)
	for _, c := range []*conn{c6, c7, c8} {
		sc.frames = append(sc.frames, c.frames...)
	}
	return sc
}

func key(proto, c, s string) netprobe.FlowKey {
	return netprobe.FlowKey{Proto: proto, Client: netip.MustParseAddrPort(c), Server: netip.MustParseAddrPort(s)}
}

var (
	k1 = key("tcp", "10.0.0.2:40001", "10.0.0.1:8443")
	k2 = key("tcp", "10.0.0.2:40002", "10.0.0.9:1883")
	k3 = key("tcp", "10.0.0.2:40003", "10.0.0.1:80")
	k4 = key("tcp", "10.0.0.2:40004", "10.0.0.1:23")
	k5 = key("udp", "10.0.0.2:5000", "10.0.0.1:9999")
	k6 = key("tcp", "10.0.0.2:40006", "10.0.0.1:8080")
	k7 = key("tcp", "10.0.0.7:40007", "10.0.0.8:1883")
	k8 = key("tcp", "[fd00::2]:40008", "[fd00::1]:2323")
)

func TestAnalyze(t *testing.T) {
	sc := buildScenario(t)
	ctx := testCtx(t, 30*time.Second)
	captures := []struct {
		name string
		data []byte
	}{
		{"pcapng ethernet", writePcapng(t, sc.frames, layers.LinkTypeEthernet)},
		{"pcap ethernet", writePcap(t, sc.frames, layers.LinkTypeEthernet, false)},
		{"pcap nanoseconds", writePcap(t, sc.frames, layers.LinkTypeEthernet, true)},
		{"pcapng linux cooked", writePcapng(t, relink(sc.frames, layers.LinkTypeLinuxSLL), layers.LinkTypeLinuxSLL)},
		{"pcap loopback", writePcap(t, relink(sc.frames, layers.LinkTypeNull), layers.LinkTypeNull, false)},
		{"pcap raw IP", writePcap(t, relink(sc.frames, layers.LinkTypeRaw), layers.LinkTypeRaw, false)},
	}
	type flowWant struct {
		key          netprobe.FlowKey
		class        netprobe.FlowClass
		packets      int64
		client, serv int64
		missing      int64
	}
	wantFlows := []flowWant{
		{k1, netprobe.ClassTLS, 8, 10, 7, 0},
		{k2, netprobe.ClassMQTTCleartext, 10, int64(len(sc.connect)), 4, 0},
		{k3, netprobe.ClassCleartextOther, 8, 51, 27, 0},
		{k4, netprobe.ClassEmpty, 2, 0, 0, 0},
		{k5, netprobe.ClassCleartextOther, 1, 34, 0, 0},
		{k6, netprobe.ClassCleartextOther, 8, 4 + int64(len(secret1)), 0, 4},
	}
	wantHits := []netprobe.Hit{
		{Secret: "hu…", SecretIndex: 0, Encoding: "raw", Flow: k2, Direction: netprobe.ClientToServer, Offset: sc.passAt, Count: 1},
		{Secret: "wi…", SecretIndex: 1, Encoding: "base64-shift2", Flow: k3, Direction: netprobe.ClientToServer, Offset: 14 + 3, Count: 1},
		{Secret: "hu…", SecretIndex: 0, Encoding: "hex", Flow: k5, Direction: netprobe.ClientToServer, Offset: 4, Count: 1},
		{Secret: "wi…", SecretIndex: 1, Encoding: "raw", Flow: k6, Direction: netprobe.ClientToServer, Offset: 8, Count: 1},
	}
	wantCred := netprobe.MQTTCred{Src: netip.MustParseAddr("10.0.0.2"), Flow: k2, ClientID: "rd-0001",
		Username: "device", Password: secret0, HasUsername: true, HasPassword: true}

	for _, c := range captures {
		t.Run(c.name, func(t *testing.T) {
			a, err := netprobe.Analyze(ctx, bytes.NewReader(c.data), netprobe.AnalyzeOptions{Host: "10.0.0.2", Secrets: []string{secret0, secret1}})
			if err != nil {
				t.Fatal(err)
			}
			if a.Packets != int64(len(sc.frames)) || a.Truncated {
				t.Errorf("packets %d (truncated %v), want %d", a.Packets, a.Truncated, len(sc.frames))
			}
			if len(a.Flows) != len(wantFlows) {
				t.Fatalf("got %d flows %v, want %d", len(a.Flows), a.Flows, len(wantFlows))
			}
			for i, w := range wantFlows {
				f := a.Flows[i]
				if f.Key != w.key || f.Class != w.class || f.Packets != w.packets || f.ClientBytes != w.client || f.ServerBytes != w.serv || f.Missing != w.missing {
					t.Errorf("flow %d: got %s %s packets %d bytes %d/%d missing %d; want %s %s %d %d/%d %d",
						i, f.Key, f.Class, f.Packets, f.ClientBytes, f.ServerBytes, f.Missing,
						w.key, w.class, w.packets, w.client, w.serv, w.missing)
				}
			}
			if f := a.Flows[1]; !f.First.Equal(t0.Add(time.Second + time.Millisecond)) {
				t.Errorf("flow 2 starts at %v, want %v", f.First, t0.Add(time.Second+time.Millisecond))
			}
			if !slices.Equal(a.Hits, wantHits) {
				t.Errorf("hits:\n got %+v\nwant %+v", a.Hits, wantHits)
			}
			if len(a.Creds) != 1 || a.Creds[0] != wantCred {
				t.Errorf("creds: got %+v, want %+v", a.Creds, wantCred)
			}
			if got := a.Cleartext(); len(got) != 4 {
				t.Errorf("Cleartext: got %d flows, want 4", len(got))
			}
		})
	}

	t.Run("no host filter", func(t *testing.T) {
		a, err := netprobe.Analyze(ctx, bytes.NewReader(captures[0].data), netprobe.AnalyzeOptions{Secrets: []string{secret0, secret1}})
		if err != nil {
			t.Fatal(err)
		}
		var keys []netprobe.FlowKey
		for _, f := range a.Flows {
			keys = append(keys, f.Key)
		}
		if !slices.Equal(keys, []netprobe.FlowKey{k1, k2, k3, k4, k5, k6, k7, k8}) {
			t.Errorf("flows: got %v", keys)
		}
		if len(a.Creds) != 2 || a.Creds[1].Username != "other" {
			t.Errorf("creds: got %+v", a.Creds)
		}
		if last := a.Hits[len(a.Hits)-1]; last.Flow != k8 || last.Offset != 12 {
			t.Errorf("IPv6 hit: got %+v", last)
		}
	})

	t.Run("no secrets", func(t *testing.T) {
		a, err := netprobe.Analyze(ctx, bytes.NewReader(captures[0].data), netprobe.AnalyzeOptions{Host: "10.0.0.2"})
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Hits) != 0 || len(a.Creds) != 1 || len(a.Flows) != 6 {
			t.Errorf("got %d hits, %d creds, %d flows", len(a.Hits), len(a.Creds), len(a.Flows))
		}
	})
}

func TestAnalyzeFile(t *testing.T) {
	sc := buildScenario(t)
	dir := t.TempDir()
	full := writePcapng(t, sc.frames, layers.LinkTypeEthernet)
	ctx := testCtx(t, 30*time.Second)

	p := filepath.Join(dir, "full.pcapng")
	if err := os.WriteFile(p, full, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := netprobe.AnalyzeFile(ctx, p, netprobe.AnalyzeOptions{Host: "10.0.0.2", Secrets: []string{secret0}})
	if err != nil || len(a.Flows) != 6 {
		t.Fatalf("got %d flows, %v", len(a.Flows), err)
	}

	// A capture cut short by a crash: what precedes the cut is analysed.
	cutp := filepath.Join(dir, "cut.pcapng")
	if err := os.WriteFile(cutp, full[:len(full)-7], 0o600); err != nil {
		t.Fatal(err)
	}
	a, err = netprobe.AnalyzeFile(ctx, cutp, netprobe.AnalyzeOptions{Host: "10.0.0.2"})
	if err != nil || !a.Truncated || a.Packets != int64(len(sc.frames)-1) {
		t.Errorf("cut file: truncated %v, packets %d, err %v; want truncated, %d packets", a.Truncated, a.Packets, err, len(sc.frames)-1)
	}

	pcapHdr := writePcap(t, nil, layers.LinkTypeEthernet, false)
	hugeRecord := append(slices.Clone(pcapHdr), make([]byte, 16)...)
	hugeRecord[len(pcapHdr)+8] = 0xff // captured length 255 + 1 GiB
	hugeRecord[len(pcapHdr)+11] = 0x40
	hugeBlock := slices.Clone(full[:binary.LittleEndian.Uint32(full[4:8])]) // the section header block
	hugeBlock = append(hugeBlock, 6, 0, 0, 0, 0xf0, 0xff, 0xff, 0x7f)
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, netprobe.ErrNotCapture},
		{"text", []byte("this is not a capture at all"), netprobe.ErrNotCapture},
		{"huge pcap record", hugeRecord, netprobe.ErrCorruptCapture},
		{"huge pcapng block", hugeBlock, netprobe.ErrCorruptCapture},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			if err := os.WriteFile(p, tt.data, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := netprobe.AnalyzeFile(ctx, p, netprobe.AnalyzeOptions{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !bytes.Contains([]byte(err.Error()), []byte(p)) {
				t.Errorf("%q does not name the file", err)
			}
		})
	}
	if _, err := netprobe.AnalyzeFile(ctx, p, netprobe.AnalyzeOptions{Host: "not-an-ip"}); !errors.Is(err, netprobe.ErrBadAddress) {
		t.Errorf("bad host: got %v", err)
	}
	if _, err := netprobe.AnalyzeFile(ctx, filepath.Join(dir, "missing"), netprobe.AnalyzeOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
}

func TestAnalyzeCancelled(t *testing.T) {
	sc := buildScenario(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := netprobe.Analyze(ctx, bytes.NewReader(writePcapng(t, sc.frames, layers.LinkTypeEthernet)), netprobe.AnalyzeOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
