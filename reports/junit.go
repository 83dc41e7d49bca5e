package reports

import (
	"cmp"
	"encoding/xml"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The JUnit document, as the Jenkins xUnit schema (jenkins-junit-10.xsd) allows it.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Name     string       `xml:"name,attr"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name       string           `xml:"name,attr"`
		Tests      int              `xml:"tests,attr"`
		Failures   int              `xml:"failures,attr"`
		Errors     int              `xml:"errors,attr"`
		Skipped    int              `xml:"skipped,attr"`
		Time       string           `xml:"time,attr"`
		Timestamp  string           `xml:"timestamp,attr,omitempty"`
		Properties *junitProperties `xml:"properties"`
		Cases      []junitCase      `xml:"testcase"`
	}
	junitProperties struct {
		Property []junitProperty `xml:"property"`
	}
	junitProperty struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      string        `xml:"time,attr"`
		Skipped   *junitMessage `xml:"skipped"`
		Error     *junitMessage `xml:"error"`
		Failure   *junitMessage `xml:"failure"`
		SystemOut junitText     `xml:"system-out,omitempty"`
	}
	junitMessage struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr,omitempty"`
		Text    string `xml:",chardata"`
	}
)

// MarshalXML writes the message with its text's line breaks as they are (encoding/xml would
// write them as &#xA;), so that a person can read the file.
func (m junitMessage) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "message"}, Value: m.Message})
	if m.Type != "" {
		start.Attr = append(start.Attr, xml.Attr{Name: xml.Name{Local: "type"}, Value: m.Type})
	}
	return encodeText(e, start, m.Text)
}

// junitText is element text written with its line breaks as they are.
type junitText string

// MarshalXML implements xml.Marshaler.
func (t junitText) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	return encodeText(e, start, string(t))
}

// encodeText writes start, text and the end. A CharData token keeps line breaks as they are
// and replaces characters XML does not allow (terminal escapes, NULs) with U+FFFD.
func encodeText(e *xml.Encoder, start xml.StartElement, text string) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	if text != "" {
		if err := e.EncodeToken(xml.CharData(text)); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// runSuiteName names the testsuite of faults that belong to no device.
const runSuiteName = "hilt run"

// WriteJUnit writes the run as JUnit XML that validates against the Jenkins xUnit schema
// (jenkins-junit-10.xsd): one testsuite per device, ordered by name, with the device's
// identity as properties and one testcase per check, in catalog order, named "<ID> <title>"
// with classname "hilt.<capability>". A failed check carries <failure> with the reason, the
// evidence and the command that reproduces it; an errored one <error>; a skipped one
// <skipped message="reason">. Faults that belong to no device (harness errors, an interrupted
// run, a run that verified nothing) are errors of a testsuite named "hilt run", so that the
// file tells every reason the run exits 2.
func WriteJUnit(w io.Writer, run *Run) error {
	if err := checkSchema(run); err != nil {
		return err
	}
	doc := junitSuites{Name: "hilt"}
	if rs, ok := runSuite(run); ok {
		doc.Suites = append(doc.Suites, rs)
	}
	for _, d := range sortedDevices(run) {
		doc.Suites = append(doc.Suites, deviceSuite(run, d))
	}
	for _, s := range doc.Suites {
		doc.Tests += s.Tests
		doc.Failures += s.Failures
		doc.Errors += s.Errors
	}
	doc.Time = seconds(runDuration(run))

	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("write junit: %w", err)
	}
	return nil
}

func deviceSuite(run *Run, d DeviceResult) junitSuite {
	s := junitSuite{Name: d.Name, Timestamp: timestamp(run.Start)}
	s.Properties = &junitProperties{}
	prop := func(name, value string) {
		if value != "" {
			s.Properties.Property = append(s.Properties.Property, junitProperty{name, value})
		}
	}
	prop("device_id", d.ID)
	prop("firmware_version", d.FirmwareVersion)
	if d.BootToReady > 0 {
		prop("boot_to_ready_ms", strconv.FormatInt(d.BootToReady.Milliseconds(), 10))
	}
	prop("backend", d.Backend)
	prop("hilt_version", run.HiltVersion)
	prop("git_commit", run.GitCommit)
	prop("profile_digest", run.ProfileDigest)
	prop("seed", strconv.FormatInt(run.Seed, 10))
	for _, k := range slices.Sorted(maps.Keys(d.Properties)) {
		prop(k, d.Properties[k])
	}

	var total time.Duration
	if d.Error != "" {
		s.Cases = append(s.Cases, junitCase{
			Name: "[device] " + d.Name, Classname: "hilt.device", Time: seconds(0),
			Error: &junitMessage{Message: firstLine(d.Error), Type: "error", Text: d.Error},
		})
	}
	for _, c := range sortedChecks(d) {
		c = withDefaults(c)
		total += c.Duration
		s.Cases = append(s.Cases, checkCase(c))
	}
	for _, c := range s.Cases {
		s.Tests++
		switch {
		case c.Failure != nil:
			s.Failures++
		case c.Error != nil:
			s.Errors++
		case c.Skipped != nil:
			s.Skipped++
		}
	}
	s.Time = seconds(total)
	return s
}

func checkCase(c CheckResult) junitCase {
	tc := junitCase{
		Name:      strings.TrimSpace(c.ID + " " + c.Title),
		Classname: "hilt." + cmp.Or(c.Capability, "unknown"),
		Time:      seconds(c.Duration),
	}
	var out strings.Builder
	if len(c.Requirements) > 0 {
		fmt.Fprintf(&out, "requirements: %s\n", strings.Join(c.Requirements, ", "))
	}
	switch c.Verdict {
	case Pass:
		if c.Reason != "" {
			fmt.Fprintf(&out, "reason: %s\n", c.Reason)
		}
	case Skip:
		tc.Skipped = &junitMessage{Message: c.Reason}
	case Fail:
		tc.Failure = &junitMessage{Message: firstLine(c.Reason), Type: "fail", Text: failureText(c)}
	default:
		reason := c.Reason
		if !c.Verdict.Valid() {
			reason = fmt.Sprintf("invalid verdict %q: %s", c.Verdict, reason)
		}
		c.Reason = reason
		tc.Error = &junitMessage{Message: firstLine(reason), Type: "error", Text: failureText(c)}
	}
	if c.Output != "" {
		if out.Len() > 0 {
			out.WriteString("\n")
		}
		out.WriteString(c.Output)
	}
	tc.SystemOut = junitText(strings.TrimRight(out.String(), "\n"))
	return tc
}

// failureText is the body of a <failure> or <error>: the reason, the evidence, the repro.
func failureText(c CheckResult) string {
	var b strings.Builder
	b.WriteString(c.Reason)
	if len(c.Evidence) > 0 {
		b.WriteString("\n\nevidence:")
		for _, e := range c.Evidence {
			fmt.Fprintf(&b, "\n  %s", evidenceLine(e))
		}
	}
	if c.Repro != "" {
		fmt.Fprintf(&b, "\n\nreproduce:\n  %s", c.Repro)
	}
	return b.String()
}

// evidenceLine is "path (kind, sha256 hex): description".
func evidenceLine(e Evidence) string {
	var meta []string
	if e.Kind != "" {
		meta = append(meta, e.Kind)
	}
	if e.SHA256 != "" {
		meta = append(meta, "sha256 "+e.SHA256)
	}
	s := e.Path
	if len(meta) > 0 {
		s += " (" + strings.Join(meta, ", ") + ")"
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// runSuite returns the testsuite of faults that belong to no device, if there are any.
func runSuite(run *Run) (junitSuite, bool) {
	s := junitSuite{Name: runSuiteName, Timestamp: timestamp(run.Start), Time: seconds(0)}
	add := func(name, message, text string) {
		s.Cases = append(s.Cases, junitCase{
			Name: name, Classname: "hilt.run", Time: seconds(0),
			Error: &junitMessage{Message: message, Type: "error", Text: text},
		})
		s.Tests++
		s.Errors++
	}
	if run.Interrupted {
		add("[run] interrupted", "the run was interrupted before every check finished", "")
	}
	if n := len(run.Errors); n > 0 {
		msg := firstLine(run.Errors[0])
		if n > 1 {
			msg += fmt.Sprintf(" (and %d more)", n-1)
		}
		add("[run] harness errors", msg, strings.Join(run.Errors, "\n"))
	}
	if vc := countRun(run); vc.Pass+vc.Fail == 0 {
		msg := "no check ran"
		if vc.total() > 0 {
			msg = "every check was skipped, so nothing was verified"
		}
		add("[run] nothing verified", msg, "")
	}
	return s, len(s.Cases) > 0
}

// seconds formats d as the schema's SUREFIRE_TIME: seconds with three decimals, never negative.
func seconds(d time.Duration) string {
	return strconv.FormatFloat(max(d, 0).Seconds(), 'f', 3, 64)
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(line)
}

// checkSchema rejects a run made with a newer model than this package writes.
func checkSchema(run *Run) error {
	if run == nil {
		return fmt.Errorf("reports: no run")
	}
	if run.SchemaVersion > SchemaVersion || run.SchemaVersion < 0 {
		return fmt.Errorf("reports: run has schema version %d, this hilt writes %d", run.SchemaVersion, SchemaVersion)
	}
	return nil
}
