package catalog

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestValidateLabelFilter(t *testing.T) {
	tests := []struct {
		name   string
		filter string
		want   *FilterError // nil: valid
		is     []error
		msg    []string // substrings of the error message
	}{
		{name: "empty", filter: ""},
		{name: "one check", filter: "DI-01"},
		{name: "case-insensitive like Ginkgo", filter: "di-01 || CAP:dc"},
		{name: "capability and not destructive", filter: "cap:SU && !destructive:wipe"},
		{name: "requirements", filter: "8259A:SU-2 || EN303645:5.13-1a"},
		{name: "groups", filter: "(cap:SU || cap:DI) && !SU-09"},
		{name: "comma is or", filter: "DI-01, DI-02,DC-01"},
		{name: "regexp", filter: "/^SU-0[1-5]$/"},
		{name: "set containsAny", filter: "cap: containsAny {DI, DC}"},
		{name: "set without braces", filter: "8259A: containsAll SU-2 && !SU-01"},
		{name: "set isEmpty", filter: "destructive: isEmpty"},
		{name: "set isEmpty then more", filter: "destructive: isEmpty && cap:RT || cap:IN"},
		{
			name: "unknown check", filter: "DI-06",
			want: &FilterError{Unknown: []string{"DI-06"}, SelectsNothing: true},
			is:   []error{ErrUnknownLabel, ErrSelectsNothing},
			msg:  []string{`unknown label "DI-06"`, "selects no check"},
		},
		{
			name: "every unknown named", filter: "foo || DI-01 || (bar && !cap:XX)",
			want: &FilterError{Unknown: []string{"foo", "bar", "cap:XX"}},
			is:   []error{ErrUnknownLabel},
			msg:  []string{`unknown labels "foo", "bar", "cap:XX"`},
		},
		{
			name: "uncovered provision", filter: "EN303645:5.3-1 || DI-01",
			want: &FilterError{Unknown: []string{"EN303645:5.3-1"}},
			is:   []error{ErrUnknownLabel},
			msg:  []string{"ETSI EN 303 645 5.3-1: no check covers it"},
		},
		{
			name: "set value unknown", filter: "cap: containsAny {DI, XX}",
			want: &FilterError{Unknown: []string{"cap:XX"}},
			is:   []error{ErrUnknownLabel},
		},
		{
			name: "set key unknown", filter: "bogus: isEmpty",
			want: &FilterError{UnknownKeys: []string{"bogus"}},
			is:   []error{ErrUnknownLabel},
		},
		{
			name: "regexp matches nothing", filter: "/^ZZ-/ || DI-01",
			want: &FilterError{Unmatched: []string{"/^ZZ-/"}},
			is:   []error{ErrUnknownLabel},
			msg:  []string{"regexp /^ZZ-/ matches no label"},
		},
		{
			name: "known labels, empty selection", filter: "DI-01 && DC-01",
			want: &FilterError{SelectsNothing: true},
			is:   []error{ErrSelectsNothing},
		},
		{
			name: "consistsOf selects nothing", filter: "8259A: consistsOf {SU-2, DI-1}",
			want: &FilterError{SelectsNothing: true},
			is:   []error{ErrSelectsNothing},
		},
		{
			name: "a label with a space is one label", filter: "DI-01 DC-01",
			want: &FilterError{Unknown: []string{"DI-01 DC-01"}, SelectsNothing: true},
		},
		{name: "adjacent labels", filter: "DI-01 /SU/", is: []error{ErrFilterSyntax}, msg: []string{"syntax error at column 7"}},
		{name: "single ampersand", filter: "DI-01 & DC-01", is: []error{ErrFilterSyntax}},
		{name: "unbalanced", filter: "(DI-01", is: []error{ErrFilterSyntax}},
		{name: "set operation without key", filter: "cap containsAny DI", is: []error{ErrFilterSyntax}},
		{name: "invalid set operation", filter: "cap: has DI", is: []error{ErrFilterSyntax}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateLabelFilter(tc.filter)
			if tc.want == nil && len(tc.is) == 0 {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got nil, want an error")
			}
			fe, ok := errors.AsType[*FilterError](err)
			if !ok {
				t.Fatalf("got %T, want *FilterError", err)
			}
			if tc.want != nil {
				tc.want.Filter = tc.filter
				if !reflect.DeepEqual(fe, tc.want) {
					t.Errorf("got %+v, want %+v", fe, tc.want)
				}
			}
			for _, target := range tc.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
			for _, s := range tc.msg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("message %q lacks %q", err, s)
				}
			}
			if strings.ContainsAny(err.Error(), "\x1b\n") || strings.Contains(err.Error(), "{{") {
				t.Errorf("message %q is not one plain line", err)
			}
		})
	}
}

func TestFilterLiterals(t *testing.T) {
	tests := []struct {
		filter string
		want   []literal
	}{
		{"DI-01", []literal{{kind: literalLabel, text: "DI-01"}}},
		{" !cap:DI&&( 8259A:SU-2 ,EN303645:5.4-4 ) ", []literal{
			{kind: literalLabel, text: "cap:DI"},
			{kind: literalLabel, text: "8259A:SU-2"},
			{kind: literalLabel, text: "EN303645:5.4-4"},
		}},
		{"/^SU-/ || DI-01", []literal{{kind: literalRegexp, text: "^SU-"}, {kind: literalLabel, text: "DI-01"}}},
		{"cap: containsAny {DI, DC} && !SU-01", []literal{
			{kind: literalSet, key: "cap", values: []string{"DI", "DC"}},
			{kind: literalLabel, text: "SU-01"},
		}},
		{"8259A: isSubsetOf SU-2 || DI-01", []literal{
			{kind: literalSet, key: "8259A", values: []string{"SU-2"}},
			{kind: literalLabel, text: "DI-01"},
		}},
		{"destructive: isEmpty && (cap:RT)", []literal{
			{kind: literalSet, key: "destructive"},
			{kind: literalLabel, text: "cap:RT"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.filter, func(t *testing.T) {
			if got := filterLiterals(tc.filter); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestKnownLabels(t *testing.T) {
	known := KnownLabels()
	for _, lb := range []string{"DI-01", "CS-04", "cap:CSA", "cap:RT", "8259A:DP-2", "EN303645:5.13-1a",
		"destructive:wipe", "destructive:version_bump", "destructive:power_cut"} {
		if !known[lb] {
			t.Errorf("%q is not a known label", lb)
		}
	}
	for _, lb := range []string{"cap:CS", "EN303645:5.3-1", "destructive:"} {
		if known[lb] {
			t.Errorf("%q is a known label", lb)
		}
	}
	known["mutated"] = true
	if KnownLabels()["mutated"] {
		t.Error("KnownLabels returned the registry's own map")
	}
	// Every label of every check is known.
	for _, c := range Checks() {
		for _, lb := range Labels(c.ID) {
			if !known[lb] {
				t.Errorf("%s: label %q not in KnownLabels", c.ID, lb)
			}
		}
		if !slices.Contains(Labels(c.ID), c.ID) {
			t.Errorf("%s: labels lack the ID", c.ID)
		}
	}
}
