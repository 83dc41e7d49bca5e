package serial

import (
	"errors"
	"slices"
	"testing"
)

func TestMatchers(t *testing.T) {
	tests := []struct {
		name      string
		m         Matcher
		text      string
		want      Match
		wantOK    bool
		forbidden bool
		bad       bool
	}{
		{name: "literal", m: Literal("ready"), text: "booting\nrefdev ready\n", wantOK: true,
			want: Match{Text: "ready", Groups: []string{"ready"}, Start: 15, End: 20}},
		{name: "literal absent", m: Literal("ready"), text: "booting\nrefdev rea"},
		{name: "literal first of two", m: Literal("> "), text: "a> b> ", wantOK: true,
			want: Match{Text: "> ", Groups: []string{"> "}, Start: 1, End: 3}},
		{name: "regex groups", m: Regex(`OK (\{.*\})`), text: "x\nOK {\"a\":1}\nrefdev> ", wantOK: true,
			want: Match{Text: `OK {"a":1}`, Groups: []string{`OK {"a":1}`, `{"a":1}`}, Start: 2, End: 12}},
		{name: "regex optional group unset", m: Regex(`ERR (\w+)( .*)?\n`), text: "ERR auth\n", wantOK: true,
			want: Match{Text: "ERR auth\n", Groups: []string{"ERR auth\n", "auth", ""}, Start: 0, End: 9}},
		{name: "regex across lines", m: Regex(`(?s)begin.*end`), text: "begin\nmiddle\nend", wantOK: true,
			want: Match{Text: "begin\nmiddle\nend", Groups: []string{"begin\nmiddle\nend"}, Start: 0, End: 16}},
		{name: "regex invalid", m: Regex(`(`), text: "anything", bad: true},
		{name: "any of: earliest end wins", m: AnyOf(Literal("OK"), Literal("ERR")), text: "ERR x OK", wantOK: true,
			want: Match{Text: "ERR", Groups: []string{"ERR"}, Start: 0, End: 3, Index: 1}},
		{name: "any of: tie to lower index", m: AnyOf(Regex(`a+b`), Literal("ab")), text: "xaab", wantOK: true,
			want: Match{Text: "aab", Groups: []string{"aab"}, Start: 1, End: 4, Index: 0}},
		{name: "any of none", m: AnyOf(Literal("OK"), Literal("ERR")), text: "nothing"},
		{name: "all of any order", m: AllOf(Literal("net up"), Literal("mqtt up")), text: "mqtt up\nx\nnet up\n", wantOK: true,
			want: Match{Text: "mqtt up\nx\nnet up", Groups: []string{"net up", "mqtt up"}, Start: 0, End: 16}},
		{name: "all of missing one", m: AllOf(Literal("net up"), Literal("mqtt up")), text: "mqtt up\n"},
		{name: "must not: good first", m: MustNotMatch(Literal("ready"), Literal("panic")), text: "ready\npanic", wantOK: true,
			want: Match{Text: "ready", Groups: []string{"ready"}, Start: 0, End: 5}},
		{name: "must not: bad first", m: MustNotMatch(Literal("ready"), Literal("panic")), text: "panic\nready", forbidden: true,
			want: Match{Text: "panic", Groups: []string{"panic"}, Start: 0, End: 5}},
		{name: "must not: bad alone", m: MustNotMatch(Literal("ready"), Literal("panic")), text: "kernel panic", forbidden: true,
			want: Match{Text: "panic", Groups: []string{"panic"}, Start: 7, End: 12}},
		{name: "must not: neither", m: MustNotMatch(Literal("ready"), Literal("panic")), text: "booting"},
		{name: "nested", m: AnyOf(AllOf(Literal("a"), Literal("b")), Literal("zz")), text: "b..a..zz", wantOK: true,
			want: Match{Text: "b..a", Groups: []string{"a", "b"}, Start: 0, End: 4, Index: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := tt.m.Find([]byte(tt.text))
			switch {
			case tt.bad:
				if !errors.Is(err, ErrBadMatcher) {
					t.Fatalf("got %v, want ErrBadMatcher", err)
				}
				return
			case tt.forbidden:
				var fe *ForbiddenError
				if !errors.As(err, &fe) || !errors.Is(err, ErrForbiddenOutput) {
					t.Fatalf("got %v, want a *ForbiddenError", err)
				}
				if !equal(fe.Match, tt.want) {
					t.Fatalf("forbidden match: got %+v, want %+v", fe.Match, tt.want)
				}
				return
			case err != nil:
				t.Fatalf("unexpected error %v", err)
			case ok != tt.wantOK:
				t.Fatalf("ok: got %v, want %v (match %+v)", ok, tt.wantOK, got)
			case ok && !equal(got, tt.want):
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}

			// Fed one byte at a time, the incremental search finds the same match (with
			// offsets shifted by a base) as soon as it is complete.
			const base = 1000
			s := NewSearch(tt.m)
			for i := 1; i <= len(tt.text); i++ {
				m, ok, err := s.Next([]byte(tt.text[:i]), base)
				if err != nil {
					t.Fatalf("incremental at %d: %v", i, err)
				}
				if ok {
					w := tt.want
					w.Start, w.End = w.Start+base, w.End+base
					if !equal(m, w) {
						t.Fatalf("incremental at %d: got %+v, want %+v", i, m, w)
					}
					return
				}
			}
			if tt.wantOK {
				t.Fatalf("incremental: no match, want %+v", tt.want)
			}
		})
	}
}

func equal(a, b Match) bool {
	return a.Text == b.Text && slices.Equal(a.Groups, b.Groups) && a.Start == b.Start && a.End == b.End && a.Index == b.Index
}

func TestLineBounded(t *testing.T) {
	tests := []struct {
		re   string
		want bool
	}{
		{`OK (\{.*\})`, true},
		{`ERR \S+`, true},
		{`(?m)^refdev> $`, true},
		{`\bready\b`, true},
		{`^refdev`, false},
		{`\Aboot`, false},
		{`a\nb`, false},
		{`(?s)a.*b`, false},
		{`a\s+b`, false},
		{`[^"]+`, false},
		{`[a-z\n]`, false},
	}
	for _, tt := range tests {
		if got := lineBounded(tt.re); got != tt.want {
			t.Errorf("lineBounded(%q): got %v, want %v", tt.re, got, tt.want)
		}
	}
}

// A line-bounded regex resumes at the last line, and still matches what the full search
// would: the result must not depend on how the output was cut.
func TestRegexResumeEquivalence(t *testing.T) {
	text := "line one\nline two has ERR auth denied\nrefdev> "
	for _, re := range []string{`ERR (\w+)`, `(?m)^refdev> `, `two.*denied`, `\bauth\b`} {
		want, wantOK, _ := Regex(re).Find([]byte(text))
		for cut := range len(text) {
			s := NewSearch(Regex(re))
			m, ok, _ := s.Next([]byte(text[:cut]), 0)
			if !ok {
				m, ok, _ = s.Next([]byte(text), 0)
			}
			if ok != wantOK || (ok && !equal(m, want)) {
				// A match already complete at the cut is fine as long as it is a match
				// the full text also has at the same place.
				if full, fok, _ := Regex(re).Find([]byte(text[:cut])); !(fok && equal(full, m)) {
					t.Fatalf("%q cut at %d: got %+v %v, want %+v %v", re, cut, m, ok, want, wantOK)
				}
			}
		}
	}
}
