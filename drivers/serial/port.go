package serial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	bugst "go.bug.st/serial"
)

// DefaultBaud is the line speed unless WithBaud says otherwise (PROTOCOL.md: 115200 8N1).
const DefaultBaud = 115200

// Option configures Open.
type Option func(*config)

type config struct {
	baud       int
	limit      int
	logger     io.Writer
	autoReopen bool
}

// WithBaud sets the line speed (default 115200; always 8 data bits, no parity, 1 stop bit).
func WithBaud(baud int) Option { return func(c *config) { c.baud = baud } }

// WithTranscriptLimit bounds the output kept in memory (default 8 MiB). When the limit
// is reached the oldest quarter is dropped; offsets and marks keep counting from the
// start, and TranscriptSince returns what is still kept.
func WithTranscriptLimit(bytes int) Option { return func(c *config) { c.limit = bytes } }

// WithLogger tees the raw output to w as it arrives (for a live log or an evidence
// file). Writes to w happen on the reader goroutine; a failing w is dropped and its
// error returned by Close.
func WithLogger(w io.Writer) Option { return func(c *config) { c.logger = w } }

// WithAutoReopen makes a write to a line that vanished (a USB adapter unplugged or
// power-cycled) reopen the port by its path first, waiting for it to come back as long as
// the write's ctx allows; if it does not come back in time the write fails with a
// *GoneError naming the port. Output printed while the line was gone is lost, and an
// Expect pending when it vanished still fails with ErrPortGone: what was in flight is
// unknown.
func WithAutoReopen() Option { return func(c *config) { c.autoReopen = true } }

// Open opens the serial port at path (a tty, a pty, a symlink such as
// /dev/serial/by-id/...) and starts reading it.
func Open(ctx context.Context, path string, opts ...Option) (Port, error) {
	cfg := config{baud: DefaultBaud, limit: DefaultTranscriptLimit}
	for _, o := range opts {
		o(&cfg)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("serial %s: open: %w", path, err)
	}
	p := &port{
		path:    path,
		cfg:     cfg,
		t:       newTranscript(cfg.limit),
		closing: make(chan struct{}),
	}
	h, err := p.open()
	if err != nil {
		return nil, err
	}
	p.start(h)
	return p, nil
}

type port struct {
	path string
	cfg  config
	t    *transcript

	reopenMu sync.Mutex // serialises Reopen

	mu         sync.Mutex
	h          bugst.Port    // nil while the line is gone or being reopened
	readerDone chan struct{} // closed when the reader of h returns
	closed     bool
	closing    chan struct{} // closed by Close
	logErr     error

	wmu sync.Mutex // serialises writes
}

var _ Port = (*port)(nil)

func (p *port) open() (bugst.Port, error) {
	h, err := bugst.Open(p.path, &bugst.Mode{
		BaudRate: p.cfg.baud,
		DataBits: 8,
		Parity:   bugst.NoParity,
		StopBits: bugst.OneStopBit,
	})
	if err != nil {
		return nil, fmt.Errorf("serial %s: open: %w", p.path, err)
	}
	return h, nil
}

// start makes h the port's line and starts its reader.
func (p *port) start(h bugst.Port) {
	done := make(chan struct{})
	p.mu.Lock()
	p.h, p.readerDone = h, done
	p.mu.Unlock()
	p.t.setGone(nil)
	go p.read(h, done)
}

func (p *port) read(h bugst.Port, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 64<<10)
	for {
		n, err := h.Read(buf)
		if n > 0 {
			p.tee(buf[:n])
			p.t.append(buf[:n])
		}
		if err != nil {
			p.lost(h, err)
			return
		}
	}
}

func (p *port) tee(b []byte) {
	if p.cfg.logger == nil {
		return
	}
	if _, err := p.cfg.logger.Write(b); err != nil {
		p.mu.Lock()
		p.logErr = fmt.Errorf("serial %s: logger: %w", p.path, err)
		p.mu.Unlock()
		p.cfg.logger = nil // only the reader goroutine reads it
	}
}

// lost handles a read error on h: unless the owner is closing or replacing h, the
// line has vanished.
func (p *port) lost(h bugst.Port, err error) {
	p.mu.Lock()
	if p.closed || p.h != h {
		p.mu.Unlock()
		return
	}
	p.h = nil
	p.mu.Unlock()
	_ = h.Close() // the line is gone; closing only releases the descriptor
	p.t.setGone(fmt.Errorf("read: %w", err))
}

// reopenInterval is how often Reopen tries to open a path that is not there (yet).
const reopenInterval = 50 * time.Millisecond

func (p *port) Reopen(ctx context.Context) error {
	p.reopenMu.Lock()
	defer p.reopenMu.Unlock()
	return p.reopenLocked(ctx)
}

// reopenIfGone reopens the line if it is gone (and nobody reopened it meanwhile).
func (p *port) reopenIfGone(ctx context.Context) error {
	p.reopenMu.Lock()
	defer p.reopenMu.Unlock()
	p.mu.Lock()
	h := p.h
	p.mu.Unlock()
	if h != nil {
		return nil
	}
	return p.reopenLocked(ctx)
}

// reopenLocked is Reopen; the caller holds reopenMu.
func (p *port) reopenLocked(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return closedError(p.path, p.t.last())
	}
	old, done := p.h, p.readerDone
	p.h = nil
	p.mu.Unlock()
	if old != nil {
		_ = old.Close() // the reader sees p.h != old and leaves quietly
		<-done
	}

	tick := time.NewTicker(reopenInterval)
	defer tick.Stop()
	for {
		h, err := p.open()
		if err == nil {
			p.mu.Lock()
			closed := p.closed
			p.mu.Unlock()
			if closed {
				_ = h.Close()
				return closedError(p.path, p.t.last())
			}
			p.start(h)
			return nil
		}
		select {
		case <-tick.C:
		case <-p.closing:
			return closedError(p.path, p.t.last())
		case <-ctx.Done():
			return fmt.Errorf("serial %s: reopen: %w (last attempt: %w)", p.path, ctx.Err(), err)
		}
	}
}

func (p *port) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.closing)
	h, done := p.h, p.readerDone
	p.h = nil
	p.mu.Unlock()

	var err error
	if h != nil {
		if cerr := h.Close(); cerr != nil {
			err = fmt.Errorf("serial %s: close: %w", p.path, cerr)
		}
	}
	if done != nil {
		<-done
	}
	p.t.setClosed()
	p.mu.Lock()
	defer p.mu.Unlock()
	return errors.Join(err, p.logErr)
}

func (p *port) Send(ctx context.Context, line string) error {
	return p.Write(ctx, []byte(line+"\n"))
}

func (p *port) Write(ctx context.Context, b []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("serial %s: write: %w", p.path, err)
	}
	p.mu.Lock()
	h, closed := p.h, p.closed
	p.mu.Unlock()
	if h == nil && !closed && p.cfg.autoReopen {
		p.t.mu.Lock()
		cause := p.t.gone
		p.t.mu.Unlock()
		if err := p.reopenIfGone(ctx); err != nil {
			if errors.Is(err, ErrPortClosed) {
				return err
			}
			if cause == nil {
				cause = errors.New("port is being reopened")
			}
			return &GoneError{Port: p.path, Last: p.t.last(), Err: fmt.Errorf("%w; it did not come back: %w", cause, err)}
		}
		p.mu.Lock()
		h, closed = p.h, p.closed
		p.mu.Unlock()
	}
	switch {
	case closed:
		return closedError(p.path, p.t.last())
	case h == nil:
		p.t.mu.Lock()
		cause := p.t.gone
		p.t.mu.Unlock()
		if cause == nil {
			cause = errors.New("port is being reopened")
		}
		return &GoneError{Port: p.path, Last: p.t.last(), Err: cause}
	}
	// The write runs on its own goroutine so that a stalled line (flow control, a pty
	// nobody reads) cannot outlive ctx; it may still complete after ctx is done.
	errc := make(chan error, 1)
	go func() {
		p.wmu.Lock()
		defer p.wmu.Unlock()
		errc <- writeAll(h, b)
	}()
	select {
	case err := <-errc:
		if err != nil {
			return &GoneError{Port: p.path, Last: p.t.last(), Err: fmt.Errorf("write: %w", err)}
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("serial %s: write of %d bytes: %w", p.path, len(b), ctx.Err())
	}
}

func writeAll(h bugst.Port, b []byte) error {
	for len(b) > 0 {
		n, err := h.Write(b)
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b = b[n:]
	}
	return nil
}

func (p *port) Expect(ctx context.Context, m Matcher) (Match, error) {
	return p.t.expect(ctx, p.path, m)
}

func (p *port) Mark() Mark                    { return p.t.mark() }
func (p *port) TranscriptSince(m Mark) []byte { return p.t.since(m) }
func (p *port) Transcript() []byte            { return p.t.all() }
func (p *port) Name() string                  { return p.path }
