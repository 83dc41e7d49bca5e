package runner

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"time"
)

// DefaultTeardownLimit bounds how long hilt run waits for its bench to stop once the checks
// have ended. Stopping kills the units, removes their links and stops the broker: seconds
// when all is well. A bench that takes longer is stuck, and the reports must not wait for
// it.
const DefaultTeardownLimit = time.Minute

// teardownStacks is the file in the run's .hilt folder that gets the stacks of a teardown
// that did not end in time.
const teardownStacks = "teardown-stacks.txt"

// ErrTeardown is wrapped by the run error of a bench that did not stop in time.
var ErrTeardown = errors.New("the bench did not stop")

// stopFunc stops the units a run started. It hands found each thing that went wrong with
// the bench during the run (a unit that died) as soon as it knows it, before the teardown
// that may hang: a teardown that stopWithin stops waiting for does not take them with it.
type stopFunc func(found func(error))

// stopWithin calls stop and waits for it at most limit; it returns what stop found: what
// went wrong with the bench during the run. If stop has not returned by then, it writes
// the stacks of every goroutine to stacks (what the teardown waits on, for a bug report)
// and returns what stop found until then and, last, an error wrapping ErrTeardown that
// says so; stop goes on in the background (what it finds after that is dropped), and
// whatever it leaves when the process exits (units, links, folders) the next run removes
// as a dead run's. The process's children die with it: QEMU and the simulated devices
// have SIGKILL as their parent-death signal.
func stopWithin(stop stopFunc, limit time.Duration, stacks string) []error {
	var mu sync.Mutex
	var errs []error
	found := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	foundSoFar := func() []error {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(errs)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		stop(found)
	}()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-done:
		return foundSoFar()
	case <-t.C:
	}
	out := foundSoFar()
	var where string
	if err := writeStacks(stacks); err != nil {
		where = fmt.Sprintf(" (its stacks could not be written: %v)", err)
	} else {
		where = fmt.Sprintf("; what it waits on: %s", stacks)
	}
	return append(out, fmt.Errorf("%w within %v: the reports are written without waiting for it, and the next run removes what it left%s",
		ErrTeardown, limit, where))
}

// writeStacks writes every goroutine's stack to path.
func writeStacks(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	werr := pprof.Lookup("goroutine").WriteTo(f, 2)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return werr
}

// gate passes writes on to w until shut, and drops them after.
type gate struct {
	mu     sync.Mutex
	w      io.Writer
	closed bool
}

func (g *gate) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return len(p), nil
	}
	return g.w.Write(p)
}

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}
