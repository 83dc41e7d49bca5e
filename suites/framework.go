package suites

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/drivers/mqtt"
	"github.com/hilt-project/hilt/drivers/serial"
	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/harness/catalog"
	"github.com/hilt-project/hilt/harness/session"
	"github.com/hilt-project/hilt/reports"
)

// Backend is what a check can ask of whoever runs the unit, beyond its own interfaces:
// power and storage. A nil Backend (external units) offers nothing.
type Backend interface {
	// Kind is "sim", "qemu" or "external".
	Kind() string
	// PowerCut cuts the unit's power at once (its RAM and unsynced writes are lost) and
	// powers it on again; the unit then boots. ErrUnsupported where it cannot be modelled.
	PowerCut(ctx SpecContext, device string) error
	// WithStorage stops the unit, calls fn with a path to its raw storage (a data folder
	// or a disk image) while nothing writes it, and starts the unit again. A simulated unit
	// may be scanned while running (the data folder is synced on every write).
	WithStorage(ctx SpecContext, device string, fn func(path string) error) error
}

// ErrUnsupported is returned by a Backend that cannot do what was asked.
var ErrUnsupported = errors.New("not supported by this backend")

// Env is everything the specs of one device need.
type Env struct {
	S *session.Session
	// Fleet is every unit of the run with the identity pinned at first contact,
	// this one included (DI-02, DI-05, LA-04 compare across units).
	Fleet []session.Pin
	// Out is the run's output folder; evidence goes under Out/evidence/<device>/<check>/.
	Out string
	// SigningKey is the maker's (test) update key, nil when the profile has none.
	SigningKey ed25519.PrivateKey
	Backend    Backend
	// Secrets are strings that must never appear unredacted in reports.
	Secrets []string
	Log     io.Writer

	// notPassed is the ID of the last check that neither passed nor was skipped, until one
	// passes (a skipped check never touched the unit): the next check first makes sure that
	// the unit still answers. lost, once set, says that it did not: the checks after that
	// are not run.
	notPassed string
	lost      string
}

// Verdict report entries: a failed spec carrying EntryVerdict=error is an infrastructure
// error, not a device failure.
const (
	EntryVerdict  = "hilt.verdict"
	EntryEvidence = "hilt.evidence"
	EntryRepro    = "hilt.repro"
	EntryNote     = "hilt.note"
)

// C is the per-check helper handed to each spec body.
type C struct {
	ID       string
	env      *Env
	dir      string
	conMark  serial.Mark
	mqMark   int64
	attacked bool
}

// check declares the spec for one catalog check.
func (e *Env) check(id string, body func(ctx SpecContext, c *C), extra ...any) {
	chk, ok := catalog.Lookup(id)
	if !ok {
		panic("suites: check " + id + " is not in the catalog") // a programming error caught by the suite's own test
	}
	args := []any{Label(catalog.Labels(id)...), NodeTimeout(e.S.Profile.Timeouts.Check.Duration)}
	args = append(args, extra...)
	args = append(args, func(ctx SpecContext) {
		c := e.begin(id)
		if reason, ok := e.notApplicable(chk); ok {
			Skip(reason)
		}
		if lost := e.stillThere(ctx); lost != "" {
			c.Errorf("not run: %s", lost)
		}
		body(ctx, c)
	})
	It(id+" "+chk.Title, args...)
}

// ended records how the check id ended, for the next check's stillThere. A pass clears the
// mark; a skip leaves it as it was, since a skipped check never touched the unit and so says
// nothing about whether it still answers; any other verdict sets it.
func (e *Env) ended(id string, v reports.Verdict) {
	switch v {
	case reports.Pass:
		e.notPassed = ""
	case reports.Skip:
	default:
		e.notPassed = id
	}
}

// stillThere returns why the unit cannot be tested any more, or "". A check that did not
// pass may have left the unit dead (a QEMU killed, a device that never booted again after
// an update): its console must then answer within the boot timeout, or the unit is lost and
// every check after it is an error at once, instead of each waiting out its own timeouts on
// a unit that is gone.
func (e *Env) stillThere(ctx SpecContext) string {
	if e.lost != "" || e.notPassed == "" {
		return e.lost
	}
	after := e.notPassed
	e.notPassed = ""
	begin := time.Now()
	err := e.S.AwaitAnswer(ctx)
	if err == nil || !session.Gone(err) || ctx.Err() != nil {
		return ""
	}
	e.lost = fmt.Sprintf("%s gave no answer on its console for %v after %s, which did not pass (checked at %s): the unit is lost to this run, and the checks after it are not run: %v",
		e.S.Name, time.Since(begin).Round(time.Second), after, begin.Format("15:04:05"), err)
	return e.lost
}

func (e *Env) notApplicable(chk catalog.Check) (string, bool) {
	if d := e.S.Decl; d != nil {
		if r, ok := d.NotApplicableReason(chk.ID); ok {
			return "declared not applicable: " + r, true
		}
	}
	if chk.Destructive != "" && !e.S.Profile.Allowed(chk.Destructive) {
		return fmt.Sprintf("destructive (%s) and not allowed for this unit: set destructive.%s: true in the profile to run it", chk.Destructive, chk.Destructive), true
	}
	return "", false
}

func (e *Env) begin(id string) *C {
	c := &C{ID: id, env: e, dir: filepath.Join(e.Out, "evidence", e.S.Name, id)}
	c.conMark = e.S.Port.Mark()
	if e.S.MQ != nil {
		c.mqMark = e.S.MQ.Recorder().Mark()
	}
	DeferCleanup(func() { c.saveEvidence() })
	AddReportEntry(EntryRepro, ReportEntryVisibilityNever, e.repro(id))
	return c
}

func (e *Env) repro(id string) string {
	return fmt.Sprintf("hilt run --device %s --label-filter %s", e.S.Profile.Path, id)
}

// saveEvidence writes the console transcript and MQTT log of the check; on failure they
// are what a person reads first.
func (c *C) saveEvidence() {
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return
	}
	if t := c.env.S.Port.TranscriptSince(c.conMark); len(t) > 0 {
		c.writeEvidence("console.txt", "console transcript", t)
	}
	if c.env.S.MQ != nil {
		var b strings.Builder
		c.env.S.MQ.Recorder().WriteLog(&b, c.mqMark)
		if b.Len() > 0 {
			c.writeEvidence("mqtt.jsonl", "MQTT messages seen", []byte(b.String()))
		}
	}
}

// Dir is the check's evidence folder (created on demand).
func (c *C) Dir() string {
	os.MkdirAll(c.dir, 0o755)
	return c.dir
}

// writeEvidence stores an evidence file and records it for the report.
func (c *C) writeEvidence(name, what string, b []byte) {
	p := filepath.Join(c.Dir(), name)
	if err := os.WriteFile(p, []byte(c.env.redact(string(b))), 0o644); err != nil {
		return
	}
	c.Evidence(p, what)
}

// Evidence records a file (absolute, under the out folder) as evidence of this check.
func (c *C) Evidence(path, what string) {
	rel, err := filepath.Rel(c.env.Out, path)
	if err != nil {
		rel = path
	}
	AddReportEntry(EntryEvidence, ReportEntryVisibilityNever, rel+"\t"+what)
}

// Note adds a line to the check's output (system-out in JUnit).
func (c *C) Note(format string, a ...any) {
	AddReportEntry(EntryNote, ReportEntryVisibilityNever, fmt.Sprintf(format, a...))
}

// Attack marks the point after which the harness has attacked the device: from then on,
// a device that stops answering fails the check instead of erroring it.
func (c *C) Attack() { c.attacked = true }

// Errorf ends the check as an infrastructure error (harness, broker, capture, a device
// that gave no answer before any attack): not a verdict on the device.
func (c *C) Errorf(format string, a ...any) {
	AddReportEntry(EntryVerdict, ReportEntryVisibilityNever, "error")
	Fail(fmt.Sprintf(format, a...), 1)
}

// Failf ends the check as a device failure.
func (c *C) Failf(format string, a ...any) { Fail(fmt.Sprintf(format, a...), 1) }

// Must ends the check when err is not nil: a fault before any attack is an error;
// after an attack, or a refusal of an authorised admin action, it is a failure. A fault
// of the harness's own path to the device (serial port vanished, broker connection lost)
// is an error even after an attack: it says nothing about the device.
func (c *C) Must(err error, step string) {
	if err == nil {
		return
	}
	if fail, why := mustVerdict(err, c.attacked); fail {
		c.Failf("%s: %s%v", step, why, err)
	} else {
		c.Errorf("%s: %s%v", step, why, err)
	}
}

// mustVerdict classifies an error that ends a check (BASELINE.md, "Verdicts"): whether it
// is a device failure, and the words that say why before the error itself.
func mustVerdict(err error, attacked bool) (fail bool, why string) {
	switch {
	case agent.Refused(err):
		return true, "the device refused: "
	case agent.LinkLost(err) || errors.Is(err, serial.ErrPortGone) || errors.Is(err, mqtt.ErrNotConnected):
		return false, "the harness lost its link to the device (infrastructure): "
	case attacked && errors.Is(err, agent.ErrNoAnswer):
		return true, "the device stopped answering after the attack: "
	}
	return false, ""
}

// Restore snapshots the unit's configuration now and restores it when the check ends.
func (c *C) Restore(ctx SpecContext) {
	snap, err := c.env.S.Snapshot(ctx)
	c.Must(err, "snapshot the configuration")
	DeferCleanup(func(ctx SpecContext) {
		if err := c.env.S.Restore(ctx, snap); err != nil {
			c.Errorf("leave the device as found: %v", err)
		}
	}, NodeTimeout(c.env.S.Profile.Timeouts.Check.Duration))
}

// Secret registers a string the reports must redact, and returns it.
func (c *C) Secret(s string) string {
	c.env.Secrets = append(c.env.Secrets, s)
	return s
}

// Since returns how long ago t was, for notes.
func Since(t time.Time) time.Duration { return time.Since(t).Round(time.Millisecond) }
