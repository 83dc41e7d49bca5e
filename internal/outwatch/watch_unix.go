//go:build unix

package outwatch

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// watch calls closed once f's reading end has gone (POLLERR on a pipe's writing end,
// POLLHUP on a socket), until stop. It watches a duplicate of f's descriptor, so that f
// being closed meanwhile cannot make it watch whatever reuses the number. It returns nil
// when it cannot watch f.
func watch(f *os.File, closed func()) (stop func()) {
	raw, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	cerr := raw.Control(func(u uintptr) { fd, err = unix.FcntlInt(u, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil || err != nil {
		return nil
	}
	wakeR, wakeW, err := os.Pipe()
	if err != nil {
		unix.Close(fd)
		return nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer wakeR.Close()
		defer unix.Close(fd)
		rc, err := wakeR.SyscallConn()
		if err != nil {
			return
		}
		wake := -1
		_ = rc.Control(func(u uintptr) { wake = int(u) }) // wakeR stays open until this returns
		// Events 0: only the conditions poll always reports (error, hang-up) wake it.
		fds := []unix.PollFd{{Fd: int32(fd)}, {Fd: int32(wake), Events: unix.POLLIN}}
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
			case fds[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0:
				closed()
				return
			case fds[0].Revents&unix.POLLNVAL != 0:
				return
			}
		}
	}()
	return func() {
		wakeW.Close()
		<-done
	}
}
