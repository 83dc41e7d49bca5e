package reports

import (
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// The compliance.json document (docs/REPORTS.md).
type (
	complianceDoc struct {
		SchemaVersion int                 `json:"schema_version"`
		Run           runDoc              `json:"run"`
		Devices       []deviceDoc         `json:"devices"`
		Checks        []checkDoc          `json:"checks"`
		Requirements  []RequirementResult `json:"requirements"`
		Summary       summaryDoc          `json:"summary"`
	}
	runDoc struct {
		HiltVersion   string     `json:"hilt_version"`
		GitCommit     string     `json:"git_commit"`
		Profile       string     `json:"profile"`
		ProfileDigest string     `json:"profile_digest"`
		Start         *time.Time `json:"start"`
		End           *time.Time `json:"end"`
		DurationMS    int64      `json:"duration_ms"`
		Seed          int64      `json:"seed"`
		Broker        string     `json:"broker"`
		LabelFilter   string     `json:"label_filter"`
		Flaws         []string   `json:"flaws"`
		Interrupted   bool       `json:"interrupted"`
		Errors        []string   `json:"errors"`
	}
	deviceDoc struct {
		Name            string            `json:"name"`
		ID              string            `json:"id"`
		FirmwareVersion string            `json:"firmware_version"`
		Backend         string            `json:"backend"`
		BootToReadyMS   int64             `json:"boot_to_ready_ms"`
		Properties      map[string]string `json:"properties"`
		Error           string            `json:"error"`
		Verdicts        verdictCounts     `json:"verdicts"`
	}
	checkDoc struct {
		ID           string        `json:"id"`
		Title        string        `json:"title"`
		Capability   string        `json:"capability"`
		Device       string        `json:"device"`
		Verdict      Verdict       `json:"verdict"`
		Reason       string        `json:"reason"`
		Requirements []string      `json:"requirements"`
		Evidence     []evidenceDoc `json:"evidence"`
		DurationMS   int64         `json:"duration_ms"`
		Repro        string        `json:"repro"`
	}
	evidenceDoc struct {
		Path        string `json:"path"`
		SHA256      string `json:"sha256"`
		Kind        string `json:"kind"`
		Description string `json:"description"`
	}
	summaryDoc struct {
		Devices      int            `json:"devices"`
		Checks       int            `json:"checks"`
		Verdicts     verdictCounts  `json:"verdicts"`
		Requirements map[string]int `json:"requirements"`
		ExitCode     int            `json:"exit_code"`
		Exit         string         `json:"exit"`
	}
)

// WriteComplianceJSON writes compliance.json: the run's provenance, its devices, every check
// result (devices by name, checks in catalog order), every requirement's combined verdict
// and a summary with the counts and the exit code.
func WriteComplianceJSON(w io.Writer, run *Run) error {
	if err := checkSchema(run); err != nil {
		return err
	}
	code, exit := exitStatus(run)
	doc := complianceDoc{
		SchemaVersion: SchemaVersion,
		Run: runDoc{
			HiltVersion:   run.HiltVersion,
			GitCommit:     run.GitCommit,
			Profile:       run.ProfilePath,
			ProfileDigest: run.ProfileDigest,
			Start:         timePtr(run.Start),
			End:           timePtr(run.End),
			DurationMS:    runDuration(run).Milliseconds(),
			Seed:          run.Seed,
			Broker:        run.Broker,
			LabelFilter:   run.LabelFilter,
			Flaws:         nonNil(run.Flaws),
			Interrupted:   run.Interrupted,
			Errors:        nonNil(run.Errors),
		},
		Devices:      []deviceDoc{},
		Checks:       []checkDoc{},
		Requirements: Combine(run),
		Summary: summaryDoc{
			Devices:      len(run.Devices),
			Verdicts:     countRun(run),
			Requirements: map[string]int{},
			ExitCode:     code,
			Exit:         exit,
		},
	}
	doc.Summary.Checks = doc.Summary.Verdicts.total()
	for _, v := range []string{string(Pass), string(Fail), string(Skip), string(Error),
		RequirementNotRun, RequirementNotCovered} {
		doc.Summary.Requirements[v] = 0
	}
	for _, r := range doc.Requirements {
		doc.Summary.Requirements[r.Verdict]++
	}
	for _, d := range sortedDevices(run) {
		props := d.Properties
		if props == nil {
			props = map[string]string{}
		}
		doc.Devices = append(doc.Devices, deviceDoc{
			Name: d.Name, ID: d.ID, FirmwareVersion: d.FirmwareVersion, Backend: d.Backend,
			BootToReadyMS: d.BootToReady.Milliseconds(), Properties: props, Error: d.Error,
			Verdicts: countDevice(d),
		})
		for _, c := range sortedChecks(d) {
			c = withDefaults(c)
			cd := checkDoc{
				ID: c.ID, Title: c.Title, Capability: c.Capability, Device: d.Name,
				Verdict: c.Verdict, Reason: c.Reason, Requirements: nonNil(c.Requirements),
				Evidence: []evidenceDoc{}, DurationMS: c.Duration.Milliseconds(), Repro: c.Repro,
			}
			for _, e := range c.Evidence {
				cd.Evidence = append(cd.Evidence, evidenceDoc(e))
			}
			doc.Checks = append(doc.Checks, cd)
		}
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write compliance.json: %w", err)
	}
	return nil
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func runDuration(run *Run) time.Duration {
	if run.Start.IsZero() || run.End.Before(run.Start) {
		return 0
	}
	return run.End.Sub(run.Start)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
