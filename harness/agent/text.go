package agent

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/hilt-project/hilt/drivers/serial"
	"github.com/hilt-project/hilt/wire"
)

// lineIO is what a text transport needs: send a line, await one answer line.
type lineIO interface {
	send(ctx context.Context, line string) error
	// answer waits for the next "OK ..." or "ERR ..." answer and returns it without the
	// prompt, and whether it was OK.
	answer(ctx context.Context) (ok bool, rest string, err error)
}

// answerRE matches an answer line, at the start of a line or right after the prompt
// (the device does not echo, so an answer follows its prompt on the same line).
var answerRE = regexp.MustCompile(`(?m)(?:^|> )(OK|ERR)(?: ([^\r\n]*))?\r?\n`)

// parseAnswer splits a matched answer line.
func parseAnswer(text string) (ok bool, rest string) {
	m := answerRE.FindStringSubmatch(text)
	if m == nil {
		return false, ""
	}
	return m[1] == "OK", m[2]
}

// text is a Transport over a line-oriented text interface (console, debug).
type text struct {
	device, iface string
	io            lineIO
	closer        func() error
	// loggedIn is the credential the session is logged in with, if any.
	loggedIn *wire.Auth
	// unsynced is set when a command got no answer (a timeout, a lost link): its answer
	// may still come and must not be taken for the next command's (see resync).
	unsynced bool
}

// positional lists, per command, the JSON argument names in console order.
var positional = map[string][]string{
	"sign":         {"nonce"},
	"provision":    {"user", "pass"},
	"login":        {"user", "pass"},
	"passwd":       {"user", "pass"},
	"user.add":     {"user", "pass", "role"},
	"user.del":     {"user"},
	"config.get":   {"key"},
	"config.set":   {"key", "value"},
	"iface.set":    {"name", "enabled"},
	"userdata.set": {"key", "value"},
	"userdata.get": {"key"},
	"userdata.del": {"key"},
	"log.read":     {"since"},
}

// ChunkSize is the largest base64 chunk sent in one update.data line.
const ChunkSize = 3072

func (t *text) Iface() string { return t.iface }

func (t *text) Close() error {
	if t.closer != nil {
		return t.closer()
	}
	return nil
}

// Do implements Transport. It logs in or out first so that the session matches auth.
func (t *text) Do(ctx context.Context, auth *wire.Auth, cmd string, args map[string]any) (json.RawMessage, error) {
	if err := t.resync(ctx); err != nil {
		return nil, err
	}
	if err := t.ensureAuth(ctx, auth); err != nil {
		return nil, err
	}
	if cmd == "update.install" {
		return t.upload(ctx, args)
	}
	line, err := FormatLine(cmd, args)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.device, err)
	}
	return t.roundTrip(ctx, cmd, line)
}

// Raw sends a line exactly as given (for malformed-input checks) and returns the answer.
func (t *text) Raw(ctx context.Context, auth *wire.Auth, line string) (json.RawMessage, error) {
	if err := t.resync(ctx); err != nil {
		return nil, err
	}
	if err := t.ensureAuth(ctx, auth); err != nil {
		return nil, err
	}
	cmd, _, _ := strings.Cut(line, " ")
	return t.roundTrip(ctx, cmd, line)
}

func (t *text) roundTrip(ctx context.Context, cmd, line string) (json.RawMessage, error) {
	if err := t.io.send(ctx, line); err != nil {
		t.unsynced = true
		return nil, fmt.Errorf("%s: send %s over %s: %w: %w", t.device, cmd, t.iface, noAnswer(err), err)
	}
	ok, rest, err := t.io.answer(ctx)
	if err != nil {
		t.unsynced = true
		return nil, fmt.Errorf("%s: %s over %s: %w: %w", t.device, cmd, t.iface, noAnswer(err), err)
	}
	if ok {
		if strings.TrimSpace(rest) == "" {
			rest = "{}"
		}
		return json.RawMessage(rest), nil
	}
	code, msg, _ := strings.Cut(rest, " ")
	return nil, &DeviceError{Device: t.device, Iface: t.iface, Cmd: cmd, Code: code, Message: msg}
}

func (t *text) ensureAuth(ctx context.Context, auth *wire.Auth) error {
	switch {
	case auth == nil && t.loggedIn == nil:
		return nil
	case auth != nil && t.loggedIn != nil && *auth == *t.loggedIn:
		return nil
	}
	if t.loggedIn != nil {
		if _, err := t.roundTrip(ctx, "logout", "logout"); err != nil && !Refused(err) {
			return err
		}
		t.loggedIn = nil
	}
	if auth == nil {
		return nil
	}
	if _, err := t.roundTrip(ctx, "login", "login "+auth.User+" "+auth.Pass); err != nil {
		return err
	}
	a := *auth
	t.loggedIn = &a
	return nil
}

// Forget drops the transport's idea of the session's login, as after a device reboot.
func (t *text) Forget() { t.loggedIn = nil }

func (t *text) upload(ctx context.Context, args map[string]any) (json.RawMessage, error) {
	img, _ := args["image"].(string)
	raw, err := base64.StdEncoding.DecodeString(img)
	if err != nil {
		return nil, fmt.Errorf("%s: update.install: image is not base64: %w", t.device, err)
	}
	if _, err := t.roundTrip(ctx, "update.begin", "update.begin "+strconv.Itoa(len(raw))); err != nil {
		return nil, err
	}
	for off := 0; off < len(img); off += ChunkSize {
		end := min(off+ChunkSize, len(img))
		if _, err := t.roundTrip(ctx, "update.data", "update.data "+img[off:end]); err != nil {
			return nil, err
		}
	}
	return t.roundTrip(ctx, "update.end", "update.end")
}

// FormatLine renders a command and its JSON arguments as one console line.
func FormatLine(cmd string, args map[string]any) (string, error) {
	names := positional[cmd]
	parts := []string{cmd}
	for i, n := range names {
		v, ok := args[n]
		if !ok {
			if i == len(names)-1 || allMissing(args, names[i:]) {
				break
			}
			return "", fmt.Errorf("%s: argument %q missing", cmd, n)
		}
		s := argString(v)
		if s == "" {
			return "", fmt.Errorf("%s: argument %q is empty (the console cannot carry it)", cmd, n)
		}
		if i < len(names)-1 && strings.ContainsAny(s, " \r\n") {
			return "", fmt.Errorf("%s: argument %q contains a space or newline", cmd, n)
		}
		parts = append(parts, s)
	}
	for k := range args {
		if !contains(names, k) {
			return "", fmt.Errorf("%s: argument %q has no console form", cmd, k)
		}
	}
	return strings.Join(parts, " "), nil
}

func allMissing(args map[string]any, names []string) bool {
	for _, n := range names {
		if _, ok := args[n]; ok {
			return false
		}
	}
	return true
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func argString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		if x {
			return "on"
		}
		return "off"
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

// noAnswer classifies a transport error: a vanished serial port is the harness's link
// lost (ErrLinkLost), anything else the device's silence (ErrNoAnswer).
func noAnswer(err error) error {
	if errors.Is(err, serial.ErrPortGone) {
		return ErrLinkLost
	}
	return ErrNoAnswer
}

// resync brings the transport back in step with the device after a command that got no
// answer. The text protocol has no correlation IDs: a late answer to that command, or one
// printed while the serial port was away and delivered once it came back, would be taken
// for the next command's. So before the next command the transport sends `sign <nonce>`
// (a protocol command without side effects), discards every answer before the one that
// carries the nonce, and logs out, since the lost command may have changed the login.
func (t *text) resync(ctx context.Context) error {
	if !t.unsynced {
		return nil
	}
	var b [8]byte
	rand.Read(b[:])
	nonce := hex.EncodeToString(b[:])
	if err := t.io.send(ctx, "sign "+nonce); err != nil {
		return fmt.Errorf("%s: resynchronise over %s after a lost answer: %w: %w", t.device, t.iface, noAnswer(err), err)
	}
	for {
		ok, rest, err := t.io.answer(ctx)
		if err != nil {
			return fmt.Errorf("%s: resynchronise over %s after a lost answer: %w: %w", t.device, t.iface, noAnswer(err), err)
		}
		if ok && strings.Contains(rest, `"`+nonce+`"`) {
			break
		}
	}
	t.unsynced = false
	t.loggedIn = nil
	if _, err := t.roundTrip(ctx, "logout", "logout"); err != nil && !Refused(err) {
		return err
	}
	return nil
}
