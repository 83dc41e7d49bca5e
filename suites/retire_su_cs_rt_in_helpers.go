package suites

import (
	"context"
	"fmt"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/harness/session"
	"github.com/hilt-project/hilt/wire"
)

// Helpers of the RT checks: decommission, provision, and giving the unit back to the owner
// the profile names, whatever state a check left it in.

// ownership tracks who owns the unit during a retirement check.
type ownership struct {
	e    *Env
	c    *C
	snap session.Config
	// now is who owns the unit as far as the check knows; nil in factory state.
	now *wire.Auth
	// mq is the MQTT mark taken before the last reboot the check caused.
	mq       int64
	rebooted bool
}

// trackOwnership snapshots the configuration and, when the check ends (passed or not),
// gives the unit back to the profile's owner with that configuration: the checks after it
// need a unit they can log in to.
func (e *Env) trackOwnership(ctx SpecContext, c *C) *ownership {
	snap, err := e.S.Snapshot(ctx)
	c.Must(err, "snapshot the configuration")
	o := &ownership{e: e, c: c, snap: snap, now: e.S.Admin}
	DeferCleanup(func(ctx SpecContext) { o.giveBack(ctx) }, NodeTimeout(e.S.Profile.Timeouts.Check.Duration))
	return o
}

// owned reports whether the profile's owner still owns the unit as far as the check knows.
func (o *ownership) owned() bool { return o.now != nil && *o.now == *o.e.S.Admin }

// decommission asks the unit to decommission over t as auth. It returns the refusal, or nil
// when the unit took it; then it has waited for the unit to boot into factory state, and a
// unit that does not come back fails the check.
func (o *ownership) decommission(ctx SpecContext, t agent.Transport, auth *wire.Auth) error {
	mark, mq := o.e.S.Marks()
	err := o.e.do(ctx, t, auth, "decommission", nil, nil)
	if err != nil {
		if agent.Refused(err) {
			return err
		}
		o.c.Must(err, "decommission over "+t.Iface())
	}
	o.now, o.mq, o.rebooted = nil, mq, true
	if err := o.e.S.AwaitBoot(ctx, mark, mq); err != nil {
		o.c.Failf("the device took decommission over %s but did not boot again: %v", t.Iface(), err)
	}
	return nil
}

// reboot reboots a unit owned by auth over the console and waits for it to be ready. It is
// for an owner the check provisioned: Session.AwaitBoot reads the interfaces as the
// profile's admin, who does not own the unit then. A unit that does not come back fails
// the check.
func (o *ownership) reboot(ctx SpecContext, auth *wire.Auth) error {
	mark, mq := o.e.S.Marks()
	if err := o.e.do(ctx, o.e.S.Console, auth, "reboot", nil, nil); err != nil {
		return err
	}
	o.mq, o.rebooted = mq, true
	bctx, cancel := context.WithTimeout(ctx, o.e.S.Profile.Timeouts.Boot.Duration)
	defer cancel()
	if err := o.e.S.Console.WaitReady(bctx, mark); err != nil {
		o.c.Failf("the device took reboot from its owner %s but did not boot again: %v", auth.User, err)
	}
	o.e.S.Mgmt.Reset()
	return nil
}

// provision makes auth the owner of a unit in factory state, over the console.
func (o *ownership) provision(ctx SpecContext, auth *wire.Auth) error {
	err := o.e.do(ctx, o.e.S.Console, nil, "provision", map[string]any{"user": auth.User, "pass": auth.Pass}, nil)
	if err == nil {
		o.now = auth
	}
	return err
}

// works reports whether auth can log in on the console (config.get needs a viewer).
func (o *ownership) works(ctx SpecContext, auth *wire.Auth) bool {
	return o.e.do(ctx, o.e.S.Console, auth, "config.get", nil, nil) == nil
}

// giveBack returns the unit to the profile's owner: decommission it from a new owner the
// check provisioned, provision the profile's admin, restore the configuration snapshot.
func (o *ownership) giveBack(ctx SpecContext) {
	e, c := o.e, o.c
	fail := func(format string, a ...any) {
		c.Errorf("give the device back to its owner %s: %s", e.S.Admin.User, fmt.Sprintf(format, a...))
	}
	info, err := e.publicInfo(ctx)
	if err != nil {
		fail("read info: %v", err)
		return
	}
	if info.Provisioned && !o.works(ctx, e.S.Admin) {
		if o.now == nil || o.owned() || !o.works(ctx, o.now) {
			fail("the device is provisioned, but neither the profile's admin nor an owner the check provisioned can log in")
			return
		}
		if err := o.decommission(ctx, e.S.Console, o.now); err != nil {
			fail("decommission as the check's owner %s: %v", o.now.User, err)
			return
		}
		info.Provisioned = false
	}
	if !info.Provisioned {
		if err := o.provision(ctx, e.S.Admin); err != nil {
			fail("provision %s: %v", e.S.Admin.User, err)
			return
		}
	}
	o.now = e.S.Admin
	if err := e.S.Restore(ctx, o.snap); err != nil {
		fail("%v", err)
		return
	}
	if o.rebooted && e.S.MQ != nil && o.snap.Interfaces[wire.IfaceMQTT] {
		if err := e.S.AwaitAnswering(ctx, o.mq); err != nil {
			fail("%v", err)
		}
	}
}

// publicInfo reads info on the console without logging in: in factory state no
// credential works, and every failed login counts toward the console's lockout.
func (e *Env) publicInfo(ctx SpecContext) (wire.Info, error) {
	var info wire.Info
	err := e.do(ctx, e.S.Console, nil, "info", nil, &info)
	return info, err
}

// newOwner returns credentials for a new owner: a fresh user and a random password.
func newOwner(c *C, prefix string) *wire.Auth {
	return &wire.Auth{User: prefix + randHex(3), Pass: c.Secret("Hn-" + randHex(12))}
}

// factoryIdentity reads the ID and identity key the unit gives on the console.
func (e *Env) factoryIdentity(ctx SpecContext, c *C) (id, pubkey string) {
	var r struct {
		ID     string `json:"id"`
		PubKey string `json:"pubkey"`
	}
	c.Must(e.do(ctx, e.S.Console, nil, "pubkey", nil, &r), "read the identity on the console")
	return r.ID, r.PubKey
}

// ownerSettings are values an owner sets, that differ from any sane factory default.
var ownerSettings = map[string][]string{
	"telemetry_interval": {"17", "19"},
	"ntp_server":         {"ntp-owner.hilt.example", "ntp2-owner.hilt.example"},
	"lockout_threshold":  {"7", "8"},
	"lockout_seconds":    {"45", "46"},
}

// ownerValues picks the two values an owner sets for a setting in turn, both other than its
// declared default d, and distinct where the candidates allow it.
func ownerValues(d string, candidates []string) (earlier, final string) {
	final = otherThan(d, candidates...)
	earlier = final
	for _, v := range candidates {
		if v != d && v != final {
			return v, final
		}
	}
	return earlier, final
}

// ownerTrace is what an old owner left on the unit, for RT-01 to look for after
// decommission: a user data key and its value, and the settings it set, newest first.
type ownerTrace struct {
	key, value string
	settings   []map[string]string
}

// setBy says which of the old owner's settings a value is, or "" when it is none.
func (t ownerTrace) setBy(key, have string) string {
	for i, s := range t.settings {
		if v, ok := s[key]; ok && v == have {
			if i == 0 {
				return ", as the old owner set it"
			}
			return ", as the old owner had set it earlier"
		}
	}
	return ""
}

// sameIdentity adds a finding when the ID or identity key the unit gives on the console
// differ from id and pub, read before what.
func (e *Env) sameIdentity(ctx SpecContext, c *C, f *findings, what, id, pub string) {
	id2, pub2 := e.factoryIdentity(ctx, c)
	if id2 != id || pub2 != pub {
		f.add("the factory identity changed across %s: ID %s and key %s before, ID %s and key %s after", what, id, pub, id2, pub2)
	}
}

// auditFactoryState reads the settings and the old owner's user data as owner, the new
// owner of a decommissioned unit, and adds a finding for every setting off its declared
// default and for the old owner's data still there. when says at what point ("after
// decommission").
func (e *Env) auditFactoryState(ctx SpecContext, c *C, f *findings, owner *wire.Auth, declared map[string]string, old ownerTrace, when string) {
	var r struct {
		Settings map[string]any `json:"settings"`
	}
	c.Must(e.do(ctx, e.S.Console, owner, "config.get", nil, &r), "read the settings as the new owner "+when)
	have := stringValues(r.Settings)
	for _, k := range sortedKeys(declared) {
		if have[k] != declared[k] {
			f.add("setting %s is %q %s%s; the declared secure default is %q", k, have[k], when, old.setBy(k, have[k]), declared[k])
		}
	}
	var ud struct {
		Value string `json:"value"`
	}
	err := e.do(ctx, e.S.Console, owner, "userdata.get", map[string]any{"key": old.key}, &ud)
	switch code := agent.Code(err); {
	case err == nil && ud.Value == old.value:
		f.add("the old owner's user data %s is still there %s, with its value", old.key, when)
	case err == nil:
		f.add("the old owner's user data key %s is still there %s", old.key, when)
	case code == wire.CodeAuth || code == wire.CodeForbidden || code == wire.CodeLocked:
		c.Errorf("read user data as the new owner %s %s: %v", owner.User, when, err)
	case !agent.Refused(err):
		c.Must(err, "read user data as the new owner "+when)
	}
}
