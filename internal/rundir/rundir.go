// Package rundir makes temporary folders named after the process that owns them, so that a
// later run can tell, and remove, the folders of a run that died without cleaning up after
// itself (SIGKILL, a crash, a power loss of the host).
//
// A folder is os.TempDir()/<prefix><pid>-<random>. RemoveStale removes the folders of the
// given prefixes whose owner PID no longer runs (and, unless this process is root, that this
// user owns); a folder whose owner runs, or whose PID was reused by another process, is left
// alone (a reused PID only delays the removal to a later run). Anything mounted inside a
// stale folder (a loop-mounted disk image) is unmounted first, and a folder that cannot be
// unmounted is left, so that the removal never deletes files through a mount.
package rundir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Prefixes of the folders hilt makes (each followed by <pid>-<random>).
const (
	// QEMURun is hilt run's emulated bench: runtime profile, control socket, the units' disks.
	QEMURun = "hilt-qemu-run-"
	// QEMUVM is one QEMU process's monitor socket folder (drivers/qemu).
	QEMUVM = "hilt-qemu-"
	// Emu is an emulated bench's run folder (harness/emu) when none is given.
	Emu = "hilt-emu-"
	// EmuSock is an emulated bench's folder of short socket paths (harness/emu).
	EmuSock = "hq-"
)

// All are the prefixes of every folder hilt makes with New; the simulated bench's folders
// (hilt-sim-<pid>-...) are removed by harness/sim itself.
var All = []string{QEMURun, QEMUVM, Emu, EmuSock}

// New makes the folder os.TempDir()/<prefix><pid>-<random> and returns its path.
func New(prefix string) (string, error) {
	return os.MkdirTemp("", fmt.Sprintf("%s%d-", prefix, os.Getpid()))
}

// Owner returns the PID a folder made by New with one of prefixes names, and whether it
// names one.
func Owner(path string, prefixes ...string) (int, bool) {
	base := filepath.Base(path)
	// The longest prefix first: hilt-qemu-run-... also starts with hilt-qemu-.
	ps := slices.Clone(prefixes)
	slices.SortFunc(ps, func(a, b string) int { return len(b) - len(a) })
	for _, p := range ps {
		rest, ok := strings.CutPrefix(base, p)
		if !ok {
			continue
		}
		pidText, random, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || random == "" || err != nil || pid <= 0 {
			return 0, false
		}
		return pid, true
	}
	return 0, false
}

// RemoveStale removes the folders in os.TempDir() made by New with one of prefixes whose
// owner no longer runs, and returns them.
func RemoveStale(prefixes ...string) ([]string, error) {
	return removeStale(os.TempDir(), prefixes, alive)
}

func removeStale(dir string, prefixes []string, alive func(int) bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("stale run folders in %s: %w", dir, err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		pid, ok := Owner(e.Name(), prefixes...)
		if !ok || pid == os.Getpid() || alive(pid) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if !mine(p) {
			continue // another user's: theirs to remove
		}
		if err := unmountUnder(p); err != nil {
			errs = append(errs, fmt.Errorf("stale run folder %s (owner PID %d gone): %w", p, pid, err))
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, fmt.Errorf("stale run folder %s (owner PID %d gone): %w", p, pid, err))
			continue
		}
		removed = append(removed, p)
	}
	return removed, errors.Join(errs...)
}

// alive says whether a process with this PID exists (it may be another process that got
// the PID: then the folder waits for a later run).
func alive(pid int) bool {
	return !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// mine says whether this process may remove the folder: root may, others only their own.
func mine(path string) bool {
	euid := os.Geteuid()
	if euid == 0 {
		return true
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == euid
}

// unmountUnder unmounts every mount point at or below dir, deepest first.
func unmountUnder(dir string) error {
	mounts, err := mountsUnder("/proc/self/mountinfo", dir)
	if err != nil || len(mounts) == 0 {
		return err
	}
	for _, m := range mounts {
		if err := syscall.Unmount(m, 0); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	// Whatever is still mounted there keeps the folder.
	left, err := mountsUnder("/proc/self/mountinfo", dir)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("still mounted: %s", strings.Join(left, ", "))
	}
	return nil
}

// mountsUnder returns the mount points of a mountinfo file at or below dir, deepest first.
func mountsUnder(mountinfo, dir string) ([]string, error) {
	f, err := os.Open(mountinfo)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // not Linux: nothing to unmount
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 5 {
			continue
		}
		mp := unescapeOctal(fs[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", mountinfo, err)
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out, nil
}

// unescapeOctal undoes mountinfo's \ooo escapes (space, tab, newline, backslash).
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
