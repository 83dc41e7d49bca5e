package reports

import (
	"slices"
	"testing"

	"github.com/hilt-project/hilt/harness/catalog"
)

func device(name string, checks ...CheckResult) DeviceResult {
	return DeviceResult{Name: name, Checks: checks}
}

func check(id string, v Verdict) CheckResult { return CheckResult{ID: id, Verdict: v} }

func TestCombine(t *testing.T) {
	type want struct {
		verdict string
		checks  []string
	}
	tests := []struct {
		name string
		run  *Run
		want map[string]want // requirement -> verdict and checks
	}{
		{
			name: "nothing ran",
			run:  &Run{},
			want: map[string]want{
				"8259A:DI-1":       {RequirementNotRun, []string{"DI-01", "DI-02", "DI-03", "DI-05"}},
				"EN303645:5.3-1":   {RequirementNotCovered, []string{}},
				"EN303645:5.13-1a": {RequirementNotRun, []string{"DC-04"}},
				"EN303645:6-5":     {RequirementNotCovered, []string{}},
				"8259A:CSA-5":      {RequirementNotRun, []string{"CS-02"}},
				"EN303645:5.11-1":  {RequirementNotRun, []string{"RT-01", "RT-02", "RT-03"}},
				"EN303645:5.3-10":  {RequirementNotRun, []string{"SU-02", "SU-03", "IN-04"}},
				"8259A:DP-2":       {RequirementNotRun, []string{"RT-01", "RT-02", "RT-03"}},
				"EN303645:5.6-4":   {RequirementNotRun, []string{"LA-02"}},
				"8259A:SU-6":       {RequirementNotRun, []string{"SU-08"}},
				"EN303645:5.9-2":   {RequirementNotRun, []string{"SU-09"}},
				"EN303645:5.2-3":   {RequirementNotRun, []string{"IN-01"}},
				"8259A:LA-3":       {RequirementNotRun, []string{"LA-05"}},
				"EN303645:5.4-4":   {RequirementNotRun, []string{"DI-01", "DI-02", "DI-05"}},
				"EN303645:5.5-4":   {RequirementNotRun, []string{"DC-02", "LA-03"}},
				"8259A:DC-2":       {RequirementNotRun, []string{"DC-02", "RT-04"}},
				"EN303645:5.7-2":   {RequirementNotRun, []string{"CS-01", "CS-04"}},
				"EN303645:5.3-13":  {RequirementNotRun, []string{"IN-02"}},
				"EN303645:5.1-1":   {RequirementNotRun, []string{"LA-04"}},
				"EN303645:5.10-1":  {RequirementNotCovered, []string{}},
				"8259A:SU-1":       {RequirementNotRun, []string{"SU-01", "SU-09"}},
				"EN303645:5.3-6":   {RequirementNotRun, []string{"SU-08"}},
				"8259A:DI-2":       {RequirementNotRun, []string{"DI-04"}},
				"EN303645:5.12-3":  {RequirementNotCovered, []string{}},
				"EN303645:5.5-1":   {RequirementNotRun, []string{"DP-01", "DP-02", "DP-04"}},
				"8259A:CSA-3":      {RequirementNotRun, []string{"CS-03"}},
				"EN303645:5.4-1":   {RequirementNotRun, []string{"DP-03"}},
				"EN303645:5.6-1":   {RequirementNotRun, []string{"LA-01", "LA-02"}},
				"EN303645:5.1-5":   {RequirementNotRun, []string{"LA-05"}},
				"EN303645:5.2-1":   {RequirementNotRun, []string{"IN-03"}},
				"EN303645:5.7-1":   {RequirementNotRun, []string{"SU-04"}},
				"EN303645:5.3-2":   {RequirementNotRun, []string{"SU-01", "SU-04", "SU-05", "SU-06", "SU-07"}},
				"8259A:SU-3":       {RequirementNotRun, []string{"SU-05", "SU-10"}},
				"EN303645:5.1-2":   {RequirementNotRun, []string{"LA-04"}},
				"8259A:CSA-4":      {RequirementNotRun, []string{"CS-03"}},
				"8259A:DP-3":       {RequirementNotRun, []string{"DP-04"}},
				"EN303645:5.5-5":   {RequirementNotCovered, []string{}},
				"8259A:LA-2":       {RequirementNotRun, []string{"LA-03", "LA-04"}},
				"8259A:DI-3":       {}, // not an 8259A element: absent
			},
		},
		{
			name: "one pass",
			run:  &Run{Devices: []DeviceResult{device("a", check("DI-04", Pass))}},
			want: map[string]want{"8259A:DI-2": {"pass", []string{"DI-04"}}},
		},
		{
			name: "fail on one device, pass on the other",
			run: &Run{Devices: []DeviceResult{
				device("a", check("DI-01", Pass), check("DI-02", Pass)),
				device("b", check("DI-02", Fail), check("DI-01", Pass)),
			}},
			want: map[string]want{"8259A:DI-1": {"fail", []string{"DI-01", "DI-02"}}},
		},
		{
			name: "error over pass",
			run:  &Run{Devices: []DeviceResult{device("a", check("SU-02", Pass), check("SU-03", Error))}},
			want: map[string]want{"EN303645:5.3-10": {"error", []string{"SU-02", "SU-03"}}},
		},
		{
			name: "fail over error",
			run:  &Run{Devices: []DeviceResult{device("a", check("SU-03", Error), check("IN-04", Fail))}},
			want: map[string]want{"EN303645:5.3-10": {"fail", []string{"SU-03", "IN-04"}}},
		},
		{
			name: "skip only when every check skipped",
			run: &Run{Devices: []DeviceResult{
				device("a", check("RT-01", Skip), check("RT-02", Skip), check("SU-09", Skip), check("SU-01", Pass)),
			}},
			want: map[string]want{
				"EN303645:5.11-1": {"skip", []string{"RT-01", "RT-02"}},
				"8259A:SU-1":      {"pass", []string{"SU-01", "SU-09"}},
				"EN303645:5.9-2":  {"skip", []string{"SU-09"}},
			},
		},
		{
			name: "an invalid verdict counts as an error",
			run:  &Run{Devices: []DeviceResult{device("a", check("IN-03", Verdict("passed")))}},
			want: map[string]want{"EN303645:5.2-1": {"error", []string{"IN-03"}}},
		},
		{
			name: "requirements carried by the result win over the catalog",
			run: &Run{Devices: []DeviceResult{device("a", CheckResult{
				ID: "IN-03", Verdict: Pass, Requirements: []string{"EN303645:5.2-2"},
			})}},
			want: map[string]want{
				"EN303645:5.2-2": {"pass", []string{"IN-03"}},
				"EN303645:5.2-1": {RequirementNotRun, []string{"IN-03"}},
			},
		},
		{
			name: "unknown requirements and checks are kept",
			run: &Run{Devices: []DeviceResult{device("a", CheckResult{
				ID: "XX-01", Verdict: Fail, Requirements: []string{"ACME:1"},
			})}},
			want: map[string]want{"ACME:1": {"fail", []string{"XX-01"}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]RequirementResult{}
			results := Combine(tc.run)
			for _, r := range results {
				got[r.ID] = r
			}
			for id, w := range tc.want {
				r, ok := got[id]
				if w.verdict == "" {
					if ok {
						t.Errorf("%q: got %+v, want no entry", id, r)
					}
					continue
				}
				if !ok {
					t.Errorf("%s: missing", id)
					continue
				}
				if r.Verdict != w.verdict || !slices.Equal(r.Checks, w.checks) {
					t.Errorf("%s: got %s %q, want %s %q", id, r.Verdict, r.Checks, w.verdict, w.checks)
				}
			}
			// Every catalog requirement is there, in catalog order, 8259A first.
			reqs := catalog.Requirements()
			if len(results) < len(reqs) {
				t.Fatalf("got %d requirements, want at least %d", len(results), len(reqs))
			}
			for i, r := range reqs {
				if results[i].ID != r.Label() || results[i].Title != r.Title {
					t.Errorf("requirement %d: got %s %q, want %s %q", i, results[i].ID, results[i].Title, r.Label(), r.Title)
				}
			}
		})
	}
}

func TestCombineNilRun(t *testing.T) {
	if got, want := len(Combine(nil)), len(catalog.Requirements()); got != want {
		t.Errorf("got %d requirements, want %d", got, want)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		name string
		run  *Run
		want int
	}{
		{"nil run", nil, ExitError},
		{"no device", &Run{}, ExitError},
		{"no check", &Run{Devices: []DeviceResult{device("a")}}, ExitError},
		{"all pass", &Run{Devices: []DeviceResult{device("a", check("DI-01", Pass), check("DI-02", Pass))}}, ExitPass},
		{"pass and skip", passingRun(), ExitPass},
		{"every check skipped", &Run{Devices: []DeviceResult{device("a", check("DI-02", Skip))}}, ExitError},
		{"a fail", &Run{Devices: []DeviceResult{
			device("a", check("DI-01", Pass)),
			device("b", check("DI-01", Fail), check("DI-02", Skip)),
		}}, ExitFail},
		{"fail and error", &Run{Devices: []DeviceResult{device("a", check("DI-01", Fail), check("DI-02", Error))}}, ExitError},
		{"an error", &Run{Devices: []DeviceResult{device("a", check("DI-01", Pass), check("DI-02", Error))}}, ExitError},
		{"invalid verdict", &Run{Devices: []DeviceResult{device("a", check("DI-01", Pass), check("DI-02", ""))}}, ExitError},
		{"interrupted", func() *Run { r := passingRun(); r.Interrupted = true; return r }(), ExitError},
		{"harness error", func() *Run { r := passingRun(); r.Errors = []string{"broker down"}; return r }(), ExitError},
		{"device error", func() *Run {
			r := passingRun()
			r.Devices = append(r.Devices, DeviceResult{Name: "b", Error: "no boot"})
			return r
		}(), ExitError},
		{"fixture", fixtureRun(), ExitError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ExitCode(tc.run); got != tc.want {
				_, why := exitStatus(tc.run)
				t.Errorf("got %d (%s), want %d", got, why, tc.want)
			}
		})
	}
}

func TestExitSentence(t *testing.T) {
	tests := []struct {
		name string
		run  *Run
		want string
	}{
		{"pass", passingRun(), "exit 0: every check that applies passed (1 passed, 1 skipped)."},
		{"fail", &Run{Devices: []DeviceResult{device("a", check("DI-01", Fail), check("DI-02", Fail))}},
			"exit 1: 2 checks failed on 1 device."},
		{"fixture", fixtureRun(), "exit 2: 1 harness error; 1 device could not be tested; 1 check errored."},
		{"nothing", &Run{Interrupted: true}, "exit 2: the run was interrupted; no check ran."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, got := exitStatus(tc.run); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
