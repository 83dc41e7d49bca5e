//go:build unix

package outwatch

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// watch calls closed once f's reading end has gone (POLLERR on a pipe's writing end,
// POLLHUP on a socket), until stop. It returns nil when it cannot watch f.
func watch(f *os.File, closed func()) (stop func()) {
	raw, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	var fd int
	if err := raw.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return nil
	}
	wakeR, wakeW, err := os.Pipe()
	if err != nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer wakeR.Close()
		// Events 0: only the conditions poll always reports (error, hang-up) wake it.
		fds := []unix.PollFd{{Fd: int32(fd)}, {Fd: int32(wakeR.Fd()), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err != nil {
				if errors.Is(err, syscall.EINTR) {
					continue
				}
				return
			}
			switch {
			case fds[1].Revents != 0: // stopped
				return
			case fds[0].Revents&unix.POLLNVAL != 0: // f was closed here: nothing to watch
				return
			case fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0:
				closed()
				return
			}
		}
	}()
	return func() {
		wakeW.Close()
		<-done
	}
}
