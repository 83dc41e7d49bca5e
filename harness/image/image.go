// Package image builds update images in the format of docs/PROTOCOL.md, good and bad:
// correctly signed, unsigned, signed with an unknown key, with a flipped payload byte,
// truncated, oversized, older. The harness builds every image at test time; the
// reference device verifies them with its own, separate code.
package image

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hilt-project/hilt/wire"
)

// Spec describes an image to build.
type Spec struct {
	Model   string
	Version string
	// Nonce goes into the payload; a device running the image reports it. Empty: random.
	Nonce string
	// PayloadSize is the payload length in bytes (at least the payload header). Default 4 KiB.
	PayloadSize int
	// Key signs the manifest; nil builds an unsigned image.
	Key ed25519.PrivateKey
}

// Built is an image and what went into it.
type Built struct {
	Bytes    []byte
	Manifest wire.Manifest
	Nonce    string
}

// Build assembles an image.
func Build(s Spec) (Built, error) {
	if s.Nonce == "" {
		var b [12]byte
		if _, err := rand.Read(b[:]); err != nil {
			return Built{}, err
		}
		s.Nonce = hex.EncodeToString(b[:])
	}
	if s.PayloadSize == 0 {
		s.PayloadSize = 4 << 10
	}
	head, err := json.Marshal(wire.Payload{Version: s.Version, Nonce: s.Nonce})
	if err != nil {
		return Built{}, err
	}
	head = append(head, '\n')
	if s.PayloadSize < len(head) {
		return Built{}, fmt.Errorf("payload size %d is smaller than its header (%d bytes)", s.PayloadSize, len(head))
	}
	payload := make([]byte, s.PayloadSize)
	copy(payload, head)
	for i := len(head); i < len(payload); i++ {
		payload[i] = byte('a' + i%26) // deterministic filler standing for code
	}
	sum := sha256.Sum256(payload)
	m := wire.Manifest{Format: 1, Model: s.Model, Version: s.Version, Length: int64(len(payload)), SHA256: hex.EncodeToString(sum[:])}
	mb, err := json.Marshal(m)
	if err != nil {
		return Built{}, err
	}
	var sig, pub []byte
	if s.Key != nil {
		sig = ed25519.Sign(s.Key, mb)
		pub = s.Key.Public().(ed25519.PublicKey)
	}
	var buf bytes.Buffer
	buf.WriteString(wire.ImageMagic)
	binary.Write(&buf, binary.BigEndian, uint32(len(mb)))
	buf.Write(mb)
	binary.Write(&buf, binary.BigEndian, uint16(len(sig)))
	buf.Write(sig)
	binary.Write(&buf, binary.BigEndian, uint16(len(pub)))
	buf.Write(pub)
	buf.Write(payload)
	return Built{Bytes: buf.Bytes(), Manifest: m, Nonce: s.Nonce}, nil
}

// PayloadOffset returns where the payload starts in img.
func PayloadOffset(img []byte) (int, error) {
	if len(img) < 12 || string(img[:8]) != wire.ImageMagic {
		return 0, errors.New("not an image: bad magic")
	}
	off := 12 + int(binary.BigEndian.Uint32(img[8:12]))
	for range 2 { // signature, then signer key
		if len(img) < off+2 {
			return 0, errors.New("image header truncated")
		}
		off += 2 + int(binary.BigEndian.Uint16(img[off:off+2]))
	}
	if off > len(img) {
		return 0, errors.New("image header truncated")
	}
	return off, nil
}

// FlipPayloadByte returns a copy of img with one payload byte changed; header and
// manifest stay intact.
func FlipPayloadByte(img []byte) ([]byte, error) {
	off, err := PayloadOffset(img)
	if err != nil {
		return nil, err
	}
	if off >= len(img) {
		return nil, errors.New("image has no payload")
	}
	out := bytes.Clone(img)
	i := off + (len(img)-off)/2
	out[i] ^= 0x01
	return out, nil
}

// EditAfterSigning returns a copy of img as an attacker who holds a signed image but not
// the key would change it: one payload byte flipped (as FlipPayloadByte does) and the
// manifest's sha256 rewritten in place to match the new payload, so that header, length
// and layout stay as they were; the signature, made over the original manifest, is kept.
// Only a device that verifies the signature over the whole manifest, hash included, can
// tell.
func EditAfterSigning(img []byte) ([]byte, error) {
	out, err := FlipPayloadByte(img)
	if err != nil {
		return nil, err
	}
	off, _ := PayloadOffset(out) // FlipPayloadByte found it
	mlen := int(binary.BigEndian.Uint32(out[8:12]))
	manifest := out[12 : 12+mlen]
	var m wire.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	old := []byte(`"` + m.SHA256 + `"`)
	if m.SHA256 == "" || bytes.Count(manifest, old) != 1 {
		return nil, errors.New("manifest: its sha256 value is not found exactly once as written")
	}
	sum := sha256.Sum256(out[off:])
	edited := bytes.Replace(manifest, old, []byte(`"`+hex.EncodeToString(sum[:])+`"`), 1)
	if len(edited) != len(manifest) {
		return nil, fmt.Errorf("manifest: sha256 %q is not 64 hex digits", m.SHA256)
	}
	copy(manifest, edited)
	return out, nil
}

// Truncate returns img without its last n bytes.
func Truncate(img []byte, n int) []byte { return bytes.Clone(img[:len(img)-n]) }

// Oversize returns img with n extra bytes appended after the payload.
func Oversize(img []byte, n int) []byte {
	return append(bytes.Clone(img), bytes.Repeat([]byte{0x5a}, n)...)
}

// NewKey returns a fresh ed25519 key, unknown to any device.
func NewKey() ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return k
}

// LoadKey reads an ed25519 private key from a PKCS #8 PEM file.
func LoadKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("signing key %s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("signing key %s: %T is not an ed25519 key", path, k)
	}
	return ek, nil
}

// Fingerprint is a key's fingerprint as docs/PROTOCOL.md defines it.
func Fingerprint(pub ed25519.PublicKey) string {
	s := sha256.Sum256(pub)
	return "SHA256:" + hex.EncodeToString(s[:])
}

// Version is a MAJOR.MINOR.PATCH version.
type Version [3]int

// ParseVersion reads "1.2.3".
func ParseVersion(s string) (Version, error) {
	var v Version
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH", s)
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, fmt.Errorf("version %q: %q is not a number", s, p)
		}
		v[i] = n
	}
	return v, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

// Next returns the next minor version; Next of 1.9.0 is 1.10.0, which a device that
// compares versions as strings gets wrong.
func (v Version) Next() Version { return Version{v[0], v[1] + 1, 0} }

// Newer reports whether v is newer than w, comparing numbers.
func (v Version) Newer(w Version) bool {
	for i := range v {
		if v[i] != w[i] {
			return v[i] > w[i]
		}
	}
	return false
}

// SortsAfter reports whether v's text sorts after w's, as a device that compares versions
// as strings sees them: "1.2.9" sorts after "1.2.10".
func (v Version) SortsAfter(w Version) bool { return v.String() > w.String() }

// OlderSortingAfter returns a version older than v whose text sorts after v's (1.2.9 for
// 1.2.10), which a device that compares versions as strings takes for newer. It returns
// false when no component of v allows one: that takes two or more digits, the first below 9.
func (v Version) OlderSortingAfter() (Version, bool) {
	for i := len(v) - 1; i >= 0; i-- {
		s := strconv.Itoa(v[i])
		if len(s) >= 2 && s[0] < '9' {
			w := v
			w[i] = 9 // one digit, more than v[i]'s first: older, yet sorts after it
			return w, true
		}
	}
	return Version{}, false
}

// NextWithTwoDigitPatch returns a version newer than v both by number and as text, with
// patch 10, so that OlderSortingAfter of it exists (patch 9). Both a device that compares
// versions as numbers and one that compares them as strings take it. Its minor is v's plus
// one when that keeps its digit count with room for a few more Next versions, else v's
// times ten (9 becomes 90, which sorts after "9." as text): a device that compares as
// strings would refuse a later Next that gained a digit (1.10.0 after 1.9.x).
func (v Version) NextWithTwoDigitPatch() Version {
	n := v[1] + 1
	if v[1] > 0 && (n%10 == 0 || n%10 > 5) {
		n = v[1] * 10
	}
	return Version{v[0], n, 10}
}

// Prev returns a version older than v (v must be newer than 0.0.0).
func (v Version) Prev() Version {
	switch {
	case v[2] > 0:
		return Version{v[0], v[1], v[2] - 1}
	case v[1] > 0:
		return Version{v[0], v[1] - 1, 99}
	default:
		return Version{v[0] - 1, 99, 99}
	}
}
