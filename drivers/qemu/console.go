package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Console limits.
const (
	keepLines = 4096 // lines kept for Expect; older ones are dropped
	tailLines = 25   // lines shown in errors
)

// console reads the guest's serial console (the host end of QEMU's pty) from the first byte
// on: it keeps the lines for Expect and errors, and copies the bytes to a transcript.
type console struct {
	vm         string
	f          *os.File
	transcript io.Writer // may be nil

	mu       sync.Mutex
	lines    []string // complete lines, without line ends
	base     int      // number of lines dropped before lines[0]
	next     int      // the first line Expect has not consumed, counted from the start
	partial  []byte   // the line being printed
	changed  chan struct{}
	err      error // why reading stopped
	released bool
	done     chan struct{}
}

func openConsole(vm, path string, transcript io.Writer) (*console, error) {
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("qemu %s: open console %s: %w", vm, path, err)
	}
	if err := MakeRaw(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("qemu %s: console %s: raw mode: %w", vm, path, err)
	}
	c := &console{vm: vm, f: f, transcript: transcript, changed: make(chan struct{}), done: make(chan struct{})}
	go c.read()
	return c, nil
}

func (c *console) read() {
	defer close(c.done)
	buf := make([]byte, 4096)
	for {
		n, err := c.f.Read(buf)
		if n > 0 {
			if c.transcript != nil {
				_, _ = c.transcript.Write(buf[:n])
			}
			c.add(buf[:n])
		}
		if err != nil {
			c.mu.Lock()
			if c.released {
				c.err = ErrConsoleReleased
			} else {
				// The pty's host end reads EIO once QEMU has closed its side.
				c.err = fmt.Errorf("console closed: %w", err)
			}
			c.broadcast()
			c.mu.Unlock()
			return
		}
	}
}

func (c *console) add(b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(b) > 0 {
		i := strings.IndexByte(string(b), '\n')
		if i < 0 {
			c.partial = append(c.partial, b...)
			break
		}
		line := strings.TrimRight(string(append(c.partial, b[:i]...)), "\r")
		c.partial = c.partial[:0]
		b = b[i+1:]
		c.lines = append(c.lines, line)
	}
	if drop := len(c.lines) - keepLines; drop > 0 {
		c.lines = append([]string(nil), c.lines[drop:]...)
		c.base += drop
	}
	c.broadcast()
}

// broadcast wakes every waiter; c.mu is held.
func (c *console) broadcast() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// expect waits for a line matching re that Expect has not consumed yet; it consumes the lines
// up to and including it.
func (c *console) expect(ctx context.Context, re *regexp.Regexp, exited func() error) (string, error) {
	for {
		c.mu.Lock()
		start := max(c.next, c.base)
		for i := start - c.base; i < len(c.lines); i++ {
			if re.MatchString(c.lines[i]) {
				c.next = c.base + i + 1
				line := c.lines[i]
				c.mu.Unlock()
				return line, nil
			}
		}
		c.next = c.base + len(c.lines)
		readErr, changed := c.err, c.changed
		c.mu.Unlock()

		if readErr != nil {
			err := readErr
			if !errors.Is(readErr, ErrConsoleReleased) {
				if e := exited(); e != nil {
					err = e
				}
			}
			return "", &ConsoleError{VM: c.vm, Pattern: re.String(), Tail: c.tail(tailLines), Err: err}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", &ConsoleError{VM: c.vm, Pattern: re.String(), Tail: c.tail(tailLines), Err: ctx.Err()}
		}
	}
}

// send writes one line to the guest.
func (c *console) send(ctx context.Context, line string) error {
	return c.write(ctx, []byte(line+"\n"))
}

// write writes p to the guest as it is.
func (c *console) write(ctx context.Context, p []byte) error {
	c.mu.Lock()
	released := c.released
	c.mu.Unlock()
	if released {
		return fmt.Errorf("qemu %s: send on the console: %w", c.vm, ErrConsoleReleased)
	}
	dl, _ := ctx.Deadline()
	if dl.IsZero() {
		dl = time.Now().Add(10 * time.Second)
	}
	_ = c.f.SetWriteDeadline(dl)
	if _, err := c.f.Write(p); err != nil {
		return fmt.Errorf("qemu %s: send on the console: %w", c.vm, err)
	}
	return nil
}

// tail returns the last n lines, the unfinished one included.
func (c *console) tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	lines := c.lines
	if len(c.partial) > 0 {
		lines = append(lines[:len(lines):len(lines)], string(c.partial))
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return append([]string(nil), lines...)
}

// release stops reading and closes the host end, so that another program can open the pty.
func (c *console) release() {
	c.mu.Lock()
	if c.released {
		c.mu.Unlock()
		return
	}
	c.released = true
	c.mu.Unlock()
	c.f.Close()
	<-c.done
}
