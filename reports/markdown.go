package reports

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/hilt-project/hilt/harness/catalog"
)

// WriteComplianceMarkdown writes compliance.md, the report for people: the run's provenance,
// the counts per verdict and the exit status, per device a table of verdicts per capability
// and the list of its checks, the requirement tables (NIST IR 8259A, then ETSI EN 303 645,
// with "not covered" spelled out), and every failure and error with its reason, evidence
// links and the command that reproduces it.
func WriteComplianceMarkdown(w io.Writer, run *Run) error {
	if err := checkSchema(run); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }

	p("# hilt compliance report\n\n")
	p("| | |\n|---|---|\n")
	p("| hilt | %s |\n", mdCell(joinNonEmpty(run.HiltVersion, commitNote(run.GitCommit))))
	p("| profile | %s |\n", mdCell(joinNonEmpty(run.ProfilePath, digestNote(run.ProfileDigest))))
	if !run.Start.IsZero() {
		p("| started | %s |\n", run.Start.UTC().Format(time.RFC3339))
	}
	if !run.End.IsZero() {
		p("| ended | %s (%s) |\n", run.End.UTC().Format(time.RFC3339), runDuration(run).Round(time.Second))
	}
	p("| seed | %d |\n", run.Seed)
	if run.Broker != "" {
		p("| broker | %s |\n", mdCell(run.Broker))
	}
	if run.LabelFilter != "" {
		p("| label filter | %s |\n", mdCode(run.LabelFilter))
	} else {
		p("| label filter | (none: every check) |\n")
	}
	if len(run.Flaws) > 0 {
		p("| flaws (command line) | %s |\n", mdCell(strings.Join(run.Flaws, ", ")))
	}
	if run.Interrupted {
		p("| interrupted | **yes**: some checks did not finish |\n")
	}

	_, exit := exitStatus(run)
	vc := countRun(run)
	p("\n**Result: %s**\n\n", mdCell(exit))
	p("## Summary\n\n")
	p("%d devices, %d check results.\n\n", len(run.Devices), vc.total())
	p("| verdict | checks |\n|---|---:|\n")
	p("| pass | %d |\n| fail | %d |\n| skip | %d |\n| error | %d |\n\n", vc.Pass, vc.Fail, vc.Skip, vc.Error)

	reqs := Combine(run)
	reqCounts := map[string]int{}
	for _, r := range reqs {
		reqCounts[r.Verdict]++
	}
	p("| requirement verdict | requirements |\n|---|---:|\n")
	for _, v := range []string{"pass", "fail", "error", "skip", RequirementNotRun, RequirementNotCovered} {
		p("| %s | %d |\n", verdictWords(v), reqCounts[v])
	}

	if len(run.Errors) > 0 {
		p("\n## Harness errors\n\n")
		for _, e := range run.Errors {
			p("- %s\n", mdCell(e))
		}
	}

	p("\n## Devices\n")
	for _, d := range sortedDevices(run) {
		writeDeviceMarkdown(bw, d)
	}

	p("\n## Requirements\n")
	for _, std := range []struct{ title, prefix string }{
		{catalog.StandardNIST, catalog.PrefixNIST},
		{catalog.StandardETSI + " V2.1.1", catalog.PrefixETSI},
	} {
		p("\n### %s\n\n| requirement | title | verdict | checks |\n|---|---|---|---|\n", std.title)
		for _, r := range reqs {
			if strings.HasPrefix(r.ID, std.prefix) {
				p("| %s | %s | %s | %s |\n", r.ID, mdCell(r.Title), verdictWords(r.Verdict), strings.Join(r.Checks, ", "))
			}
		}
	}
	var other []RequirementResult
	for _, r := range reqs {
		if !strings.HasPrefix(r.ID, catalog.PrefixNIST) && !strings.HasPrefix(r.ID, catalog.PrefixETSI) {
			other = append(other, r)
		}
	}
	if len(other) > 0 {
		p("\n### Other requirements named by checks\n\n| requirement | verdict | checks |\n|---|---|---|\n")
		for _, r := range other {
			p("| %s | %s | %s |\n", mdCell(r.ID), verdictWords(r.Verdict), strings.Join(r.Checks, ", "))
		}
	}

	p("\n## Failures and errors\n")
	listed := false
	for _, d := range sortedDevices(run) {
		if d.Error != "" {
			listed = true
			p("\n### ERROR: device %s could not be tested\n\n%s", mdCell(d.Name), fenced(d.Error))
		}
		for _, c := range sortedChecks(d) {
			if c.Verdict == Pass || c.Verdict == Skip {
				continue
			}
			listed = true
			c = withDefaults(c)
			p("\n### %s: %s %s on %s\n\n", strings.ToUpper(string(c.Verdict)), mdCell(c.ID), mdCell(c.Title), mdCell(d.Name))
			if len(c.Requirements) > 0 {
				p("Requirements: %s\n\n", strings.Join(c.Requirements, ", "))
			}
			p("%s", fenced(cmpOrNone(c.Reason)))
			if len(c.Evidence) > 0 {
				p("\nEvidence:\n\n")
				for _, e := range c.Evidence {
					p("- %s\n", evidenceMarkdown(e))
				}
			}
			if c.Repro != "" {
				p("\nReproduce:\n\n%s", fenced(c.Repro))
			}
		}
	}
	if !listed {
		p("\nNone.\n")
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write compliance.md: %w", err)
	}
	return nil
}

func writeDeviceMarkdown(w io.Writer, d DeviceResult) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("\n### %s\n\n", mdCell(d.Name))
	var facts []string
	if d.ID != "" {
		facts = append(facts, "ID "+mdCode(d.ID))
	}
	if d.FirmwareVersion != "" {
		facts = append(facts, "firmware "+mdCode(d.FirmwareVersion))
	}
	if d.Backend != "" {
		facts = append(facts, "backend "+mdCell(d.Backend))
	}
	if d.BootToReady > 0 {
		facts = append(facts, "boot to ready "+d.BootToReady.Round(time.Millisecond).String())
	}
	if len(facts) > 0 {
		p("%s.\n\n", strings.Join(facts, ", "))
	}
	if d.Error != "" {
		p("**Could not be tested:** %s\n\n", mdCell(d.Error))
	}
	checks := sortedChecks(d)
	if len(checks) == 0 {
		return
	}
	byCap := map[string]*verdictCounts{}
	for _, c := range checks {
		c = withDefaults(c)
		if byCap[c.Capability] == nil {
			byCap[c.Capability] = &verdictCounts{}
		}
		byCap[c.Capability].add(c.Verdict)
	}
	p("| capability | pass | fail | skip | error |\n|---|---:|---:|---:|---:|\n")
	for _, cp := range catalog.Capabilities() {
		vc := byCap[cp.ID]
		if vc == nil {
			vc = &verdictCounts{}
		}
		p("| %s %s | %d | %d | %d | %d |\n", cp.ID, cp.Name, vc.Pass, vc.Fail, vc.Skip, vc.Error)
	}
	p("\n| check | verdict | reason |\n|---|---|---|\n")
	for _, c := range checks {
		c = withDefaults(c)
		p("| %s | %s | %s |\n", mdCell(strings.TrimSpace(c.ID+" "+c.Title)), c.Verdict, mdCell(firstLine(c.Reason)))
	}
}

func evidenceMarkdown(e Evidence) string {
	link := (&url.URL{Path: e.Path}).EscapedPath()
	s := fmt.Sprintf("[%s](%s)", mdCell(e.Path), link)
	var meta []string
	if e.Kind != "" {
		meta = append(meta, mdCell(e.Kind))
	}
	if e.SHA256 != "" {
		meta = append(meta, "sha256 "+mdCode(e.SHA256))
	}
	if len(meta) > 0 {
		s += " (" + strings.Join(meta, ", ") + ")"
	}
	if e.Description != "" {
		s += ": " + mdCell(e.Description)
	}
	return s
}

func verdictWords(v string) string {
	switch v {
	case RequirementNotCovered:
		return "not covered"
	case RequirementNotRun:
		return "not run"
	}
	return v
}

// mdCell makes s safe inside a table cell or a line: one line, with Markdown and HTML
// specials escaped.
func mdCell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.NewReplacer(`\`, `\\`, `|`, `\|`, `<`, `&lt;`, `>`, `&gt;`, "`", "\\`",
		`*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`).Replace(s)
}

// mdCode is s as inline code, on one line.
func mdCode(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	s = strings.ReplaceAll(s, "|", `\|`) // table cells end at a pipe even in code
	fence := "`"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

// fenced is s as a fenced code block, with a fence longer than any backtick run in s.
func fenced(s string) string {
	fence := "```"
	for strings.Contains(s, fence) {
		fence += "`"
	}
	return fence + "text\n" + strings.TrimRight(s, "\n") + "\n" + fence + "\n"
}

func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return "(unknown)"
	}
	return strings.Join(out, " ")
}

func commitNote(c string) string {
	if c == "" {
		return ""
	}
	return "(commit " + c + ")"
}

func digestNote(d string) string {
	if d == "" {
		return ""
	}
	return "(sha256 " + d + ")"
}

func cmpOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
