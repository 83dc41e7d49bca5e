package reports

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Secrets of the fixture, which the reports must never show.
const (
	secretPassword = "hunter2-admin-pw"
	secretBroker   = "mqtt-s3cret"
)

var fixtureStart = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fixtureRun is a run with every kind of result: two tested devices (given out of order, with
// checks out of catalog order), one that could not be tested, and one harness error.
func fixtureRun() *Run {
	return &Run{
		HiltVersion:   "v0.1.0",
		GitCommit:     "3416f3f",
		ProfilePath:   "fixtures/profiles/sim.yaml",
		ProfileDigest: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Start:         fixtureStart,
		End:           fixtureStart.Add(95 * time.Second),
		Seed:          42,
		Broker:        "embedded mqtts://127.0.0.1:40123 (user hilt, password " + secretBroker + ")",
		LabelFilter:   "cap:DI || cap:SU",
		Flaws:         []string{"accept-unsigned"},
		Errors:        []string{"capture on veth-hilt1: operation not permitted"},
		Devices: []DeviceResult{
			{
				Name: "sim-b", ID: "hilt-0b", FirmwareVersion: "1.0.0", Backend: "sim",
				BootToReady: 1234 * time.Millisecond,
				Checks: []CheckResult{
					{ID: "DI-01", Device: "sim-b", Verdict: Pass, Duration: 800 * time.Millisecond,
						Reason: "ID hilt-0b on console, MQTT and mgmt"},
					{ID: "SU-02", Device: "sim-b", Verdict: Error, Duration: 30 * time.Second,
						Reason: "no answer from the device before the attack\nlast console line: \x1b[1mboot\x1b[0m",
						Output: "> update.begin size=4096\n< (nothing) \x00\x07 <&> ]]>",
						Repro:  "hilt run --profile fixtures/profiles/sim.yaml --label-filter SU-02 --seed 42"},
				},
			},
			{
				Name: "sim-a", ID: "hilt-0a", FirmwareVersion: "1.0.0", Backend: "sim",
				BootToReady: 987 * time.Millisecond,
				Properties:  map[string]string{"transport.serial": "/dev/pts/7", "admin": "admin/" + secretPassword},
				Checks: []CheckResult{
					{ID: "SU-02", Device: "sim-a", Verdict: Fail, Duration: 2500 * time.Millisecond,
						Reason: "unsigned image installed: version 1.0.1 running",
						Evidence: []Evidence{
							{Path: "evidence/sim-a/SU-02/console.log", Kind: "console", Description: "console transcript"},
							{Path: "evidence/sim-a/SU-02/mqtt.jsonl", Kind: "mqtt", Description: "MQTT messages"},
						},
						Output: "> login admin " + secretPassword + "\n< ok\n> update.begin unsigned\n< ok version=1.0.1",
						Repro:  "hilt run --profile fixtures/profiles/sim.yaml --label-filter SU-02 --seed 42 --flaw accept-unsigned"},
					{ID: "DI-02", Device: "sim-a", Verdict: Skip, Reason: "one instance: DI-02 needs two or more"},
					{ID: "DI-01", Device: "sim-a", Verdict: Pass, Duration: 750 * time.Millisecond},
					{ID: "SU-09", Device: "sim-a", Verdict: Skip,
						Reason: "the simulated device cannot model power loss (SU-09 runs on qemu)"},
				},
			},
			{Name: "sim-c", Backend: "sim", Error: "boot: no ready banner within 30s on /dev/pts/9"},
		},
	}
}

// passingRun has one device on which every check it ran passed or was skipped.
func passingRun() *Run {
	return &Run{
		HiltVersion: "v0.1.0", Start: fixtureStart, End: fixtureStart.Add(10 * time.Second),
		Devices: []DeviceResult{{Name: "sim-a", Checks: []CheckResult{
			{ID: "DI-01", Verdict: Pass},
			{ID: "DI-02", Verdict: Skip, Reason: "one instance"},
		}}},
	}
}

var (
	timeAttr      = regexp.MustCompile(`time="[0-9.]*"`)
	timestampAttr = regexp.MustCompile(`timestamp="[^"]*"`)
)

// normaliseTimes replaces every time and timestamp attribute of a JUnit file.
func normaliseTimes(b []byte) []byte {
	b = timeAttr.ReplaceAll(b, []byte(`time="0.000"`))
	return timestampAttr.ReplaceAll(b, []byte(`timestamp="T"`))
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; got:\n%s\nrerun with -update if the change is intended", path, got)
	}
}

// needTool returns the path of an external tool, or skips the test when it is missing and
// CI is not set; under CI=true a missing tool fails the test.
func needTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not installed (Debian package %s): %v", name, pkg, err)
	}
	return path
}

// needFile returns path, or skips (fails under CI=true) when it does not exist.
func needFile(t *testing.T, path string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		missing(t, "%v", err)
	}
	return path
}

func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}
