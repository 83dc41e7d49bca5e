package image

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"testing"

	"github.com/hilt-project/hilt/wire"
)

func TestOlderSortingAfter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v      Version
		want   Version
		wantOK bool
	}{
		{Version{1, 2, 10}, Version{1, 2, 9}, true},
		{Version{1, 10, 0}, Version{1, 9, 0}, true},
		{Version{12, 0, 0}, Version{9, 0, 0}, true},
		{Version{1, 4, 150}, Version{1, 4, 9}, true},
		{Version{1, 2, 3}, Version{}, false},
		{Version{1, 2, 95}, Version{}, false}, // "1.2.9" sorts before "1.2.95"
	}
	for _, tt := range tests {
		got, ok := tt.v.OlderSortingAfter()
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("%s.OlderSortingAfter(): got %s %v, want %s %v", tt.v, got, ok, tt.want, tt.wantOK)
			continue
		}
		if ok && (!tt.v.Newer(got) || !got.SortsAfter(tt.v)) {
			t.Errorf("%s.OlderSortingAfter() = %s: want older by number and sorting after as text", tt.v, got)
		}
	}
}

func TestNextWithTwoDigitPatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v, want Version
	}{
		{Version{1, 0, 0}, Version{1, 1, 10}},
		{Version{1, 3, 0}, Version{1, 4, 10}},
		{Version{1, 4, 7}, Version{1, 5, 10}},
		{Version{1, 5, 0}, Version{1, 50, 10}},
		{Version{1, 8, 0}, Version{1, 80, 10}},
		{Version{1, 9, 99}, Version{1, 90, 10}},
		{Version{1, 14, 10}, Version{1, 15, 10}},
		{Version{2, 90, 0}, Version{2, 91, 10}},
	}
	for _, tt := range tests {
		got := tt.v.NextWithTwoDigitPatch()
		if got != tt.want {
			t.Errorf("%s.NextWithTwoDigitPatch(): got %s, want %s", tt.v, got, tt.want)
			continue
		}
		if !got.Newer(tt.v) || !got.SortsAfter(tt.v) {
			t.Errorf("%s.NextWithTwoDigitPatch() = %s: want newer by number and as text", tt.v, got)
		}
		if _, ok := got.OlderSortingAfter(); !ok {
			t.Errorf("%s.NextWithTwoDigitPatch() = %s: no older version sorts after it", tt.v, got)
		}
		// The Next versions the later checks install stay in order as text too.
		for w, i := got, 0; i < 4; i++ {
			n := w.Next()
			if !n.SortsAfter(w) {
				t.Errorf("%s.NextWithTwoDigitPatch() = %s: %s does not sort after %s as text", tt.v, got, n, w)
			}
			w = n
		}
	}
}

func TestEditAfterSigning(t *testing.T) {
	t.Parallel()
	key := NewKey()
	b, err := Build(Spec{Model: "m", Version: "1.2.3", Key: key})
	if err != nil {
		t.Fatal(err)
	}
	edited, err := EditAfterSigning(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(edited) != len(b.Bytes) {
		t.Fatalf("length: got %d, want %d", len(edited), len(b.Bytes))
	}
	off, err := PayloadOffset(edited)
	if err != nil {
		t.Fatal(err)
	}
	mlen := int(binary.BigEndian.Uint32(edited[8:12]))
	manifest := edited[12 : 12+mlen]
	var m wire.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(edited[off:])
	sigLen := int(binary.BigEndian.Uint16(edited[12+mlen:]))
	sig := edited[14+mlen : 14+mlen+sigLen]
	tests := []struct {
		name string
		got  bool
	}{
		{"the payload differs", !bytes.Equal(edited[off:], b.Bytes[off:])},
		{"the manifest's sha256 matches the new payload", m.SHA256 == hex.EncodeToString(sum[:])},
		{"the other manifest fields stay", m.Format == b.Manifest.Format && m.Model == b.Manifest.Model &&
			m.Version == b.Manifest.Version && m.Length == b.Manifest.Length},
		{"the header stays", bytes.Equal(edited[:12], b.Bytes[:12])},
		{"the original signature is kept", bytes.Equal(sig, b.Bytes[14+mlen:14+mlen+sigLen])},
		{"it verifies over the original manifest", ed25519.Verify(key.Public().(ed25519.PublicKey), b.Bytes[12:12+mlen], sig)},
		{"it does not verify over the edited one", !ed25519.Verify(key.Public().(ed25519.PublicKey), manifest, sig)},
	}
	for _, tt := range tests {
		if !tt.got {
			t.Errorf("edited image: want %s", tt.name)
		}
	}
}
