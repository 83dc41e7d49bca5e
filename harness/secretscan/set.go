package secretscan

import (
	"cmp"
	"slices"
)

// Hit is one occurrence of a secret.
type Hit struct {
	// Secret is the index of the secret in the list given to the scan.
	Secret int
	// Encoding names the form the secret was found in (EncRaw, EncHex, ...).
	Encoding string
	// Path is the file the hit is in (ScanFile, ScanDir); empty for bytes and streams.
	Path string
	// Offset is the byte offset of the first byte of the encoded secret.
	Offset int64
}

// Set is a compiled set of secrets, ready to scan any number of inputs, concurrently.
type Set struct {
	secrets  []string
	patterns []pattern
	maxLen   int

	// The automaton is a full DFA over byte classes. A state is stored as the offset of
	// its row in delta (state number * nclass), negated when the state has output:
	// the inner loop is then one load and one sign test per byte.
	class  [256]uint16
	nclass int
	delta  []int32
	outIdx []int32 // per state number: start of its output list in outs; len = states+1
	outs   []int32 // pattern numbers
}

// Compile builds a Set for secrets. Empty secrets are ignored (they can never be found);
// hits keep the index of the secret in secrets.
func Compile(secrets []string) *Set {
	s := &Set{secrets: slices.Clone(secrets)}
	for i, sec := range secrets {
		s.patterns = append(s.patterns, patterns(i, sec)...)
	}
	for _, p := range s.patterns {
		s.maxLen = max(s.maxLen, len(p.bytes))
	}
	s.build()
	return s
}

// Secrets returns the secrets the Set was compiled from.
func (s *Set) Secrets() []string { return slices.Clone(s.secrets) }

// MaxLen returns the length of the longest byte string the Set searches for: the most a
// caller that keeps its own overlap between chunks needs to keep.
func (s *Set) MaxLen() int { return s.maxLen }

func (s *Set) build() {
	// Byte classes: every byte that appears in some pattern gets its own class; all other
	// bytes share class 0, which always leads back towards the root.
	var used [256]bool
	for _, p := range s.patterns {
		for _, b := range p.bytes {
			used[b] = true
		}
	}
	s.nclass = 1
	for b := range 256 {
		if used[b] {
			s.class[b] = uint16(s.nclass)
			s.nclass++
		}
	}
	nc := s.nclass

	// Trie. goto_[state*nc+class] = next state, or -1. There are at most as many states
	// as pattern bytes, plus the root.
	maxStates := 1
	for _, p := range s.patterns {
		maxStates += len(p.bytes)
	}
	goto_ := make([]int32, nc, maxStates*nc)
	for i := range goto_ {
		goto_[i] = -1
	}
	own := [][]int32{nil}
	nstates := 1
	for pi, p := range s.patterns {
		st := 0
		for _, b := range p.bytes {
			c := int(s.class[b])
			nx := goto_[st*nc+c]
			if nx < 0 {
				nx = int32(nstates)
				nstates++
				for range nc {
					goto_ = append(goto_, -1)
				}
				own = append(own, nil)
				goto_[st*nc+c] = nx
			}
			st = int(nx)
		}
		own[st] = append(own[st], int32(pi))
	}

	// Breadth-first: failure links, the full transition table, and output lists that
	// include the outputs of the failure chain.
	fail := make([]int32, nstates)
	outs := make([][]int32, nstates)
	order := make([]int32, 0, nstates)
	for c := range nc {
		if nx := goto_[c]; nx > 0 {
			fail[nx] = 0
			order = append(order, nx)
		} else {
			goto_[c] = 0
		}
	}
	for i := 0; i < len(order); i++ {
		st := order[i]
		outs[st] = append(slices.Clone(own[st]), outs[fail[st]]...)
		for c := range nc {
			nx := goto_[int(st)*nc+c]
			if nx >= 0 {
				fail[nx] = goto_[int(fail[st])*nc+c]
				order = append(order, nx)
			} else {
				goto_[int(st)*nc+c] = goto_[int(fail[st])*nc+c]
			}
		}
	}

	// The full table becomes the DFA in place: row offsets, negated for states with output.
	for i, nx := range goto_ {
		v := nx * int32(nc)
		if len(outs[nx]) > 0 {
			v = -v
		}
		goto_[i] = v
	}
	s.delta = goto_
	s.outIdx = make([]int32, nstates+1)
	for st := range nstates {
		s.outIdx[st] = int32(len(s.outs))
		s.outs = append(s.outs, outs[st]...)
	}
	s.outIdx[nstates] = int32(len(s.outs))
}

// MaxHitsPerStream bounds the hits one Stream keeps; later hits are counted in
// Stream.Dropped.
const MaxHitsPerStream = 100000

// Stream scans one input handed over in chunks. A secret split across chunks is found.
// A Stream is not safe for concurrent use; make one per input.
type Stream struct {
	set     *Set
	state   int32 // row offset, never negative
	off     int64
	hits    []Hit
	ends    []int64 // end offset of each hit, for de-duplication
	dropped int64
}

// NewStream starts a stream at offset 0.
func (s *Set) NewStream() *Stream { return &Stream{set: s} }

// Write scans p as the next chunk of the stream. It never fails; it implements io.Writer
// so that a Stream can stand at the end of io.Copy or an io.MultiWriter.
func (st *Stream) Write(p []byte) (int, error) {
	set := st.set
	if len(set.patterns) == 0 {
		st.off += int64(len(p))
		return len(p), nil
	}
	delta, class := set.delta, &set.class
	state := st.state
	for i, b := range p {
		v := delta[state+int32(class[b])]
		if v < 0 {
			v = -v
			st.emit(v, st.off+int64(i)+1)
		}
		state = v
	}
	st.state = state
	st.off += int64(len(p))
	return len(p), nil
}

// Skip advances the stream by n bytes that are missing from the input (a gap in a
// capture) and forgets any partial match: nothing is found across the gap.
func (st *Stream) Skip(n int64) {
	st.state = 0
	st.off += n
}

// Offset returns how many bytes the stream has seen (including skipped ones).
func (st *Stream) Offset() int64 { return st.off }

// Dropped returns how many hits were not kept because of MaxHitsPerStream.
func (st *Stream) Dropped() int64 { return st.dropped }

// Hits returns the hits so far, ordered by offset. Where several encodings of one secret
// start at the same offset (the unpadded base64 form is a prefix of the padded one), only
// the longest is reported.
func (st *Stream) Hits() []Hit {
	out := slices.Clone(st.hits)
	sortHits(out)
	return out
}

func (st *Stream) emit(row int32, end int64) {
	set := st.set
	stn := row / int32(set.nclass)
	for _, pi := range set.outs[set.outIdx[stn]:set.outIdx[stn+1]] {
		p := &set.patterns[pi]
		start := end - int64(len(p.bytes))
		// A longer pattern of the same secret starting at the same offset ends later, so
		// it replaces the shorter one found before it. Such a hit is among the last few.
		replaced := false
		for j := len(st.hits) - 1; j >= 0 && j >= len(st.hits)-32; j-- {
			h := &st.hits[j]
			if h.Secret == p.secret && h.Offset == start {
				if end > st.ends[j] {
					h.Encoding = p.encoding
					st.ends[j] = end
				}
				replaced = true
				break
			}
		}
		if replaced {
			continue
		}
		if len(st.hits) >= MaxHitsPerStream {
			st.dropped++
			continue
		}
		st.hits = append(st.hits, Hit{Secret: p.secret, Encoding: p.encoding, Offset: start})
		st.ends = append(st.ends, end)
	}
}

func sortHits(h []Hit) {
	slices.SortStableFunc(h, func(a, b Hit) int {
		return cmp.Or(
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Offset, b.Offset),
			cmp.Compare(a.Secret, b.Secret),
			cmp.Compare(a.Encoding, b.Encoding),
		)
	})
}
