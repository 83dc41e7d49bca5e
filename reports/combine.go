package reports

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hilt-project/hilt/harness/catalog"
)

// Requirement verdicts besides the four check verdicts.
const (
	// RequirementNotCovered: no check of the catalog traces to the requirement.
	RequirementNotCovered = "not-covered"
	// RequirementNotRun: catalog checks trace to the requirement, but none of them ran in
	// this run (a label filter left them out).
	RequirementNotRun = "not-run"
)

// RequirementResult is the verdict of one NIST IR 8259A element or ETSI EN 303 645 provision.
type RequirementResult struct {
	ID      string `json:"id"` // prefixed: "8259A:SU-2", "EN303645:5.3-10"
	Title   string `json:"title"`
	Verdict string `json:"verdict"` // a Verdict, RequirementNotCovered or RequirementNotRun
	// Checks are the IDs of the checks that trace to the requirement, in catalog order: those
	// that ran, or for RequirementNotRun those of the catalog.
	Checks []string `json:"checks"`
}

// Combine returns the verdict of every requirement of the catalog (8259A elements, then
// EN 303 645 provisions), followed by any other requirement a check result names. A
// requirement's verdict is the worst of its checks' on every device: fail over error over
// pass; skip only when every one skipped.
func Combine(run *Run) []RequirementResult {
	type traced struct {
		verdicts []Verdict
		checks   []string
	}
	byReq := map[string]*traced{}
	var extra []string
	if run != nil {
		for _, d := range run.Devices {
			for _, c := range d.Checks {
				c = withDefaults(c)
				for _, r := range c.Requirements {
					t := byReq[r]
					if t == nil {
						t = &traced{}
						byReq[r] = t
						if _, ok := catalog.LookupRequirement(r); !ok {
							extra = append(extra, r)
						}
					}
					t.verdicts = append(t.verdicts, c.Verdict)
					if !slices.Contains(t.checks, c.ID) {
						t.checks = append(t.checks, c.ID)
					}
				}
			}
		}
	}
	covering := map[string][]string{} // requirement -> catalog checks tracing to it
	for _, c := range catalog.Checks() {
		for _, r := range c.Requirements() {
			covering[r] = append(covering[r], c.ID)
		}
	}
	slices.Sort(extra)
	reqs := catalog.Requirements()
	out := make([]RequirementResult, 0, len(reqs)+len(extra))
	result := func(id, title string) RequirementResult {
		rr := RequirementResult{ID: id, Title: title, Checks: []string{}}
		t := byReq[id]
		switch {
		case t != nil:
			rr.Verdict = string(worst(t.verdicts))
			rr.Checks = sortedIDs(t.checks)
		case len(covering[id]) > 0:
			rr.Verdict = RequirementNotRun
			rr.Checks = covering[id]
		default:
			rr.Verdict = RequirementNotCovered
		}
		return rr
	}
	for _, r := range reqs {
		out = append(out, result(r.Label(), r.Title))
	}
	for _, id := range extra {
		out = append(out, result(id, ""))
	}
	return out
}

// worst combines verdicts: fail over error over pass, skip only when all skipped. An unknown
// verdict counts as an error.
func worst(vs []Verdict) Verdict {
	rank := func(v Verdict) int {
		switch v {
		case Fail:
			return 3
		case Pass:
			return 1
		case Skip:
			return 0
		}
		return 2
	}
	out := Skip
	for _, v := range vs {
		if !v.Valid() {
			v = Error
		}
		if rank(v) > rank(out) {
			out = v
		}
	}
	return out
}

func sortedIDs(ids []string) []string {
	out := slices.Clone(ids)
	slices.SortFunc(out, func(a, b string) int {
		oa, ob := catalog.Order(a), catalog.Order(b)
		switch {
		case oa >= 0 && ob >= 0:
			return oa - ob
		case oa >= 0:
			return -1
		case ob >= 0:
			return 1
		}
		return strings.Compare(a, b)
	})
	return out
}

// Exit codes of a run.
const (
	// ExitPass: every check that applies passed (skips allowed) and nothing errored.
	ExitPass = 0
	// ExitFail: a device failed a check, and nothing errored.
	ExitFail = 1
	// ExitError: a harness or infrastructure error, an interrupted run, or no check verified
	// anything.
	ExitError = 2
)

// ExitCode returns the exit code of a run: ExitPass, ExitFail or ExitError.
func ExitCode(run *Run) int {
	code, _ := exitStatus(run)
	return code
}

// exitStatus returns the exit code and the sentence that explains it.
func exitStatus(run *Run) (int, string) {
	if run == nil {
		return ExitError, "no run to report"
	}
	var causes []string
	if run.Interrupted {
		causes = append(causes, "the run was interrupted")
	}
	if n := len(run.Errors); n > 0 {
		causes = append(causes, count(n, "harness error", "harness errors"))
	}
	deviceErrors := 0
	for _, d := range run.Devices {
		if d.Error != "" {
			deviceErrors++
		}
	}
	if deviceErrors > 0 {
		causes = append(causes, count(deviceErrors, "device could not be tested", "devices could not be tested"))
	}
	vc := countRun(run)
	if vc.Error > 0 {
		causes = append(causes, count(vc.Error, "check errored", "checks errored"))
	}
	switch {
	case vc.total() == 0:
		causes = append(causes, "no check ran")
	case vc.Pass+vc.Fail == 0:
		causes = append(causes, "every check was skipped, so nothing was verified")
	}
	if len(causes) > 0 {
		return ExitError, fmt.Sprintf("exit %d: %s.", ExitError, strings.Join(causes, "; "))
	}
	if vc.Fail > 0 {
		failedOn := 0
		for _, d := range run.Devices {
			if countDevice(d).Fail > 0 {
				failedOn++
			}
		}
		return ExitFail, fmt.Sprintf("exit %d: %s on %s.", ExitFail,
			count(vc.Fail, "check failed", "checks failed"), count(failedOn, "device", "devices"))
	}
	return ExitPass, fmt.Sprintf("exit %d: every check that applies passed (%d passed, %d skipped).",
		ExitPass, vc.Pass, vc.Skip)
}

func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
