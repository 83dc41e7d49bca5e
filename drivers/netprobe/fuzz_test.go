package netprobe_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/gopacket/layers"

	"github.com/hilt-project/hilt/drivers/netprobe"
)

// FuzzAnalyze feeds arbitrary bytes to the capture reader and the analysis: they must
// never panic, never hang, and keep their invariants. The seed corpus in
// testdata/fuzz/FuzzAnalyze holds small real captures (regenerate it with
// HILT_WRITE_FUZZ_SEEDS=1 go test -run TestWriteFuzzSeeds ./drivers/netprobe/).
func FuzzAnalyze(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := netprobe.Analyze(context.Background(), bytes.NewReader(data), netprobe.AnalyzeOptions{Secrets: []string{secret0, secret1}})
		if err != nil && len(a.Flows) > 0 && a.Packets == 0 {
			t.Fatalf("flows without packets")
		}
		var inFlows int64
		for _, fl := range a.Flows {
			inFlows += fl.Packets
			if fl.Packets <= 0 {
				t.Fatalf("flow %s with %d packets", fl.Key, fl.Packets)
			}
		}
		if inFlows > a.Packets {
			t.Fatalf("flows hold %d packets, the file %d", inFlows, a.Packets)
		}
		for _, h := range a.Hits {
			if h.Offset < 0 || h.Count < 1 || h.SecretIndex < 0 || h.SecretIndex > 1 {
				t.Fatalf("bad hit %+v", h)
			}
		}
	})
}

// fuzzSeeds returns small captures that reach every part of the analysis.
func fuzzSeeds(t testing.TB) map[string][]byte {
	sc := buildScenario(t)
	short := sc.frames[:12]
	ng := writePcapng(t, short, layers.LinkTypeEthernet)
	return map[string][]byte{
		"pcapng-ethernet": ng,
		"pcap-ethernet":   writePcap(t, short, layers.LinkTypeEthernet, false),
		"pcap-nanos-raw":  writePcap(t, relink(short, layers.LinkTypeRaw), layers.LinkTypeRaw, true),
		"pcapng-sll":      writePcapng(t, relink(sc.frames[12:20], layers.LinkTypeLinuxSLL), layers.LinkTypeLinuxSLL),
		"pcap-null-ipv6":  writePcap(t, relink(sc.frames[len(sc.frames)-6:], layers.LinkTypeNull), layers.LinkTypeNull, false),
		"pcapng-cut":      ng[:len(ng)-9],
	}
}

// TestWriteFuzzSeeds writes the seed corpus files (only when asked to).
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("HILT_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set HILT_WRITE_FUZZ_SEEDS=1 to regenerate testdata/fuzz/FuzzAnalyze")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzAnalyze")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
