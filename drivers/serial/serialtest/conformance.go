package serialtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hilt-project/hilt/drivers/serial"
)

// Device is the far end of a console under test, driven by TestConsole: the device
// side of a pty, a Fake's device, a simulated board.
type Device interface {
	// Output makes the device print p.
	Output(ctx context.Context, p []byte) error
	// ReadInput returns the next n bytes the console sent to the device.
	ReadInput(ctx context.Context, n int) ([]byte, error)
}

// shortWait bounds the waits that are meant to time out.
const shortWait = 100 * time.Millisecond

// TestConsole checks that c behaves as a serial.Console should, driving its far end
// through dev, and returns every misbehaviour it finds, joined (nil if none). It works
// on a console that already has output: each step uses its own unique text. ctx bounds
// the whole check. Call it from a Go test or a Ginkgo spec alike:
//
//	if err := serialtest.TestConsole(ctx, port, dev); err != nil { t.Fatal(err) }
func TestConsole(ctx context.Context, c serial.Console, dev Device) error {
	var b [4]byte
	_, _ = rand.Read(b[:])
	ck := &checker{ctx: ctx, c: c, dev: dev, tok: "ct" + hex.EncodeToString(b[:])}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"name", ck.name},
		{"literal", ck.literal},
		{"cursor", ck.cursor},
		{"regex groups", ck.regexGroups},
		{"any of", ck.anyOf},
		{"all of", ck.allOf},
		{"must not match", ck.mustNot},
		{"timeout", ck.timeout},
		{"waits for output", ck.waits},
		{"offsets and marks", ck.offsets},
		{"send and write", ck.send},
		{"bad regex", ck.badRegex},
	}
	var errs []error
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("console %s: stopped before %q: %w", c.Name(), s.name, err))
			break
		}
		if err := s.fn(); err != nil {
			errs = append(errs, fmt.Errorf("console %s: %s: %w", c.Name(), s.name, err))
		}
	}
	return errors.Join(errs...)
}

type checker struct {
	ctx context.Context
	c   serial.Console
	dev Device
	tok string
	n   int
}

// next returns a fresh unique token.
func (k *checker) next(what string) string {
	k.n++
	return fmt.Sprintf("%s-%d-%s", k.tok, k.n, what)
}

func (k *checker) out(s string) error {
	return k.dev.Output(k.ctx, []byte(s))
}

// sync makes sure every earlier output has arrived and been consumed.
func (k *checker) sync() error {
	t := k.next("sync")
	if err := k.out(t + "\n"); err != nil {
		return err
	}
	if _, err := k.c.Expect(k.ctx, serial.Literal(t+"\n")); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	return nil
}

func (k *checker) name() error {
	if k.c.Name() == "" {
		return errors.New("Name() is empty")
	}
	return nil
}

func (k *checker) literal() error {
	t := k.next("ready")
	if err := k.out("boot noise\n" + t + "\nmore\n"); err != nil {
		return err
	}
	m, err := k.c.Expect(k.ctx, serial.Literal(t))
	if err != nil {
		return err
	}
	if m.Text != t || m.End-m.Start != len(t) {
		return fmt.Errorf("got match %q [%d,%d), want %q of length %d", m.Text, m.Start, m.End, t, len(t))
	}
	return k.sync()
}

func (k *checker) cursor() error {
	p := k.next("P>")
	if err := k.out(p + " " + p + " "); err != nil {
		return err
	}
	for i := range 2 {
		if _, err := k.c.Expect(k.ctx, serial.Literal(p)); err != nil {
			return fmt.Errorf("prompt %d of 2: %w", i+1, err)
		}
	}
	ctx, cancel := context.WithTimeout(k.ctx, shortWait)
	defer cancel()
	if m, err := k.c.Expect(ctx, serial.Literal(p)); !errors.Is(err, serial.ErrTimeout) {
		return fmt.Errorf("third Expect of a prompt printed twice: got %+v, %v, want ErrTimeout (the cursor must move past each match)", m, err)
	}
	return nil
}

func (k *checker) regexGroups() error {
	t := k.next("resp")
	if err := k.out(t + ` OK {"id":"rd-0123"}` + "\n"); err != nil {
		return err
	}
	m, err := k.c.Expect(k.ctx, serial.Regex(t+` OK (\{.*\})`))
	if err != nil {
		return err
	}
	if len(m.Groups) != 2 || m.Groups[1] != `{"id":"rd-0123"}` || m.Groups[0] != m.Text {
		return fmt.Errorf("got groups %q, want [whole match, %q]", m.Groups, `{"id":"rd-0123"}`)
	}
	return k.sync()
}

func (k *checker) anyOf() error {
	t := k.next("ans")
	if err := k.out(t + " ERR auth bad password\n"); err != nil {
		return err
	}
	m, err := k.c.Expect(k.ctx, serial.AnyOf(serial.Literal(t+" OK"), serial.Literal(t+" ERR")))
	if err != nil {
		return err
	}
	if m.Index != 1 || m.Text != t+" ERR" {
		return fmt.Errorf("got index %d text %q, want index 1 text %q", m.Index, m.Text, t+" ERR")
	}
	return k.sync()
}

func (k *checker) allOf() error {
	t := k.next("all")
	if err := k.out(t + " b\n" + t + " a\n"); err != nil {
		return err
	}
	m, err := k.c.Expect(k.ctx, serial.AllOf(serial.Literal(t+" a"), serial.Literal(t+" b")))
	if err != nil {
		return err
	}
	if len(m.Groups) != 2 || m.Groups[0] != t+" a" || m.Groups[1] != t+" b" {
		return fmt.Errorf("got groups %q, want [%q %q]", m.Groups, t+" a", t+" b")
	}
	if !strings.HasPrefix(m.Text, t+" b") || !strings.HasSuffix(m.Text, t+" a") {
		return fmt.Errorf("got text %q, want the span from %q to %q", m.Text, t+" b", t+" a")
	}
	return k.sync()
}

func (k *checker) mustNot() error {
	t := k.next("boot")
	if err := k.out(t + " panic: oops\n" + t + " ready\n"); err != nil {
		return err
	}
	_, err := k.c.Expect(k.ctx, serial.MustNotMatch(serial.Literal(t+" ready"), serial.Literal(t+" panic")))
	var fe *serial.ForbiddenError
	if !errors.Is(err, serial.ErrForbiddenOutput) || !errors.As(err, &fe) {
		return fmt.Errorf("got %v, want a *ForbiddenError", err)
	}
	if fe.Match.Text != t+" panic" || fe.Port != k.c.Name() {
		return fmt.Errorf("ForbiddenError names %q on %q, want %q on %q", fe.Match.Text, fe.Port, t+" panic", k.c.Name())
	}
	// The good text came after the bad one and is still there to expect.
	if _, err := k.c.Expect(k.ctx, serial.Literal(t+" ready")); err != nil {
		return fmt.Errorf("after the forbidden output: %w", err)
	}
	return k.sync()
}

func (k *checker) timeout() error {
	t := k.next("last-words")
	if err := k.out(t + "\n"); err != nil {
		return err
	}
	if _, err := k.c.Expect(k.ctx, serial.Literal(t)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(k.ctx, shortWait)
	defer cancel()
	never := k.next("never")
	_, err := k.c.Expect(ctx, serial.Literal(never))
	var te *serial.TimeoutError
	switch {
	case !errors.As(err, &te):
		return fmt.Errorf("got %v, want a *TimeoutError", err)
	case !errors.Is(err, serial.ErrTimeout):
		return fmt.Errorf("%v is not ErrTimeout", err)
	case !errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%v does not wrap context.DeadlineExceeded", err)
	case !strings.Contains(te.Want, never):
		return fmt.Errorf("TimeoutError.Want = %q, want it to name %q", te.Want, never)
	case !strings.Contains(te.Last, t):
		return fmt.Errorf("TimeoutError.Last = %q, want the last output (%q)", te.Last, t)
	case te.Port != k.c.Name():
		return fmt.Errorf("TimeoutError.Port = %q, want %q", te.Port, k.c.Name())
	}
	return k.sync()
}

func (k *checker) waits() error {
	t := k.next("late")
	type result struct {
		m   serial.Match
		err error
	}
	done := make(chan result, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		m, err := k.c.Expect(k.ctx, serial.Literal(t))
		done <- result{m, err}
	}()
	<-started
	if err := k.out("...\n" + t + "\n"); err != nil {
		return err
	}
	r := <-done
	if r.err != nil {
		return fmt.Errorf("Expect started before the output: %w", r.err)
	}
	return k.sync()
}

func (k *checker) offsets() error {
	mark := k.c.Mark()
	t := k.next("off")
	if err := k.out("12345" + t + "\n"); err != nil {
		return err
	}
	m, err := k.c.Expect(k.ctx, serial.Literal(t))
	if err != nil {
		return err
	}
	if m.Start != int(mark)+5 {
		return fmt.Errorf("match starts at %d, want Mark() %d + 5", m.Start, mark)
	}
	if err := k.sync(); err != nil {
		return err
	}
	since := string(k.c.TranscriptSince(mark))
	if !strings.HasPrefix(since, "12345"+t+"\n") {
		return fmt.Errorf("TranscriptSince(%d) = %q, want it to start with %q", mark, since, "12345"+t)
	}
	if all := string(k.c.Transcript()); !strings.HasSuffix(all, since) {
		return fmt.Errorf("Transcript() does not end with TranscriptSince(mark)")
	}
	if end := k.c.Mark(); int64(end)-int64(mark) != int64(len(since)) {
		return fmt.Errorf("Mark() moved by %d, want %d (the bytes received)", end-mark, len(since))
	}
	return nil
}

func (k *checker) send() error {
	t := k.next("cmd")
	if err := k.c.Send(k.ctx, t+" arg"); err != nil {
		return err
	}
	got, err := k.dev.ReadInput(k.ctx, len(t)+5)
	if err != nil {
		return err
	}
	if string(got) != t+" arg\n" {
		return fmt.Errorf("Send wrote %q, want %q", got, t+" arg\n")
	}
	raw := []byte{0x03, 'x', 0x00, 0xff}
	if err := k.c.Write(k.ctx, raw); err != nil {
		return err
	}
	got, err = k.dev.ReadInput(k.ctx, len(raw))
	if err != nil {
		return err
	}
	if string(got) != string(raw) {
		return fmt.Errorf("Write wrote %q, want %q", got, raw)
	}
	return nil
}

func (k *checker) badRegex() error {
	ctx, cancel := context.WithTimeout(k.ctx, shortWait)
	defer cancel()
	if _, err := k.c.Expect(ctx, serial.Regex("(")); !errors.Is(err, serial.ErrBadMatcher) {
		return fmt.Errorf("Expect(Regex(\"(\")): got %v, want ErrBadMatcher", err)
	}
	return nil
}
