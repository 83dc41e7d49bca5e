package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// ErrUnplugged is wrapped by the errors of fault commands that need a plugged console
// (and of unplugging one that is unplugged already).
var ErrUnplugged = errors.New("console unplugged")

// cable is the USB-serial adapter between a device's UART and the harness. The device holds
// the master of one pty (its UART); the bench holds that pty's slave for its whole life and
// relays it, byte for byte, to a second pty (the adapter), whose slave the harness opens by
// a stable link, <dev>/console. Unplugging the adapter closes its pty and removes the link,
// as a USB adapter's tty vanishes on power-cycle, while the device runs on (what it prints
// meanwhile is lost, as on a UART with nothing attached); replugging makes a new pty and
// points the link at it. A device that dies leaves the adapter in place: the harness sees
// silence, as it would from a crashed board, not a vanished port.
type cable struct {
	name string
	link string
	uart *os.File // slave of the device's pty: the relay reads and writes it

	mu      sync.Mutex
	master  *os.File      // the adapter pty's master; nil while unplugged
	slave   *os.File      // the bench's own fd on the adapter's slave (never EIO on master)
	pts     string        // the adapter's slave path, e.g. /dev/pts/7
	plugged chan struct{} // closed at every plug, then replaced
	closed  bool
	wg      sync.WaitGroup
}

// newCable starts relaying uart to a new adapter pty reached through link. It owns uart.
func newCable(name, link string, uart *os.File) (*cable, error) {
	c := &cable{name: name, link: link, uart: uart, plugged: make(chan struct{})}
	if _, err := c.plug(); err != nil {
		return nil, err
	}
	c.wg.Add(2)
	go c.toHarness()
	go c.toDevice()
	return c, nil
}

// benchSlave returns the bench's own fd on the adapter (the bench's provisioning console).
func (c *cable) benchSlave() *os.File {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slave
}

// plug makes a new adapter pty and points the link at it; it returns the pty's path.
func (c *cable) plug() (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return "", fmt.Errorf("%s: console: the bench is closing", c.name)
	}
	if c.master != nil {
		return "", fmt.Errorf("%s: console %s is plugged in already (%s)", c.name, c.link, c.pts)
	}
	master, slave, err := pty.Open()
	if err != nil {
		return "", fmt.Errorf("%s: console: open a pty: %w", c.name, err)
	}
	if master, err = pollable(master); err != nil {
		slave.Close()
		return "", fmt.Errorf("%s: console: %w", c.name, err)
	}
	if err := makeRaw(slave); err != nil {
		master.Close()
		slave.Close()
		return "", fmt.Errorf("%s: console %s: %w", c.name, slave.Name(), err)
	}
	// Replace the link atomically: a reader sees the old target, no link, or the new one.
	tmp := c.link + ".new"
	os.Remove(tmp)
	if err := os.Symlink(slave.Name(), tmp); err == nil {
		err = os.Rename(tmp, c.link)
	}
	if err != nil {
		os.Remove(tmp)
		master.Close()
		slave.Close()
		return "", fmt.Errorf("%s: console link %s: %w", c.name, c.link, err)
	}
	c.master, c.slave, c.pts = master, slave, slave.Name()
	close(c.plugged)
	c.plugged = make(chan struct{})
	return c.pts, nil
}

// unplug removes the link and closes the adapter pty: the harness's open port reads EIO.
func (c *cable) unplug() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.master == nil {
		return fmt.Errorf("%s: console %s: %w already", c.name, c.link, ErrUnplugged)
	}
	err := os.Remove(c.link)
	c.master.Close()
	c.slave.Close()
	c.master, c.slave, c.pts = nil, nil, ""
	if err != nil {
		return fmt.Errorf("%s: console link: %w", c.name, err)
	}
	return nil
}

// current returns the adapter's master, or nil and a channel closed at the next plug.
func (c *cable) current() (*os.File, <-chan struct{}, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.master, c.plugged, c.closed
}

// toHarness copies what the device prints to the adapter, dropping it while unplugged.
// It ends when the device's pty is gone (the device exited) or the cable is closed.
func (c *cable) toHarness() {
	defer c.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := c.uart.Read(buf)
		if n > 0 {
			if m, _, _ := c.current(); m != nil {
				// An error here is an unplug racing the write: the bytes are lost, as they
				// would be on the wire.
				_, _ = m.Write(buf[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

// toDevice copies what the harness writes to the device, across unplugs.
func (c *cable) toDevice() {
	defer c.wg.Done()
	buf := make([]byte, 4096)
	for {
		m, plugged, closed := c.current()
		if closed {
			return
		}
		if m == nil {
			<-plugged
			continue
		}
		n, err := m.Read(buf)
		if n > 0 {
			if _, werr := c.uart.Write(buf[:n]); werr != nil {
				return // the device's pty is gone with the cable
			}
		}
		if err != nil {
			// Unplugged (the master was closed under the read) or closed: look again.
			c.mu.Lock()
			if c.master == m && !c.closed {
				// A read error on a plugged adapter we hold a slave of should not happen;
				// treat it as the adapter failing: unplug it so that it can be replugged.
				os.Remove(c.link)
				m.Close()
				c.slave.Close()
				c.master, c.slave, c.pts = nil, nil, ""
			}
			c.mu.Unlock()
		}
	}
}

// close stops the relay and releases both ptys.
func (c *cable) close() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	if c.master != nil {
		c.master.Close()
		c.slave.Close()
		c.master, c.slave = nil, nil
	}
	close(c.plugged) // wakes toDevice waiting for a plug
	c.plugged = make(chan struct{})
	c.mu.Unlock()
	c.uart.Close()
	c.wg.Wait()
	os.Remove(c.link)
}

// consoleLink is where a device's console link lives in its folder.
func consoleLink(devDir string) string { return filepath.Join(devDir, "console") }

// pollable returns a copy of f that the runtime's poller serves, and closes f. creack/pty
// leaves its master in blocking mode (it calls Fd), and closing a blocking *os.File does
// not end a Read pending on it, nor close the descriptor until that Read returns: an
// unplug would then leave the adapter's pty open and never hang up the harness's port.
func pollable(f *os.File) (*os.File, error) {
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	f.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("non-blocking %s: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}
