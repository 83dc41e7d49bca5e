package suites

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/drivers/mqtt"
	"github.com/hilt-project/hilt/drivers/netprobe"
	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/wire"
)

// probeWait bounds the wait for an interface to open or close after iface.set, and for a
// probe that expects no answer.
const probeWait = 3 * time.Second

// interfaces holds the LA checks: 8259A Logical Access to Interfaces.
func (e *Env) interfaces() {
	e.check("LA-01", e.la01)

	e.check("LA-02", func(ctx SpecContext, c *C) {
		orig := e.keepIfaces(ctx, c)
		e.mqttReady(ctx, c)
		var f findings
		tested := 0
		for _, d := range e.declaredIfaces() {
			if !d.Disableable {
				continue
			}
			if _, known := orig[d.Name]; !known {
				f.add("interface %s is declared but the device does not list it (iface.list: %v)", d.Name, orig)
				continue
			}
			switch d.Name {
			case wire.IfaceDebug, wire.IfaceMgmt:
				e.toggleTCP(ctx, c, &f, d, orig[d.Name])
			case wire.IfaceConsole:
				if !orig[wire.IfaceMgmt] { // the console is switched off and on over mgmt
					c.Must(e.setIface(ctx, wire.IfaceConsole, wire.IfaceMgmt, true), "switch mgmt on to toggle the console over it")
				}
				e.toggleConsole(ctx, c, &f)
			case wire.IfaceMQTT:
				if e.S.MQ == nil {
					c.Note("mqtt not toggled: no MQTT broker in the profile")
					continue
				}
				e.toggleMQTT(ctx, c, &f)
			default:
				c.Note("interface %s: the harness has no probe for it", d.Name)
				continue
			}
			tested++
		}
		f.failIfAny(c, "declared disableable interfaces do not disable and enable as declared")
		if tested == 0 {
			Skip("the profile declares no disableable interface the harness can probe")
		}
		c.Note("%d interfaces disabled, found unreachable, and enabled again; network ports probed on every address of the device: %s", tested, addrList(e.S.Inst.Addresses()))
	})

	e.check("LA-03", func(ctx SpecContext, c *C) {
		var withAuth []profile.Interface
		needDebug := false
		for _, d := range e.declaredIfaces() {
			if d.Auth {
				withAuth = append(withAuth, d)
				needDebug = needDebug || d.Name == wire.IfaceDebug
			}
		}
		if len(withAuth) == 0 {
			c.Errorf("the profile declares no interface with authentication")
		}
		if needDebug {
			orig := e.keepIfaces(ctx, c)
			if !orig[wire.IfaceDebug] {
				c.Must(e.setIface(ctx, wire.IfaceConsole, wire.IfaceDebug, true), "enable the debug service")
			}
		}
		e.mqttReady(ctx, c)
		transports := e.transportsByName()
		var f findings
		var tried []string
		for _, d := range withAuth {
			t, ok := transports[d.Name]
			if d.Name == wire.IfaceDebug {
				t = e.dialDebug(ctx, c)
				ok = true
			}
			if !ok {
				c.Note("interface %s: no transport to it in this run", d.Name)
				continue
			}
			for _, a := range []struct {
				name string
				auth *wire.Auth
				ok   bool
			}{
				{"no credentials", nil, false},
				{"a wrong password for " + e.S.Admin.User, &wire.Auth{User: e.S.Admin.User, Pass: wrongPassword()}, false},
				{"valid credentials", e.S.Admin, true},
			} {
				err := e.do(ctx, t, a.auth, "config.get", nil, nil)
				tried = append(tried, fmt.Sprintf("%s, config.get with %s: %s", d.Name, a.name, outcome(err)))
				switch code := agent.Code(err); {
				case code == wire.CodeLocked:
					c.Errorf("%s is locked out (%v): the attempt with %s could not be tested", d.Name, err, a.name)
				case err != nil && code == "":
					c.Must(err, fmt.Sprintf("config.get over %s with %s", d.Name, a.name))
				case a.ok && err != nil:
					f.add("%s refused %s: %v", d.Name, a.name, err)
				case !a.ok && err == nil:
					f.add("%s accepted config.get with %s", d.Name, a.name)
				case !a.ok && code != wire.CodeAuth:
					f.add("%s refused config.get with %s with code %q, want %q", d.Name, a.name, code, wire.CodeAuth)
				}
			}
		}
		c.writeEvidence("attempts.txt", "authentication attempts per interface", []byte(strings.Join(tried, "\n")+"\n"))
		f.failIfAny(c, "an interface does not restrict access to valid credentials")
	})

	e.check("LA-04", func(ctx SpecContext, c *C) {
		e.restore(ctx, c)
		// Lockout off for the duration, where it can be switched off; in any case an admin
		// login after every second failure keeps the unit far from a lockout.
		if e.S.Decl == nil || e.S.Decl.Lockout.Disableable {
			if err := e.S.Set(ctx, "lockout_threshold", "0"); agent.Refused(err) {
				c.Note("lockout could not be switched off (%v): relying on admin logins between attempts", err)
			} else {
				c.Must(err, "switch lockout off for the duration of the check")
			}
		}
		creds := e.guessableCredentials()
		transports := e.transportsByName()
		var f findings
		var tried []string
		for _, iface := range []string{wire.IfaceConsole, wire.IfaceMgmt} {
			t, ok := transports[iface]
			if !ok {
				continue
			}
			failures := 0
			for _, cr := range creds {
				auth := cr.auth
				err := e.do(ctx, t, &auth, "config.get", nil, nil)
				tried = append(tried, fmt.Sprintf("%s %s/%s (%s): %s", iface, auth.User, c.env.redact(auth.Pass), cr.why, outcome(err)))
				switch code := agent.Code(err); {
				case err == nil:
					f.add("%s: %s works (%s)", iface, auth.User+"/"+c.env.redact(auth.Pass), cr.why)
				case code == wire.CodeLocked:
					c.Errorf("%s locked out during the check although lockout was switched off: %v", iface, err)
				case code == "":
					c.Must(err, fmt.Sprintf("log in over %s as %s", iface, auth.User))
				default:
					failures++
				}
				if failures >= 2 { // never come near a lockout, whatever the setting does
					c.Must(e.do(ctx, t, e.S.Admin, "config.get", nil, nil), "log in over "+iface+" as admin between attempts")
					failures = 0
				}
			}
			c.Must(e.do(ctx, t, e.S.Admin, "config.get", nil, nil), "log in over "+iface+" as admin after the attempts")
		}
		c.writeEvidence("attempts.txt", "credentials tried", []byte(strings.Join(tried, "\n")+"\n"))
		f.failIfAny(c, "a default or shared credential works")
		c.Note("%d credentials refused on console and mgmt", len(creds))
	})

	e.check("LA-05", func(ctx SpecContext, c *C) {
		lo := profile.Lockout{Threshold: 5, Seconds: 30, Configurable: true, Disableable: true}
		if e.S.Decl != nil && (e.S.Decl.Lockout != profile.Lockout{}) {
			lo = e.S.Decl.Lockout
		}
		e.restore(ctx, c)
		have := e.settings(ctx, c)
		var f findings
		if lo.Threshold > 0 && have["lockout_threshold"] != strconv.Itoa(lo.Threshold) {
			f.add("lockout_threshold is %q, declared %d", have["lockout_threshold"], lo.Threshold)
		}
		if lo.Seconds > 0 && have["lockout_seconds"] != strconv.Itoa(lo.Seconds) {
			f.add("lockout_seconds is %q, declared %d", have["lockout_seconds"], lo.Seconds)
		}
		if !lo.Configurable {
			f.failIfAny(c, "the lockout settings differ from the declaration")
			Skip(fmt.Sprintf("the profile declares the lockout not configurable: the harness does not wait out the declared %d s lockout", lo.Seconds))
		}
		// On mgmt: lockout_seconds after the device's answer times; threshold 3, then 2 with a
		// reboot one failure short of it; then lockout off.
		lk := &lockoutProbe{e: e, c: c, t: e.S.Mgmt}
		DeferCleanup(func() {
			c.writeEvidence("attempts.txt", "timed authentication attempts on mgmt", []byte(strings.Join(lk.log, "\n")+"\n"))
		})
		lk.measure(ctx)
		lk.tries(ctx, "threshold 3", func() bool { return lk.threshold(ctx, &f, 3) })
		lk.tries(ctx, "threshold 2 across a reboot", func() bool { return lk.acrossReboot(ctx, &f, 2) })
		if !lo.Disableable {
			c.Note("the profile declares the lockout not disableable: lockout_threshold 0 not tried")
			lk.unlock(ctx, &f, 2)
		} else {
			lk.disabled(ctx, &f)
		}
		f.failIfAny(c, "failed-login lockout does not work as declared")
	})
}

// udpProbe is the outcome of LA-01's probe of one declared UDP port.
type udpProbe struct {
	port int
	r    netprobe.UDPResult
	err  error
}

// la01 scans the device's ports and checks every open one is declared.
func (e *Env) la01(ctx SpecContext, c *C) {
	in := e.S.Inst
	declared := map[int]string{}
	for _, d := range e.declaredIfaces() {
		if d.Kind == "tcp" && d.Port != 0 {
			declared[d.Port] = d.Name
		}
	}
	// A SYN scan where hilt may open a raw socket (root), a connect scan otherwise; with a
	// control address, ports that answer there too are set apart (ScanAttributed). The
	// scans of the two families and the UDP probes (which wait for silence) run at once.
	var (
		wg        sync.WaitGroup
		r, r6     netprobe.ScanResult
		err, err6 error
		udp       = make([]udpProbe, len(e.udpPorts()))
	)
	wg.Go(func() {
		defer GinkgoRecover()
		r, err = e.scanAll(ctx, in.Address, in.ControlAddress)
	})
	if in.Address6 != "" {
		wg.Go(func() {
			defer GinkgoRecover()
			r6, err6 = e.scanAll(ctx, in.Address6, "")
		})
	}
	for i, p := range e.udpPorts() {
		wg.Go(func() {
			defer GinkgoRecover()
			uctx, cancel := context.WithTimeout(ctx, netprobe.DefaultUDPWait)
			defer cancel()
			udp[i].port = p
			udp[i].r, udp[i].err = netprobe.ProbeUDP(uctx, in.Address, p, nil)
		})
	}
	wg.Wait()
	c.Must(err, "scan the TCP ports of "+in.Address)
	open, unverifiable, filtered := r.Open, r.Unverifiable, r.Filtered
	var report strings.Builder
	fmt.Fprintf(&report, "TCP scan of %s (all ports), %s scan\n", in.Address, r.Method)
	if r.Fallback != "" {
		fmt.Fprintf(&report, "(%s)\n", r.Fallback)
	}
	for _, p := range open {
		fmt.Fprintf(&report, "tcp %d open (%s)\n", p, orUndeclared(declared[p]))
	}
	for _, p := range filtered {
		fmt.Fprintf(&report, "tcp %d filtered (neither accepted nor refused in time)\n", p)
	}
	for _, p := range unverifiable {
		fmt.Fprintf(&report, "tcp %d open on the control address %s too: cannot be attributed\n", p, in.ControlAddress)
	}
	// The device's other family: every port open there must be declared too (a service
	// bound to [::] only is as reachable as one on the IPv4 address).
	var open6 []int
	if in.Address6 != "" {
		c.Must(err6, "scan the TCP ports of "+in.Address6)
		open6 = r6.Open
		fmt.Fprintf(&report, "TCP scan of %s (all ports), %s scan\n", in.Address6, r6.Method)
		if r6.Fallback != "" {
			fmt.Fprintf(&report, "(%s)\n", r6.Fallback)
		}
		for _, p := range open6 {
			fmt.Fprintf(&report, "tcp %d open (%s)\n", p, orUndeclared(declared[p]))
		}
		for _, p := range r6.Filtered {
			fmt.Fprintf(&report, "tcp %d filtered (neither accepted nor refused in time)\n", p)
		}
	}
	var udpOpen []int
	for _, u := range udp {
		c.Must(u.err, fmt.Sprintf("probe UDP port %d of %s", u.port, in.Address))
		state := "open|filtered"
		switch {
		case u.r.Open:
			state = "open"
			udpOpen = append(udpOpen, u.port)
		case u.r.Closed:
			state = "closed"
		}
		fmt.Fprintf(&report, "udp %d %s (declared)\n", u.port, state)
	}
	c.writeEvidence("ports.txt", "open ports found", []byte(report.String()))
	var undeclared []string
	for _, p := range open {
		if _, ok := declared[p]; !ok {
			undeclared = append(undeclared, strconv.Itoa(p))
		}
	}
	var undeclared6 []string
	for _, p := range open6 {
		if _, ok := declared[p]; !ok {
			undeclared6 = append(undeclared6, strconv.Itoa(p))
		}
	}
	switch {
	case len(undeclared) > 0 && len(undeclared6) > 0:
		c.Failf("TCP ports open that no declared interface names: on %s %s, on %s %s (declared: %v)",
			in.Address, strings.Join(undeclared, ", "), in.Address6, strings.Join(undeclared6, ", "), declared)
	case len(undeclared) > 0:
		c.Failf("TCP ports open on %s that no declared interface names: %s (declared: %v)", in.Address, strings.Join(undeclared, ", "), declared)
	case len(undeclared6) > 0:
		c.Failf("TCP ports open on %s (IPv6) that no declared interface names: %s (declared: %v)", in.Address6, strings.Join(undeclared6, ", "), declared)
	}
	if len(unverifiable) > 0 {
		c.Errorf("ports %v answer on the control address %s as well as on the device's %s: they belong to the host, and whether the device also listens there cannot be told",
			unverifiable, in.ControlAddress, in.Address)
	}
	if len(open) == 0 && len(declared) > 0 {
		c.Errorf("the scan of %s found no open TCP port at all, not even a declared one (%v): nothing observed", in.Address, declared)
	}
	if in.Address6 != "" {
		c.Note("open TCP ports on %s %v (%s scan), on %s %v, all declared; declared UDP ports open: %v", in.Address, open, r.Method, in.Address6, open6, udpOpen)
		return
	}
	c.Note("open TCP ports %v (%s scan), all declared; declared UDP ports open: %v", open, r.Method, udpOpen)
}

// scanAll scans every TCP port of addr, then probes the ports that answered neither way
// once more with full connections (the kernel's own SYN retransmissions): a slow device
// (an emulated one on a busy host) drops SYNs of a fast scan, and a port that never
// answered must not be taken for one that is not open.
func (e *Env) scanAll(ctx SpecContext, addr, control string) (netprobe.ScanResult, error) {
	r, err := netprobe.ScanAttributed(ctx, addr, control)
	if err != nil || len(r.Filtered) == 0 {
		return r, err
	}
	again, err := netprobe.ScanAttributed(ctx, addr, control, netprobe.WithPorts(r.Filtered...), netprobe.WithMethod(netprobe.ScanConnect))
	if err != nil {
		return r, err
	}
	r.Open = append(r.Open, again.Open...)
	r.Unverifiable = append(r.Unverifiable, again.Unverifiable...)
	slices.Sort(r.Open)
	slices.Sort(r.Unverifiable)
	r.Filtered = again.Filtered
	return r, nil
}

// declaredIfaces returns the declared interfaces (none without declarations).
func (e *Env) declaredIfaces() []profile.Interface {
	if e.S.Decl == nil {
		return nil
	}
	return e.S.Decl.Interfaces
}

func (e *Env) udpPorts() []int {
	if e.S.Decl == nil {
		return nil
	}
	return e.S.Decl.UDPPorts
}

func orUndeclared(name string) string {
	if name == "" {
		return "UNDECLARED"
	}
	return "declared: " + name
}

// port returns the declared TCP port of an interface, or its protocol default.
func (e *Env) port(d profile.Interface) int {
	if d.Port != 0 {
		return d.Port
	}
	if d.Name == wire.IfaceDebug {
		return wire.PortDebug
	}
	return wire.PortMgmt
}

// dialDebug opens the debug service; the connection is closed when the check ends.
func (e *Env) dialDebug(ctx SpecContext, c *C) agent.Transport {
	var t agent.Transport
	ok, _ := pollUntil(ctx, probeWait, 100*time.Millisecond, func(ctx context.Context) bool {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		var err error
		t, err = e.S.Via(dctx, wire.IfaceDebug)
		return err == nil
	})
	if !ok {
		c.Errorf("the debug service does not accept connections after it was enabled")
	}
	DeferCleanup(func() { t.Close() })
	return t
}

// toggleConsole disables the console over the management API, tries to log in on it,
// and enables it again.
func (e *Env) toggleConsole(ctx SpecContext, c *C, f *findings) {
	c.Must(e.setIface(ctx, wire.IfaceMgmt, wire.IfaceConsole, false), "switch the console off over mgmt")
	e.S.Console.Forget()
	err := doWithin(ctx, probeWait, e.S.Console, e.S.Admin, "config.get", nil)
	switch {
	case err == nil:
		f.add("console: an admin login and config.get worked while the console was disabled")
	default:
		c.Note("console while disabled: %s", outcome(err))
	}
	c.Must(e.setIface(ctx, wire.IfaceMgmt, wire.IfaceConsole, true), "switch the console on again over mgmt")
	e.S.Console.Forget()
	if err := e.S.Call(ctx, wire.IfaceConsole, "config.get", nil, nil); err != nil {
		f.add("console: no admin login after it was enabled again: %v", err)
	}
}

// goodbyeWait is how long a ping over MQTT waits for an answer once the device said it
// went offline: goodbyeRTTs times the answer it gave while online, within
// [goodbyeMin, goodbyeMax]. A device that still listens answers as fast as it did.
func goodbyeWait(rtt time.Duration) time.Duration {
	return min(max(goodbyeRTTs*rtt, goodbyeMin), goodbyeMax)
}

const (
	goodbyeRTTs    = 20
	goodbyeSamples = 3
	goodbyeMin     = 300 * time.Millisecond
	goodbyeMax     = time.Second
)

// toggleMQTT disables MQTT, checks that the device no longer answers there, and enables it.
func (e *Env) toggleMQTT(ctx SpecContext, c *C, f *findings) {
	// The answer time that scales the wait below is measured as the probe will be sent
	// (as admin, so a device that checks credentials slowly is timed doing so), the
	// slowest of goodbyeSamples pings.
	var rtt time.Duration
	for range goodbyeSamples {
		t0 := time.Now()
		c.Must(e.do(ctx, e.S.MQTT, e.S.Admin, "ping", nil, nil), "ping over MQTT as admin before disabling it")
		rtt = max(rtt, time.Since(t0))
	}
	rec := e.S.MQ.Recorder()
	off := rec.Mark()
	c.Must(e.setIface(ctx, wire.IfaceConsole, wire.IfaceMQTT, false), "switch mqtt off on the console")
	// A device that says goodbye publishes online:false (or its will does): after that
	// a short wait for an answer is enough (goodbyeWait: many times the answer it gave
	// just before); without it, wait the full probe time.
	wait := probeWait
	status := e.S.MQTTTopic("status")
	sctx, cancel := context.WithTimeout(ctx, probeWait)
	_, err := rec.WaitFor(sctx, off, func(m mqtt.Message) bool {
		var st wire.Status
		return m.Topic == status && json.Unmarshal(m.Payload, &st) == nil && !st.Online
	})
	cancel()
	if err == nil {
		wait = goodbyeWait(rtt)
		c.Note("mqtt: the device published online:false on %s; a ping as admin then waits %v for an answer (20 times the slowest of %d before, %v)", status, wait, goodbyeSamples, rtt.Round(time.Millisecond))
	}
	err = doWithin(ctx, wait, e.S.MQTT, e.S.Admin, "ping", nil)
	switch {
	case err == nil:
		f.add("mqtt: the device answered a ping over MQTT while MQTT was disabled")
	default:
		c.Note("mqtt while disabled: %s", outcome(err))
	}
	mark := rec.Mark()
	c.Must(e.setIface(ctx, wire.IfaceConsole, wire.IfaceMQTT, true), "switch mqtt on again on the console")
	bctx, cancel := context.WithTimeout(ctx, e.S.Profile.Timeouts.Boot.Duration)
	defer cancel()
	if err := e.S.AwaitOnline(bctx, mark); err != nil {
		f.add("mqtt: the device did not come back online within %s after MQTT was enabled again: %v", e.S.Profile.Timeouts.Boot.Duration, err)
		return
	}
	// Online is not yet listening (AwaitPing): the ping goes again until the command
	// timeout ends.
	pctx, cancel := context.WithTimeout(ctx, e.cmdTimeout())
	defer cancel()
	if err := e.S.AwaitPing(pctx); err != nil {
		f.add("mqtt: enabled again and back online, but %v", err)
	}
}

// credential is one credential LA-04 tries, and where it comes from.
type credential struct {
	auth wire.Auth
	why  string
}

// wellKnownCredentials are default credentials of consumer devices.
var wellKnownCredentials = [][2]string{
	{"admin", "admin"}, {"root", "root"}, {"admin", "password"}, {"admin", "1234"},
	{"admin", "12345"}, {"root", "toor"}, {"user", "user"}, {"support", "support"},
	{"admin", "admin123"}, {"admin", ""}, {"root", ""},
}

// guessableCredentials lists well-known defaults and every other unit's admin credential.
func (e *Env) guessableCredentials() []credential {
	seen := map[wire.Auth]bool{}
	var out []credential
	add := func(a wire.Auth, why string) {
		if seen[a] {
			return
		}
		seen[a] = true
		out = append(out, credential{a, why})
	}
	for _, w := range wellKnownCredentials {
		if w[1] == "" {
			continue // the console cannot carry an empty password
		}
		add(wire.Auth{User: w[0], Pass: w[1]}, "well-known default")
	}
	for _, in := range e.S.Profile.Instances {
		if in.Name != e.S.Name && in.Admin.User != "" {
			add(wire.Auth{User: in.Admin.User, Pass: in.Admin.Pass}, "the admin credential of unit "+in.Name)
		}
	}
	return out
}
