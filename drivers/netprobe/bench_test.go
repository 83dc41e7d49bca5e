package netprobe_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/google/gopacket/layers"
	"github.com/google/gopacket/pcapgo"

	"github.com/hilt-project/hilt/drivers/netprobe"
)

// syntheticCapture writes a pcap of n packets to w: nflows TCP connections from
// 10.1.x.y to 10.0.0.1:1883 opened with a SYN, then data segments of payloadLen bytes
// sent round-robin. Frames are serialised once per flow and their sequence numbers
// patched, so that millions of packets cost little to make. progress, if not nil, is
// called every 10000 packets.
func syntheticCapture(t testing.TB, w io.Writer, n, nflows, payloadLen int, progress func(i int)) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	pw := pcapgo.NewWriter(bw)
	if err := pw.WriteFileHeader(262144, layers.LinkTypeEthernet); err != nil {
		return err
	}
	payload := bytes.Repeat([]byte("telemetry {\"t\":21.5} "), payloadLen/21+1)[:payloadLen]
	syn := make([][]byte, nflows)
	data := make([][]byte, nflows)
	seqs := make([]uint32, nflows)
	for f := range nflows {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(f >> 8), byte(f)}), uint16(30000+f%30000))
		dst := netip.MustParseAddrPort("10.0.0.1:1883")
		syn[f] = tcpSeg{src: src, dst: dst, seq: 0, syn: true}.serialize(t, false)
		data[f] = tcpSeg{src: src, dst: dst, seq: 1, ack: 1, ackf: true, payload: payload}.serialize(t, false)
		seqs[f] = 1
	}
	hdr := make([]byte, 16)
	ts := time.Unix(1767225600, 0)
	write := func(frame []byte) error {
		ts = ts.Add(time.Microsecond)
		binary.LittleEndian.PutUint32(hdr[0:4], uint32(ts.Unix()))
		binary.LittleEndian.PutUint32(hdr[4:8], uint32(ts.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(hdr[8:12], uint32(len(frame)))
		binary.LittleEndian.PutUint32(hdr[12:16], uint32(len(frame)))
		if _, err := bw.Write(hdr); err != nil {
			return err
		}
		_, err := bw.Write(frame)
		return err
	}
	for i := range n {
		if progress != nil && i%10000 == 0 {
			progress(i)
		}
		f := i % nflows
		if i < nflows {
			if err := write(syn[f]); err != nil {
				return err
			}
			continue
		}
		binary.BigEndian.PutUint32(data[f][14+20+4:], seqs[f])
		seqs[f] += uint32(payloadLen)
		if err := write(data[f]); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func BenchmarkAnalyze(b *testing.B) {
	const packets = 200000
	var capture bytes.Buffer
	if err := syntheticCapture(b, &capture, packets, 1000, 200, nil); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		opts netprobe.AnalyzeOptions
	}{
		{"decode-only", netprobe.AnalyzeOptions{Host: "192.0.2.99"}}, // read and decode; no flow matches
		{"flows", netprobe.AnalyzeOptions{}},
		{"flows+2-secrets", netprobe.AnalyzeOptions{Secrets: []string{secret0, secret1}}},
		{"flows+20-secrets", netprobe.AnalyzeOptions{Secrets: manySecrets(20)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(capture.Len()))
			for b.Loop() {
				a, err := netprobe.Analyze(context.Background(), bytes.NewReader(capture.Bytes()), bc.opts)
				if err != nil || a.Packets != packets {
					b.Fatalf("%d packets, %v", a.Packets, err)
				}
			}
			b.ReportMetric(float64(packets)*float64(b.N)/b.Elapsed().Seconds(), "packets/s")
		})
	}
}

func manySecrets(n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("planted-secret-%02d!", i)
	}
	return s
}

// TestAnalyzeBoundedMemory streams a capture of a million packets (1 GB of payload in
// 500 long-lived connections) through Analyze and checks that the heap stays small: a
// flow keeps automaton state and a few bytes, never its stream.
func TestAnalyzeBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("a million packets: skipped in -short mode")
	}
	const (
		flows   = 500
		payload = 1000
		maxHeap = 160 << 20
	)
	packets := 1000000
	if raceEnabled {
		packets = 100000
	}
	pr, pw := io.Pipe()
	var peak uint64
	go func() {
		var ms runtime.MemStats
		err := syntheticCapture(t, pw, packets, flows, payload, func(int) {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		})
		pw.CloseWithError(err)
	}()
	start := time.Now()
	a, err := netprobe.Analyze(testCtx(t, 5*time.Minute), pr, netprobe.AnalyzeOptions{Secrets: []string{secret0, secret1}})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if a.Packets != int64(packets) || len(a.Flows) != flows {
		t.Fatalf("got %d packets in %d flows, want %d in %d", a.Packets, len(a.Flows), packets, flows)
	}
	var streamed int64
	for _, f := range a.Flows {
		streamed += f.ClientBytes
	}
	t.Logf("%d packets, %d MB of payload reassembled in %v (%.0f packets/s, generator included); peak heap in use %d MB",
		a.Packets, streamed>>20, elapsed, float64(packets)/elapsed.Seconds(), peak>>20)
	if peak > maxHeap {
		t.Errorf("peak heap in use %d MB, want under %d MB", peak>>20, maxHeap>>20)
	}
}
