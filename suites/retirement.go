package suites

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/harness/secretscan"
	"github.com/hilt-project/hilt/wire"
)

// retirement holds the RT checks: retirement (NIST IR 8259 §4.2.5, EN 303 645 5.11).
func (e *Env) retirement() {
	e.check("RT-01", func(ctx SpecContext, c *C) {
		var declared map[string]string
		if e.S.Decl != nil {
			declared = e.S.Decl.SecureConfig.Settings
		}
		if len(declared) == 0 {
			c.Errorf("the declarations give no secure configuration (secure_config.settings) to hold the factory state to")
		}
		o := e.trackOwnership(ctx, c)
		// The owner changes its settings in two rounds, as owners do over time: whatever
		// copy of an earlier state the device keeps (a backup, a journal) holds the
		// owner's values too, not the factory's.
		earlier, changed := map[string]string{}, map[string]string{}
		for _, k := range sortedKeys(ownerSettings) {
			if d, ok := declared[k]; ok {
				earlier[k], changed[k] = ownerValues(d, ownerSettings[k])
			}
		}
		for _, round := range []map[string]string{earlier, changed} {
			for _, k := range sortedKeys(round) {
				c.Must(e.S.Set(ctx, k, round[k]), fmt.Sprintf("set %s to %q as the owner", k, round[k]))
			}
		}
		key, value := "hilt-rt01-"+randHex(3), c.Secret("rt01-owner-data-"+randHex(10))
		c.Must(e.S.Call(ctx, wire.IfaceConsole, "userdata.set", map[string]any{"key": key, "value": value}, nil), "store user data as the owner")
		id, pub := e.factoryIdentity(ctx, c)

		c.Must(o.decommission(ctx, e.S.Console, e.S.Admin), "decommission as admin on the console")
		var f findings
		info, err := e.publicInfo(ctx)
		c.Must(err, "read info on the console")
		e.sameIdentity(ctx, c, &f, "decommission", id, pub)
		if e.do(ctx, e.S.Console, e.S.Admin, "config.get", nil, nil) == nil {
			f.add("the old owner %s can still log in on the console", e.S.Admin.User)
		}
		if info.Provisioned {
			f.add("info.provisioned is still true")
			f.failIfAny(c, "decommission did not return the device to its factory state")
		}

		owner := newOwner(c, "hilt-new-")
		c.Must(o.provision(ctx, owner), "provision a new owner on the console")
		old := ownerTrace{key: key, value: value, settings: []map[string]string{changed, earlier}}
		e.auditFactoryState(ctx, c, &f, owner, declared, old, "after decommission")
		// A unit may bring the old owner's state back at a later boot, from a backup or a
		// recovery copy decommission left behind: look again after a reboot.
		c.Must(o.reboot(ctx, owner), "reboot as the new owner on the console")
		e.sameIdentity(ctx, c, &f, "decommission and a reboot", id, pub)
		e.auditFactoryState(ctx, c, &f, owner, declared, old, "after decommission and a reboot")
		f.failIfAny(c, "decommission did not return the device to its factory state")
		c.Note("after decommission, and again after a reboot: not provisioned until a new owner, identity %s kept, %d settings at their declared defaults, user data gone", id, len(declared))
	})

	e.check("RT-02", func(ctx SpecContext, c *C) {
		o := e.trackOwnership(ctx, c)
		c.Must(o.decommission(ctx, e.S.Console, e.S.Admin), "decommission as admin on the console")
		ifaces := []string{wire.IfaceConsole, wire.IfaceMgmt}
		var f findings
		for _, iface := range ifaces {
			t, err := e.S.Via(ctx, iface)
			c.Must(err, "open "+iface)
			err = e.do(ctx, t, e.S.Admin, "config.get", nil, nil)
			switch {
			case err == nil:
				f.add("%s: the old owner %s can still log in (config.get answered)", iface, e.S.Admin.User)
			case !agent.Refused(err):
				c.Must(err, "try the old owner's credentials over "+iface)
			}
		}
		f.failIfAny(c, "the old owner's credentials survive decommission")
		owner := newOwner(c, "hilt-new-")
		c.Must(o.provision(ctx, owner), "provision a new owner on the console")
		for _, iface := range ifaces {
			t, err := e.S.Via(ctx, iface)
			c.Must(err, "open "+iface)
			c.Must(e.do(ctx, t, owner, "config.get", nil, nil), "use the new owner's credentials over "+iface)
		}
		c.Note("the old owner's credentials are refused on %v; the new owner %s works there", ifaces, owner.User)
	})

	e.check("RT-03", func(ctx SpecContext, c *C) {
		if e.Backend == nil {
			Skip("the unit's storage cannot be reached: no backend gives access to it (external unit); RT-03 scans it")
		}
		o := e.trackOwnership(ctx, c)
		data := c.Secret("rt03-wifi-psk-" + randHex(12))
		c.Must(e.S.Call(ctx, wire.IfaceConsole, "userdata.set", map[string]any{"key": "hilt-rt03-wifi", "value": data}, nil), "store user data as the owner")
		viewer := &wire.Auth{User: "hilt-rt03-" + randHex(2), Pass: c.Secret("Hv-" + randHex(12))}
		c.Must(e.S.Call(ctx, wire.IfaceConsole, "user.add", map[string]any{"user": viewer.User, "pass": viewer.Pass, "role": "viewer"}, nil), "add a viewer user as the owner")
		secrets := []string{data, viewer.Pass, e.S.Admin.Pass}
		names := []string{"the owner's user data", "the viewer " + viewer.User + "'s password", "the owner " + e.S.Admin.User + "'s password"}

		c.Must(o.decommission(ctx, e.S.Console, e.S.Admin), "decommission as admin on the console")
		var hits []secretscan.Hit
		var files int
		var root string
		e.withStorage(ctx, c, "scan the unit's storage for the old owner's secrets", false, func(path string) error {
			root = path
			st, err := os.Stat(path)
			if err != nil {
				return err
			}
			if !st.IsDir() {
				files = 1
				hits, err = secretscan.ScanFile(ctx, path, secrets)
				return err
			}
			if err := filepath.WalkDir(path, func(_ string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					files++
				}
				return err
			}); err != nil {
				return err
			}
			hits, err = secretscan.ScanDir(ctx, path, secrets)
			return err
		})
		if files == 0 {
			c.Errorf("the unit's storage at %s holds no file: nothing was scanned", root)
		}
		var f findings
		for _, h := range hits {
			place := h.Path
			if rel, err := filepath.Rel(root, h.Path); err == nil && h.Path != "" {
				place = rel
			}
			f.add("%s found (%s encoding) in %s at offset %d", names[h.Secret], h.Encoding, place, h.Offset)
		}
		f.failIfAny(c, "the old owner's secrets are left on the unit's storage after decommission")
		c.Note("none of %d secrets of the old owner found in %d files of %s, in any encoding", len(secrets), files, root)
	})

	e.check("RT-04", func(ctx SpecContext, c *C) {
		ts := e.S.Transports()
		var ifaces []string
		for _, t := range ts {
			ifaces = append(ifaces, t.Iface())
		}
		e.keepAuthCounts(c, ifaces...) // registered first: it runs after the owner is back
		o := e.trackOwnership(ctx, c)
		key, value := "hilt-rt04-"+randHex(3), c.Secret("rt04-probe-"+randHex(10))
		c.Must(e.S.Call(ctx, wire.IfaceConsole, "userdata.set", map[string]any{"key": key, "value": value}, nil), "store user data as the owner")
		viewer := &wire.Auth{User: "hilt-rt04-" + randHex(2), Pass: c.Secret("Hv-" + randHex(12))}
		c.Must(e.S.Call(ctx, wire.IfaceConsole, "user.add", map[string]any{"user": viewer.User, "pass": viewer.Pass, "role": "viewer"}, nil), "add a viewer user as the owner")
		DeferCleanup(func(ctx SpecContext) {
			if !o.owned() {
				return // decommissioned: the owner's data went with it
			}
			err := e.S.Call(ctx, wire.IfaceConsole, "user.del", map[string]any{"user": viewer.User}, nil)
			if err == nil {
				err = e.S.Call(ctx, wire.IfaceConsole, "userdata.set", map[string]any{"key": key, "value": "cleared"}, nil)
			}
			if err != nil {
				c.Errorf("remove the viewer user and the user data the check added: %v", err)
			}
		}, NodeTimeout(e.S.Profile.Timeouts.Check.Duration))

		attempts := []struct {
			name string
			auth *wire.Auth
		}{
			{"no credentials", nil},
			{"a wrong password for " + e.S.Admin.User, &wire.Auth{User: e.S.Admin.User, Pass: wrongPassword()}},
			{"the viewer " + viewer.User, viewer},
		}
		c.Attack()
		for _, t := range ts {
			for _, a := range attempts {
				if err := o.decommission(ctx, t, a.auth); err == nil {
					c.Failf("decommission over %s with %s was accepted: the device wiped its owner's data and rebooted into factory state", t.Iface(), a.name)
				}
			}
		}
		var f findings
		info, err := e.publicInfo(ctx)
		c.Must(err, "read info on the console")
		if !info.Provisioned {
			f.add("info.provisioned is false")
		}
		var ud struct {
			Value string `json:"value"`
		}
		switch err := e.S.Call(ctx, wire.IfaceConsole, "userdata.get", map[string]any{"key": key}, &ud); {
		case agent.Refused(err):
			f.add("the owner's user data %s is gone or unreadable as admin: %v", key, err)
		case err != nil:
			c.Must(err, "read the owner's user data")
		case ud.Value != value:
			f.add("the owner's user data %s changed", key)
		}
		f.failIfAny(c, "the refused decommissions changed the device")
		c.Note("decommission refused on %v with no credentials, a wrong password and a viewer; the owner and its data are still there", ifaces)
	})
}
