package suites

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/wire"
)

// Helpers shared by the DC, DP and LA checks: settings as strings, throwaway users,
// commands with a bounded wait, and putting interfaces back whichever of them is off.

// randHex returns n random bytes as lower-case hex (2n characters).
func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// wrongPassword returns a password that is nobody's: random, and never a well-known one.
func wrongPassword() string { return "hilt-wrong-" + randHex(8) }

// cmdTimeout is how long one command may take.
func (e *Env) cmdTimeout() time.Duration { return e.S.Profile.Timeouts.Command.Duration }

// do sends one command over t as auth, bounded by the profile's command timeout.
func (e *Env) do(ctx context.Context, t agent.Transport, auth *wire.Auth, cmd string, args map[string]any, out any) error {
	cctx, cancel := context.WithTimeout(ctx, e.cmdTimeout())
	defer cancel()
	return agent.Call(cctx, t, auth, cmd, args, out)
}

// doWithin sends one command over t as auth and waits at most d for the answer: for
// probes where no answer is the expected outcome.
func doWithin(ctx context.Context, d time.Duration, t agent.Transport, auth *wire.Auth, cmd string, args map[string]any) error {
	cctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return agent.Call(cctx, t, auth, cmd, args, nil)
}

// settingsOver reads every setting over iface as admin, rendered as strings the way the
// profile declares them (config.get returns typed JSON values).
func (e *Env) settingsOver(ctx context.Context, iface string) (map[string]string, error) {
	var r struct {
		Settings map[string]any `json:"settings"`
	}
	if err := e.S.Call(ctx, iface, "config.get", nil, &r); err != nil {
		return nil, err
	}
	return stringValues(r.Settings), nil
}

// settings reads every setting on the console; a fault ends the check.
func (e *Env) settings(ctx SpecContext, c *C) map[string]string {
	s, err := e.settingsOver(ctx, wire.IfaceConsole)
	c.Must(err, "read the settings on the console")
	return s
}

// ifacesOver reads the interface states over iface as admin.
func (e *Env) ifacesOver(ctx context.Context, iface string) (map[string]bool, error) {
	var r struct {
		Interfaces map[string]bool `json:"interfaces"`
	}
	err := e.S.Call(ctx, iface, "iface.list", nil, &r)
	return r.Interfaces, err
}

// stringValues renders typed setting values as the strings config.set takes.
func stringValues(m map[string]any) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = valueString(v)
	}
	return out
}

func valueString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprintf("%d", int64(x))
		}
	}
	return fmt.Sprint(v)
}

// setIface switches an interface on or off as admin over the given interface.
func (e *Env) setIface(ctx context.Context, via, name string, on bool) error {
	return e.S.Call(ctx, via, "iface.set", map[string]any{"name": name, "enabled": on}, nil)
}

// keepIfaces records the interface states now and, when the check ends, puts them back
// whichever interfaces the check left off: the console is switched on over the management
// API first (the session's own restore works over the console), then the rest over the
// console, and a unit whose MQTT came back is awaited online.
func (e *Env) keepIfaces(ctx SpecContext, c *C) map[string]bool {
	orig, err := e.ifacesOver(ctx, wire.IfaceConsole)
	c.Must(err, "read the interface states on the console")
	DeferCleanup(func(ctx SpecContext) {
		if err := e.restoreIfaces(ctx, orig); err != nil {
			c.Errorf("leave the interfaces as found (%v): %v", orig, err)
		}
	}, NodeTimeout(e.S.Profile.Timeouts.Check.Duration))
	return orig
}

// restoreIfaces sets every interface back to want.
func (e *Env) restoreIfaces(ctx context.Context, want map[string]bool) error {
	have, err := e.ifacesOver(ctx, wire.IfaceConsole)
	if err != nil {
		// The console may be the interface that is off: ask the management API.
		if !want[wire.IfaceConsole] {
			return err
		}
		if err2 := e.setIface(ctx, wire.IfaceMgmt, wire.IfaceConsole, true); err2 != nil {
			return fmt.Errorf("console: %w; switching it on over mgmt: %w", err, err2)
		}
		e.S.Console.Forget()
		if have, err = e.ifacesOver(ctx, wire.IfaceConsole); err != nil {
			return err
		}
	}
	_, mq := e.S.Marks()
	var errs []error
	for _, name := range sortedKeys(want) {
		if have[name] == want[name] {
			continue
		}
		errs = append(errs, e.setIface(ctx, wire.IfaceConsole, name, want[name]))
		if name == wire.IfaceMgmt {
			e.S.Mgmt.Reset()
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if want[wire.IfaceMQTT] && !have[wire.IfaceMQTT] && e.S.MQ != nil {
		bctx, cancel := context.WithTimeout(ctx, e.S.Profile.Timeouts.Boot.Duration)
		defer cancel()
		return e.S.AwaitOnline(bctx, mq)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// tempUser adds a user with a random secret password and role over the console as
// admin, and deletes it when the check ends.
func (e *Env) tempUser(ctx SpecContext, c *C, prefix, role string) *wire.Auth {
	u := &wire.Auth{User: prefix + randHex(3), Pass: c.Secret("hilt-" + randHex(12))}
	c.Must(e.S.Call(ctx, wire.IfaceConsole, "user.add", map[string]any{"user": u.User, "pass": u.Pass, "role": role}, nil),
		"add a "+role+" user "+u.User+" on the console")
	DeferCleanup(func(ctx SpecContext) {
		if err := e.S.Call(ctx, wire.IfaceConsole, "user.del", map[string]any{"user": u.User}, nil); err != nil {
			c.Errorf("delete the temporary user %s: %v", u.User, err)
		}
	}, NodeTimeout(e.S.Profile.Timeouts.Check.Duration))
	return u
}

// transportsByName returns the session's request transports by interface name.
func (e *Env) transportsByName() map[string]agent.Transport {
	out := map[string]agent.Transport{}
	for _, t := range e.S.Transports() {
		out[t.Iface()] = t
	}
	return out
}

// outcome describes a command's result for a message: "accepted", "refused (code)" or
// the transport fault.
func outcome(err error) string {
	switch {
	case err == nil:
		return "accepted"
	case agent.Refused(err):
		return "refused (" + agent.Code(err) + ")"
	case errors.Is(err, agent.ErrNoAnswer):
		return "no answer"
	}
	return "error: " + err.Error()
}

// findings collects what a check found wrong, to report every misbehaviour at once.
type findings []string

func (f *findings) add(format string, a ...any) { *f = append(*f, fmt.Sprintf(format, a...)) }

// failIfAny fails the check with every finding.
func (f findings) failIfAny(c *C, what string) {
	if len(f) > 0 {
		c.Failf("%s:\n- %s", what, strings.Join(f, "\n- "))
	}
}

// pollUntil calls probe every interval until it returns true or d has passed; it
// returns whether probe returned true and the time it took. For device states the
// protocol announces with no event (a port closing, a lock expiring). probe gets ctx
// itself, not a context cut at d: a probe under way when d passes finishes (within its
// own bounds) rather than reading the poll's end as the device's answer.
func pollUntil(ctx context.Context, d, interval time.Duration, probe func(ctx context.Context) bool) (bool, time.Duration) {
	start := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if probe(ctx) {
			return true, time.Since(start)
		}
		if time.Since(start) >= d {
			return false, time.Since(start)
		}
		select {
		case <-ctx.Done():
			return false, time.Since(start)
		case <-t.C:
		}
	}
}

// mqttAnswers polls a ping over MQTT until the device answers, for at most the boot
// timeout: a change of tls_min or mqtt_broker (or an interface switched on) makes the
// device reconnect to its broker, and a request published while it is away is lost.
// It returns nil at once when the run has no broker or the device's MQTT is off.
func (e *Env) mqttAnswers(ctx context.Context) error {
	if e.S.MQ == nil {
		return nil
	}
	ifs, err := e.ifacesOver(ctx, wire.IfaceConsole)
	if err != nil {
		return err
	}
	if !ifs[wire.IfaceMQTT] {
		return nil
	}
	var last error
	ok, took := pollUntil(ctx, e.S.Profile.Timeouts.Boot.Duration, 200*time.Millisecond, func(ctx context.Context) bool {
		last = doWithin(ctx, time.Second, e.S.MQTT, nil, "ping", nil)
		return last == nil
	})
	if !ok {
		return fmt.Errorf("no answer to a ping over MQTT for %s: %w", took.Round(time.Millisecond), last)
	}
	return nil
}

// mqttReady ends the check as an error when the device does not answer over MQTT.
func (e *Env) mqttReady(ctx SpecContext, c *C) {
	c.Must(e.mqttAnswers(ctx), "wait for the device to answer over MQTT")
}

// restore snapshots the configuration like C.Restore and, once it is restored at the
// end of the check, waits until the device answers over MQTT again.
func (e *Env) restore(ctx SpecContext, c *C) {
	DeferCleanup(func(ctx SpecContext) {
		if err := e.mqttAnswers(ctx); err != nil {
			c.Errorf("after restoring the configuration: %v", err)
		}
	}, NodeTimeout(e.S.Profile.Timeouts.Check.Duration))
	c.Restore(ctx)
}
