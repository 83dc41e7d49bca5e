package suites

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/hilt-project/hilt/drivers/mqtt"
	"github.com/hilt-project/hilt/drivers/serial"
	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/reports"
)

// TestMustVerdict holds Must to BASELINE.md's verdict rules: silence after an attack is a
// failure, before it an error; a fault of the harness's own path (port vanished, broker
// connection lost) is an error even after an attack; a refusal is a failure.
func TestMustVerdict(t *testing.T) {
	silent := fmt.Errorf("dev1: ping over console: %w: %w", agent.ErrNoAnswer, &serial.TimeoutError{Port: "/dev/ttyUSB0", Err: context.DeadlineExceeded})
	gone := fmt.Errorf("dev1: ping over console: %w: %w", agent.ErrLinkLost, &serial.GoneError{Port: "/dev/ttyUSB0", Err: errors.New("EIO")})
	bareGone := &serial.GoneError{Port: "/dev/ttyUSB0", Err: errors.New("EIO")}
	brokerDown := fmt.Errorf("mqtt mqtts://127.0.0.1:1883: publish: %w", mqtt.ErrNotConnected)
	refused := &agent.DeviceError{Device: "dev1", Iface: "console", Cmd: "config.set", Code: "forbidden", Message: "no"}
	cases := []struct {
		name     string
		err      error
		attacked bool
		wantFail bool
	}{
		{"silent before an attack", silent, false, false},
		{"silent after an attack", silent, true, true},
		{"port vanished before an attack", gone, false, false},
		{"port vanished after an attack", gone, true, false},
		{"port vanished, not through a transport", bareGone, true, false},
		{"broker down after an attack", brokerDown, true, false},
		{"refused", refused, false, true},
		{"other fault after an attack", errors.New("capture not permitted"), true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, why := mustVerdict(tc.err, tc.attacked); got != tc.wantFail {
				t.Errorf("fail = %v (%q), want %v", got, why, tc.wantFail)
			}
		})
	}
}

// TestEndedMarksTheUnitForAPing holds which check the next one pings the unit after: the
// last one that neither passed nor was skipped, until a check passes.
func TestEndedMarksTheUnitForAPing(t *testing.T) {
	cases := []struct {
		name     string
		verdicts []reports.Verdict
		want     string
	}{
		{"none yet", nil, ""},
		{"pass", []reports.Verdict{reports.Pass}, ""},
		{"fail", []reports.Verdict{reports.Fail}, "c1"},
		{"error", []reports.Verdict{reports.Error}, "c1"},
		{"fail then pass", []reports.Verdict{reports.Fail, reports.Pass}, ""},
		{"fail then skip", []reports.Verdict{reports.Fail, reports.Skip}, "c1"},
		{"fail, skip, skip", []reports.Verdict{reports.Fail, reports.Skip, reports.Skip}, "c1"},
		{"pass then error", []reports.Verdict{reports.Pass, reports.Error}, "c2"},
		{"fail then error", []reports.Verdict{reports.Fail, reports.Error}, "c2"},
		{"skip alone", []reports.Verdict{reports.Skip}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e Env
			for i, v := range tc.verdicts {
				e.ended(fmt.Sprintf("c%d", i+1), v)
			}
			if e.notPassed != tc.want {
				t.Errorf("after %v: notPassed = %q, want %q", tc.verdicts, e.notPassed, tc.want)
			}
		})
	}
}
