package serial

import (
	"bytes"
	"context"
	"fmt"
	"sync"
)

// DefaultTranscriptLimit is how much output a port keeps unless told otherwise.
const DefaultTranscriptLimit = 8 << 20

// minTranscriptLimit keeps a useful tail whatever the option says.
const minTranscriptLimit = 4 * LastOutputLen

// transcript is a console's output: a bounded buffer addressed by output offsets, a
// consumption cursor, and a channel closed on every change that waiters select on.
//
// Searches read the buffer outside the lock. That is safe because the bytes a snapshot
// covers are never written again: appends write past the end of every snapshot, and
// dropping old output copies what is kept into a new array.
type transcript struct {
	mu     sync.Mutex
	buf    []byte
	base   int64 // output offset of buf[0]
	limit  int
	cursor int64
	wake   chan struct{}
	gone   error // why no more output comes (until reopened), or nil
	closed bool
}

func newTranscript(limit int) *transcript {
	return &transcript{limit: max(limit, minTranscriptLimit), wake: make(chan struct{})}
}

// notify wakes every waiter. Called with mu held.
func (t *transcript) notify() {
	close(t.wake)
	t.wake = make(chan struct{})
}

func (t *transcript) append(p []byte) {
	if len(p) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf)+len(p) > t.limit {
		// Drop the oldest output, down to three quarters of the limit, so that the
		// copy is paid once per quarter of the limit received.
		keep := max(t.limit-t.limit/4, min(len(p), t.limit))
		drop := len(t.buf) + len(p) - keep
		nb := make([]byte, 0, t.limit)
		if drop < len(t.buf) {
			nb = append(nb, t.buf[drop:]...)
			nb = append(nb, p...)
		} else {
			nb = append(nb, p[drop-len(t.buf):]...)
		}
		t.buf = nb
		t.base += int64(drop)
	} else {
		t.buf = append(t.buf, p...)
	}
	t.notify()
}

// setGone records that the line vanished (err != nil) or came back (err == nil).
func (t *transcript) setGone(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.gone = err
	t.notify()
}

func (t *transcript) setClosed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	t.notify()
}

func (t *transcript) end() int64 { return t.base + int64(len(t.buf)) }

func (t *transcript) mark() Mark {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Mark(t.end())
}

func (t *transcript) since(m Mark) []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	from := max(int64(m), t.base)
	if from >= t.end() {
		return []byte{}
	}
	return bytes.Clone(t.buf[from-t.base:])
}

func (t *transcript) all() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf)
}

// last returns the latest output, at most LastOutputLen bytes. Called with mu held.
func (t *transcript) lastLocked() string {
	return string(t.buf[max(0, len(t.buf)-LastOutputLen):])
}

func (t *transcript) last() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lastLocked()
}

// expect implements Console.Expect for the console called name.
func (t *transcript) expect(ctx context.Context, name string, m Matcher) (Match, error) {
	s := NewSearch(m)
	for {
		t.mu.Lock()
		base := max(t.cursor, t.base)
		text := t.buf[base-t.base:]
		wake, gone, closed := t.wake, t.gone, t.closed
		t.mu.Unlock()

		got, ok, err := s.Next(text, base)
		if err != nil {
			if fe, isForbidden := err.(*ForbiddenError); isForbidden {
				t.consume(int64(fe.Match.End))
				fe.Port = name
				fe.Last = t.last()
				return Match{}, fe
			}
			return Match{}, fmt.Errorf("serial %s: %w", name, err)
		}
		if ok {
			t.consume(int64(got.End))
			return got, nil
		}
		switch {
		case closed:
			return Match{}, closedError(name, t.last())
		case gone != nil:
			return Match{}, &GoneError{Port: name, Last: t.last(), Err: gone}
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return Match{}, &TimeoutError{Port: name, Want: m.String(), Last: t.last(), Err: ctx.Err()}
		}
	}
}

func (t *transcript) consume(end int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cursor = max(t.cursor, end)
}
