package reports

import (
	"cmp"
	"maps"
	"slices"
	"time"

	"github.com/hilt-project/hilt/harness/catalog"
)

// SchemaVersion is the version of the model and of compliance.json that this package writes.
const SchemaVersion = 1

// Verdict is the outcome of one check on one device.
type Verdict string

// Verdicts of a check (docs/REPORTS.md).
const (
	// Pass: the device did what the check asks.
	Pass Verdict = "pass"
	// Fail: the device did the wrong thing, or stopped answering after an attack.
	Fail Verdict = "fail"
	// Skip: the check does not apply, with the reason (declared, or stated by the harness).
	Skip Verdict = "skip"
	// Error: a harness or infrastructure fault, or a check that observed nothing it needs.
	Error Verdict = "error"
)

// Valid reports whether v is one of the four verdicts.
func (v Verdict) Valid() bool {
	switch v {
	case Pass, Fail, Skip, Error:
		return true
	}
	return false
}

// Evidence is one file recorded for a check (console transcript, MQTT log, capture, ...).
type Evidence struct {
	// Path is relative to the output folder, with forward slashes.
	Path string `json:"path"`
	// SHA256 is the hex SHA-256 of the file; WriteAll fills it in for files that exist.
	SHA256      string `json:"sha256,omitempty"`
	Kind        string `json:"kind,omitempty"` // "console", "mqtt", "pcapng", ...
	Description string `json:"description,omitempty"`
}

// CheckResult is the outcome of one catalog check on one device.
type CheckResult struct {
	ID         string  `json:"id"`                   // catalog ID: "SU-02"
	Title      string  `json:"title,omitempty"`      // default: the catalog's
	Capability string  `json:"capability,omitempty"` // default: the catalog's
	Device     string  `json:"device"`               // DeviceResult.Name
	Verdict    Verdict `json:"verdict"`
	Reason     string  `json:"reason,omitempty"`
	// Requirements are prefixed requirement IDs ("8259A:SU-2", "EN303645:5.3-10");
	// default: the catalog's.
	Requirements []string      `json:"requirements,omitempty"`
	Evidence     []Evidence    `json:"evidence,omitempty"`
	Duration     time.Duration `json:"duration,omitempty"`
	// Output is an excerpt of what the check saw (transcript lines, messages), for system-out.
	Output string `json:"output,omitempty"`
	// Repro is the command that reproduces the check.
	Repro string `json:"repro,omitempty"`
}

// DeviceResult is one unit and its checks.
type DeviceResult struct {
	Name            string `json:"name"` // the profile's instance name
	ID              string `json:"id,omitempty"`
	FirmwareVersion string `json:"firmware_version,omitempty"`
	// Backend is who started the unit: "sim", "qemu" or "external".
	Backend     string            `json:"backend,omitempty"`
	BootToReady time.Duration     `json:"boot_to_ready,omitempty"`
	Properties  map[string]string `json:"properties,omitempty"`
	Checks      []CheckResult     `json:"checks,omitempty"`
	// Error is a fault that kept the harness from testing the unit (it did not boot, its
	// port vanished). It makes the run exit 2.
	Error string `json:"error,omitempty"`
}

// Run is one hilt run: its provenance and every device's results.
type Run struct {
	// SchemaVersion is the model version the run was made with; 0 means SchemaVersion.
	SchemaVersion int       `json:"schema_version,omitempty"`
	HiltVersion   string    `json:"hilt_version,omitempty"`
	GitCommit     string    `json:"git_commit,omitempty"`
	ProfilePath   string    `json:"profile_path,omitempty"`
	ProfileDigest string    `json:"profile_digest,omitempty"`
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	Seed          int64     `json:"seed"`
	Broker        string    `json:"broker,omitempty"`
	LabelFilter   string    `json:"label_filter,omitempty"`
	// Flaws are only the flaws the user passed on the command line, for provenance.
	Flaws       []string `json:"flaws,omitempty"`
	Interrupted bool     `json:"interrupted,omitempty"`
	// Errors are harness faults that belong to no device (broker down, bad input).
	Errors  []string       `json:"errors,omitempty"`
	Devices []DeviceResult `json:"devices,omitempty"`
}

// clone returns a deep copy of run.
func (run *Run) clone() *Run {
	out := *run
	out.Flaws = slices.Clone(run.Flaws)
	out.Errors = slices.Clone(run.Errors)
	out.Devices = make([]DeviceResult, len(run.Devices))
	for i, d := range run.Devices {
		d.Properties = maps.Clone(d.Properties)
		d.Checks = slices.Clone(d.Checks)
		for j := range d.Checks {
			c := &d.Checks[j]
			c.Requirements = slices.Clone(c.Requirements)
			c.Evidence = slices.Clone(c.Evidence)
		}
		out.Devices[i] = d
	}
	return &out
}

// sortedDevices returns the devices ordered by name.
func sortedDevices(run *Run) []DeviceResult {
	ds := slices.Clone(run.Devices)
	slices.SortStableFunc(ds, func(a, b DeviceResult) int { return cmp.Compare(a.Name, b.Name) })
	return ds
}

// sortedChecks returns d's checks in catalog order; checks the catalog does not know come
// last, ordered by ID.
func sortedChecks(d DeviceResult) []CheckResult {
	cs := slices.Clone(d.Checks)
	slices.SortStableFunc(cs, func(a, b CheckResult) int {
		oa, ob := catalog.Order(a.ID), catalog.Order(b.ID)
		if oa < 0 && ob < 0 {
			return cmp.Compare(a.ID, b.ID)
		}
		if oa < 0 || ob < 0 {
			return cmp.Compare(ob, oa) // the known one first
		}
		return cmp.Compare(oa, ob)
	})
	return cs
}

// withDefaults fills Title, Capability and Requirements of c from the catalog where c leaves
// them empty.
func withDefaults(c CheckResult) CheckResult {
	cat, ok := catalog.Lookup(c.ID)
	if !ok {
		return c
	}
	if c.Title == "" {
		c.Title = cat.Title
	}
	if c.Capability == "" {
		c.Capability = cat.Capability
	}
	if len(c.Requirements) == 0 {
		c.Requirements = cat.Requirements()
	}
	return c
}

// verdictCounts counts verdicts; an unknown verdict counts as an error.
type verdictCounts struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Skip  int `json:"skip"`
	Error int `json:"error"`
}

func (vc *verdictCounts) add(v Verdict) {
	switch v {
	case Pass:
		vc.Pass++
	case Fail:
		vc.Fail++
	case Skip:
		vc.Skip++
	default:
		vc.Error++
	}
}

func (vc verdictCounts) total() int { return vc.Pass + vc.Fail + vc.Skip + vc.Error }

func countDevice(d DeviceResult) verdictCounts {
	var vc verdictCounts
	for _, c := range d.Checks {
		vc.add(c.Verdict)
	}
	return vc
}

func countRun(run *Run) verdictCounts {
	var vc verdictCounts
	for _, d := range run.Devices {
		for _, c := range d.Checks {
			vc.add(c.Verdict)
		}
	}
	return vc
}
