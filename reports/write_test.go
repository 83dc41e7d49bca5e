package reports

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestWriteAll(t *testing.T) {
	dir := t.TempDir()
	evidence := []byte("> update.begin unsigned\n< ok version=1.0.1\n")
	evPath := filepath.Join(dir, "evidence", "sim-a", "SU-02", "console.log")
	if err := os.MkdirAll(filepath.Dir(evPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(evPath, evidence, 0o644); err != nil {
		t.Fatal(err)
	}
	run := fixtureRun()
	before := fixtureRun()
	r := NewRedactor(secretPassword, secretBroker)
	if err := WriteAll(dir, run, WithRedactor(r)); err != nil {
		t.Fatalf("WriteAll: %v", err)
	}
	if !reflect.DeepEqual(run, before) {
		t.Error("WriteAll changed the run it was given")
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, " "), "compliance.json compliance.md evidence junit.xml"; got != want {
		t.Errorf("output folder holds %q, want %q (no temporary files)", got, want)
	}

	sum := sha256.Sum256(evidence)
	var doc struct {
		Checks []struct {
			ID, Device string
			Evidence   []struct{ Path, SHA256 string }
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, ComplianceJSONFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var hashed, unhashed int
	for _, c := range doc.Checks {
		for _, e := range c.Evidence {
			switch {
			case e.Path == "evidence/sim-a/SU-02/console.log" && e.SHA256 == hex.EncodeToString(sum[:]):
				hashed++
			case e.Path == "evidence/sim-a/SU-02/mqtt.jsonl" && e.SHA256 == "":
				unhashed++ // the file does not exist
			default:
				t.Errorf("%s/%s: evidence %s sha256 %q", c.Device, c.ID, e.Path, e.SHA256)
			}
		}
	}
	if hashed != 1 || unhashed != 1 {
		t.Errorf("hashed %d, unhashed %d evidence files; want 1 and 1", hashed, unhashed)
	}

	for _, name := range []string{JUnitFile, ComplianceJSONFile, ComplianceMDFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{secretPassword, secretBroker} {
			for _, form := range []string{secret, hex.EncodeToString([]byte(secret)), base64.StdEncoding.EncodeToString([]byte(secret))} {
				if bytes.Contains(data, []byte(form)) {
					t.Errorf("%s shows the secret %q", name, form)
				}
			}
		}
		if !bytes.Contains(data, []byte("REDACTED")) { // Markdown escapes the brackets
			t.Errorf("%s: nothing redacted", name)
		}
	}
	if info, err := os.Stat(filepath.Join(dir, JUnitFile)); err != nil || info.Mode().Perm() != 0o644 {
		t.Errorf("junit.xml: %v, mode %v, want 0644", err, info.Mode())
	}
}

func TestWriteAllEvidenceOutsideTheFolder(t *testing.T) {
	dir := t.TempDir()
	run := passingRun()
	run.Devices[0].Checks[0].Evidence = []Evidence{{Path: "../../etc/passwd"}}
	err := WriteAll(dir, run)
	if err == nil || !strings.Contains(err.Error(), "not inside the output folder") {
		t.Errorf("got %v, want an error about the evidence path", err)
	}
	for _, name := range []string{JUnitFile, ComplianceJSONFile, ComplianceMDFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not written: %v", name, err)
		}
	}
}

func TestWriteAllReplacesOldReports(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ComplianceMDFile), []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteAll(filepath.Join(dir), passingRun()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ComplianceMDFile))
	if err != nil || !bytes.HasPrefix(data, []byte("# hilt compliance report")) {
		t.Errorf("compliance.md not replaced: %q, %v", data, err)
	}
}

func TestWriteAllCreatesTheFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := WriteAll(dir, passingRun()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, JUnitFile)); err != nil {
		t.Error(err)
	}
}
