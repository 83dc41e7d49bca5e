package sim

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Temporary run folders are named after their owner: hilt-sim-<pid>-<random> while the
// bench owns them (removed by Close, or by the next bench when the owner died without
// Close: SIGKILL, a crash), hilt-sim-kept-<random> when the user asked to keep them.
const (
	runDirPrefix  = "hilt-sim-"
	keptDirPrefix = "hilt-sim-kept-"
)

// newRunDir makes a temporary run folder.
func newRunDir(keep bool) (string, error) {
	prefix := fmt.Sprintf("%s%d-", runDirPrefix, os.Getpid())
	if keep {
		prefix = keptDirPrefix
	}
	return os.MkdirTemp("", prefix)
}

// cleanupStaleRunDirs removes the temporary run folders whose owning process is gone. A
// folder whose owner's PID runs again (reused) is left alone.
func cleanupStaleRunDirs() ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(os.TempDir(), runDirPrefix+"*-*"))
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), runDirPrefix)
		pidText, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue // kept folders, and anything not named by a bench
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // the owner runs (or its PID was reused)
		}
		if err := os.RemoveAll(m); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, m)
	}
	return removed, errors.Join(errs...)
}

// RemoveStaleRunDirs removes the temporary run folders of benches whose owning process
// died without Close (SIGKILL, a crash) and returns them; Start does it too. Folders of
// live benches, and kept folders, are left alone.
func RemoveStaleRunDirs() ([]string, error) { return cleanupStaleRunDirs() }
