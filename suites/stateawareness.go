package suites

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/drivers/mqtt"
	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/harness/image"
	"github.com/hilt-project/hilt/wire"
)

// Event types the CSA checks cause and look for (docs/PROTOCOL.md, "Security events").
const (
	csAuthFailure    = "auth.failure"
	csUpdateRejected = "update.rejected"
	csConfigChange   = "config.change"
	csIfaceChange    = "iface.change"
)

// eventSkew is how far a device's clock may be from the harness's.
const eventSkew = 5 * time.Second

// eventWait bounds the wait for a published event.
const eventWait = 5 * time.Second

// stateAwareness holds the CS checks: 8259A Cybersecurity State Awareness.
func (e *Env) stateAwareness() {
	e.check("CS-01", func(ctx SpecContext, c *C) {
		c.Restore(ctx)
		e.keepAuthCounts(c, wire.IfaceMgmt)
		since, err := e.S.LastSeq(ctx)
		c.Must(err, "read the security log as admin")
		start := time.Now()
		wrong := e.failLogin(ctx, c, wire.IfaceMgmt)
		e.rejectUpdate(ctx, c)
		e.changeSetting(ctx, c)
		e.toggleDebug(ctx, c)
		evs, err := e.S.Events(ctx, since)
		c.Must(err, "read the security log as admin")
		end := time.Now()
		e.saveEvents(c, "events.json", evs)

		var f findings
		for _, ev := range evs {
			if ok, why := eventWithin(ev, start, end, eventSkew); !ok {
				f.add("event %d (%s): %s", ev.Seq, ev.Type, why)
			}
			if b, _ := json.Marshal(ev); bytes.Contains(b, []byte(wrong)) {
				f.add("event %d (%s) holds the password tried", ev.Seq, ev.Type)
			}
		}
		for _, typ := range []string{csAuthFailure, csUpdateRejected, csConfigChange, csIfaceChange} {
			if !hasEvent(evs, since, typ) {
				f.add("no %s event", typ)
			}
		}
		f.failIfAny(c, fmt.Sprintf("the security log does not record what was caused (a failed login on mgmt, a rejected update, a config change, an interface change); events since seq %d: %s",
			since, eventTypes(evs)))
		c.Note("%d events logged for what was caused: %s", len(evs), eventTypes(evs))
	})

	e.check("CS-02", func(ctx SpecContext, c *C) {
		if e.S.MQ == nil {
			Skip("the profile gives no MQTT broker: the declared event topic cannot be listened to")
		}
		tmpl := ""
		if e.S.Decl != nil {
			tmpl = e.S.Decl.Events.MQTTTopic
		}
		if tmpl == "" {
			c.Failf("the declarations name no place security events are sent to (events.mqtt_topic)")
		}
		topic := strings.NewReplacer("{prefix}", e.S.Profile.Broker.TopicPrefix, "{id}", e.S.ID).Replace(tmpl)
		own := agent.Topic(e.S.Profile.Broker.TopicPrefix, e.S.ID, "")
		if !strings.HasPrefix(topic, own) {
			c.Must(e.S.MQ.Subscribe(ctx, topic, 1), "subscribe to the declared event topic "+topic)
		}
		c.Restore(ctx)
		e.keepAuthCounts(c, wire.IfaceMgmt)
		since, err := e.S.LastSeq(ctx)
		c.Must(err, "read the security log as admin")
		mark := e.S.MQ.Recorder().Mark()
		e.failLogin(ctx, c, wire.IfaceMgmt)
		e.changeSetting(ctx, c)
		evs, err := e.S.Events(ctx, since)
		c.Must(err, "read the security log as admin")
		e.saveEvents(c, "logged.json", evs)
		if len(evs) == 0 {
			c.Errorf("the device logged no event for a failed login on mgmt and a config change: there is nothing to look for on %s", topic)
		}
		wctx, cancel := context.WithTimeout(ctx, eventWait)
		defer cancel()
		var missing []string
		for _, ev := range evs {
			_, err := e.S.MQ.Recorder().WaitFor(wctx, mark, func(m mqtt.Message) bool {
				var got wire.Event
				return m.Topic == topic && json.Unmarshal(m.Payload, &got) == nil && got.Type == ev.Type && got.Seq == ev.Seq
			})
			if err != nil {
				missing = append(missing, fmt.Sprintf("%d %s", ev.Seq, ev.Type))
			}
		}
		if len(missing) > 0 {
			c.Failf("security events the device logged did not arrive on the declared topic %s within %s: %s (logged: %s)",
				topic, eventWait, strings.Join(missing, ", "), eventTypes(evs))
		}
		c.Note("every event logged (%s) arrived on %s", eventTypes(evs), topic)
	})

	e.check("CS-03", func(ctx SpecContext, c *C) {
		before, err := e.S.Events(ctx, 0)
		c.Must(err, "read the security log as admin")
		if len(before) == 0 {
			c.Errorf("the security log is empty: nothing to see cleared")
		}
		ts := e.S.Transports()
		var ifaces []string
		for _, t := range ts {
			ifaces = append(ifaces, t.Iface())
		}
		e.keepAuthCounts(c, ifaces...)
		c.Attack()
		var f findings
		for _, t := range ts {
			for _, a := range []struct {
				name string
				auth *wire.Auth
			}{
				{"no credentials", nil},
				{"a wrong password for " + e.S.Admin.User, &wire.Auth{User: e.S.Admin.User, Pass: wrongPassword()}},
			} {
				var r struct {
					Events []wire.Event `json:"events"`
				}
				err := e.do(ctx, t, a.auth, "log.read", nil, &r)
				switch {
				case err == nil:
					f.add("log.read over %s with %s returned the log (%d events)", t.Iface(), a.name, len(r.Events))
				case !agent.Refused(err):
					c.Must(err, "log.read over "+t.Iface()+" with "+a.name)
				}
			}
		}
		for _, t := range ts {
			for _, a := range []struct {
				name string
				auth *wire.Auth
			}{
				{"no credentials", nil},
				{"the admin's credentials", e.S.Admin},
			} {
				err := e.do(ctx, t, a.auth, "log.clear", nil, nil)
				switch {
				case err == nil:
					f.add("log.clear over %s with %s was accepted", t.Iface(), a.name)
				case !agent.Refused(err):
					c.Must(err, "log.clear over "+t.Iface()+" with "+a.name)
				}
			}
		}
		after, err := e.S.Events(ctx, 0)
		c.Must(err, "read the security log as admin")
		last := before[len(before)-1]
		switch {
		case len(after) < len(before):
			f.add("the log held %d events before and %d after: it was cleared or edited", len(before), len(after))
		case !holdsEvent(after, last):
			f.add("event %d (%s), in the log before, is gone", last.Seq, last.Type)
		}
		f.failIfAny(c, "the security state is not restricted to authorized readers, or can be cleared")
		c.Note("log.read refused without authorization on %s; log.clear refused to everyone; %d events before, %d after",
			strings.Join(ifaces, ", "), len(before), len(after))
	})

	e.check("CS-04", func(ctx SpecContext, c *C) {
		var slots []string
		if e.S.Decl != nil {
			slots = e.S.Decl.Storage.ImageSlots
		}
		if len(slots) == 0 {
			Skip("the declarations name no stored image slots (storage.image_slots) to tamper with")
		}
		if e.Backend == nil {
			Skip("the unit's storage cannot be reached: no backend gives access to it (external unit); CS-04 tampers with a stored image")
		}
		e.installNewer(ctx, c)
		running := e.runningImage(ctx, c)
		saved := map[string][]byte{} // path -> original bytes of the slots tampered with
		restored := false
		restore := func(ctx SpecContext) {
			restored = true
			e.withStorage(ctx, c, "put the tampered image slot back", true, func(string) error {
				for p, b := range saved {
					if err := os.WriteFile(p, b, 0o600); err != nil {
						return fmt.Errorf("put back %s: %w", p, err)
					}
				}
				return nil
			})
			c.Must(e.S.Reboot(ctx), "reboot the device with its image slots put back")
		}
		DeferCleanup(func(ctx SpecContext) {
			if !restored && len(saved) > 0 {
				restore(ctx)
			}
		}, NodeTimeout(e.S.Profile.Timeouts.Check.Duration))
		e.withStorage(ctx, c, "tamper with the inactive image slot", true, func(root string) error {
			return tamperInactiveSlot(root, slots, running, saved)
		})
		names := slotNames(saved)
		c.Attack()
		c.Must(e.S.Reboot(ctx), "reboot the device with a tampered stored image")
		if st, reasons := e.securityState(ctx, c); st != "degraded" {
			c.Failf("with the stored image %s tampered with (a byte of its payload and one of its signature flipped; it is not the running one, %s), the device reports state %q (%v), not degraded",
				names, imageString(running), st, reasons)
		} else {
			c.Note("tampered %s: the device reports degraded: %v", names, reasons)
		}
		restore(ctx)
		if st, reasons := e.securityState(ctx, c); st != "normal" {
			c.Failf("with the stored image %s put back as it was, the device reports state %q (%v), not normal", names, st, reasons)
		}
	})
}

// failLogin authenticates over iface with a wrong password for the admin user, requires the
// refusal, and returns the password tried.
func (e *Env) failLogin(ctx SpecContext, c *C, iface string) string {
	t, err := e.S.Via(ctx, iface)
	c.Must(err, "open "+iface)
	wrong := wrongPassword()
	err = e.do(ctx, t, &wire.Auth{User: e.S.Admin.User, Pass: wrong}, "config.get", nil, nil)
	switch {
	case err == nil:
		c.Failf("%s accepted a wrong password for %s", iface, e.S.Admin.User)
	case !agent.Refused(err):
		c.Must(err, "log in with a wrong password over "+iface)
	}
	return wrong
}

// rejectUpdate offers an image no single flaw of an update check lets through: unsigned, and
// with a payload byte flipped against its manifest's hash.
func (e *Env) rejectUpdate(ctx SpecContext, c *C) {
	v, _ := e.runningVersion(ctx, c)
	img := e.buildImage(c, v.Next(), false)
	bad, err := image.FlipPayloadByte(img.Bytes)
	c.Must(err, "flip a payload byte")
	ch := e.channels()[0]
	if e.offerImage(ctx, c, ch, e.S.Admin, bad) == nil {
		c.Failf("the device installed an unsigned image with a tampered payload over %s", ch)
	}
}

// changeSetting changes telemetry_interval as admin (the check restores it).
func (e *Env) changeSetting(ctx SpecContext, c *C) {
	cur := e.settings(ctx, c)["telemetry_interval"]
	c.Must(e.S.Set(ctx, "telemetry_interval", otherThan(cur, "7", "8")), "change telemetry_interval as admin")
}

// toggleDebug switches the debug interface to the other state and back as admin.
func (e *Env) toggleDebug(ctx SpecContext, c *C) {
	on, err := e.ifacesOver(ctx, wire.IfaceConsole)
	c.Must(err, "list the interfaces as admin")
	for _, v := range []bool{!on[wire.IfaceDebug], on[wire.IfaceDebug]} {
		c.Must(e.setIface(ctx, wire.IfaceConsole, wire.IfaceDebug, v), fmt.Sprintf("switch the debug interface %s as admin", onOff(v, true)))
	}
}

// hasEvent reports whether evs holds an event of type typ after seq.
func hasEvent(evs []wire.Event, since int64, typ string) bool {
	for _, ev := range evs {
		if ev.Seq > since && ev.Type == typ {
			return true
		}
	}
	return false
}

// holdsEvent reports whether evs holds ev (same sequence number and type).
func holdsEvent(evs []wire.Event, ev wire.Event) bool {
	for _, x := range evs {
		if x.Seq == ev.Seq && x.Type == ev.Type {
			return true
		}
	}
	return false
}

func (e *Env) saveEvents(c *C, name string, evs []wire.Event) {
	b, _ := json.MarshalIndent(evs, "", "  ")
	c.writeEvidence(name, "security events read from the device", b)
}

// tamperInactiveSlot tampers with every slot file under root that does not hold the running
// image (see tampered), and records the original bytes in saved by path. When every slot
// holds the running image's nonce (identical images), it tampers the slot the device does
// not run from, by its name, or else the last one.
func tamperInactiveSlot(root string, slots []string, running wire.Image, saved map[string][]byte) error {
	st, err := os.Stat(root)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("the storage at %s is a disk image; the declared slot files (%v) can only be tampered with in a data folder", root, slots)
	}
	orig := map[string][]byte{}
	var inactive []string
	for _, s := range slots {
		p := filepath.Join(root, s)
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read image slot: %w", err)
		}
		if len(b) == 0 {
			return fmt.Errorf("image slot %s is empty", p)
		}
		orig[p] = b
		if running.Nonce == "" || !bytes.Contains(b, []byte(running.Nonce)) {
			inactive = append(inactive, p)
		}
	}
	if len(inactive) == len(slots) {
		return fmt.Errorf("no declared slot (%v) holds the running image (nonce %q): cannot tell which one is inactive", slots, running.Nonce)
	}
	if len(inactive) == 0 {
		p := filepath.Join(root, slots[len(slots)-1])
		for _, s := range slots {
			base := strings.TrimSuffix(filepath.Base(s), filepath.Ext(s))
			if running.Slot != "" && !strings.HasSuffix(base, running.Slot) {
				p = filepath.Join(root, s)
				break
			}
		}
		inactive = []string{p}
	}
	for _, p := range inactive {
		b := tampered(orig[p])
		saved[p] = orig[p]
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return fmt.Errorf("tamper with %s: %w", p, err)
		}
	}
	return nil
}

// tampered returns a copy of a stored image with a byte flipped in the middle (the payload)
// and, when it is in the image format of docs/PROTOCOL.md, one in its signature too: a
// device that skips one of the two checks (payload hash, signature) is still shown an image
// that does not verify.
func tampered(orig []byte) []byte {
	b := bytes.Clone(orig)
	b[len(b)/2] ^= 0xff
	if len(b) < 12 || string(b[:8]) != wire.ImageMagic {
		return b
	}
	at := 12 + int(binary.BigEndian.Uint32(b[8:12])) // the signature's length field
	if at < 12 || at+2 > len(b) {
		return b
	}
	if n := int(binary.BigEndian.Uint16(b[at : at+2])); n > 0 && at+2+n <= len(b) {
		b[at+2+n/2] ^= 0xff
	} else {
		b[12+(at-12)/2] ^= 0xff // unsigned: the manifest
	}
	return b
}

func slotNames(saved map[string][]byte) string {
	var ns []string
	for p := range saved {
		ns = append(ns, filepath.Base(p))
	}
	return strings.Join(ns, ", ")
}
