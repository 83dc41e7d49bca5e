package suites

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/harness/image"
	"github.com/hilt-project/hilt/wire"
)

// su09SimReason is why SU-09 cannot run on a simulated unit.
const su09SimReason = "the simulated device cannot model power loss: a killed process keeps its unsynced writes " +
	"in the host page cache; SU-09 runs on the emulated (QEMU) device"

// update holds the SU checks: 8259A Software Update.
func (e *Env) update() {
	e.check("SU-01", func(ctx SpecContext, c *C) {
		// Each install ends in the device's own reboot into the new image; one more reboot
		// after the last shows the update persists (each reboot costs seconds on an emulated
		// unit, so not one per channel).
		chans := e.channels()
		for i, ch := range chans {
			v, _ := e.runningVersion(ctx, c)
			img := e.buildImage(c, v.Next(), true)
			if err := e.install(ctx, c, ch, e.S.Admin, img.Bytes); err != nil {
				c.Failf("over %s the device refused a correctly signed newer image (version %s): %v", ch, img.Manifest.Version, err)
			}
			e.mustRun(ctx, c, img, "after installing it over "+ch)
			if i < len(chans)-1 {
				c.Note("over %s: version %s with nonce %s runs", ch, img.Manifest.Version, img.Nonce)
				continue
			}
			c.Must(e.S.Reboot(ctx), "reboot the device")
			e.mustRun(ctx, c, img, "after installing it over "+ch+" and rebooting")
			c.Note("over %s: version %s with nonce %s runs, across a reboot too", ch, img.Manifest.Version, img.Nonce)
		}
	})

	e.check("SU-02", func(ctx SpecContext, c *C) {
		v, _ := e.runningVersion(ctx, c)
		for _, ch := range e.channels() {
			img := e.buildImage(c, v.Next(), false)
			e.mustRefuseImage(ctx, c, ch, e.S.Admin, img.Bytes, "an unsigned newer image", badImageCodes)
		}
	})

	e.check("SU-03", func(ctx SpecContext, c *C) {
		v, _ := e.runningVersion(ctx, c)
		for _, ch := range e.channels() {
			img := e.buildImageSpec(c, image.Spec{Version: v.Next().String(), Key: image.NewKey()})
			e.mustRefuseImage(ctx, c, ch, e.S.Admin, img.Bytes, "a newer image signed with an unknown key", badImageCodes)
		}
	})

	e.check("SU-04", func(ctx SpecContext, c *C) {
		e.keepImagesSound(ctx, c)
		v, _ := e.runningVersion(ctx, c)
		for _, ch := range e.channels() {
			img := e.buildImage(c, v.Next(), true)
			bad, err := image.FlipPayloadByte(img.Bytes)
			c.Must(err, "flip a payload byte")
			e.mustRefuseImage(ctx, c, ch, e.S.Admin, bad, "a signed newer image with one payload byte flipped", badImageCodes)
			// Offered after the image it comes from, whose signature the device has just
			// checked: a device that remembers that check by the fields before the hash
			// takes the edited manifest as signed.
			edited, err := image.EditAfterSigning(img.Bytes)
			c.Must(err, "edit the manifest of a signed image")
			e.mustRefuseImage(ctx, c, ch, e.S.Admin, edited,
				"a newer image whose manifest was edited after signing (one payload byte flipped, the manifest's sha256 "+
					"rewritten to match, the signature made over the original manifest kept: a device that verifies the "+
					"signature over the whole manifest refuses it)", badImageCodes)
		}
	})

	e.check("SU-05", func(ctx SpecContext, c *C) {
		v, _ := e.runningVersion(ctx, c)
		for _, ch := range e.channels() {
			img := e.buildImage(c, v.Prev(), true)
			e.mustRefuseImage(ctx, c, ch, e.S.Admin, img.Bytes,
				fmt.Sprintf("a correctly signed older image (version %s, running %s) through update.install", img.Manifest.Version, v), badImageCodes)
		}
		// An older version whose text sorts after the running one's (1.2.9 after 1.2.10):
		// refused only by a device that compares versions as numbers.
		v = e.runVersionWithTwoDigits(ctx, c, v)
		older, _ := v.OlderSortingAfter()
		for _, ch := range e.channels() {
			img := e.buildImage(c, older, true)
			e.mustRefuseImage(ctx, c, ch, e.S.Admin, img.Bytes,
				fmt.Sprintf("a correctly signed older image through update.install, version %s while it ran %s (older by "+
					"number, though %q sorts after %q as text: a device that compares versions as strings takes it for newer)",
					older, v, older, v), badImageCodes)
		}
	})

	e.check("SU-06", func(ctx SpecContext, c *C) {
		v, _ := e.runningVersion(ctx, c)
		for _, ch := range e.channels() {
			img := e.buildImage(c, v.Next(), true)
			off, err := image.PayloadOffset(img.Bytes)
			c.Must(err, "find the payload of the image built")
			half := (len(img.Bytes) - off) / 2
			cases := []struct {
				what string
				b    []byte
			}{
				{"a signed newer image without its last byte", image.Truncate(img.Bytes, 1)},
				{fmt.Sprintf("a signed newer image without the last %d bytes (half its payload)", half), image.Truncate(img.Bytes, half)},
				{"a signed newer image with 1 byte appended", image.Oversize(img.Bytes, 1)},
				{"a signed newer image with 4096 bytes appended", image.Oversize(img.Bytes, 4096)},
			}
			for _, tc := range cases {
				e.mustRefuseImage(ctx, c, ch, e.S.Admin, tc.b, tc.what, badImageCodes)
			}
		}
		limit := e.maxImageSize()
		big := e.signedOfSize(c, v.Next(), limit+1)
		e.mustRefuseImage(ctx, c, e.channels()[0], e.S.Admin, big.Bytes,
			fmt.Sprintf("a correctly signed newer image of %d bytes (the declared maximum is %d)", len(big.Bytes), limit), badImageCodes)
	})

	e.check("SU-07", func(ctx SpecContext, c *C) {
		e.keepAuthCounts(c, e.channels()...)
		v, _ := e.runningVersion(ctx, c)
		img := e.buildImage(c, v.Next(), true)
		for _, ch := range e.channels() {
			attempts := []struct {
				name string
				auth *wire.Auth
			}{
				{"no credentials", nil},
				{"a wrong password for " + e.S.Admin.User, &wire.Auth{User: e.S.Admin.User, Pass: wrongPassword()}},
			}
			for _, a := range attempts {
				e.mustRefuseImage(ctx, c, ch, a.auth, img.Bytes, "a correctly signed newer image with "+a.name, noAuthCodes)
			}
		}
	})

	e.check("SU-08", func(ctx SpecContext, c *C) {
		c.Restore(ctx)
		c.Must(e.S.Set(ctx, "update_enabled", "false"), "disable updating (update_enabled false) as admin")
		v, _ := e.runningVersion(ctx, c)
		img := e.buildImage(c, v.Next(), true)
		for _, ch := range e.channels() {
			e.mustRefuseImage(ctx, c, ch, e.S.Admin, img.Bytes, "a correctly signed newer image while updating is disabled", disabledCodes)
		}
		c.Must(e.S.Set(ctx, "update_enabled", "true"), "enable updating again as admin")
		if got := e.settings(ctx, c)["update_enabled"]; got != "true" {
			c.Failf("updating was enabled again as admin, but update_enabled reads %q", got)
		}
	})

	e.check("SU-09", func(ctx SpecContext, c *C) {
		switch {
		case e.Backend == nil:
			Skip("no backend controls this unit's power (external unit); SU-09 runs on the emulated (QEMU) device")
		case e.Backend.Kind() == "sim":
			Skip(su09SimReason)
		}
		for _, p := range powerCutPoints() {
			e.cutPowerDuringInstall(ctx, c, p)
		}
	})

	e.check("SU-10", func(ctx SpecContext, c *C) {
		if e.S.Decl == nil || e.S.Decl.UpdatePolicy.Rollback != "command" {
			how := "none"
			if e.S.Decl != nil && e.S.Decl.UpdatePolicy.Rollback != "" {
				how = e.S.Decl.UpdatePolicy.Rollback
			}
			Skip(fmt.Sprintf("no authorized rollback declared (update.rollback: %s)", how))
		}
		before := e.runningImage(ctx, c)
		img := e.installNewer(ctx, c)
		if now := e.runningImage(ctx, c); now.Nonce != img.Nonce {
			c.Note("the device does not run the image just installed (%s, sent nonce %s); rolling back anyway", imageString(now), img.Nonce)
		}
		mark, mq := e.S.Marks()
		var r struct {
			Version string `json:"version"`
		}
		c.Must(e.S.Call(ctx, wire.IfaceConsole, "update.rollback", nil, &r), "roll back as admin (update.rollback)")
		c.Must(e.S.AwaitBoot(ctx, mark, mq), "wait for the device to boot after the rollback")
		after := e.runningImage(ctx, c)
		if after.Version != before.Version || after.Nonce != before.Nonce {
			c.Failf("after an authorized rollback the device runs %s; the previous image was %s (it answered version %q)",
				imageString(after), imageString(before), r.Version)
		}
		c.Note("rolled back from %s to %s (nonce %s)", img.Manifest.Version, after.Version, after.Nonce)
	})
}

// mustRun fails the check unless the device runs img: its version and, above all, its nonce.
func (e *Env) mustRun(ctx SpecContext, c *C, img image.Built, when string) {
	im := e.runningImage(ctx, c)
	if im.Nonce != img.Nonce || im.Version != img.Manifest.Version {
		c.Failf("%s, the device runs %s; the image it accepted is version %q with nonce %q: it does not run the update it reported installed",
			when, imageString(im), img.Manifest.Version, img.Nonce)
	}
}

// powerCut is one moment SU-09 cuts power at during an install over the console.
type powerCut struct {
	name string
	// chunks returns how many of n chunks are sent before the cut.
	chunks func(n int) int
	// end sends update.end, and cuts power after waiting this long (the device writes the
	// image after update.end: the offsets spread the cut over the write).
	end   bool
	after time.Duration
}

// powerCutPoints spread SU-09's cuts over an install: one mid-upload (a device that writes
// chunks as they come is caught there), then from update.end on, over the check of the image,
// its write (the reference device programs a 4 KiB page per 16 ms: 64 KiB take about 300
// ms), the switch of the boot record and the reboot.
func powerCutPoints() []powerCut {
	all := func(n int) int { return n }
	// Mid-write first: a device that loses its only image there ends the check at once
	// instead of after every cut it survives.
	return []powerCut{
		{name: "150 ms after update.end", chunks: all, end: true, after: 150 * time.Millisecond},
		{name: "400 ms after update.end", chunks: all, end: true, after: 400 * time.Millisecond},
		{name: "50 ms after update.end", chunks: all, end: true, after: 50 * time.Millisecond},
		{name: "right after update.end", chunks: all, end: true},
		{name: "after half the chunks", chunks: func(n int) int { return n / 2 }},
	}
}

// su09PayloadSize makes the image large enough for its write to take a while, and small
// enough that the console upload before each cut stays short (about 90 KB of base64 lines).
const su09PayloadSize = 64 << 10

// cutPowerDuringInstall starts an install over the console, cuts power at p, and requires
// the device to boot a valid image: the one it ran or the new one, in the normal state.
func (e *Env) cutPowerDuringInstall(ctx SpecContext, c *C, p powerCut) {
	v, info := e.runningVersion(ctx, c)
	before := info.Image
	e.needSigningKey()
	img := e.buildImageSpec(c, image.Spec{Version: v.Next().String(), PayloadSize: su09PayloadSize, Key: e.SigningKey})
	b64 := base64.StdEncoding.EncodeToString(img.Bytes)
	var chunks []string
	for off := 0; off < len(b64); off += agent.ChunkSize {
		chunks = append(chunks, b64[off:min(off+agent.ChunkSize, len(b64))])
	}
	c.Must(e.do(ctx, e.S.Console, e.S.Admin, "ping", nil, nil), "log in as admin on the console")
	raw := func(line, step string) {
		cctx, cancel := context.WithTimeout(ctx, e.cmdTimeout())
		defer cancel()
		_, err := e.S.Console.Raw(cctx, line)
		c.Must(err, step)
	}
	raw("update.begin "+strconv.Itoa(len(img.Bytes)), "start an upload over the console (update.begin)")
	sent := p.chunks(len(chunks))
	for i := range sent {
		raw("update.data "+chunks[i], fmt.Sprintf("send chunk %d of %d (update.data)", i+1, len(chunks)))
	}
	c.Attack()
	mark, mq := e.S.Marks()
	if p.end {
		c.Must(e.S.Console.Serial().Send(ctx, "update.end"), "send update.end")
		if p.after > 0 {
			// Not a wait for the device: the offset into its write is where the cut lands.
			t := time.NewTimer(p.after)
			select {
			case <-ctx.Done():
				t.Stop()
				c.Errorf("the check ended before the power cut %s", p.name)
			case <-t.C:
			}
		}
	}
	err := e.Backend.PowerCut(ctx, e.S.Name)
	if errors.Is(err, ErrUnsupported) {
		if sent < len(chunks) {
			// Abandon the upload: update.end with fewer bytes than announced is refused.
			cctx, cancel := context.WithTimeout(ctx, e.cmdTimeout())
			_, _ = e.S.Console.Raw(cctx, "update.end")
			cancel()
		}
		Skip(fmt.Sprintf("the %s backend cannot cut this unit's power: %v", e.Backend.Kind(), err))
	}
	c.Must(err, "cut the power "+p.name)
	if err := e.S.AwaitBoot(ctx, mark, mq); err != nil {
		c.Failf("power cut %s while installing version %s: the device did not boot again: %v", p.name, img.Manifest.Version, err)
	}
	after := e.runningImage(ctx, c)
	oldOK := after.Version == before.Version && after.Nonce == before.Nonce
	newOK := after.Version == img.Manifest.Version && after.Nonce == img.Nonce
	if !oldOK && !newOK {
		c.Failf("power cut %s: the device booted %s, neither the image it ran (%s) nor the one being installed (version %s nonce %s)",
			p.name, imageString(after), imageString(before), img.Manifest.Version, img.Nonce)
	}
	if st, reasons := e.securityState(ctx, c); st != "normal" {
		c.Failf("power cut %s: the device booted %s but reports state %q (%v), not normal", p.name, imageString(after), st, reasons)
	}
	which := "the image it ran"
	if newOK {
		which = "the new image"
	}
	c.Note("power cut %s: booted %s (%s)", p.name, which, after.Version)
}
