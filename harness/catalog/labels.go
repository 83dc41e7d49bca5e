package catalog

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/onsi/ginkgo/v2/types"
)

// Label keys: a check carries "cap:DI", "8259A:DI-1", "EN303645:5.4-4" and, when it changes a
// unit for good, "destructive:wipe" (docs/LABELS.md).
const (
	LabelKeyCapability  = "cap"
	LabelKeyNIST        = "8259A"
	LabelKeyETSI        = "EN303645"
	LabelKeyDestructive = "destructive"
)

// Labels returns the Ginkgo labels of the check id: the ID itself, its capability, its
// 8259A elements, its EN 303 645 provisions and its destructive kind, in that order. It returns
// nil when id is not a catalog check.
func Labels(id string) []string {
	i, ok := checkIndex[id]
	if !ok {
		return nil
	}
	return labelsOf(checks[i])
}

func labelsOf(c Check) []string {
	out := []string{c.ID, LabelKeyCapability + ":" + c.Capability}
	out = append(out, c.Requirements()...)
	if c.Destructive != "" {
		out = append(out, LabelKeyDestructive+":"+c.Destructive)
	}
	return out
}

// KnownLabels returns every label that some check carries. The map is the caller's.
func KnownLabels() map[string]bool {
	m := make(map[string]bool)
	for _, c := range checks {
		for _, lb := range labelsOf(c) {
			m[lb] = true
		}
	}
	return m
}

// Errors a label filter is rejected with; a *FilterError wraps the ones that apply.
var (
	ErrFilterSyntax   = errors.New("label filter syntax error")
	ErrUnknownLabel   = errors.New("label filter names a label no check carries")
	ErrSelectsNothing = errors.New("label filter selects no check")
)

// FilterError says everything that is wrong with a label filter at once.
type FilterError struct {
	Filter string
	// Syntax is Ginkgo's parse error; when set, the other fields are empty.
	Syntax error
	// Unknown are label literals (and set-operation values, as "key:value") that no check
	// carries, in the order they appear.
	Unknown []string
	// UnknownKeys are set-operation keys ("foo: isEmpty") that no label has.
	UnknownKeys []string
	// Unmatched are regular expressions, between slashes, that match no label.
	Unmatched []string
	// SelectsNothing is true when the filter selects no check of the catalog.
	SelectsNothing bool
}

// Error implements error.
func (e *FilterError) Error() string {
	if e.Syntax != nil {
		return fmt.Sprintf("label filter %q: %s", e.Filter, syntaxMessage(e.Syntax))
	}
	var parts []string
	if len(e.Unknown) > 0 {
		quoted := make([]string, len(e.Unknown))
		for i, u := range e.Unknown {
			quoted[i] = fmt.Sprintf("%q", u)
			if r, ok := lookupRequirementFold(u); ok {
				quoted[i] += fmt.Sprintf(" (%s %s: no check covers it)", r.Standard, r.ID)
			}
		}
		parts = append(parts, plural(len(quoted), "unknown label ", "unknown labels ")+strings.Join(quoted, ", "))
	}
	if len(e.UnknownKeys) > 0 {
		parts = append(parts, plural(len(e.UnknownKeys), "unknown label key ", "unknown label keys ")+quoteAll(e.UnknownKeys))
	}
	if len(e.Unmatched) > 0 {
		parts = append(parts, plural(len(e.Unmatched), "regexp ", "regexps ")+strings.Join(e.Unmatched, ", ")+
			plural(len(e.Unmatched), " matches no label", " match no label"))
	}
	if e.SelectsNothing {
		parts = append(parts, "selects no check")
	}
	return fmt.Sprintf("label filter %q: %s (see docs/LABELS.md)", e.Filter, strings.Join(parts, "; "))
}

// Unwrap returns the sentinel errors that apply (ErrFilterSyntax, ErrUnknownLabel,
// ErrSelectsNothing) and Ginkgo's own syntax error.
func (e *FilterError) Unwrap() []error {
	var out []error
	if e.Syntax != nil {
		out = append(out, ErrFilterSyntax, e.Syntax)
	}
	if len(e.Unknown)+len(e.UnknownKeys)+len(e.Unmatched) > 0 {
		out = append(out, ErrUnknownLabel)
	}
	if e.SelectsNothing {
		out = append(out, ErrSelectsNothing)
	}
	return out
}

// ValidateLabelFilter checks a Ginkgo label filter (`--label-filter`) against the registry.
// It parses the filter with Ginkgo's own parser, then rejects a filter that names a label no
// check carries (labels match case-insensitively, as in Ginkgo), a set key or value no label
// has, a regular expression that matches no label, or that selects no check at all. The
// empty filter selects everything and is valid. The error is a *FilterError.
func ValidateLabelFilter(expr string) error {
	filter, err := types.ParseLabelFilter(expr)
	if err != nil {
		return &FilterError{Filter: expr, Syntax: err}
	}
	fe := &FilterError{Filter: expr}
	known := map[string]bool{}            // lower-cased labels
	keyed := map[string]map[string]bool{} // lower-cased key -> lower-cased values
	for lb := range KnownLabels() {
		lower := strings.ToLower(lb)
		known[lower] = true
		if k, v, ok := strings.Cut(lower, ":"); ok {
			if keyed[k] == nil {
				keyed[k] = map[string]bool{}
			}
			keyed[k][v] = true
		}
	}
	for _, lit := range filterLiterals(expr) {
		switch lit.kind {
		case literalLabel:
			if !known[strings.ToLower(lit.text)] {
				fe.Unknown = append(fe.Unknown, lit.text)
			}
		case literalRegexp:
			if !regexpMatchesAny(lit.text) {
				fe.Unmatched = append(fe.Unmatched, "/"+lit.text+"/")
			}
		case literalSet:
			values, ok := keyed[strings.ToLower(lit.key)]
			if !ok {
				fe.UnknownKeys = append(fe.UnknownKeys, lit.key)
				continue
			}
			for _, v := range lit.values {
				if !values[strings.ToLower(v)] {
					fe.Unknown = append(fe.Unknown, lit.key+":"+v)
				}
			}
		}
	}
	fe.SelectsNothing = true
	for _, c := range checks {
		if filter(labelsOf(c)) {
			fe.SelectsNothing = false
			break
		}
	}
	if len(fe.Unknown)+len(fe.UnknownKeys)+len(fe.Unmatched) == 0 && !fe.SelectsNothing {
		return nil
	}
	return fe
}

func regexpMatchesAny(expr string) bool {
	re, err := regexp.Compile(expr)
	if err != nil { // Ginkgo's parser has compiled it already
		return false
	}
	for lb := range KnownLabels() {
		if re.MatchString(lb) {
			return true
		}
	}
	return false
}

func lookupRequirementFold(label string) (Requirement, bool) {
	for _, r := range Requirements() {
		if strings.EqualFold(r.Label(), label) {
			return r, true
		}
	}
	return Requirement{}, false
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// syntaxMessage turns Ginkgo's coloured, multi-line parse error into one line:
// "syntax error at column 7: Found two adjacent labels. ...".
func syntaxMessage(err error) string {
	var ge types.GinkgoError
	if !errors.As(err, &ge) {
		return "syntax error: " + err.Error()
	}
	const mark = "{{red}}{{bold}}{{underline}}"
	msg := ge.Message
	desc := msg
	if i := strings.LastIndex(msg, "\n"); i >= 0 {
		desc = msg[i+1:]
	}
	if i := strings.Index(msg, mark); i >= 0 {
		return fmt.Sprintf("syntax error at column %d: %s", len([]rune(msg[:i]))+1, desc)
	}
	return "syntax error: " + desc
}

type literalKind int

const (
	literalLabel  literalKind = iota // a label: DI-01, cap:DI
	literalRegexp                    // /regexp/, text without the slashes
	literalSet                       // key: op {values}
)

type literal struct {
	kind   literalKind
	text   string   // label or regexp
	key    string   // set key
	values []string // set argument values; none for isEmpty
}

// filterLiterals returns the labels, regexps and set operations a label filter names. It
// follows the tokenizer of Ginkgo v2's types/label_filter.go (operators && || ! , ( ), /regexp/,
// labels that may contain ':', and set operations "key: op arg" where arg is {v1, v2} or runs
// to the next operator) and expects a filter that types.ParseLabelFilter accepted.
func filterLiterals(input string) []literal {
	s := &scanner{runes: []rune(input)}
	var out []literal
	for {
		s.skipSpaces()
		r, ok := s.peek()
		if !ok {
			return out
		}
		switch r {
		case '&', '|':
			s.i += 2
		case '!', ',', '(', ')':
			s.i++
		case '/':
			s.i++
			re := s.until("/")
			s.i++
			out = append(out, literal{kind: literalRegexp, text: re})
		default:
			value := s.until("&|!,()/:")
			if r, _ := s.peek(); r == ':' {
				if s.peekAt(1) == ' ' {
					s.i++
					out = append(out, s.setOperation(strings.TrimSpace(value)))
					continue
				}
				value += s.until("&|!,()/")
			}
			out = append(out, literal{kind: literalLabel, text: strings.TrimSpace(value)})
		}
	}
}

type scanner struct {
	runes []rune
	i     int
}

func (s *scanner) peek() (rune, bool) {
	if s.i >= len(s.runes) {
		return 0, false
	}
	return s.runes[s.i], true
}

func (s *scanner) peekAt(n int) rune {
	if s.i+n >= len(s.runes) {
		return 0
	}
	return s.runes[s.i+n]
}

func (s *scanner) skipSpaces() {
	for s.i < len(s.runes) && s.runes[s.i] == ' ' {
		s.i++
	}
}

// until consumes and returns the runes up to the first one in cutset, or to the end.
func (s *scanner) until(cutset string) string {
	j := s.i
	for j < len(s.runes) && !strings.ContainsRune(cutset, s.runes[j]) {
		j++
	}
	out := string(s.runes[s.i:j])
	s.i = j
	return out
}

// setOperation reads "op arg" after the set key and its ':'.
func (s *scanner) setOperation(key string) literal {
	s.skipSpaces()
	op := s.until(" )")
	lit := literal{kind: literalSet, key: key}
	if strings.EqualFold(op, "isEmpty") {
		return lit
	}
	s.skipSpaces()
	var arg string
	if r, _ := s.peek(); r == '{' {
		s.i++
		arg = s.until("}")
		s.i++
	} else {
		arg = s.until("&|!,()/")
	}
	for v := range strings.SplitSeq(arg, ",") {
		lit.values = append(lit.values, strings.TrimSpace(v))
	}
	return lit
}
