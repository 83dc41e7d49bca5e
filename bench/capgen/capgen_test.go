package capgen_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"slices"
	"testing"

	"github.com/hilt-project/hilt/bench/capgen"
	"github.com/hilt-project/hilt/drivers/netprobe"
)

func generate(t *testing.T, o capgen.Options) ([]byte, capgen.Summary) {
	t.Helper()
	var b bytes.Buffer
	s, err := capgen.Write(&b, o)
	if err != nil {
		t.Fatalf("Write(%+v): %v", o, err)
	}
	return b.Bytes(), s
}

func TestDeterministic(t *testing.T) {
	o := capgen.Options{Packets: 20000, Seed: 7}
	a, sa := generate(t, o)
	b, sb := generate(t, o)
	if sha256.Sum256(a) != sha256.Sum256(b) {
		t.Fatalf("two captures with options %+v differ", o)
	}
	if sa.Packets != sb.Packets || len(sa.Creds) != len(sb.Creds) {
		t.Fatalf("summaries differ: %d/%d packets, %d/%d creds", sa.Packets, sb.Packets, len(sa.Creds), len(sb.Creds))
	}
	c, _ := generate(t, capgen.Options{Packets: 20000, Seed: 8})
	if bytes.Equal(a, c) {
		t.Fatal("seeds 7 and 8 gave the same capture")
	}
}

// TestAnalyzerAgrees checks the capture against netprobe's analyser: every packet read,
// every flow classified as its kind, every password found, the split one included.
func TestAnalyzerAgrees(t *testing.T) {
	data, s := generate(t, capgen.Options{Packets: 30000, Seed: 3, Concurrent: 16})
	if s.Packets < 30000 {
		t.Fatalf("got %d packets, want at least 30000", s.Packets)
	}
	for _, k := range []capgen.Kind{capgen.KindTLS, capgen.KindMQTT, capgen.KindHTTP, capgen.KindDNS} {
		if s.Flows[k] == 0 {
			t.Errorf("no %s flow in %v", k, s.Flows)
		}
	}
	if !s.Split.Src.IsValid() || s.Split.Password == "" {
		t.Fatalf("no split CONNECT planned: %+v", s.Split)
	}
	a, err := netprobe.Analyze(context.Background(), bytes.NewReader(data), netprobe.AnalyzeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Packets != s.Packets || a.Truncated {
		t.Errorf("analyser read %d packets (truncated %v), want %d", a.Packets, a.Truncated, s.Packets)
	}
	want := map[netprobe.FlowClass]int{
		netprobe.ClassTLS:            s.Flows[capgen.KindTLS],
		netprobe.ClassMQTTCleartext:  s.Flows[capgen.KindMQTT],
		netprobe.ClassCleartextOther: s.Flows[capgen.KindHTTP] + s.Flows[capgen.KindDNS],
	}
	got := map[netprobe.FlowClass]int{}
	var missing int64
	for _, f := range a.Flows {
		got[f.Class]++
		missing += f.Missing
	}
	for c, n := range want {
		if got[c] != n {
			t.Errorf("class %s: got %d flows, want %d (all: %v)", c, got[c], n, got)
		}
	}
	if missing != 0 {
		t.Errorf("analyser reports %d bytes missing, want 0", missing)
	}
	var creds []capgen.Cred
	noPass := 0
	for _, c := range a.Creds {
		if !c.HasPassword {
			if c.HasUsername {
				noPass++
			}
			continue
		}
		creds = append(creds, capgen.Cred{Src: c.Src, Username: c.Username, Password: c.Password})
	}
	slices.SortFunc(creds, capgen.Cred.Compare)
	if !slices.Equal(creds, s.Creds) {
		t.Errorf("analyser found %d passwords, the capture has %d", len(creds), len(s.Creds))
	}
	if !slices.Contains(creds, s.Split) {
		t.Errorf("analyser missed the split CONNECT's password: %v", s.Split)
	}
	if noPass != s.NoPassword {
		t.Errorf("analyser found %d CONNECTs with a user name and no password, want %d", noPass, s.NoPassword)
	}
}
