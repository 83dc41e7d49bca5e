package suites

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hilt-project/hilt/harness/image"
	"github.com/hilt-project/hilt/wire"
)

// Unit tests of the pure helpers of the SU, CSA, RT and IN checks.

func TestInventoryDiff(t *testing.T) {
	a, b := sbomComponent{"a", "1.0"}, sbomComponent{"b", "2.0"}
	tests := []struct {
		name               string
		declared, reported []sbomComponent
		want               []string
	}{
		{"equal", []sbomComponent{a, b}, []sbomComponent{b, a}, nil},
		{"extra", []sbomComponent{a}, []sbomComponent{a, b}, []string{"b 2.0 is reported by the device but not declared in the SBOM"}},
		{"missing", []sbomComponent{a, b}, []sbomComponent{a}, []string{"b 2.0 is declared in the SBOM but not reported by the device"}},
		{"version", []sbomComponent{a}, []sbomComponent{{"a", "1.1"}}, []string{"a: declared version 1.0, the device reports 1.1"}},
		{"duplicate", []sbomComponent{a}, []sbomComponent{a, a}, []string{"a 1.0 is reported by the device but not declared in the SBOM"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := inventoryDiff(tc.declared, tc.reported); !slices.Equal(got, tc.want) {
				t.Errorf("inventoryDiff() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSupportEnds(t *testing.T) {
	day := func(s string) time.Time {
		d, err := time.Parse(dayLayout, s)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	tests := []struct {
		built  string
		months int
		ok     []string
		notOK  []string
	}{
		{"2026-01-15", 60, []string{"2031-01-15"}, []string{"2032-01-15", "2031-01-14"}},
		{"2026-01-31", 1, []string{"2026-03-03", "2026-02-28"}, []string{"2026-03-01"}},
		{"2024-02-29", 12, []string{"2025-03-01", "2025-02-28"}, nil},
	}
	for _, tc := range tests {
		ends := supportEnds(day(tc.built), tc.months)
		for _, s := range tc.ok {
			if !containsDay(ends, day(s)) {
				t.Errorf("%s + %d months: %s not accepted (candidates %v)", tc.built, tc.months, s, ends)
			}
		}
		for _, s := range tc.notOK {
			if containsDay(ends, day(s)) {
				t.Errorf("%s + %d months: %s accepted", tc.built, tc.months, s)
			}
		}
	}
}

func TestCheckContact(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"mailto:security@refdev.example", true},
		{"mailto:psirt@example.com?subject=report", true},
		{"https://example.com/security", true},
		{"", false},
		{"mailto:", false},
		{"mailto:nobody", false},
		{"mailto:a@localhost", false},
		{"http://example.com/security", false},
		{"https:///security", false},
		{"security@example.com", false},
	}
	for _, tc := range tests {
		if err := checkContact(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkContact(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}

func TestEventWithin(t *testing.T) {
	from := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	to := from.Add(time.Second)
	tests := []struct {
		time string
		ok   bool
	}{
		{"2026-01-01T12:00:00.5Z", true},
		{"2026-01-01T11:59:58Z", true}, // within the skew
		{"2026-01-01T13:00:00+01:00", true},
		{"2026-01-01T11:59:00Z", false},
		{"2026-01-01 12:00:00", false},
		{"", false},
	}
	for _, tc := range tests {
		if ok, why := eventWithin(wire.Event{Time: tc.time}, from, to, 5*time.Second); ok != tc.ok {
			t.Errorf("eventWithin(%q) = %v (%s), want %v", tc.time, ok, why, tc.ok)
		}
	}
}

func TestTamperedImageFailsBothChecks(t *testing.T) {
	b, err := image.Build(image.Spec{Model: "m", Version: "1.0.0", Key: image.NewKey()})
	if err != nil {
		t.Fatal(err)
	}
	got := tampered(b.Bytes)
	off, err := image.PayloadOffset(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(got[off:], b.Bytes[off:]) {
		t.Errorf("the payload is unchanged")
	}
	if bytes.Equal(got[:off], b.Bytes[:off]) {
		t.Errorf("the header (signature) is unchanged")
	}
	if other := tampered([]byte("not an image, but a slot")); bytes.Equal(other, []byte("not an image, but a slot")) {
		t.Errorf("a slot in another format is unchanged")
	}
}

func TestTamperInactiveSlot(t *testing.T) {
	running := wire.Image{Version: "1.1.0", Nonce: "new-nonce", Slot: "b"}
	tests := []struct {
		name    string
		a, b    string
		want    []string // slots tampered with
		wantErr bool
	}{
		{"inactive a", "old-nonce", "new-nonce", []string{"slot-a.img"}, false},
		{"inactive b", "new-nonce", "old-nonce", []string{"slot-b.img"}, false},
		{"identical: the slot not running", "new-nonce", "new-nonce", []string{"slot-a.img"}, false},
		{"none running", "x", "y", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			orig := map[string]string{"slot-a.img": "image " + tc.a + " payload", "slot-b.img": "image " + tc.b + " payload"}
			for n, s := range orig {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(s), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			saved := map[string][]byte{}
			err := tamperInactiveSlot(dir, []string{"slot-a.img", "slot-b.img"}, running, saved)
			if (err != nil) != tc.wantErr {
				t.Fatalf("tamperInactiveSlot() error %v, want error %v", err, tc.wantErr)
			}
			var got []string
			for n, s := range orig {
				b, _ := os.ReadFile(filepath.Join(dir, n))
				if string(b) != s {
					got = append(got, n)
					if string(saved[filepath.Join(dir, n)]) != s {
						t.Errorf("%s: original bytes not kept", n)
					}
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("tampered with %v, want %v", got, tc.want)
			}
		})
	}
}
