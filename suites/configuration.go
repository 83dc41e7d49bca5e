package suites

import (
	"context"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/wire"
)

// configuration holds the DC checks: 8259A Device Configuration.
func (e *Env) configuration() {
	e.check("DC-01", func(ctx SpecContext, c *C) {
		e.restore(ctx, c)
		before := e.settings(ctx, c)
		want := map[string]string{}
		if _, ok := before["ntp_server"]; ok {
			want["ntp_server"] = "hilt-dc01-" + randHex(4) + ".example"
		}
		if v, ok := before["telemetry_interval"]; ok {
			want["telemetry_interval"] = otherThan(v, "17", "18")
		}
		if len(want) == 0 {
			c.Errorf("the device reports neither ntp_server nor telemetry_interval (settings: %v): nothing to change", before)
		}
		for _, k := range sortedKeys(want) {
			c.Must(e.S.Set(ctx, k, want[k]), fmt.Sprintf("set %s to %q as admin on the console", k, want[k]))
		}
		now := e.settings(ctx, c)
		var f findings
		for _, k := range sortedKeys(want) {
			if now[k] != want[k] {
				f.add("%s: set to %q, the device accepted it but reads %q", k, want[k], now[k])
			}
		}
		f.failIfAny(c, "an authorized change did not take effect")
		c.Must(e.S.Reboot(ctx), "reboot the device")
		after := e.settings(ctx, c)
		for _, k := range sortedKeys(want) {
			if after[k] != want[k] {
				f.add("%s: %q before the reboot, %q after it (it was %q before the change)", k, want[k], after[k], before[k])
			}
		}
		f.failIfAny(c, "an authorized change did not persist across a reboot")
		c.Note("%v persisted across a reboot", want)
	})

	e.check("DC-02", func(ctx SpecContext, c *C) {
		e.restore(ctx, c)
		const key = "ntp_server"
		before, ok := e.settings(ctx, c)[key]
		if !ok {
			c.Errorf("the device reports no %s setting to attempt changing", key)
		}
		e.mqttReady(ctx, c)
		viewer := e.tempUser(ctx, c, "hiltview", "viewer")
		seq, err := e.S.LastSeq(ctx)
		c.Must(err, "read the security log")
		attempts := []struct {
			name string
			auth *wire.Auth
		}{
			{"no credentials", nil},
			{"a wrong password for " + e.S.Admin.User, &wire.Auth{User: e.S.Admin.User, Pass: wrongPassword()}},
			{"the low-privilege (viewer) user " + viewer.User, viewer},
		}
		var f findings
		var tried []string
		for _, t := range e.S.Transports() {
			for _, a := range attempts {
				value := "hilt-dc02-" + randHex(4) + ".example"
				err := e.do(ctx, t, a.auth, "config.set", map[string]any{"key": key, "value": value}, nil)
				switch code := agent.Code(err); {
				case err == nil:
					f.add("%s: config.set %s with %s was accepted", t.Iface(), key, a.name)
				case code == wire.CodeLocked:
					c.Errorf("%s: the interface is locked out (%v): the attempt with %s could not be tested", t.Iface(), err, a.name)
				case code == wire.CodeAuth || code == wire.CodeForbidden:
				case code != "":
					f.add("%s: config.set with %s refused with code %q, want %q or %q", t.Iface(), a.name, code, wire.CodeAuth, wire.CodeForbidden)
				default:
					c.Must(err, fmt.Sprintf("config.set over %s with %s", t.Iface(), a.name))
				}
				tried = append(tried, t.Iface()+"/"+a.name+": "+outcome(err))
				if now := e.settings(ctx, c)[key]; now != before {
					f.add("%s: after config.set with %s, %s reads %q (was %q)", t.Iface(), a.name, key, now, before)
					c.Must(e.S.Set(ctx, key, before), "set "+key+" back")
				}
			}
		}
		c.writeEvidence("attempts.txt", "unauthorized config.set attempts and their outcome", []byte(strings.Join(tried, "\n")+"\n"))
		f.failIfAny(c, "a configuration change without authorization was not rejected")
		evs, err := e.S.Events(ctx, seq)
		c.Must(err, "read the security log")
		logged := map[string]int{}
		for _, ev := range evs {
			if ev.Type == "auth.failure" || ev.Type == "config.rejected" {
				logged[ev.Iface+" "+ev.Type]++
			}
		}
		if len(logged) == 0 {
			c.Failf("%d unauthorized config.set attempts were rejected but no auth.failure or config.rejected event was logged (events since seq %d: %s)",
				len(tried), seq, eventTypes(evs))
		}
		for _, t := range e.S.Transports() {
			if logged[t.Iface()+" auth.failure"]+logged[t.Iface()+" config.rejected"] == 0 {
				c.Failf("the unauthorized config.set attempts over %s left no auth.failure or config.rejected event (logged: %v)", t.Iface(), logged)
			}
		}
		c.Note("%d attempts rejected; events logged: %v", len(tried), logged)
	})

	e.check("DC-03", func(ctx SpecContext, c *C) {
		if e.S.Decl == nil || len(e.S.Decl.SecureConfig.Settings) == 0 {
			c.Errorf("the profile declares no secure configuration (declarations secure_config) to compare with")
		}
		secure := e.S.Decl.SecureConfig
		e.restore(ctx, c)
		have := e.settings(ctx, c)
		changes := map[string]string{}
		for k, v := range map[string]string{
			"telemetry_interval": otherThan(secure.Settings["telemetry_interval"], "17", "18"),
			"ntp_server":         "hilt-dc03-" + randHex(4) + ".example",
			"lockout_seconds":    otherThan(secure.Settings["lockout_seconds"], "45", "46"),
			"lockout_threshold":  otherThan(secure.Settings["lockout_threshold"], "7", "8"),
			"tls_min":            otherThan(secure.Settings["tls_min"], "1.3", "1.2"),
		} {
			if _, declared := secure.Settings[k]; !declared {
				continue
			}
			if _, ok := have[k]; ok {
				changes[k] = v
			}
		}
		for _, k := range sortedKeys(changes) {
			c.Must(e.S.Set(ctx, k, changes[k]), fmt.Sprintf("set %s to %q as admin on the console", k, changes[k]))
		}
		c.Must(e.S.Call(ctx, wire.IfaceConsole, "config.restore", nil, nil), "restore the secure configuration (config.restore)")
		e.S.Mgmt.Reset() // tls_min may have changed under the kept connection
		got := e.settings(ctx, c)
		ifs, err := e.ifacesOver(ctx, wire.IfaceConsole)
		c.Must(err, "read the interface states on the console")
		var f findings
		for _, k := range sortedKeys(secure.Settings) {
			if got[k] != secure.Settings[k] {
				how := "was not changed by the check"
				if v, ok := changes[k]; ok {
					how = fmt.Sprintf("the check had set %q", v)
				}
				f.add("setting %s is %q, the declared secure configuration has %q (%s)", k, got[k], secure.Settings[k], how)
			}
		}
		for _, n := range sortedKeys(secure.Interfaces) {
			if on, ok := ifs[n]; !ok || on != secure.Interfaces[n] {
				f.add("interface %s is %s, the declared secure configuration has it %s", n, onOff(ifs[n], ok), onOff(secure.Interfaces[n], true))
			}
		}
		f.failIfAny(c, fmt.Sprintf("after changing %v and config.restore, the configuration differs from the declared secure one", changes))
		c.Note("changed %v; config.restore brought back the declared secure configuration", changes)
	})

	e.check("DC-04", func(ctx SpecContext, c *C) {
		e.restore(ctx, c)
		before := e.settings(ctx, c)
		// Every transport must answer before the attack, so that one that does not answer
		// after it is the device's failure; the console ping also logs it in as admin for
		// the raw lines below.
		e.mqttReady(ctx, c)
		for _, t := range e.S.Transports() {
			c.Must(e.do(ctx, t, nil, "ping", nil, nil), "ping over "+t.Iface()+" before the invalid inputs")
		}
		c.Must(e.S.Call(ctx, wire.IfaceConsole, "ping", nil, nil), "log in on the console as admin")
		c.Attack()
		var f findings
		var sent []string
		record := func(what string, err error) {
			sent = append(sent, what+": "+outcome(err))
			switch code := agent.Code(err); {
			case err == nil:
				f.add("%s was accepted", what)
			case code == wire.CodeInvalid:
			case code != "":
				f.add("%s was refused with code %q, want %q", what, code, wire.CodeInvalid)
			default:
				c.Must(err, what)
			}
		}
		// unchanged checks that nothing the bad input named changed, and puts back what did.
		unchanged := func(what string) {
			now := e.settings(ctx, c)
			for _, k := range sortedKeys(now) {
				was, known := before[k]
				switch {
				case !known:
					f.add("after %s, the device lists a new setting %q = %q", what, k, trunc(now[k], 80))
				case now[k] != was:
					f.add("after %s, %s reads %q (was %q)", what, k, trunc(now[k], 80), was)
					c.Must(e.S.Set(ctx, k, was), "set "+k+" back to "+was)
				}
			}
		}
		transports := e.transportsByName()
		for _, bad := range invalidSettings() {
			t, ok := transports[bad.via]
			if !ok {
				t = e.S.Console
			}
			what := fmt.Sprintf("config.set %s %q over %s (%s)", bad.key, trunc(bad.value, 40), t.Iface(), bad.why)
			record(what, e.do(ctx, t, e.S.Admin, "config.set", map[string]any{"key": bad.key, "value": bad.value}, nil))
			unchanged(what)
		}
		for _, line := range []string{"config.set", "config.set telemetry_interval"} {
			what := fmt.Sprintf("console line %q (argument missing)", line)
			_, err := e.rawConsole(ctx, line)
			record(what, err)
			unchanged(what)
		}
		for _, m := range []struct {
			why  string
			args map[string]any
		}{
			{"value not a string", map[string]any{"key": "telemetry_interval", "value": map[string]any{"seconds": 7}}},
			{"key missing", map[string]any{"value": "7"}},
			{"value missing", map[string]any{"key": "telemetry_interval"}},
		} {
			what := fmt.Sprintf("config.set over mgmt with %s", m.why)
			record(what, e.do(ctx, e.S.Mgmt, e.S.Admin, "config.set", m.args, nil))
			unchanged(what)
		}
		for _, line := range []string{`{"corr":"hilt-dc04","cmd":"config.set","args":`, "\x00\xff not json"} {
			what := fmt.Sprintf("mgmt line %q (not JSON)", line)
			resp, closed, err := e.mgmtRawLine(ctx, line)
			switch {
			case err != nil:
				c.Must(fmt.Errorf("%w: %w", agent.ErrNoAnswer, err), what)
			case closed:
				sent = append(sent, what+": connection closed by the device")
			case resp.OK:
				record(what, nil)
			default:
				code := wire.CodeInternal
				if resp.Error != nil {
					code = resp.Error.Code
				}
				record(what, &agent.DeviceError{Device: e.S.Name, Iface: wire.IfaceMgmt, Cmd: "config.set", Code: code})
			}
			unchanged(what)
		}
		c.writeEvidence("inputs.txt", "invalid inputs sent and the device's answers", []byte(strings.Join(sent, "\n")+"\n"))
		for _, t := range e.S.Transports() {
			c.Must(e.do(ctx, t, nil, "ping", nil, nil), "ping over "+t.Iface()+" after the invalid inputs")
		}
		f.failIfAny(c, "invalid configuration input was not rejected with an error")
		c.Note("%d invalid inputs rejected; the device answers on every transport", len(sent))
	})
}

// badSetting is one invalid config.set.
type badSetting struct{ via, key, value, why string }

// invalidSettings lists the malformed, oversized and out-of-range values DC-04 sends.
func invalidSettings() []badSetting {
	return []badSetting{
		{wire.IfaceConsole, "telemetry_interval", "0", "below the range 1..3600"},
		{wire.IfaceConsole, "telemetry_interval", "-5", "negative"},
		{wire.IfaceMgmt, "telemetry_interval", "99999999999", "above the range, overflows 32 bits"},
		{wire.IfaceConsole, "telemetry_interval", "5s", "not an integer"},
		{wire.IfaceMgmt, "telemetry_interval", "", "empty"},
		{wire.IfaceConsole, "lockout_threshold", "1000", "above the range 0..100"},
		{wire.IfaceMQTT, "lockout_threshold", "-1", "negative"},
		{wire.IfaceConsole, "lockout_seconds", "0", "below the range 1..3600"},
		{wire.IfaceConsole, "tls_min", "1.0", "not 1.2 or 1.3"},
		{wire.IfaceMgmt, "tls_min", "1.1", "not 1.2 or 1.3"},
		{wire.IfaceConsole, "update_enabled", "maybe", "not a boolean"},
		{wire.IfaceConsole, "ntp_server", "pool.ntp.org;reboot", "bad characters"},
		{wire.IfaceConsole, "ntp_server", "bad host name", "spaces"},
		{wire.IfaceMgmt, "ntp_server", strings.Repeat("a", 254), "longer than 253 characters"},
		{wire.IfaceMgmt, "ntp_server", strings.Repeat("n", 10<<10), "oversized: 10 KiB"},
		{wire.IfaceConsole, "hilt_no_such_setting", "1", "unknown key"},
	}
}

// rawConsole sends one console line as given, as whoever the console is logged in as.
func (e *Env) rawConsole(ctx SpecContext, line string) ([]byte, error) {
	cctx, cancel := context.WithTimeout(ctx, e.cmdTimeout())
	defer cancel()
	return e.S.Console.Raw(cctx, line)
}

// otherThan returns the first candidate that differs from v.
func otherThan(v string, candidates ...string) string {
	for _, c := range candidates {
		if c != v {
			return c
		}
	}
	return candidates[len(candidates)-1]
}

func onOff(on, known bool) string {
	switch {
	case !known:
		return "not reported"
	case on:
		return "on"
	}
	return "off"
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return fmt.Sprintf("%s...(%d bytes)", s[:n], len(s))
}

func eventTypes(evs []wire.Event) string {
	var b strings.Builder
	for i, ev := range evs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d %s/%s", ev.Seq, ev.Type, ev.Iface)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
