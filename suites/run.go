package suites

import (
	"context"
	"fmt"
	"io"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/hilt-project/hilt/harness/catalog"
	"github.com/hilt-project/hilt/reports"
)

// Config selects and orders what Run runs.
type Config struct {
	LabelFilter string
	Seed        int64
	// Progress receives one line per finished check: "<device> <ID> <verdict> <seconds>".
	Progress io.Writer
}

type failer struct{ failed bool }

func (f *failer) Fail() { f.failed = true }

// Run builds the specs of every capability for env's device and runs them. It can be
// called once per process (Ginkgo runs one suite per process).
func Run(ctx context.Context, env *Env, cfg Config) ([]reports.CheckResult, error) {
	var results []reports.CheckResult
	Describe(env.S.Name, func() {
		env.identity()
		env.configuration()
		env.dataProtection()
		env.interfaces()
		env.update()
		env.stateAwareness()
		env.retirement()
		env.information()
	})
	ReportAfterEach(func(r SpecReport) {
		if r.State == types.SpecStateSkipped && r.Failure.Message == "" {
			return // not selected by the label filter: not part of this run
		}
		cr := env.convert(r)
		env.ended(cr.ID, cr.Verdict)
		results = append(results, cr)
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "%s %s %s %.2f\n", env.S.Name, cr.ID, cr.Verdict, r.RunTime.Seconds())
		}
	})
	sc, rc := GinkgoConfiguration()
	sc.LabelFilter = cfg.LabelFilter
	sc.RandomSeed = cfg.Seed
	sc.RandomizeAllSpecs = false
	sc.Timeout = 0
	rc.NoColor = true
	rc.Succinct = true
	f := &failer{}
	RunSpecs(f, "hilt baseline: "+env.S.Name, sc, rc)
	return env.redactAll(results), nil
}

// convert turns a Ginkgo spec report into a check result.
func (e *Env) convert(r SpecReport) reports.CheckResult {
	id, _, _ := strings.Cut(r.LeafNodeText, " ")
	chk, _ := catalog.Lookup(id)
	cr := reports.CheckResult{
		ID: id, Title: chk.Title, Capability: chk.Capability, Device: e.S.Name,
		Requirements: chk.Requirements(), Duration: r.RunTime,
	}
	var notes []string
	isError := false
	for _, en := range r.ReportEntries {
		v := en.StringRepresentation()
		switch en.Name {
		case EntryVerdict:
			isError = isError || v == "error"
		case EntryEvidence:
			path, what, _ := strings.Cut(v, "\t")
			cr.Evidence = append(cr.Evidence, reports.Evidence{Path: path, Description: what, Kind: kindOf(path)})
		case EntryRepro:
			cr.Repro = v
		case EntryNote:
			notes = append(notes, v)
		}
	}
	msg := r.Failure.Message
	switch r.State {
	case types.SpecStatePassed:
		cr.Verdict = reports.Pass
	case types.SpecStateSkipped, types.SpecStatePending:
		cr.Verdict, cr.Reason = reports.Skip, msg
		if cr.Reason == "" {
			cr.Reason = "not selected"
		}
	case types.SpecStateFailed:
		cr.Verdict, cr.Reason = reports.Fail, msg
		if isError {
			cr.Verdict = reports.Error
		}
	default: // panicked, interrupted, aborted, timed out: the harness did not finish the check
		cr.Verdict = reports.Error
		cr.Reason = fmt.Sprintf("%s: %s", r.State, msg)
		if r.State == types.SpecStatePanicked {
			cr.Reason += "\n" + r.Failure.Location.FullStackTrace
		}
	}
	for _, af := range r.AdditionalFailures {
		cr.Reason += "\nthen, in cleanup: " + af.Failure.Message
	}
	out := strings.Join(notes, "\n")
	if r.CapturedGinkgoWriterOutput != "" {
		out += "\n" + r.CapturedGinkgoWriterOutput
	}
	cr.Output = strings.TrimSpace(out)
	return cr
}

func kindOf(path string) string {
	switch {
	case strings.HasSuffix(path, ".pcapng"):
		return "capture"
	case strings.HasSuffix(path, ".jsonl"):
		return "mqtt"
	case strings.HasSuffix(path, ".txt"):
		return "transcript"
	}
	return "file"
}

// redactAll removes every known secret from the text of the results.
func (e *Env) redactAll(rs []reports.CheckResult) []reports.CheckResult {
	for i := range rs {
		rs[i].Reason = e.redact(rs[i].Reason)
		rs[i].Output = e.redact(rs[i].Output)
		rs[i].Repro = e.redact(rs[i].Repro)
	}
	return rs
}

func (e *Env) redact(s string) string {
	for _, sec := range e.allSecrets() {
		s = strings.ReplaceAll(s, sec, "[redacted]")
	}
	return s
}

func (e *Env) allSecrets() []string {
	out := []string{}
	add := func(s string) {
		if len(s) >= 4 {
			out = append(out, s)
		}
	}
	for _, s := range e.Secrets {
		add(s)
	}
	for _, in := range e.S.Profile.Instances {
		add(in.Admin.Pass)
		add(in.MQTT.Pass)
	}
	add(e.S.Profile.Broker.Password)
	return out
}
