// Package cpuprofile writes a CPU profile of a hilt process's life when HILT_CPUPROFILE
// names a folder: a profiling aid for hilt run, its check processes and each boot of each
// simulated device; nothing else reads it.
package cpuprofile

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"
)

// Env names a directory: when set, every hilt process (hilt run, each `hilt __check`
// and each boot of each simulated device, `hilt __refdev` or `hilt-refdev __refdev`)
// writes a CPU profile of its life there, named after its subcommand, its PID and its
// start time, e.g. __refdev-4242-1764240000000.pprof.
const Env = "HILT_CPUPROFILE"

// Start starts the CPU profile Env asks for, if any, and returns what stops it; args are
// the process's arguments (os.Args). The device re-executes itself on reboot: it stops the
// profile before (refdev.reexec), so each boot leaves a profile of its own.
func Start(args []string) (stop func()) {
	dir := os.Getenv(Env)
	if dir == "" {
		return func() {}
	}
	kind := "hilt"
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		kind = args[1]
	}
	name := filepath.Join(dir, fmt.Sprintf("%s-%d-%d.pprof", kind, os.Getpid(), time.Now().UnixNano()))
	f, err := os.Create(name)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hilt: %s: %v\n", Env, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "hilt: %s: %v\n", Env, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
