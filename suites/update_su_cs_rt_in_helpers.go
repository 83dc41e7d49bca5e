package suites

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/harness/image"
	"github.com/hilt-project/hilt/wire"
)

// Helpers of the SU and CSA checks: offering images the device must refuse, reading what it
// runs, its security state, and reaching its storage.

// Refusal codes the update checks expect.
var (
	badImageCodes = []string{wire.CodeRejected, wire.CodeInvalid}
	noAuthCodes   = []string{wire.CodeAuth}
	disabledCodes = []string{wire.CodeDisabled, wire.CodeRejected}
)

// runningImage reads the image the device runs (info on the console).
func (e *Env) runningImage(ctx SpecContext, c *C) wire.Image {
	info, err := e.S.Info(ctx, wire.IfaceConsole)
	c.Must(err, "read info on the console")
	return info.Image
}

// imageString names an image for messages.
func imageString(im wire.Image) string {
	return fmt.Sprintf("version %q nonce %q slot %q", im.Version, im.Nonce, im.Slot)
}

// uploadTimeout bounds sending an image of n bytes: one command for the request
// transports, one per chunk of agent.ChunkSize base64 characters on a text console.
func (e *Env) uploadTimeout(n int) time.Duration {
	chunks := (base64.StdEncoding.EncodedLen(n) + agent.ChunkSize - 1) / agent.ChunkSize
	return e.cmdTimeout() * time.Duration(2+chunks/8)
}

// offerImage sends img over channel as auth, as an attack. It returns the device's refusal,
// or nil when the device took the image; then it has waited for the device to boot again,
// and a device that does not come back fails the check.
func (e *Env) offerImage(ctx SpecContext, c *C, channel string, auth *wire.Auth, img []byte) error {
	t, err := e.S.Via(ctx, channel)
	c.Must(err, "open update channel "+channel)
	mark, mq := e.S.Marks()
	c.Attack()
	uctx, cancel := context.WithTimeout(ctx, e.uploadTimeout(len(img)))
	_, err = t.Do(uctx, auth, "update.install", map[string]any{"image": base64.StdEncoding.EncodeToString(img)})
	cancel()
	if err != nil {
		if agent.Refused(err) {
			return err
		}
		c.Must(err, "send the image over "+channel)
	}
	if err := e.S.AwaitBoot(ctx, mark, mq); err != nil {
		c.Failf("the device took the image over %s but did not come back: %v", channel, err)
	}
	return nil
}

// refusedAs ends the check unless err is a refusal with one of the codes in want. A refusal
// for a reason the harness caused (its credentials, a lockout, updates left disabled) is an
// error, not a verdict.
func refusedAs(c *C, err error, what string, want []string) {
	code := agent.Code(err)
	switch {
	case slices.Contains(want, code):
		return
	case !agent.Refused(err):
		c.Must(err, what)
	case code == wire.CodeLocked:
		c.Errorf("%s: the interface is locked out after failed logins, so the attempt could not be judged: %v", what, err)
	case code == wire.CodeAuth:
		c.Errorf("%s: the profile's admin credentials were refused, so the attempt could not be judged: %v", what, err)
	case code == wire.CodeDisabled:
		c.Errorf("%s: updating is disabled on the device (update_enabled false?), so the attempt could not be judged: %v", what, err)
	}
	c.Failf("%s: refused with code %q, want %s: %v", what, code, strings.Join(want, " or "), err)
}

// mustRefuseImage offers img over channel as auth and requires the device to refuse it with
// one of the codes in want, to keep running the image it ran, and to keep answering.
func (e *Env) mustRefuseImage(ctx SpecContext, c *C, channel string, auth *wire.Auth, img []byte, what string, want []string) {
	before := e.runningImage(ctx, c)
	err := e.offerImage(ctx, c, channel, auth, img)
	if err == nil {
		after := e.runningImage(ctx, c)
		if after.Version == before.Version && after.Nonce == before.Nonce {
			c.Failf("over %s the device accepted %s. It answered that it installed it and rebooted, then still ran %s: "+
				"it took the image without the check that should have refused it (its bootloader may have refused it afterwards)",
				channel, what, imageString(after))
		}
		c.Failf("over %s the device accepted %s. It answered that it installed it and rebooted: it now runs %s, it ran %s",
			channel, what, imageString(after), imageString(before))
	}
	refusedAs(c, err, what+" over "+channel, want)
	if after := e.runningImage(ctx, c); after.Version != before.Version || after.Nonce != before.Nonce {
		c.Failf("the device refused %s over %s (%v) but its running image changed: %s before, %s after", what, channel, err, imageString(before), imageString(after))
	}
	e.stillAnswers(ctx, c, channel)
	c.Note("%s over %s: refused (%s)", what, channel, agent.Code(err))
}

// keepImagesSound leaves the device's stored images as sound as the check found them. A
// device that takes a bad image its own bootloader then refuses (an updater that skips a
// check the bootloader makes) comes back degraded, booted from its other slot, with the
// bad image in the slot it will write next. When the check ends with the device degraded
// and it was not before, a correctly signed newer image is installed over that slot, and
// the device must then report normal: the checks after this one find it as they expect.
// A device whose state cannot be read is left alone.
func (e *Env) keepImagesSound(ctx SpecContext, c *C) {
	var before struct {
		State string `json:"state"`
	}
	if err := e.S.Call(ctx, wire.IfaceConsole, "state", nil, &before); err != nil || before.State != "normal" {
		return
	}
	DeferCleanup(func(ctx SpecContext) {
		st, reasons := e.securityState(ctx, c)
		if st == "normal" {
			return
		}
		img := e.installNewer(ctx, c)
		if after, afterReasons := e.securityState(ctx, c); after != "normal" {
			c.Failf("leave the device as found: it reported %q (%s) after the bad image it took; after installing the good version %s over it, %q (%s), not normal",
				st, strings.Join(reasons, "; "), img.Manifest.Version, after, strings.Join(afterReasons, "; "))
		}
		c.Note("the device was %s (%s) after the bad image it took: a good version %s installed over it, it reports normal again",
			st, strings.Join(reasons, "; "), img.Manifest.Version)
	}, NodeTimeout(e.S.Profile.Timeouts.Check.Duration))
}

// stillAnswers pings the device on the console and over iface.
func (e *Env) stillAnswers(ctx SpecContext, c *C, iface string) {
	for _, via := range slices.Compact([]string{wire.IfaceConsole, iface}) {
		t, err := e.S.Via(ctx, via)
		c.Must(err, "open "+via)
		c.Must(e.do(ctx, t, nil, "ping", nil, nil), "ping the device over "+via)
	}
}

// signedOfSize builds a correctly signed image of version v whose total length is n bytes.
func (e *Env) signedOfSize(c *C, v image.Version, n int) image.Built {
	e.needSigningKey()
	probe := e.buildImageSpec(c, image.Spec{Version: v.String(), PayloadSize: n / 2, Key: e.SigningKey})
	overhead := len(probe.Bytes) - n/2
	b := e.buildImageSpec(c, image.Spec{Version: v.String(), PayloadSize: n - overhead, Key: e.SigningKey})
	if len(b.Bytes) < n {
		// The manifest's length field grew by a digit: one more byte of payload covers it.
		b = e.buildImageSpec(c, image.Spec{Version: v.String(), PayloadSize: n - overhead + (n - len(b.Bytes)), Key: e.SigningKey})
	}
	return b
}

// buildImageSpec builds an image for this device's model from s (s.Model is filled in).
func (e *Env) buildImageSpec(c *C, s image.Spec) image.Built {
	s.Model = e.model()
	b, err := image.Build(s)
	c.Must(err, "build an update image")
	return b
}

// needSigningKey skips the check when the profile holds no maker key to sign images with.
func (e *Env) needSigningKey() {
	if e.SigningKey == nil {
		Skip("the profile holds no maker signing key (update.signing_key) to build signed images with")
	}
}

// maxImageSize is the declared largest image, or the protocol's.
func (e *Env) maxImageSize() int {
	if e.S.Decl != nil && e.S.Decl.UpdatePolicy.MaxSize > 0 {
		return int(e.S.Decl.UpdatePolicy.MaxSize)
	}
	return wire.MaxImageSize
}

// securityState reads the state command as admin on the console.
func (e *Env) securityState(ctx SpecContext, c *C) (string, []string) {
	var st struct {
		State   string   `json:"state"`
		Reasons []string `json:"reasons"`
	}
	c.Must(e.S.Call(ctx, wire.IfaceConsole, "state", nil, &st), "read the security state on the console")
	return st.State, st.Reasons
}

// keepAuthCounts makes, when the check ends, one authenticated admin call on each
// interface, so that the failed logins the check made do not add up to a lockout in the
// checks after it (a success resets the count).
func (e *Env) keepAuthCounts(c *C, ifaces ...string) {
	DeferCleanup(func(ctx SpecContext) {
		var errs []error
		for _, iface := range ifaces {
			t, err := e.S.Via(ctx, iface)
			if err == nil {
				err = e.do(ctx, t, e.S.Admin, "config.get", nil, nil)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", iface, err))
			}
		}
		if err := errors.Join(errs...); err != nil {
			c.Errorf("log in as admin after the failed logins: %v", err)
		}
	}, NodeTimeout(e.S.Profile.Timeouts.Check.Duration))
}

// filesBackend is a Backend that can also hand over the file system of a unit whose raw
// storage is a disk image (the emulated unit), for checks that handle the files the
// declarations name rather than scan raw storage.
type filesBackend interface {
	WithFiles(ctx SpecContext, device string, fn func(path string) error) error
}

// withStorage runs fn on the unit's storage and brings the session back in step with the
// unit afterwards. With files, fn gets a folder holding the unit's data files where the
// backend can give one (a disk image's file system mounted); else the raw storage (a data
// folder or a disk image). It skips the check, saying why, when the storage cannot be
// reached.
func (e *Env) withStorage(ctx SpecContext, c *C, what string, files bool, fn func(path string) error) {
	if e.Backend == nil {
		Skip("the unit's storage cannot be reached: no backend gives access to it (external unit); " + what + " needs it")
	}
	access := e.Backend.WithStorage
	if fb, ok := e.Backend.(filesBackend); ok && files {
		access = fb.WithFiles
	}
	mark, mq := e.S.Marks()
	err := access(ctx, e.S.Name, fn)
	if errors.Is(err, ErrUnsupported) {
		Skip(fmt.Sprintf("the unit's storage cannot be reached (%v); %s needs it", err, what))
	}
	restarted := e.Backend.Kind() != "sim" || strings.Contains(string(e.S.Port.TranscriptSince(mark)), agent.ReadyLine)
	e.S.Console.Forget()
	e.S.Mgmt.Reset()
	if restarted {
		if berr := e.S.AwaitBoot(ctx, mark, mq); berr != nil {
			c.Failf("the unit did not come back after its storage was accessed (%s): %v", what, berr)
		}
	}
	c.Must(err, what)
}

// eventWithin returns whether ev happened between from and to, allowing for skew, and why not.
func eventWithin(ev wire.Event, from, to time.Time, skew time.Duration) (bool, string) {
	t, err := time.Parse(time.RFC3339Nano, ev.Time)
	if err != nil {
		return false, fmt.Sprintf("its time %q is not RFC 3339", ev.Time)
	}
	if t.Before(from.Add(-skew)) || t.After(to.Add(skew)) {
		return false, fmt.Sprintf("its time %s is outside the check's window %s..%s (±%s)",
			ev.Time, from.UTC().Format(time.RFC3339Nano), to.UTC().Format(time.RFC3339Nano), skew)
	}
	return true, ""
}
