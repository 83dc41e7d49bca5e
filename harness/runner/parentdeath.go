package runner

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// ParentDeathSignal is the signal a check process gets when the hilt run that started it
// dies without stopping it (SIGKILL, a crash): its parent-death signal. It is not SIGINT or
// SIGTERM because the kernel may send it more than once (once per thread of the dying
// parent that the child is handed to), and a second interrupt makes Ginkgo skip the
// running check's cleanup, which leaves the unit as the check changed it. Nor is it
// SIGUSR1, on which Ginkgo prints a progress report.
const ParentDeathSignal = syscall.SIGUSR2

// OrphanLimit bounds how long a check process outlives the hilt run that started it: time
// for the running check's cleanup to restore the unit (a few exchanges, or a reboot).
const OrphanLimit = 3 * time.Minute

// InterruptOnParentDeath turns the first ParentDeathSignal this process gets into one
// SIGTERM to itself, and ignores the others: Ginkgo, which handles SIGTERM, then stops the
// running check and runs its cleanup, restoring the unit although hilt run is gone. Before
// Ginkgo runs, the SIGTERM ends the process, as it would have ended with its parent. If
// the cleanup has not ended OrphanLimit after the parent's death, the process exits
// (code 2), saying so on log. stop undoes it.
func InterruptOnParentDeath(log io.Writer) (stop func()) {
	c := make(chan os.Signal, 4)
	signal.Notify(c, ParentDeathSignal)
	done := make(chan struct{})
	go func() {
		var limit <-chan time.Time
		for {
			select {
			case <-c:
				if limit == nil {
					limit = time.After(OrphanLimit)
					_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
				}
			case <-limit:
				fmt.Fprintf(log, "hilt __check: hilt run died %v ago and the check's cleanup has not ended: exiting\n", OrphanLimit)
				os.Exit(2)
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(c)
		close(done)
	}
}
