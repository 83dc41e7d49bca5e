package secretscan

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

func TestEncodings(t *testing.T) {
	got := Encodings("pé1")
	want := []Encoded{
		{EncRaw, []byte("pé1")},
		{EncHex, []byte("70c3a931")},
		{EncHexUpper, []byte("70C3A931")},
		{EncBase64, []byte("cMOpMQ==")},
		{EncBase64URL, []byte("cMOpMQ==")},
		{EncBase64Raw, []byte("cMOpMQ")},
		{EncUTF16LE, []byte{'p', 0, 0xe9, 0, '1', 0}},
		{EncUTF16BE, []byte{0, 'p', 0, 0xe9, 0, '1'}},
	}
	if len(got) != len(want) {
		t.Fatalf("Encodings: got %d encodings, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || !bytes.Equal(got[i].Bytes, want[i].Bytes) {
			t.Errorf("Encodings[%d]: got %s %q, want %s %q", i, got[i].Name, got[i].Bytes, want[i].Name, want[i].Bytes)
		}
	}
	if e := Encodings(""); e != nil {
		t.Errorf("Encodings(\"\"): got %v, want none", e)
	}
	if e := Encodings("\xff\xfe"); len(e) != 6 {
		t.Errorf("Encodings(invalid UTF-8): got %d encodings, want 6 (no UTF-16)", len(e))
	}
}

func TestBase64Core(t *testing.T) {
	// The core at alignment k must appear in the encoding of any text that holds the
	// secret at an offset ≡ k (mod 3), whatever the neighbours.
	secret := []byte("s3cr3t-Pa55word")
	for k := range 3 {
		core := base64Core(base64.StdEncoding, secret, k)
		if len(core) < len(secret) {
			t.Fatalf("k=%d: core %q too short", k, core)
		}
		for _, fill := range []byte{0x00, 0xff, 0x5a} {
			for pre := k; pre < k+7; pre += 3 {
				text := append(bytes.Repeat([]byte{fill}, pre), secret...)
				text = append(text, bytes.Repeat([]byte{fill}, 5)...)
				enc := base64.StdEncoding.EncodeToString(text)
				if !strings.Contains(enc, string(core)) {
					t.Errorf("k=%d fill=%#x pre=%d: core %q not in %q", k, fill, pre, core, enc)
				}
			}
		}
	}
}

func TestRedact(t *testing.T) {
	tests := []struct{ in, want string }{
		{"hunter22", "hu…"},
		{"éàbcd", "éà…"},
		{"abc", "…"},
		{"", "…"},
	}
	for _, tt := range tests {
		if got := Redact(tt.in); got != tt.want {
			t.Errorf("Redact(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// embedB64 returns the base64 text of pre+secret+post and the offset at which the
// stable core of secret at alignment len(pre)%3 starts in it.
func embedB64(enc *base64.Encoding, pre, secret, post []byte) ([]byte, int64) {
	text := append(append(slices.Clone(pre), secret...), post...)
	k := len(pre) % 3
	group := (len(pre) - k) / 3 * 4
	first := (8*k + 5) / 6
	return []byte(enc.EncodeToString(text)), int64(group + first)
}

func TestScanEncodings(t *testing.T) {
	const s0 = "hunter22ab!"  // 11 bytes: len%3 == 2
	const s1 = "Tr0ub4dor&3x" // 12 bytes: len%3 == 0
	const s2 = "pa??w>rd~?"   // 10 bytes; its base64 has '+' and '/'
	secrets := []string{s0, s1, s2}
	noise := []byte("noise, noise; ")
	post := []byte{0xff, 0xfe, 0xfd, 0xfc}

	type tc struct {
		name string
		text []byte
		want []Hit
	}
	tests := []tc{
		{"raw", cat(noise, []byte(s0), noise), []Hit{{0, EncRaw, "", 14}}},
		{"hex", cat(noise, []byte(hex.EncodeToString([]byte(s1)))), []Hit{{1, EncHex, "", 14}}},
		{"HEX", cat(noise, []byte(strings.ToUpper(hex.EncodeToString([]byte(s1))))), []Hit{{1, EncHexUpper, "", 14}}},
		{"base64 padded", cat(noise, []byte(base64.StdEncoding.EncodeToString([]byte(s0))), noise), []Hit{{0, EncBase64, "", 14}}},
		{"base64 unpadded", cat(noise, []byte(base64.RawStdEncoding.EncodeToString([]byte(s0))), []byte(`"`)), []Hit{{0, EncBase64Raw, "", 14}}},
		{"base64 no padding needed", cat(noise, []byte(base64.RawStdEncoding.EncodeToString([]byte(s1)))), []Hit{{1, EncBase64, "", 14}}},
		{"base64url padded", cat([]byte(base64.URLEncoding.EncodeToString([]byte(s2))), noise), []Hit{{2, EncBase64URL, "", 0}}},
		{"base64url unpadded", cat([]byte(base64.RawURLEncoding.EncodeToString([]byte(s2))), noise), []Hit{{2, EncBase64URL, "", 0}}},
		{"base64 std alphabet", cat([]byte(base64.StdEncoding.EncodeToString([]byte(s2)))), []Hit{{2, EncBase64, "", 0}}},
		{"utf16le", cat(noise, utf16le(s0)), []Hit{{0, EncUTF16LE, "", 14}}},
		{"utf16be", cat(noise, utf16be(s2), noise), []Hit{{2, EncUTF16BE, "", 14}}},
		{"none", cat(noise, []byte("hunter22ab"), noise), nil},
		{"two secrets", cat([]byte(s1), noise, []byte(s0)), []Hit{{1, EncRaw, "", 0}, {0, EncRaw, "", 26}}},
		{"twice", cat([]byte(s0), []byte(s0)), []Hit{{0, EncRaw, "", 0}, {0, EncRaw, "", 11}}},
	}
	// The secret embedded in a larger base64 text, at each alignment, in both alphabets.
	names := map[bool][3]string{
		false: {EncBase64, EncBase64Shift1, EncBase64Shift2},
		true:  {EncBase64URL, EncBase64URLShift1, EncBase64URLShift2},
	}
	for _, url := range []bool{false, true} {
		enc := base64.StdEncoding
		if url {
			enc = base64.URLEncoding
		}
		for pre := 0; pre < 6; pre++ {
			for si, s := range secrets {
				if url && si != 2 {
					continue // same bytes as the standard alphabet
				}
				text, off := embedB64(enc, bytes.Repeat([]byte{0xff}, pre), []byte(s), post)
				name := names[url][pre%3]
				if bytes.Equal(base64Core(base64.StdEncoding, []byte(s), pre%3), base64Core(enc, []byte(s), pre%3)) {
					name = names[false][pre%3] // the same bytes in both alphabets
				}
				tests = append(tests, tc{
					name: fmt.Sprintf("embedded %s pre %d secret %d", names[url][pre%3], pre, si),
					text: text,
					want: []Hit{{si, name, "", off}},
				})
			}
		}
	}

	set := Compile(secrets)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := set.ScanBytes(tt.text)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("ScanBytes(%q): got %v, want %v", tt.text, got, tt.want)
			}
			// Streaming: the same hits whatever the chunking.
			for cut := 0; cut <= len(tt.text); cut++ {
				st := set.NewStream()
				st.Write(tt.text[:cut])
				st.Write(tt.text[cut:])
				if h := st.Hits(); !slices.Equal(h, tt.want) {
					t.Fatalf("split at %d: got %v, want %v", cut, h, tt.want)
				}
			}
			st := set.NewStream()
			for i := range tt.text {
				st.Write(tt.text[i : i+1])
			}
			if h := st.Hits(); !slices.Equal(h, tt.want) {
				t.Fatalf("byte by byte: got %v, want %v", h, tt.want)
			}
			h, err := set.ScanReader(iotest.OneByteReader(bytes.NewReader(tt.text)))
			if err != nil || !slices.Equal(h, tt.want) {
				t.Fatalf("ScanReader: got %v, %v, want %v", h, err, tt.want)
			}
		})
	}
}

func TestSkipBreaksMatches(t *testing.T) {
	set := Compile([]string{"secretvalue"})
	st := set.NewStream()
	st.Write([]byte("xxsecret"))
	st.Skip(100)
	st.Write([]byte("value secretvalue"))
	want := []Hit{{0, EncRaw, "", 8 + 100 + 6}}
	if got := st.Hits(); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestEmptyAndShortSecrets(t *testing.T) {
	got := ScanBytes([]byte("abc ab YWI= 6162"), []string{"", "ab"})
	want := []Hit{
		{1, EncRaw, "", 0}, {1, EncRaw, "", 4}, {1, EncBase64, "", 7}, {1, EncHex, "", 12},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := ScanBytes([]byte("anything"), nil); got != nil {
		t.Fatalf("no secrets: got %v, want none", got)
	}
}

func TestScanReaderChunkBoundary(t *testing.T) {
	const secret = "boundary-secret-42"
	for _, at := range []int{chunkSize - 5, chunkSize, chunkSize - len(secret), 2*chunkSize - 1} {
		data := make([]byte, 3*chunkSize)
		copy(data[at:], secret)
		hits, err := ScanReader(bytes.NewReader(data), []string{secret})
		if err != nil {
			t.Fatal(err)
		}
		want := []Hit{{0, EncRaw, "", int64(at)}}
		if !slices.Equal(hits, want) {
			t.Errorf("secret at %d: got %v, want %v", at, hits, want)
		}
	}
}

type errReader struct{ n int }

func (r *errReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.ErrUnexpectedEOF
	}
	r.n--
	return copy(p, "xx"), nil
}

func TestScanReaderError(t *testing.T) {
	_, err := ScanReader(&errReader{n: 3}, []string{"abcd"})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestScanDir(t *testing.T) {
	dir := t.TempDir()
	const secret = "wifi-pass-Sw0rdfish"
	write := func(name string, data []byte) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("clean.txt", []byte("nothing here"))
	write("a/settings.json", []byte(`{"psk":"`+base64.StdEncoding.EncodeToString([]byte(secret))+`"}`))
	write("a/b/c/log.bin", append(bytes.Repeat([]byte{'x'}, 4097), utf16le(secret)...))
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.WriteFile(outside, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}

	hits, err := ScanDir(context.Background(), dir, []string{"unused-secret", secret})
	if err != nil {
		t.Fatal(err)
	}
	want := []Hit{
		{1, EncUTF16LE, filepath.Join(dir, "a/b/c/log.bin"), 4097},
		{1, EncBase64, filepath.Join(dir, "a/settings.json"), 8},
	}
	if !slices.Equal(hits, want) {
		t.Fatalf("got %v, want %v", hits, want)
	}

	if _, err := ScanDir(context.Background(), filepath.Join(dir, "missing"), []string{secret}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: got %v, want os.ErrNotExist", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := ScanDir(ctx, dir, []string{secret}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: got %v, want context.Canceled", err)
	}
}

func TestScanFileLargeSparse(t *testing.T) {
	// A disk image larger than any buffer: a sparse file with secrets far apart.
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	const secret = "owner-secret-0451"
	offs := []int64{3, chunkSize*7 - 4, size - int64(len(secret))}
	for _, o := range offs {
		if _, err := f.WriteAt([]byte(secret), o); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	hits, err := ScanFile(context.Background(), p, []string{secret})
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != len(offs) {
		t.Fatalf("got %v, want hits at %v", hits, offs)
	}
	for i, h := range hits {
		if h.Offset != offs[i] || h.Path != p || h.Encoding != EncRaw {
			t.Errorf("hit %d: got %+v, want raw at %d in %s", i, h, offs[i], p)
		}
	}
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func utf16le(s string) []byte {
	for _, e := range Encodings(s) {
		if e.Name == EncUTF16LE {
			return e.Bytes
		}
	}
	return nil
}

func utf16be(s string) []byte {
	for _, e := range Encodings(s) {
		if e.Name == EncUTF16BE {
			return e.Bytes
		}
	}
	return nil
}
