package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hilt-project/hilt/drivers/qemu"
	"github.com/hilt-project/hilt/harness/netns"
	"github.com/hilt-project/hilt/harness/sim"
	"github.com/hilt-project/hilt/internal/rundir"
)

// staleWait bounds the removal of what dead runs left (killing their processes included).
const staleWait = 30 * time.Second

// removeStale removes what runs killed before they could clean up (SIGKILL, a crash) left
// on this machine: the network namespaces and veths of simulated benches (and the device
// processes still running in them), the taps of emulated benches, and the temporary folders
// of both (disk images included, unmounted first). Only what belongs to a process that no
// longer runs is touched, never a live concurrent run's. It says on w what it removed; a
// failure is a warning, not an error of this run.
func removeStale(ctx context.Context, w io.Writer) {
	ctx, cancel := context.WithTimeout(ctx, staleWait)
	defer cancel()
	say := func(what string, items []string, err error) {
		if len(items) > 0 {
			fmt.Fprintf(w, "removed what dead runs left: %s %s\n", what, strings.Join(items, ", "))
		}
		if err != nil {
			fmt.Fprintf(w, "warning: removing what dead runs left (%s): %v\n", what, err)
		}
	}
	ns, err := netns.CleanupStale(ctx, "")
	say("namespaces (and their veths and processes)", ns, err)
	if os.Geteuid() == 0 {
		taps, err := qemu.RemoveStaleTaps(ctx)
		say("taps", taps, err)
	}
	dirs, err := sim.RemoveStaleRunDirs()
	more, merr := rundir.RemoveStale(rundir.All...)
	say("folders", append(dirs, more...), errors.Join(err, merr))
}
