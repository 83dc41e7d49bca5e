package serialtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hilt-project/hilt/drivers/serial"
)

// Fake is an in-memory serial.Port for unit tests: the test plays the device with
// Output (or a Responder), and reads what the code under test sent with Input. Its
// Expect has the semantics of a real port (cursor, offsets, errors), built on the same
// matchers.
type Fake struct {
	name string

	mu      sync.Mutex
	out     []byte // everything the device printed
	cursor  int64
	wake    chan struct{}
	in      []byte // everything written to the device
	inRead  int    // how much of in the Device has read
	inWake  chan struct{}
	partial []byte // written bytes not yet ended by "\n", for the responder
	respond Responder
	gone    error
	closed  bool
}

// Responder plays the device: it is called with each line written to the console
// (without "\n") and its result is printed, as is, as the device's answer. Return "" to
// print nothing.
type Responder func(line string) string

var (
	_ serial.Console = (*Fake)(nil)
	_ serial.Port    = (*Fake)(nil)
)

// NewFake returns a Fake console named name.
func NewFake(name string) *Fake {
	return &Fake{name: name, wake: make(chan struct{}), inWake: make(chan struct{})}
}

// Output makes the device print p.
func (f *Fake) Output(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.out = append(f.out, p...)
	f.notifyOut()
}

// OutputString makes the device print s.
func (f *Fake) OutputString(s string) { f.Output([]byte(s)) }

// Respond installs r as the device's answer to each line written (nil removes it).
func (f *Fake) Respond(r Responder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.respond = r
}

// Input returns everything written to the console so far.
func (f *Fake) Input() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.in)
}

// Vanish makes the port behave as unplugged: pending and later Expects and writes fail
// with serial.ErrPortGone, wrapping err, until Reopen.
func (f *Fake) Vanish(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = errors.New("device vanished")
	}
	f.gone = err
	f.notifyOut()
}

func (f *Fake) notifyOut() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// Device returns the device end of the Fake, for TestConsole.
func (f *Fake) Device() Device { return fakeDevice{f} }

// Name returns the name given to NewFake.
func (f *Fake) Name() string { return f.name }

// Send writes line and "\n".
func (f *Fake) Send(ctx context.Context, line string) error {
	return f.Write(ctx, []byte(line+"\n"))
}

// Write records p as input and feeds complete lines to the Responder.
func (f *Fake) Write(ctx context.Context, p []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("serial %s: write: %w", f.name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.stateErrLocked(); err != nil {
		return err
	}
	f.in = append(f.in, p...)
	close(f.inWake)
	f.inWake = make(chan struct{})
	f.partial = append(f.partial, p...)
	for {
		i := bytes.IndexByte(f.partial, '\n')
		if i < 0 {
			break
		}
		line := string(f.partial[:i])
		f.partial = f.partial[i+1:]
		if f.respond != nil {
			if answer := f.respond(line); answer != "" {
				f.out = append(f.out, answer...)
				f.notifyOut()
			}
		}
	}
	return nil
}

func (f *Fake) lastLocked() string {
	return string(f.out[max(0, len(f.out)-serial.LastOutputLen):])
}

func (f *Fake) stateErrLocked() error {
	switch {
	case f.closed:
		return fmt.Errorf("serial %s: %w", f.name, serial.ErrPortClosed)
	case f.gone != nil:
		return &serial.GoneError{Port: f.name, Last: f.lastLocked(), Err: f.gone}
	}
	return nil
}

// Expect waits for m after the cursor, as serial.Port's Expect does.
func (f *Fake) Expect(ctx context.Context, m serial.Matcher) (serial.Match, error) {
	s := serial.NewSearch(m)
	for {
		f.mu.Lock()
		base := f.cursor
		text := f.out[base:len(f.out):len(f.out)]
		wake := f.wake
		stateErr := f.stateErrLocked()
		f.mu.Unlock()

		got, ok, err := s.Next(text, base)
		if fe, isForbidden := err.(*serial.ForbiddenError); isForbidden {
			f.consume(int64(fe.Match.End))
			fe.Port = f.name
			fe.Last = f.last()
			return serial.Match{}, fe
		}
		if err != nil {
			return serial.Match{}, fmt.Errorf("serial %s: %w", f.name, err)
		}
		if ok {
			f.consume(int64(got.End))
			return got, nil
		}
		if stateErr != nil {
			return serial.Match{}, stateErr
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return serial.Match{}, &serial.TimeoutError{Port: f.name, Want: m.String(), Last: f.last(), Err: ctx.Err()}
		}
	}
}

func (f *Fake) consume(end int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cursor = max(f.cursor, end)
}

func (f *Fake) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastLocked()
}

// Mark returns the current end of the output.
func (f *Fake) Mark() serial.Mark {
	f.mu.Lock()
	defer f.mu.Unlock()
	return serial.Mark(len(f.out))
}

// TranscriptSince returns the output after mark.
func (f *Fake) TranscriptSince(mark serial.Mark) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	from := min(max(int(mark), 0), len(f.out))
	return bytes.Clone(f.out[from:])
}

// Transcript returns all the output.
func (f *Fake) Transcript() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.out)
}

// Reopen brings a vanished Fake back.
func (f *Fake) Reopen(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("serial %s: %w", f.name, serial.ErrPortClosed)
	}
	f.gone = nil
	f.notifyOut()
	return nil
}

// Close closes the Fake; pending and later calls fail with serial.ErrPortClosed.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.notifyOut()
	return nil
}

type fakeDevice struct{ f *Fake }

func (d fakeDevice) Output(ctx context.Context, p []byte) error {
	d.f.Output(p)
	return nil
}

// ReadInput returns the next n bytes written to the Fake (Input keeps them all).
func (d fakeDevice) ReadInput(ctx context.Context, n int) ([]byte, error) {
	f := d.f
	for {
		f.mu.Lock()
		if len(f.in)-f.inRead >= n {
			b := bytes.Clone(f.in[f.inRead : f.inRead+n])
			f.inRead += n
			f.mu.Unlock()
			return b, nil
		}
		wake := f.inWake
		f.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, fmt.Errorf("serial %s: reading %d input bytes: %w", f.name, n, ctx.Err())
		}
	}
}
