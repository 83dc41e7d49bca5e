package suites

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
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
		return e.S.AwaitAnswering(bctx, mq)
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

// mqttAnswers waits for the device to answer a ping over MQTT (Session.AwaitPing), for at
// most the boot timeout: a change of tls_min or mqtt_broker (or an interface switched on)
// makes the device reconnect to its broker, and a request published while it is away is
// lost.
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
	pctx, cancel := context.WithTimeout(ctx, e.S.Profile.Timeouts.Boot.Duration)
	defer cancel()
	return e.S.AwaitPing(pctx)
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

// LA-05 times attempts against lockouts it sets. The lockout it sets lasts at least
// lockoutRTTs of the slowest answers the device gave so far, and at least a second (the
// protocol's minimum), so that the attempts it judges land well inside it on a busy host.
// An attempt is judged by the times taken around it: one that ended before the earliest
// end the lock can have must have been refused; one that started after its latest end may
// succeed. An attempt that was accepted but ended after the earliest end proves nothing
// either way: the step is repeated with a lockout twice as long, at most lockoutTries times.
const (
	lockoutRTTs   = 5
	lockoutTries  = 3
	lockoutMargin = 3 * time.Second // how long past a lock's latest end the harness waits for it to lift
	lockoutPoll   = 100 * time.Millisecond
)

// lockoutSeconds is the lockout_seconds to set for a device whose slowest answer took rtt.
func lockoutSeconds(rtt time.Duration) int {
	s := int((lockoutRTTs*rtt + time.Second - 1) / time.Second)
	return min(max(s, 1), 3600)
}

// attempt is one timed authentication attempt: when it was sent, when its answer came,
// and the refusal, if any.
type attempt struct {
	start, end time.Time
	err        error
}

// lockJudgement is what an attempt made during a lock shows.
type lockJudgement int

const (
	lockHeld    lockJudgement = iota // refused
	lockMissing                      // accepted, although it ended while the lock had to hold
	lockUnsure                       // accepted, but it ended when the lock may have run out
)

// judgeLock judges a, made during a lock of length d that began no earlier than from.
func judgeLock(a attempt, from time.Time, d time.Duration) lockJudgement {
	switch {
	case a.err != nil:
		return lockHeld
	case a.end.Before(from.Add(d)):
		return lockMissing
	default:
		return lockUnsure
	}
}

// lockoutProbe times authentication attempts on one interface for LA-05. The settings
// change and the reboots go over the console, so that the admin logins they need do not
// reset the count of failures on the interface probed.
type lockoutProbe struct {
	e        *Env
	c        *C
	t        agent.Transport
	seconds  int           // lockout_seconds as set
	rtt      time.Duration // the slowest answer to an attempt so far
	lockedBy *attempt      // the attempt that set off the lock now on, if any
	log      []string
	start    time.Time
}

// lock is the lockout time as set.
func (l *lockoutProbe) lock() time.Duration { return time.Duration(l.seconds) * time.Second }

// logf adds a line to the timed log of attempts.
func (l *lockoutProbe) logf(format string, a ...any) {
	if l.start.IsZero() {
		l.start = time.Now()
	}
	l.log = append(l.log, fmt.Sprintf("%8.3fs ", time.Since(l.start).Seconds())+fmt.Sprintf(format, a...))
}

// attempt makes one authentication attempt (config.get as auth) and times it. A fault
// other than a refusal ends the check.
func (l *lockoutProbe) attempt(ctx context.Context, auth *wire.Auth, what string) attempt {
	if l.start.IsZero() {
		l.start = time.Now()
	}
	a := attempt{start: time.Now()}
	a.err = l.e.do(ctx, l.t, auth, "config.get", nil, nil)
	a.end = time.Now()
	l.rtt = max(l.rtt, a.end.Sub(a.start))
	l.log = append(l.log, fmt.Sprintf("%8.3fs %s: %s (%s)", a.start.Sub(l.start).Seconds(), what, outcome(a.err), a.end.Sub(a.start).Round(time.Millisecond)))
	if a.err != nil && !agent.Refused(a.err) {
		l.c.Must(a.err, what)
	}
	return a
}

// wrong makes one attempt with a wrong password; it must be refused.
func (l *lockoutProbe) wrong(ctx context.Context, what string) attempt {
	a := l.attempt(ctx, &wire.Auth{User: l.e.S.Admin.User, Pass: wrongPassword()}, what)
	if a.err == nil {
		l.c.Failf("%s over %s: a wrong password was accepted", what, l.t.Iface())
	}
	return a
}

// wrongs makes n attempts with wrong passwords and returns the last.
func (l *lockoutProbe) wrongs(ctx context.Context, n int, what string) attempt {
	var a attempt
	for i := 1; i <= n; i++ {
		a = l.wrong(ctx, fmt.Sprintf("%s: wrong password %d of %d", what, i, n))
	}
	return a
}

// valid makes one attempt with the valid password.
func (l *lockoutProbe) valid(ctx context.Context, what string) attempt {
	return l.attempt(ctx, l.e.S.Admin, what)
}

// set changes a setting as admin on the console.
func (l *lockoutProbe) set(ctx context.Context, key, value string) {
	l.logf("set %s to %s on the console", key, value)
	l.c.Must(l.e.S.Set(ctx, key, value), fmt.Sprintf("set %s to %s", key, value))
}

// setLockout sets lockout_seconds long enough for the answers seen so far, and at least
// twice the previous one when a step is tried again.
func (l *lockoutProbe) setLockout(ctx context.Context, again bool) {
	s := lockoutSeconds(l.rtt)
	if again {
		s = min(max(s, 2*l.seconds), 3600)
	}
	l.seconds = s
	l.logf("slowest answer so far %s", l.rtt.Round(time.Millisecond))
	l.set(ctx, "lockout_seconds", strconv.Itoa(s))
}

// measure times the valid password and a wrong one (a device may answer a wrong password
// more slowly), and sets lockout_seconds after the slower answer. Each step after it
// starts with the valid password, which sets the count of failures back to zero.
func (l *lockoutProbe) measure(ctx context.Context) {
	if a := l.valid(ctx, "valid password, to time the answers"); a.err != nil {
		l.c.Errorf("the valid password is refused over %s before any wrong one: %v", l.t.Iface(), a.err)
	}
	l.wrong(ctx, "wrong password, to time the answers")
	l.setLockout(ctx, false)
}

// tries runs step until it gives a sure result, with a longer lockout each time again. A
// device that answers too slowly for any of the tries errors the check.
func (l *lockoutProbe) tries(ctx context.Context, what string, step func() (sure bool)) {
	for i := 1; ; i++ {
		if step() {
			return
		}
		if i == lockoutTries {
			l.c.Errorf("%s: the answers came too slowly to judge the lockout even with lockout_seconds %d (slowest %s)", what, l.seconds, l.rtt.Round(time.Millisecond))
		}
		l.logf("%s: an answer came after the lock could have run out: again with a longer lockout", what)
		l.setLockout(ctx, true)
	}
}

// waitUntil waits until t or the end of ctx.
func waitUntil(ctx context.Context, t time.Time) {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

// first makes sure the count starts from zero: the valid password, which must work.
func (l *lockoutProbe) first(ctx context.Context, n int) {
	if a := l.valid(ctx, fmt.Sprintf("threshold %d: valid password first", n)); a.err != nil {
		l.c.Errorf("threshold %d: the valid password is refused before any wrong one: %v", n, a.err)
	}
}

// belowThreshold checks that n-1 wrong passwords do not lock the interface: the valid
// password still works after them (and sets the count back to zero). It reports false,
// having waited for the lock it found to lift, when they do.
func (l *lockoutProbe) belowThreshold(ctx context.Context, f *findings, n int) bool {
	if n < 2 {
		return true
	}
	l.wrongs(ctx, n-1, fmt.Sprintf("threshold %d", n))
	a := l.valid(ctx, fmt.Sprintf("threshold %d: valid password after %d wrong", n, n-1))
	if a.err == nil {
		return true
	}
	f.add("threshold %d: the valid password was refused after only %s: %v", n, wrongPasswords(n-1), a.err)
	l.awaitUnlock(ctx, f, n, a)
	return false
}

// lockedCode checks that a refusal during a lock says locked.
func (l *lockoutProbe) lockedCode(f *findings, n int, a attempt) {
	if code := agent.Code(a.err); code != wire.CodeLocked {
		f.add("threshold %d: during the lockout the valid password is refused with %q, want %q", n, code, wire.CodeLocked)
	}
}

// threshold sets the threshold to n and checks that n-1 wrong passwords do not lock the
// interface, that n do, that the lock refuses the valid password until shortly before
// its end, and that it lifts after it. It reports false when an answer came too late to
// tell.
func (l *lockoutProbe) threshold(ctx context.Context, f *findings, n int) (sure bool) {
	l.set(ctx, "lockout_threshold", strconv.Itoa(n))
	l.first(ctx, n)
	if !l.belowThreshold(ctx, f, n) {
		return true
	}
	last := l.wrongs(ctx, n, fmt.Sprintf("threshold %d", n))
	a := l.valid(ctx, fmt.Sprintf("threshold %d: valid password right after %d wrong", n, n))
	switch judgeLock(a, last.start, l.lock()) {
	case lockUnsure:
		return false
	case lockMissing:
		f.add("threshold %d: after %d wrong passwords in a row the valid one still works: no lockout", n, n)
		return true
	}
	l.lockedCode(f, n, a)
	// Once more shortly before the earliest end of the lock: it must still hold.
	guard := max(250*time.Millisecond, 3*l.rtt)
	if at := last.start.Add(l.lock() - guard); time.Until(at) > 0 {
		waitUntil(ctx, at)
		a = l.valid(ctx, fmt.Sprintf("threshold %d: valid password shortly before the lockout ends", n))
		if judgeLock(a, last.start, l.lock()) == lockMissing {
			f.add("threshold %d: the lock lifted after %s, shorter than lockout_seconds %d", n, a.end.Sub(last.start).Round(time.Millisecond), l.seconds)
			return true
		}
	}
	l.awaitUnlock(ctx, f, n, last)
	return true
}

// awaitUnlock waits until the latest end of the lock that the attempt from set off, then
// tries the valid password until it works, for at most lockoutMargin more.
func (l *lockoutProbe) awaitUnlock(ctx context.Context, f *findings, n int, from attempt) {
	end := from.end.Add(l.lock())
	waitUntil(ctx, end)
	ok, _ := pollUntil(ctx, lockoutMargin+2*l.rtt, max(lockoutPoll, l.rtt), func(ctx context.Context) bool {
		return l.valid(ctx, fmt.Sprintf("threshold %d: valid password after the lockout", n)).err == nil
	})
	took := time.Since(from.start).Round(time.Millisecond)
	l.lockedBy = nil
	if !ok {
		f.add("threshold %d: the valid password still fails %s after the lockout started (lockout_seconds %d)", n, took, l.seconds)
		l.set(ctx, "lockout_threshold", "0") // to lift the lock
		return
	}
	l.c.Note("threshold %d: locked, lifted %s after the attempt that set it off (lockout_seconds %d)", n, took, l.seconds)
}

// acrossReboot sets the threshold to n and checks that the count of failures survives a
// reboot: n-1 wrong passwords, a reboot, one more, and the lock must be on. It leaves the
// interface locked when it is. It reports false when an answer came too late to tell.
func (l *lockoutProbe) acrossReboot(ctx context.Context, f *findings, n int) (sure bool) {
	l.set(ctx, "lockout_threshold", strconv.Itoa(n))
	l.first(ctx, n)
	if !l.belowThreshold(ctx, f, n) {
		return true
	}
	l.wrongs(ctx, n-1, fmt.Sprintf("threshold %d, before a reboot", n))
	l.logf("reboot")
	t0 := time.Now()
	l.c.Must(l.e.S.Reboot(ctx), "reboot the device one failed login short of the lockout")
	took := time.Since(t0).Round(time.Millisecond)
	l.logf("rebooted in %s", took)
	// Settings lost at a reboot are DC-01's to find; the count cannot be judged without them.
	have, err := l.e.settingsOver(ctx, wire.IfaceConsole)
	l.c.Must(err, "read the settings on the console after the reboot")
	if have["lockout_threshold"] != strconv.Itoa(n) || have["lockout_seconds"] != strconv.Itoa(l.seconds) {
		l.logf("after the reboot lockout_threshold is %s, lockout_seconds %s", have["lockout_threshold"], have["lockout_seconds"])
		l.c.Note("the lockout settings did not survive the reboot (lockout_threshold %s, lockout_seconds %s; set %d and %d): whether the count of failed logins does is not judged",
			have["lockout_threshold"], have["lockout_seconds"], n, l.seconds)
		return true
	}
	last := l.wrong(ctx, fmt.Sprintf("threshold %d, after the reboot: wrong password %d of %d", n, n, n))
	a := l.valid(ctx, fmt.Sprintf("threshold %d: valid password after %d wrong, %d of them before a reboot", n, n, n-1))
	switch judgeLock(a, last.start, l.lock()) {
	case lockUnsure:
		return false
	case lockHeld:
		l.lockedCode(f, n, a)
		l.lockedBy = &last
		l.c.Note("threshold %d: %s, a reboot, one more: locked (the reboot took %s)", n, wrongPasswords(n-1), took)
		return true
	}
	// Tell a count lost at the reboot from a threshold not kept.
	last = l.wrongs(ctx, n, fmt.Sprintf("threshold %d, no reboot", n))
	a = l.valid(ctx, fmt.Sprintf("threshold %d: valid password right after %d wrong, no reboot", n, n))
	before := fmt.Sprintf("threshold %d: after %s, a reboot and one more, the valid password works", n, wrongPasswords(n-1))
	switch judgeLock(a, last.start, l.lock()) {
	case lockHeld:
		l.lockedBy = &last
		f.add("%s, while %s without a reboot lock it: the count of failed logins does not survive a reboot", before, wrongPasswords(n))
	case lockMissing:
		f.add("%s (and %s without a reboot do not lock it either)", before, wrongPasswords(n))
	default:
		f.add("%s (without a reboot, the answer came too late to tell whether %s lock it)", before, wrongPasswords(n))
	}
	return true
}

// wrongPasswords says "1 wrong password", "2 wrong passwords".
func wrongPasswords(n int) string {
	if n == 1 {
		return "1 wrong password"
	}
	return fmt.Sprintf("%d wrong passwords", n)
}

// disabled switches lockout off (lockout_threshold 0) and checks that the valid password
// works before and after 8 wrong ones. A lock still on from before may run out first.
func (l *lockoutProbe) disabled(ctx context.Context, f *findings) {
	l.set(ctx, "lockout_threshold", "0")
	a := l.valid(ctx, "lockout off: valid password first")
	switch {
	case a.err != nil && l.lockedBy != nil && agent.Code(a.err) == wire.CodeLocked:
		l.c.Note("the lock set before lockout was switched off still held: waited for it to run out")
		l.awaitUnlock(ctx, f, 0, *l.lockedBy)
	case a.err != nil:
		f.add("with lockout off (lockout_threshold 0), the valid password was refused before any wrong one: %v", a.err)
	}
	l.wrongs(ctx, 8, "lockout off")
	if a := l.valid(ctx, "lockout off: valid password after 8 wrong"); a.err != nil {
		f.add("with lockout off (lockout_threshold 0), the valid password was refused after 8 wrong ones: %v", a.err)
	}
}

// unlock waits for a lock still on to run out.
func (l *lockoutProbe) unlock(ctx context.Context, f *findings, n int) {
	if l.lockedBy != nil {
		l.awaitUnlock(ctx, f, n, *l.lockedBy)
	}
}
