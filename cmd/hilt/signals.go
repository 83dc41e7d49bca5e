package main

import (
	"os"
	"os/signal"
	"syscall"
)

// stopSignals are the signals that stop a run or a bench: Ctrl-C, SIGTERM, and a closed
// terminal (SIGHUP), unless hilt was started with SIGHUP ignored (nohup): that asks for the
// terminal's closing not to stop it, and catching SIGHUP would undo the request.
func stopSignals() []os.Signal {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	return sigs
}
