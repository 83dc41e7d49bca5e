// Package outwatch ends a long-running command when the pipe its output goes to is closed
// (hilt sim | tee log, and tee ends), and only then.
//
// Catching SIGPIPE to learn that is wrong for a process that also talks over sockets and
// pipes to devices, brokers and emulators: once a Go program asks for SIGPIPE, it gets one
// for a write to any broken pipe or socket, so a device that reboots while the bench's
// broker writes to it would stop the whole bench. Context instead catches SIGPIPE only so
// that a write to a closed stdout or stderr fails with EPIPE rather than killing the
// process (Go's default for those two descriptors), and watches the output descriptors
// themselves: the writing end of a pipe reports an error, and a Unix socket a hang-up, once
// no one reads it any more.
package outwatch

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
)

// ErrOutputClosed is the cause (context.Cause) of a context that Context ended because an
// output was closed.
var ErrOutputClosed = errors.New("the output was closed (no one reads it any more)")

// Context returns a copy of parent that ends, with cause ErrOutputClosed, when one of files
// is a pipe or a Unix socket whose reading end has closed. Other files (a terminal, a
// regular file) are not watched: a closed terminal sends SIGHUP, which the caller handles.
// A TCP socket is watched but reports its peer gone only once a write to it has failed.
//
// From the call on, and for the rest of the process's life, SIGPIPE no longer ends the
// process, whichever descriptor it was raised for: a write to a broken pipe or socket fails
// with EPIPE instead, so that a last message after the output closed cannot turn the exit
// status into a death by signal. cancel stops the watchers.
func Context(parent context.Context, files ...*os.File) (ctx context.Context, cancel context.CancelFunc) {
	CatchSIGPIPE()
	ctx, cancelCause := context.WithCancelCause(parent)
	stops := []func(){}
	for _, f := range files {
		if f != nil && watchable(f) {
			if stop := watch(f, func() { cancelCause(ErrOutputClosed) }); stop != nil {
				stops = append(stops, stop)
			}
		}
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancelCause(context.Canceled)
	}
}

// CatchSIGPIPE makes SIGPIPE harmless for the rest of the process's life: a write to a
// broken pipe or socket, stdout and stderr included, fails with EPIPE instead of killing
// the process. For commands that must go on when their output closes (hilt run writes its
// reports); Context calls it.
func CatchSIGPIPE() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE) // never read: a full channel drops the signal
}

// watchable says whether f is a pipe or a socket: what has a reading end that can go away.
func watchable(f *os.File) bool {
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	return fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0
}
