package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hilt-project/hilt/internal/buildpair"
)

// hiltBin is the hilt binary built once for the package's tests.
var hiltBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hilt-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// As make build does: hilt and, paired with it by a shared build stamp, the lean
	// device executable the simulated bench starts its devices from (internal/buildpair).
	hiltBin = filepath.Join(dir, "hilt")
	stamp := buildpair.LinkFlag(fmt.Sprintf("e2e-%d-%d", os.Getpid(), time.Now().UnixNano()))
	for _, b := range []struct{ out, pkg string }{
		{hiltBin, "../cmd/hilt"},
		{filepath.Join(dir, "hilt-refdev"), "../fixtures/refdev/cmd/refdev"},
	} {
		cmd := exec.Command("go", "build", "-ldflags", stamp, "-o", b.out, b.pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", b.pkg, err)
			os.Exit(2)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one hilt run left behind.
type result struct {
	code   int
	out    string
	dir    string
	checks []checkResult
	broker string
}

type checkResult struct {
	ID, Device, Verdict, Reason string
}

type compliance struct {
	Run struct {
		Broker string `json:"broker"`
	} `json:"run"`
	Checks []checkResult `json:"checks"`
}

// hilt runs the binary with args and a fresh --out folder and reads the compliance file.
func hilt(t *testing.T, args ...string) result {
	t.Helper()
	dir := t.TempDir()
	args = append(args, "--out", dir)
	cmd := exec.Command(hiltBin, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	t0 := time.Now()
	err := cmd.Run()
	r := result{out: buf.String(), dir: dir}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("hilt %v: %v", args, err)
	}
	t.Logf("hilt %s: exit %d in %s", strings.Join(args, " "), r.code, time.Since(t0).Round(time.Millisecond))
	if b, err := os.ReadFile(filepath.Join(dir, "compliance.json")); err == nil {
		var c compliance
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("compliance.json: %v", err)
		}
		r.checks, r.broker = c.Checks, c.Run.Broker
	}
	return r
}

// verdicts maps check ID to the set of verdicts it got across devices.
func (r result) verdicts() map[string][]string {
	m := map[string][]string{}
	for _, c := range r.checks {
		if !slices.Contains(m[c.ID], c.Verdict) {
			m[c.ID] = append(m[c.ID], c.Verdict)
		}
	}
	return m
}

func (r result) with(verdict string) []string {
	var ids []string
	for id, vs := range r.verdicts() {
		if slices.Contains(vs, verdict) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// describe lists the checks that did not pass, with reasons, for failure messages.
func (r result) describe() string {
	var b strings.Builder
	for _, c := range r.checks {
		if c.Verdict == "fail" || c.Verdict == "error" {
			fmt.Fprintf(&b, "  %s %s %s: %.300s\n", c.Device, c.ID, c.Verdict, c.Reason)
		}
	}
	return b.String()
}

func requireCI(t *testing.T, tool string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is missing in CI (make deps installs it)", tool)
		}
		t.Skipf("%s is not installed (make deps installs it)", tool)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("the end-to-end runs need root in CI (network namespaces and captures)")
		}
		t.Skip("needs root for network namespaces and packet capture")
	}
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
}

func TestCompliantRun(t *testing.T) {
	requireRoot(t)
	r := hilt(t, "run")
	if r.code != 0 {
		t.Fatalf("compliant run: exit %d, want 0\n%s\noutput tail:\n%s", r.code, r.describe(), lastLines(r.out, 40))
	}
	if got := r.with("skip"); !slices.Equal(got, []string{"SU-09"}) {
		t.Errorf("skipped checks: got %v, want only SU-09 (power cut cannot be modelled in simulation)", got)
	}
	if len(r.checks) == 0 {
		t.Fatal("no check results")
	}
	requireCI(t, "xmllint")
	xsd := schemaPath(t)
	cmd := exec.Command("xmllint", "--noout", "--schema", xsd, filepath.Join(r.dir, "junit.xml"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("junit.xml of a real run does not validate against %s: %v\n%s", xsd, err, out)
	}
}

func TestFlawAcceptUnsigned(t *testing.T) {
	requireRoot(t)
	r := hilt(t, "run", "--flaw", "accept-unsigned")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	if got := r.with("fail"); !slices.Equal(got, []string{"SU-02"}) {
		t.Errorf("failing checks: got %v, want [SU-02]\n%s", got, r.describe())
	}
	if got := r.with("error"); len(got) > 0 {
		t.Errorf("errors: %v\n%s", got, r.describe())
	}
}

func TestBadInput(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("model: x\nbackend: bench\ndeclarations: d.yaml\ninstances:\n  - name: u1\n"), 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flaw", []string{"run", "--flaw", "no-such-flaw"}, "no-such-flaw"},
		{"unknown label", []string{"run", "--label-filter", "XX-99"}, "XX-99"},
		{"malformed profile", []string{"run", "--device", bad}, "bad.yaml:2: backend"},
		{"missing profile", []string{"run", "--device", "/nonexistent.yaml"}, "nonexistent.yaml"},
		{"unknown flag", []string{"run", "--frobnicate"}, "frobnicate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "unknown flaw" {
				requireRoot(t)
			}
			r := hilt(t, tc.args...)
			if r.code != 2 {
				t.Errorf("exit %d, want 2\n%s", r.code, lastLines(r.out, 20))
			}
			if !strings.Contains(r.out, tc.want) {
				t.Errorf("output does not name %q:\n%s", tc.want, lastLines(r.out, 20))
			}
		})
	}
}

func schemaPath(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"../../shared/junit/jenkins-junit-10.xsd", "../reports/testdata/jenkins-junit-10.xsd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("the Jenkins JUnit schema is missing (reports/testdata/jenkins-junit-10.xsd)")
	return ""
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

// TestMosquittoRun runs the compliant baseline with the devices and the harness on a real
// Mosquitto broker (its own TLS, password and ACL configuration on a free port).
func TestMosquittoRun(t *testing.T) {
	requireRoot(t)
	requireCI(t, "mosquitto")
	r := hilt(t, "run", "--mosquitto")
	if r.code != 0 {
		t.Fatalf("compliant run on Mosquitto: exit %d, want 0\n%s\n%s", r.code, r.describe(), lastLines(r.out, 30))
	}
	if !strings.Contains(r.broker, "mosquitto") {
		t.Errorf("compliance.json run.broker = %q, want it to name mosquitto", r.broker)
	}
}
