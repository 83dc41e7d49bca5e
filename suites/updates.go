package suites

import (
	"encoding/base64"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/harness/image"
	"github.com/hilt-project/hilt/wire"
)

// runningVersion reads the newest version the device claims: the running image's and
// the firmware version it reports (a device that lies about an update claims a newer one).
func (e *Env) runningVersion(ctx SpecContext, c *C) (image.Version, wire.Info) {
	info, err := e.S.Info(ctx, wire.IfaceConsole)
	c.Must(err, "read info on the console")
	best := image.Version{}
	for _, s := range []string{info.Image.Version, info.FirmwareVersion} {
		if v, err := image.ParseVersion(s); err == nil && newer(v, best) {
			best = v
		}
	}
	if best == (image.Version{}) {
		c.Failf("the device reports no parsable version (firmware %q, image %q)", info.FirmwareVersion, info.Image.Version)
	}
	return best, info
}

func newer(a, b image.Version) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return false
}

// model is the model name images are built for.
func (e *Env) model() string {
	if e.S.Decl != nil && e.S.Decl.Model != "" {
		return e.S.Decl.Model
	}
	return e.S.Profile.Model
}

// buildImage builds an image for this device's model with the maker key (or nil = unsigned).
func (e *Env) buildImage(c *C, version image.Version, signed bool) image.Built {
	if signed && e.SigningKey == nil {
		Skip("the profile holds no maker signing key (update.signing_key) to build signed images with")
	}
	spec := image.Spec{Model: e.model(), Version: version.String()}
	if signed {
		spec.Key = e.SigningKey
	}
	b, err := image.Build(spec)
	c.Must(err, "build an update image")
	return b
}

// install sends an image over the given update channel as admin (auth may be overridden)
// and, when the device accepts it, waits for the device to boot again. It returns the
// device's refusal, or nil when the device accepted the image and is back.
func (e *Env) install(ctx SpecContext, c *C, channel string, auth *wire.Auth, img []byte) error {
	t, err := e.S.Via(ctx, channel)
	c.Must(err, "open update channel "+channel)
	mark, mq := e.S.Marks()
	_, err = t.Do(ctx, auth, "update.install", map[string]any{"image": base64.StdEncoding.EncodeToString(img)})
	if err != nil {
		if agent.Refused(err) {
			return err
		}
		c.Must(err, "send the update over "+channel)
	}
	c.Must(e.S.AwaitBoot(ctx, mark, mq), "wait for the device to boot the update")
	return nil
}

// channels returns the declared update channels (console when none is declared).
func (e *Env) channels() []string {
	if e.S.Decl != nil && len(e.S.Decl.UpdatePolicy.Channels) > 0 {
		return e.S.Decl.UpdatePolicy.Channels
	}
	return []string{wire.IfaceConsole}
}

// installNewer installs a correctly signed newer image over the first declared channel
// and returns it. It does not check that the device runs it (SU-01 does).
func (e *Env) installNewer(ctx SpecContext, c *C) image.Built {
	v, _ := e.runningVersion(ctx, c)
	img := e.buildImage(c, v.Next(), true)
	if err := e.install(ctx, c, e.channels()[0], e.S.Admin, img.Bytes); err != nil {
		c.Failf("the device refused a correctly signed newer image (%s): %v", img.Manifest.Version, err)
	}
	return img
}

// runVersionWithTwoDigits makes the device run a version with a component that has an
// older version sorting after it as text (OlderSortingAfter), and returns it. When the
// running version v has none, it installs a correctly signed one that is newer by number
// and as text (NextWithTwoDigitPatch), over the first declared channel: a device that
// compares versions either way takes it, and the device stays on it (a newer version, as
// after SU-01; SU-10 and CS-04 install newer ones still).
func (e *Env) runVersionWithTwoDigits(ctx SpecContext, c *C, v image.Version) image.Version {
	if _, ok := v.OlderSortingAfter(); ok {
		return v
	}
	img := e.buildImage(c, v.NextWithTwoDigitPatch(), true)
	ch := e.channels()[0]
	if err := e.install(ctx, c, ch, e.S.Admin, img.Bytes); err != nil {
		c.Failf("over %s the device refused a correctly signed newer image (version %s, running %s): %v", ch, img.Manifest.Version, v, err)
	}
	now, info := e.runningVersion(ctx, c)
	if now.String() != img.Manifest.Version {
		c.Errorf("after installing version %s the device reports firmware %q and image %q: the older version that sorts after "+
			"it as text could not be set up (SU-01 judges whether updates run)", img.Manifest.Version, info.FirmwareVersion, info.Image.Version)
	}
	return now
}
