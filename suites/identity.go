package suites

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/wire"
)

// identity holds the DI checks: 8259A Device Identification.
func (e *Env) identity() {
	e.check("DI-01", func(ctx SpecContext, c *C) {
		ids := e.idsByTransport(ctx, c)
		pat := e.idPattern()
		for via, id := range ids {
			if !pat.MatchString(id) {
				c.Failf("the ID read over %s, %q, is not well-formed (declared pattern %s)", via, id, pat)
			}
		}
		distinct := map[string][]string{}
		for via, id := range ids {
			distinct[id] = append(distinct[id], via)
		}
		if len(distinct) > 1 {
			c.Failf("the device reports different IDs on different transports: %v", distinct)
		}
		c.Note("ID %s on %d transports", e.S.ID, len(ids))
	})

	e.check("DI-02", func(ctx SpecContext, c *C) {
		if len(e.Fleet) < 2 {
			Skip("needs two or more units of the same firmware; this run has one")
		}
		var own wire.Info
		c.Must(e.S.Call(ctx, wire.IfaceConsole, "id", nil, &own), "read the ID on the console")
		ownKey := base64.StdEncoding.EncodeToString(e.S.Key)
		var f findings
		for _, p := range e.Fleet {
			if p.Name == e.S.Name || p.ID != own.ID {
				continue
			}
			why := "and the same identity key: the two cannot be told apart"
			if p.PubKey != ownKey {
				why = "though their identity keys differ: they are distinct units, so the ID derives from something units share (the firmware, a production batch), not from what is each unit's own"
			}
			f.add("unit %s has the same logical ID %q as unit %s, %s", e.S.Name, own.ID, p.Name, why)
		}
		f.failIfAny(c, "IDs are not unique across units of one firmware")
		c.Note("ID %s is unit %s's alone among %d units", own.ID, e.S.Name, len(e.Fleet))
	})

	e.check("DI-03", func(ctx SpecContext, c *C) {
		before := e.consoleID(ctx, c)
		c.Must(e.S.Reboot(ctx), "reboot")
		if after := e.consoleID(ctx, c); after != before {
			c.Failf("the ID changed across a reboot: %q before, %q after", before, after)
		}
		e.installNewer(ctx, c)
		if after := e.consoleID(ctx, c); after != before {
			c.Failf("the ID changed across an update: %q before, %q after", before, after)
		}
	})

	e.check("DI-04", func(ctx SpecContext, c *C) {
		label, err := e.S.ReadLabel()
		c.Must(err, "read the physical label")
		c.writeEvidence("label.txt", "physical label as read", []byte(label))
		id := e.consoleID(ctx, c)
		want := strings.ReplaceAll(e.labelBinding(), "{id}", id)
		if !strings.Contains(label, want) {
			c.Failf("the physical label does not carry the logical ID as declared: want %q in the label, label reads %q", want, label)
		}
	})

	e.check("DI-05", func(ctx SpecContext, c *C) {
		nonce := make([]byte, 16)
		rand.Read(nonce)
		nh := hex.EncodeToString(nonce)
		var r struct{ ID, Nonce, Sig string }
		c.Must(e.S.Call(ctx, wire.IfaceConsole, "sign", map[string]any{"nonce": nh}, &r), "challenge the device to sign a nonce")
		sig, err := base64.StdEncoding.DecodeString(r.Sig)
		if err != nil {
			c.Failf("the signature %q is not base64: %v", r.Sig, err)
		}
		// The key is what binds the unit: it was pinned (or declared) for this unit at first
		// contact. A changed ID is DI-03's finding; the signature must still come from that key.
		if !ed25519.Verify(e.S.Key, wire.ChallengeMessage(r.ID, nh), sig) {
			c.Failf("the signature of nonce %s by %s does not verify against the key bound to unit %s (pinned at first contact as %s)", nh, r.ID, e.S.Name, e.S.ID)
		}
		for _, p := range e.Fleet {
			if p.Name != e.S.Name && p.PubKey == base64.StdEncoding.EncodeToString(e.S.Key) {
				c.Failf("unit %s signs with the same identity key as unit %s: the key is not per device", e.S.Name, p.Name)
			}
		}
	})
}

// idsByTransport reads the logical ID over every transport: the id command on console,
// mgmt and MQTT, the mgmt TLS certificate's CN, and the MQTT status and telemetry.
func (e *Env) idsByTransport(ctx SpecContext, c *C) map[string]string {
	ids := map[string]string{}
	for _, t := range e.S.Transports() {
		var r struct{ ID string }
		c.Must(agent.Call(ctx, t, nil, "id", nil, &r), "read the ID over "+t.Iface())
		ids[t.Iface()+" id"] = r.ID
	}
	pi, err := e.S.Mgmt.Handshake(ctx)
	c.Must(err, "TLS handshake with the management API")
	ids["mgmt TLS certificate CN"] = pi.CN
	if e.S.MQ != nil {
		var info wire.Info
		c.Must(agent.Call(ctx, e.S.MQTT, nil, "info", nil, &info), "read info over MQTT")
		ids["mqtt info"] = info.ID
	}
	return ids
}

func (e *Env) consoleID(ctx SpecContext, c *C) string {
	var r struct{ ID string }
	c.Must(e.S.Call(ctx, wire.IfaceConsole, "id", nil, &r), "read the ID on the console")
	return r.ID
}

func (e *Env) idPattern() *regexp.Regexp {
	p := `^\S+$`
	if e.S.Decl != nil && e.S.Decl.Identity.IDPattern != "" {
		p = e.S.Decl.Identity.IDPattern
	}
	return regexp.MustCompile(p) // validated when the declarations were loaded
}

func (e *Env) labelBinding() string {
	if e.S.Decl != nil && e.S.Decl.Identity.LabelBinding != "" {
		return e.S.Decl.Identity.LabelBinding
	}
	return "{id}"
}
