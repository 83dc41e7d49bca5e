package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"
)

// Console markers of docs/PROTOCOL.md.
const (
	readyBanner = "refdev ready"
	prompt      = "refdev> "
)

// answerRE finds a console answer line: OK <json> or ERR <code> <message>.
var answerRE = regexp.MustCompile(`(?m)^(?:refdev> )?(OK|ERR)(?: ([^\r\n]*))?\r?\n`)

// console is the bench's short conversation with a device over the pty slave it holds.
type console struct {
	name       string
	f          *os.File
	pending    string    // read but not consumed
	transcript io.Writer // everything the device printed
	exited     <-chan struct{}
}

// readMore reads what the device has printed, until ctx ends.
func (c *console) readMore(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { c.f.SetReadDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		c.f.SetReadDeadline(dl)
	} else {
		c.f.SetReadDeadline(time.Time{})
	}
	buf := make([]byte, 4096)
	n, err := c.f.Read(buf)
	if n > 0 {
		c.pending += string(buf[:n])
		c.transcript.Write(buf[:n])
	}
	if err != nil && n == 0 {
		select {
		case <-c.exited:
			return fmt.Errorf("the device exited")
		default:
		}
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("%w: %w", ErrTimeout, context.Cause(ctx))
		}
		return err
	}
	return nil
}

// expect reads until find locates something in the pending output and consumes the
// output up to the end of it; find returns the end index or -1.
func (c *console) expect(ctx context.Context, what string, find func(string) int) (string, error) {
	for {
		if end := find(c.pending); end >= 0 {
			got := c.pending[:end]
			c.pending = c.pending[end:]
			return got, nil
		}
		if err := c.readMore(ctx); err != nil {
			return "", fmt.Errorf("%s: console %s: waiting for %s: %w; last output: %q", c.name, c.f.Name(), what, err, tail(c.pending, 200))
		}
	}
}

func (c *console) expectString(ctx context.Context, s string) error {
	_, err := c.expect(ctx, fmt.Sprintf("%q", s), func(p string) int {
		if i := strings.Index(p, s); i >= 0 {
			return i + len(s)
		}
		return -1
	})
	return err
}

// command sends one command line and returns the OK answer's text. An ERR answer is an
// error quoting it; logged hides secrets in the error.
func (c *console) command(ctx context.Context, line, logged string) (string, error) {
	if _, err := io.WriteString(c.f, line+"\n"); err != nil {
		return "", fmt.Errorf("%s: console %s: send %s: %w", c.name, c.f.Name(), logged, err)
	}
	var kind, rest string
	_, err := c.expect(ctx, "the answer to "+logged, func(p string) int {
		m := answerRE.FindStringSubmatchIndex(p)
		if m == nil {
			return -1
		}
		kind = p[m[2]:m[3]]
		if m[4] >= 0 {
			rest = p[m[4]:m[5]]
		}
		return m[1]
	})
	if err != nil {
		return "", err
	}
	// The prompt that follows belongs to this answer.
	if err := c.expectString(ctx, prompt); err != nil {
		return "", err
	}
	if kind == "ERR" {
		return "", fmt.Errorf("%s: console: %s: the device answered ERR %s", c.name, logged, rest)
	}
	return rest, nil
}

// provision brings the device out of factory state with an admin account, then reads its
// identity key. It returns the key (base64), or "" if the device does not give it.
func (d *device) provision(ctx context.Context, b *Bench, timeout time.Duration) (string, error) {
	tf, err := os.OpenFile(d.dir+"/console-bench.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return "", fmt.Errorf("%s: %w", d.name, err)
	}
	defer tf.Close()
	c := &console{name: d.name, f: d.slave, transcript: tf, exited: d.exited}
	step := func(f func(context.Context) error) error {
		sctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("no answer within %v", timeout))
		defer cancel()
		return f(sctx)
	}
	if err := step(func(ctx context.Context) error {
		if err := c.expectString(ctx, readyBanner); err != nil {
			return err
		}
		return c.expectString(ctx, prompt)
	}); err != nil {
		return "", err
	}
	if err := step(func(ctx context.Context) error {
		_, err := c.command(ctx, "provision "+d.admin.User+" "+d.admin.Pass, "provision "+d.admin.User+" ****")
		return err
	}); err != nil {
		return "", err
	}
	b.logf("%s: provisioned (admin user %q) over %s", d.name, d.admin.User, d.serialPath)
	var key string
	if err := step(func(ctx context.Context) error {
		out, err := c.command(ctx, "pubkey", "pubkey")
		if err != nil {
			return err
		}
		var r struct {
			ID     string `json:"id"`
			PubKey string `json:"pubkey"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			return fmt.Errorf("%s: console: pubkey: %q is not the expected JSON: %w", d.name, out, err)
		}
		key = r.PubKey
		return nil
	}); err != nil {
		b.logf("%s: warning: no identity key recorded (the harness pins it at first contact): %v", d.name, err)
	}
	return key, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
