package secretscan

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Encoding names, as reported in Hit.Encoding and Encoded.Name.
const (
	EncRaw       = "raw"
	EncHex       = "hex"        // lower-case hex
	EncHexUpper  = "HEX"        // upper-case hex
	EncBase64    = "base64"     // standard alphabet, padded
	EncBase64URL = "base64url"  // URL alphabet, padded
	EncBase64Raw = "base64-raw" // standard alphabet, unpadded
	EncUTF16LE   = "utf16le"
	EncUTF16BE   = "utf16be"

	// Hits only: the stable middle of the base64 encoding of a secret that sits at
	// byte offset 1 or 2 (mod 3) of a larger encoded text.
	EncBase64Shift1    = "base64-shift1"
	EncBase64Shift2    = "base64-shift2"
	EncBase64URLShift1 = "base64url-shift1"
	EncBase64URLShift2 = "base64url-shift2"
)

// MinPatternLen is the shortest derived pattern (a base64 core) the scanner searches
// for. The full encodings of a secret are always searched, whatever their length.
const MinPatternLen = 4

// Encoded is a secret in one encoding.
type Encoded struct {
	Name  string
	Bytes []byte
}

// Encodings returns secret in every encoding the scanner looks for, in this order: raw,
// hex, HEX, base64, base64url, base64-raw, utf16le, utf16be. These are the full
// encodings of the secret on its own, as a device would produce them; the scanner also
// finds the secret base64-encoded inside a larger text (see the package documentation).
// The UTF-16 forms are left out when secret is not valid UTF-8. An empty secret has no
// encodings.
func Encodings(secret string) []Encoded {
	if secret == "" {
		return nil
	}
	s := []byte(secret)
	out := []Encoded{
		{EncRaw, bytes.Clone(s)},
		{EncHex, []byte(hex.EncodeToString(s))},
		{EncHexUpper, []byte(strings.ToUpper(hex.EncodeToString(s)))},
		{EncBase64, []byte(base64.StdEncoding.EncodeToString(s))},
		{EncBase64URL, []byte(base64.URLEncoding.EncodeToString(s))},
		{EncBase64Raw, []byte(base64.RawStdEncoding.EncodeToString(s))},
	}
	if utf8.ValidString(secret) {
		u := utf16.Encode([]rune(secret))
		le := make([]byte, 0, 2*len(u))
		be := make([]byte, 0, 2*len(u))
		for _, c := range u {
			le = append(le, byte(c), byte(c>>8))
			be = append(be, byte(c>>8), byte(c))
		}
		out = append(out, Encoded{EncUTF16LE, le}, Encoded{EncUTF16BE, be})
	}
	return out
}

// pattern is one byte string the automaton searches for.
type pattern struct {
	secret   int
	encoding string
	bytes    []byte
}

// patterns returns every byte string to search for secret number idx: its full
// encodings, the unpadded URL form, and the base64 cores of the three alignments. A
// byte string that equals an earlier one for the same secret is left out (the earlier
// name wins: hex of "123" is also its HEX).
func patterns(idx int, secret string) []pattern {
	var out []pattern
	add := func(name string, b []byte, derived bool) {
		if len(b) == 0 || (derived && len(b) < MinPatternLen) {
			return
		}
		for _, p := range out {
			if bytes.Equal(p.bytes, b) {
				return
			}
		}
		out = append(out, pattern{secret: idx, encoding: name, bytes: b})
	}
	for _, e := range Encodings(secret) {
		add(e.Name, e.Bytes, false)
	}
	if secret == "" {
		return out
	}
	s := []byte(secret)
	add(EncBase64URL, []byte(base64.RawURLEncoding.EncodeToString(s)), false)
	add(EncBase64, base64Core(base64.StdEncoding, s, 0), true)
	add(EncBase64URL, base64Core(base64.URLEncoding, s, 0), true)
	add(EncBase64Shift1, base64Core(base64.StdEncoding, s, 1), true)
	add(EncBase64URLShift1, base64Core(base64.URLEncoding, s, 1), true)
	add(EncBase64Shift2, base64Core(base64.StdEncoding, s, 2), true)
	add(EncBase64URLShift2, base64Core(base64.URLEncoding, s, 2), true)
	return out
}

// base64Core returns the characters of the encoding of s, placed k bytes (0..2) after a
// 3-byte group boundary, that depend on the bytes of s alone.
func base64Core(enc *base64.Encoding, s []byte, k int) []byte {
	in := make([]byte, k+len(s))
	copy(in[k:], s)
	full := enc.EncodeToString(in)
	first := (8*k + 5) / 6     // first character whose 6 bits all lie in s
	last := 8*(k+len(s))/6 - 1 // last such character
	if last < first {
		return nil
	}
	return []byte(full[first : last+1])
}

// Redact returns a secret shortened for reports: its first two characters and "…".
// A secret of fewer than four characters is reduced to "…" alone, so that a report
// never holds most of it.
func Redact(secret string) string {
	if utf8.RuneCountInString(secret) < 4 {
		return "…"
	}
	_, a := utf8.DecodeRuneInString(secret)
	_, b := utf8.DecodeRuneInString(secret[a:])
	return secret[:a+b] + "…"
}
