package reports

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/hilt-project/hilt/harness/catalog"
)

// TestComplianceJSON checks the shape of compliance.json that tools (and the project's
// contract check) read.
func TestComplianceJSON(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteComplianceJSON(&buf, fixtureRun()); err != nil {
		t.Fatal(err)
	}
	golden(t, "compliance.json.golden", buf.Bytes())
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatalf("compliance.json does not parse: %v", err)
	}
	for _, k := range []string{"schema_version", "run", "devices", "checks", "requirements", "summary"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("no %q", k)
		}
	}
	if doc["schema_version"] != float64(1) {
		t.Errorf("schema_version %v, want 1", doc["schema_version"])
	}
	run := doc["run"].(map[string]any)
	for _, k := range []string{"hilt_version", "git_commit", "profile", "profile_digest", "start", "end", "seed",
		"broker", "label_filter", "flaws", "interrupted", "errors"} {
		if _, ok := run[k]; !ok {
			t.Errorf("run: no %q", k)
		}
	}
	if run["start"] != "2026-01-02T03:04:05Z" || run["seed"] != float64(42) {
		t.Errorf("run: start %v seed %v", run["start"], run["seed"])
	}
	checks := doc["checks"].([]any)
	if len(checks) != 6 {
		t.Fatalf("got %d checks, want 6", len(checks))
	}
	var order []string
	for _, c := range checks {
		c := c.(map[string]any)
		order = append(order, c["device"].(string)+"/"+c["id"].(string))
		for _, k := range []string{"id", "device", "verdict", "reason", "requirements", "evidence", "duration_ms"} {
			if _, ok := c[k]; !ok {
				t.Errorf("check %v: no %q", c["id"], k)
			}
		}
		if _, ok := c["requirements"].([]any); !ok {
			t.Errorf("check %v: requirements %v is not a list", c["id"], c["requirements"])
		}
		for _, e := range c["evidence"].([]any) {
			e := e.(map[string]any)
			for _, k := range []string{"path", "sha256", "kind"} {
				if _, ok := e[k]; !ok {
					t.Errorf("check %v: evidence without %q", c["id"], k)
				}
			}
		}
	}
	if got, want := strings.Join(order, " "), "sim-a/DI-01 sim-a/DI-02 sim-a/SU-02 sim-a/SU-09 sim-b/DI-01 sim-b/SU-02"; got != want {
		t.Errorf("check order %q, want %q", got, want)
	}
	su02 := checks[2].(map[string]any)
	if su02["verdict"] != "fail" || su02["duration_ms"] != float64(2500) ||
		strings.Join(anyStrings(su02["requirements"]), ",") != "8259A:SU-2,EN303645:5.3-10" {
		t.Errorf("sim-a/SU-02: %v", su02)
	}
	reqs := doc["requirements"].([]any)
	if len(reqs) != len(catalog.Requirements()) {
		t.Errorf("got %d requirements, want %d", len(reqs), len(catalog.Requirements()))
	}
	byID := map[string]map[string]any{}
	for _, r := range reqs {
		r := r.(map[string]any)
		byID[r["id"].(string)] = r
	}
	for id, want := range map[string]string{"EN303645:5.3-10": "fail", "8259A:DI-1": "pass",
		"EN303645:5.9-2": "skip", "EN303645:5.3-1": "not-covered", "8259A:DC-1": "not-run"} {
		if byID[id]["verdict"] != want {
			t.Errorf("requirement %s: verdict %v, want %s", id, byID[id]["verdict"], want)
		}
	}
	summary := doc["summary"].(map[string]any)
	if summary["exit_code"] != float64(2) || summary["checks"] != float64(6) {
		t.Errorf("summary %v", summary)
	}
	v := summary["verdicts"].(map[string]any)
	if v["pass"] != float64(2) || v["fail"] != float64(1) || v["skip"] != float64(2) || v["error"] != float64(1) {
		t.Errorf("summary verdicts %v", v)
	}
}

func anyStrings(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, s.(string))
	}
	return out
}

func TestComplianceJSONEmptyRun(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteComplianceJSON(&buf, &Run{}); err != nil {
		t.Fatal(err)
	}
	// Lists are lists, never null, and times that are not known are null.
	for _, s := range []string{`"devices": []`, `"checks": []`, `"errors": []`, `"flaws": []`, `"start": null`} {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("compliance.json of an empty run lacks %s:\n%s", s, buf.String())
		}
	}
}

func TestComplianceMarkdown(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteComplianceMarkdown(&buf, fixtureRun()); err != nil {
		t.Fatal(err)
	}
	golden(t, "compliance.md.golden", buf.Bytes())
	md := buf.String()
	for _, s := range []string{
		"**Result: exit 2: 1 harness error; 1 device could not be tested; 1 check errored.**",
		"| EN303645:5.3-1 | all software components securely updateable | not covered |  |",
		"| 8259A:DC-1 | authorized entities can change the configuration | not run | DC-01, DC-04 |",
		"| 8259A:SU-2 | updates verified and authenticated before install | fail | SU-02 |",
		"### FAIL: SU-02 unsigned image rejected on sim-a",
		"- [evidence/sim-a/SU-02/console.log](evidence/sim-a/SU-02/console.log) (console): console transcript",
		"### ERROR: device sim-c could not be tested",
		"| SU Software Update | 0 | 1 | 1 | 0 |",
	} {
		if !strings.Contains(md, s) {
			t.Errorf("compliance.md lacks %q", s)
		}
	}
	if strings.Index(md, "### NIST IR 8259A") > strings.Index(md, "### ETSI EN 303 645") {
		t.Error("the 8259A table does not come before the EN 303 645 table")
	}
}

func TestMarkdownEscaping(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a|b", `a\|b`},
		{"line1\nline2", "line1 line2"},
		{"<script>", "&lt;script&gt;"},
		{"*x* _y_ `z` [l]", "\\*x\\* \\_y\\_ \\`z\\` \\[l\\]"},
	}
	for _, tc := range tests {
		if got := mdCell(tc.in); got != tc.want {
			t.Errorf("mdCell(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	if got, want := fenced("a ``` b"), "````text\na ``` b\n````\n"; got != want {
		t.Errorf("fenced: got %q, want %q", got, want)
	}
	if got, want := mdCode("a`b|c"), "``a`b\\|c``"; got != want {
		t.Errorf("mdCode: got %q, want %q", got, want)
	}
	if got, want := mdCode("`x"), "`` `x ``"; got != want {
		t.Errorf("mdCode: got %q, want %q", got, want)
	}
}

func TestSummary(t *testing.T) {
	tests := []struct {
		name string
		run  *Run
		opts []Option
	}{
		{"fixture", fixtureRun(), []Option{WithRedactor(NewRedactor(secretPassword))}},
		{"passing", passingRun(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Summary(&buf, tc.run, tc.opts...); err != nil {
				t.Fatal(err)
			}
			golden(t, "summary-"+tc.name+".golden", buf.Bytes())
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			if len(lines) > 40 {
				t.Errorf("summary has %d lines, more than a screen", len(lines))
			}
			_, exit := exitStatus(tc.run)
			if last := lines[len(lines)-1]; !strings.EqualFold(last, exit) {
				t.Errorf("last line %q, want the exit sentence %q", last, exit)
			}
		})
	}
}
