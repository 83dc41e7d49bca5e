package reports

import (
	"bytes"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteJUnitGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, fixtureRun()); err != nil {
		t.Fatal(err)
	}
	golden(t, "junit.xml.golden", normaliseTimes(buf.Bytes()))
}

// TestJUnitSchema validates the JUnit of several runs against the Jenkins xUnit schema with
// xmllint.
func TestJUnitSchema(t *testing.T) {
	xsd := needFile(t, filepath.Join("..", "..", "shared", "junit", "jenkins-junit-10.xsd"))
	xmllint := needTool(t, "xmllint", "libxml2-utils")
	runs := map[string]*Run{
		"fixture": fixtureRun(),
		"passing": passingRun(),
		"empty":   {},
		"interrupted, nothing ran": {Interrupted: true, Errors: []string{"a", "b"},
			Devices: []DeviceResult{{Name: "x", Error: "no boot"}}},
		"long run": {Start: fixtureStart, End: fixtureStart.Add(5 * time.Hour),
			Devices: []DeviceResult{device("a", CheckResult{ID: "DI-01", Verdict: Pass, Duration: 4000 * time.Second})}},
		"unknown check, invalid verdict": {Devices: []DeviceResult{device("a",
			CheckResult{ID: "XX-01", Verdict: "bogus", Reason: "<>&\"'"},
			CheckResult{ID: "DI-01", Verdict: Skip},
		)}},
	}
	for name, run := range runs {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteJUnit(&buf, run); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "junit.xml")
			if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.CommandContext(t.Context(), xmllint, "--noout", "--schema", xsd, file).CombinedOutput()
			if err != nil {
				t.Errorf("xmllint --schema %s: %v\n%s\n%s", xsd, err, out, buf.Bytes())
			}
		})
	}
}

// TestJUnitContent decodes the fixture's JUnit and checks what CI tools read from it.
func TestJUnitContent(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, fixtureRun()); err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("the JUnit does not parse: %v", err)
	}
	var names []string
	for _, s := range doc.Suites {
		names = append(names, s.Name)
	}
	if got, want := strings.Join(names, ","), "hilt run,sim-a,sim-b,sim-c"; got != want {
		t.Errorf("suites %s, want %s", got, want)
	}
	if doc.Tests != 8 || doc.Failures != 1 || doc.Errors != 3 {
		t.Errorf("totals: tests %d failures %d errors %d, want 8 1 3", doc.Tests, doc.Failures, doc.Errors)
	}
	if doc.Time != "95.000" {
		t.Errorf("total time %s, want 95.000", doc.Time)
	}
	a := doc.Suites[1]
	if a.Tests != 4 || a.Failures != 1 || a.Errors != 0 || a.Skipped != 2 || a.Time != "3.250" {
		t.Errorf("sim-a: %d tests, %d failures, %d errors, %d skipped, time %s; want 4 1 0 2 3.250",
			a.Tests, a.Failures, a.Errors, a.Skipped, a.Time)
	}
	var caseNames []string
	for _, c := range a.Cases {
		caseNames = append(caseNames, c.Name)
	}
	if got, want := strings.Join(caseNames, "|"),
		"DI-01 logical ID consistent on every transport|DI-02 logical ID unique across instances|"+
			"SU-02 unsigned image rejected|SU-09 power loss during update leaves a bootable image"; got != want {
		t.Errorf("sim-a testcases %q, want %q", got, want)
	}
	props := map[string]string{}
	for _, p := range a.Properties.Property {
		props[p.Name] = p.Value
	}
	for k, v := range map[string]string{"device_id": "hilt-0a", "firmware_version": "1.0.0", "boot_to_ready_ms": "987",
		"backend": "sim", "hilt_version": "v0.1.0", "transport.serial": "/dev/pts/7"} {
		if props[k] != v {
			t.Errorf("sim-a property %s = %q, want %q", k, props[k], v)
		}
	}
	su02 := a.Cases[2]
	if su02.Classname != "hilt.SU" || su02.Time != "2.500" || su02.Failure == nil {
		t.Fatalf("SU-02: classname %s, time %s, failure %v", su02.Classname, su02.Time, su02.Failure)
	}
	for _, s := range []string{"unsigned image installed", "evidence/sim-a/SU-02/console.log (console)", "reproduce:\n  hilt run"} {
		if !strings.Contains(su02.Failure.Text, s) {
			t.Errorf("SU-02 failure text lacks %q:\n%s", s, su02.Failure.Text)
		}
	}
	if su02.Failure.Message != "unsigned image installed: version 1.0.1 running" {
		t.Errorf("SU-02 failure message %q", su02.Failure.Message)
	}
	if !strings.HasPrefix(string(su02.SystemOut), "requirements: 8259A:SU-2, EN303645:5.3-10\n") {
		t.Errorf("SU-02 system-out %q", su02.SystemOut)
	}
	if sk := a.Cases[1].Skipped; sk == nil || sk.Message != "one instance: DI-02 needs two or more" {
		t.Errorf("DI-02 skipped %+v", sk)
	}
	if e := doc.Suites[3].Cases[0].Error; e == nil || !strings.Contains(e.Message, "no ready banner") {
		t.Errorf("sim-c device error %+v", e)
	}
}

func TestSeconds(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0.000"},
		{1500 * time.Microsecond, "0.002"},
		{2500 * time.Millisecond, "2.500"},
		{time.Hour, "3600.000"},
		{-time.Second, "0.000"},
	}
	for _, tc := range tests {
		if got := seconds(tc.d); got != tc.want {
			t.Errorf("seconds(%v) = %s, want %s", tc.d, got, tc.want)
		}
	}
}

func TestWritersRejectNewerSchema(t *testing.T) {
	run := passingRun()
	run.SchemaVersion = SchemaVersion + 1
	var buf bytes.Buffer
	for name, write := range map[string]func() error{
		"junit":    func() error { return WriteJUnit(&buf, run) },
		"json":     func() error { return WriteComplianceJSON(&buf, run) },
		"markdown": func() error { return WriteComplianceMarkdown(&buf, run) },
		"all":      func() error { return WriteAll(t.TempDir(), run) },
		"nil run":  func() error { return WriteJUnit(&buf, nil) },
	} {
		if err := write(); err == nil {
			t.Errorf("%s: got nil error for schema version %d", name, run.SchemaVersion)
		}
	}
}
