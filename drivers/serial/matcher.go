package serial

import (
	"bytes"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
)

// Matcher recognises expected output.
//
// Find searches text (the unconsumed output) and reports the first match with offsets
// relative to text. It returns ok=false when text holds no match yet, and an error when
// waiting longer cannot help: a *ForbiddenError (MustNotMatch), or ErrBadMatcher.
//
// Implementations outside this package work with Expect; the matchers of this package
// also search incrementally (see Search), so that a flood of output costs each Expect
// time in proportion to its length, not to its square.
type Matcher interface {
	Find(text []byte) (m Match, ok bool, err error)
	String() string
}

// Literal matches the exact text s.
func Literal(s string) Matcher { return literal{lit: []byte(s)} }

// Regex matches the regular expression re (Go syntax, as package regexp). An invalid
// expression gives a matcher whose every use fails with ErrBadMatcher.
//
// Output arrives piecemeal and Expect returns as soon as the output so far matches:
// `ERR (\w+)` matches "ERR a" before "uth" arrives. End an expression with what follows
// the part you want (`ERR (\w+)\s`, `OK (.*)\n`, a prompt) to capture it whole.
func Regex(re string) Matcher {
	r, err := regexp.Compile(re)
	if err != nil {
		return badMatcher{fmt.Errorf("%w: regex %q: %v", ErrBadMatcher, re, err)}
	}
	return Regexp(r)
}

// Regexp matches a compiled regular expression.
func Regexp(re *regexp.Regexp) Matcher {
	return &regex{re: re, lineBounded: lineBounded(re.String())}
}

// AnyOf matches when one of ms matches: the one whose match ends first in the output
// (ties go to the lower index). Match.Index says which.
func AnyOf(ms ...Matcher) Matcher { return anyOf(ms) }

// AllOf matches when every one of ms has matched since the cursor, in any order. The
// match spans from the earliest start to the latest end; Groups holds each one's text.
func AllOf(ms ...Matcher) Matcher { return allOf(ms) }

// MustNotMatch matches as good does, but fails with a *ForbiddenError (ErrForbiddenOutput)
// as soon as bad matches first: a bad match that ends no later than good's.
func MustNotMatch(good, bad Matcher) Matcher { return mustNot{good: good, bad: bad} }

// Search is the progress of one Expect over a growing output. It remembers what it has
// ruled out, so that each call costs about the length of the new output. A Console
// implementation makes one Search per Expect and calls Next each time output arrives.
type Search struct {
	sc scanner
}

// NewSearch starts a search for m.
func NewSearch(m Matcher) *Search {
	if inc, ok := m.(incremental); ok {
		return &Search{sc: inc.newScanner()}
	}
	return &Search{sc: &plainScanner{m: m}}
}

// Next searches text, the unconsumed output that starts at output offset base, and
// returns the match with output offsets. Each call must pass the same output, grown at
// its end (base may move forward when old output is dropped).
func (s *Search) Next(text []byte, base int64) (Match, bool, error) {
	return s.sc.scan(text, base)
}

// incremental is implemented by the matchers of this package.
type incremental interface {
	newScanner() scanner
}

type scanner interface {
	scan(text []byte, base int64) (Match, bool, error)
}

// find runs a fresh scanner over text, for the Find methods.
func find(inc incremental, text []byte) (Match, bool, error) {
	return inc.newScanner().scan(text, 0)
}

// plainScanner adapts a Matcher from outside the package: it searches all the text
// every time.
type plainScanner struct{ m Matcher }

func (p *plainScanner) scan(text []byte, base int64) (Match, bool, error) {
	m, ok, err := p.m.Find(text)
	if ok {
		m.Start += int(base)
		m.End += int(base)
	}
	if fe, isForbidden := err.(*ForbiddenError); isForbidden {
		fe.Match.Start += int(base)
		fe.Match.End += int(base)
	}
	return m, ok, err
}

type badMatcher struct{ err error }

func (b badMatcher) Find([]byte) (Match, bool, error) { return Match{}, false, b.err }
func (b badMatcher) String() string                   { return "invalid matcher" }
func (b badMatcher) newScanner() scanner              { return b }
func (b badMatcher) scan([]byte, int64) (Match, bool, error) {
	return Match{}, false, b.err
}

// literal

type literal struct{ lit []byte }

func (l literal) Find(text []byte) (Match, bool, error) { return find(l, text) }
func (l literal) String() string                        { return fmt.Sprintf("literal %q", l.lit) }
func (l literal) newScanner() scanner                   { return &literalScanner{lit: l.lit, resume: -1} }

type literalScanner struct {
	lit    []byte
	resume int64 // no match starts before this output offset
}

func (s *literalScanner) scan(text []byte, base int64) (Match, bool, error) {
	from := int(max(s.resume, base) - base)
	if from > len(text) {
		from = len(text)
	}
	if i := bytes.Index(text[from:], s.lit); i >= 0 {
		start := from + i
		t := string(text[start : start+len(s.lit)])
		return Match{Text: t, Groups: []string{t}, Start: int(base) + start, End: int(base) + start + len(s.lit)}, true, nil
	}
	s.resume = base + int64(max(from, len(text)-len(s.lit)+1))
	return Match{}, false, nil
}

// regex

type regex struct {
	re *regexp.Regexp
	// lineBounded: no match can span a newline and the expression does not anchor to
	// the start of the text, so a search may resume at the start of the last line.
	lineBounded bool
}

func (r *regex) Find(text []byte) (Match, bool, error) { return find(r, text) }
func (r *regex) String() string                        { return fmt.Sprintf("regex %q", r.re.String()) }
func (r *regex) newScanner() scanner                   { return &regexScanner{r: r, resume: -1} }

type regexScanner struct {
	r      *regex
	resume int64
}

func (s *regexScanner) scan(text []byte, base int64) (Match, bool, error) {
	from := 0
	if s.r.lineBounded {
		from = int(max(s.resume, base) - base)
		if from > len(text) {
			from = len(text)
		}
	}
	loc := s.r.re.FindSubmatchIndex(text[from:])
	if loc == nil {
		if s.r.lineBounded {
			if nl := bytes.LastIndexByte(text[from:], '\n'); nl >= 0 {
				s.resume = base + int64(from+nl+1)
			}
		}
		return Match{}, false, nil
	}
	groups := make([]string, len(loc)/2)
	for i := range groups {
		if loc[2*i] >= 0 {
			groups[i] = string(text[from+loc[2*i] : from+loc[2*i+1]])
		}
	}
	return Match{Text: groups[0], Groups: groups, Start: int(base) + from + loc[0], End: int(base) + from + loc[1]}, true, nil
}

// lineBounded reports whether no match of the expression can contain '\n' and the
// expression has no \A or non-multiline ^. For those, a search that found nothing in
// complete lines never needs to look at them again.
func lineBounded(expr string) bool {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return false
	}
	var ok func(*syntax.Regexp) bool
	ok = func(r *syntax.Regexp) bool {
		switch r.Op {
		case syntax.OpAnyChar, syntax.OpBeginText:
			return false
		case syntax.OpLiteral:
			for _, c := range r.Rune {
				if c == '\n' {
					return false
				}
			}
		case syntax.OpCharClass:
			for i := 0; i+1 < len(r.Rune); i += 2 {
				if r.Rune[i] <= '\n' && '\n' <= r.Rune[i+1] {
					return false
				}
			}
		}
		for _, s := range r.Sub {
			if !ok(s) {
				return false
			}
		}
		return true
	}
	return ok(re)
}

// anyOf

type anyOf []Matcher

func (a anyOf) Find(text []byte) (Match, bool, error) { return find(a, text) }
func (a anyOf) String() string                        { return "any of [" + join(a) + "]" }
func (a anyOf) newScanner() scanner {
	s := make(anyScanner, len(a))
	for i, m := range a {
		s[i] = NewSearch(m)
	}
	return s
}

type anyScanner []*Search

func (s anyScanner) scan(text []byte, base int64) (Match, bool, error) {
	best, found := Match{}, false
	for i, sub := range s {
		m, ok, err := sub.Next(text, base)
		if err != nil {
			return Match{}, false, err
		}
		if ok && (!found || m.End < best.End) {
			best, found = m, true
			best.Index = i
		}
	}
	return best, found, nil
}

// allOf

type allOf []Matcher

func (a allOf) Find(text []byte) (Match, bool, error) { return find(a, text) }
func (a allOf) String() string                        { return "all of [" + join(a) + "]" }
func (a allOf) newScanner() scanner {
	s := &allScanner{subs: make([]*Search, len(a)), found: make([]*Match, len(a))}
	for i, m := range a {
		s.subs[i] = NewSearch(m)
	}
	return s
}

type allScanner struct {
	subs  []*Search
	found []*Match
}

func (s *allScanner) scan(text []byte, base int64) (Match, bool, error) {
	all := true
	for i, sub := range s.subs {
		if s.found[i] != nil {
			continue
		}
		m, ok, err := sub.Next(text, base)
		if err != nil {
			return Match{}, false, err
		}
		if ok {
			s.found[i] = &m
		} else {
			all = false
		}
	}
	if !all {
		return Match{}, false, nil
	}
	if len(s.found) == 0 {
		return Match{Start: int(base), End: int(base), Groups: []string{}}, true, nil
	}
	start, end := s.found[0].Start, s.found[0].End
	groups := make([]string, len(s.found))
	for i, m := range s.found {
		start, end = min(start, m.Start), max(end, m.End)
		groups[i] = m.Text
	}
	// The span may reach before base if old output was dropped meanwhile.
	lo, hi := start-int(base), end-int(base)
	text0 := ""
	if lo >= 0 && hi <= len(text) {
		text0 = string(text[lo:hi])
	}
	return Match{Text: text0, Groups: groups, Start: start, End: end}, true, nil
}

// mustNot

type mustNot struct{ good, bad Matcher }

func (m mustNot) Find(text []byte) (Match, bool, error) { return find(m, text) }
func (m mustNot) String() string {
	return fmt.Sprintf("%s (and not %s before it)", m.good, m.bad)
}
func (m mustNot) newScanner() scanner {
	return &mustNotScanner{m: m, good: NewSearch(m.good), bad: NewSearch(m.bad)}
}

type mustNotScanner struct {
	m         mustNot
	good, bad *Search
}

func (s *mustNotScanner) scan(text []byte, base int64) (Match, bool, error) {
	g, gok, err := s.good.Next(text, base)
	if err != nil {
		return Match{}, false, err
	}
	b, bok, err := s.bad.Next(text, base)
	if err != nil {
		return Match{}, false, err
	}
	if bok && (!gok || b.End <= g.End) {
		return Match{}, false, &ForbiddenError{Want: s.m.String(), Match: b}
	}
	return g, gok, nil
}

func join(ms []Matcher) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.String()
	}
	return strings.Join(s, ", ")
}
