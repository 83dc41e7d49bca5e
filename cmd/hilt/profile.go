package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"
)

// profileEnv names a directory: when set, every hilt process (hilt run, each `hilt __check`
// and each boot of each `hilt __refdev`) writes a CPU profile of its life there, named
// after its subcommand, its PID and its start time, e.g. __refdev-4242-1764240000000.pprof.
// A profiling aid (docs/BENCHMARKS notes in BENCHMARKS.md); nothing else reads it.
const profileEnv = "HILT_CPUPROFILE"

// startProfile starts the CPU profile profileEnv asks for, if any, and returns what stops
// it. The device re-executes itself on reboot: it stops the profile before (refdev.reexec),
// so each boot leaves a profile of its own.
func startProfile(args []string) (stop func()) {
	dir := os.Getenv(profileEnv)
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
		fmt.Fprintf(os.Stderr, "hilt: %s: %v\n", profileEnv, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "hilt: %s: %v\n", profileEnv, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
