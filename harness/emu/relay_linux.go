package emu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hilt-project/hilt/drivers/qemu"
)

// Relay timings.
const (
	// relayStall bounds a write to a harness that has the console open but does not read:
	// beyond it output is dropped rather than stall the guest's UART.
	relayStall = 500 * time.Millisecond
	// relayIdle is how often the relay looks for a reader while nobody has the console open
	// (a pty gives no event when its other end is opened).
	relayIdle = 50 * time.Millisecond
)

// consoleSink is where typed input goes: the running VM's console.
type consoleSink interface {
	WriteConsole(ctx context.Context, p []byte) error
}

// relay is a unit's console as the harness sees it: a pty of the bench's own that outlives
// each QEMU process. Guest output is written to it (Write); what the harness types goes to
// the VM attached at the time.
type relay struct {
	name   string
	master *os.File
	path   string // the end the harness opens, /dev/pts/N

	mu      sync.Mutex
	sink    consoleSink // nil while the unit is off
	stalled bool        // the last write timed out: the reader is not reading
	done    chan struct{}
	wg      sync.WaitGroup
}

func newRelay(name string) (*relay, error) {
	m, s, err := openPTY()
	if err != nil {
		return nil, fmt.Errorf("%s: console relay: %w", name, err)
	}
	r := &relay{name: name, master: m, path: s.Name(), done: make(chan struct{})}
	// Raw, as a UART is: no echo, no line editing, no CR/LF translation.
	err = qemu.MakeRaw(s)
	// Closing our end of the slave leaves the pty unattached until the harness opens it.
	s.Close()
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("%s: console relay: raw mode: %w", name, err)
	}
	r.wg.Add(1)
	go r.input()
	return r, nil
}

// openPTY opens a new pty pair. Unlike creack/pty's Open, it keeps the master in
// non-blocking mode, so that closing it ends a pending Read.
func openPTY() (master, slave *os.File, err error) {
	master, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	var n int
	err = control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock pty: %w", err)
		}
		var err error
		n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN)
		return err
	})
	if err == nil {
		slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	}
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// control runs fn on f's descriptor without switching it to blocking mode (as Fd would).
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
}

// attach sends typed input to sink from now on; nil detaches.
func (r *relay) attach(sink consoleSink) {
	r.mu.Lock()
	r.sink = sink
	r.mu.Unlock()
}

// attached says whether someone has the harness end open.
func (r *relay) attached() bool {
	hup := true
	_ = control(r.master, func(fd int) error {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if _, err := unix.Poll(fds, 0); err != nil {
			return err
		}
		hup = fds[0].Revents&unix.POLLHUP != 0
		return nil
	})
	return !hup
}

// Write passes guest output on. It never fails and never blocks for long: output nobody
// reads is dropped. Once a reader has stalled a write for relayStall, later writes wait for
// it no more until one goes through whole.
func (r *relay) Write(p []byte) (int, error) {
	if !r.attached() {
		return len(p), nil
	}
	r.mu.Lock()
	wait := relayStall
	if r.stalled {
		wait = time.Millisecond
	}
	r.mu.Unlock()
	_ = r.master.SetWriteDeadline(time.Now().Add(wait))
	n, _ := r.master.Write(p)
	r.mu.Lock()
	r.stalled = n < len(p)
	r.mu.Unlock()
	return len(p), nil
}

// input copies what the harness types to the attached VM.
func (r *relay) input() {
	defer r.wg.Done()
	buf := make([]byte, 4096)
	for {
		n, err := r.master.Read(buf)
		if n > 0 {
			r.mu.Lock()
			sink := r.sink
			r.mu.Unlock()
			if sink != nil {
				ctx, cancel := context.WithTimeout(context.Background(), relayStall)
				_ = sink.WriteConsole(ctx, buf[:n])
				cancel()
			}
		}
		if errors.Is(err, os.ErrClosed) {
			return
		}
		if err != nil {
			// EIO: nobody has the harness end open.
			select {
			case <-r.done:
				return
			case <-time.After(relayIdle):
			}
		}
	}
}

func (r *relay) close() {
	select {
	case <-r.done:
		return
	default:
	}
	close(r.done)
	r.master.Close()
	r.wg.Wait()
}
