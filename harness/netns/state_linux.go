package netns

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// killGrace bounds the wait for killed processes when the caller's context has no deadline.
const killGrace = 5 * time.Second

// runState is the state file of one run.
type runState struct {
	RunID string `json:"run_id"`
	// PID and StartTime identify the owning process (StartTime guards against PID reuse).
	PID        int       `json:"pid"`
	StartTime  uint64    `json:"start_time"`
	Created    time.Time `json:"created"`
	Namespaces []string  `json:"namespaces"`
	HostIfs    []string  `json:"host_ifs"`
}

func statePath(dir, runID string) string { return filepath.Join(dir, runID+".json") }

func writeState(dir string, st runState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	p := statePath(dir, st.RunID)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write run state %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fmt.Errorf("write run state %s: %w", p, err)
	}
	return nil
}

// lockDir takes an exclusive lock on the state directory, creating it if needed. The
// folder must be safe to trust (checkStateDir): its files name the namespaces and
// interfaces a later run deletes and whose processes it kills.
func lockDir(dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir %s: %w", dir, err)
	}
	if err := checkStateDir(dir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state dir %s: lock: %w", dir, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("state dir %s: lock: %w", dir, err)
	}
	return func() { f.Close() }, nil
}

// checkStateDir refuses a state folder that someone else could have written to: a
// symlink, a folder not owned by this user, or one that its group or others may write.
func checkStateDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("state dir %s: %w", dir, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("state dir %s: not a folder (a symlink?): refused, its files say what a run deletes", dir)
	case int(st.Uid) != os.Geteuid():
		return fmt.Errorf("state dir %s: owned by uid %d, not by this user (%d): refused, its files say what a run deletes", dir, st.Uid, os.Geteuid())
	case st.Mode&0o022 != 0:
		return fmt.Errorf("state dir %s: writable by its group or others (mode %o): refused, its files say what a run deletes", dir, st.Mode&0o777)
	}
	return nil
}

// validNames says whether a state file names only what a run of its ID makes: namespaces
// NamespaceName(id, i) and host interfaces HostIfName(id, i). A file that names anything
// else (the host's eth0) was not written by hilt and is never acted on.
func validNames(st runState) bool {
	if st.RunID == "" || strings.ContainsAny(st.RunID, "-/ ") {
		return false
	}
	for _, ns := range st.Namespaces {
		rest, ok := strings.CutPrefix(ns, "hilt-"+st.RunID+"-")
		if _, err := strconv.Atoi(rest); !ok || err != nil {
			return false
		}
	}
	for _, hv := range st.HostIfs {
		rest, ok := strings.CutPrefix(hv, "hv"+st.RunID)
		if _, err := strconv.Atoi(rest); !ok || err != nil {
			return false
		}
	}
	return true
}

// procStartTime returns field 22 of /proc/<pid>/stat: the process's start time in ticks.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// ownerAlive says whether the run's owner still runs.
func ownerAlive(st runState) bool {
	if st.PID <= 0 {
		return false
	}
	t, err := procStartTime(st.PID)
	return err == nil && t == st.StartTime
}

// CleanupStale removes the namespaces and interfaces of every run in stateDir (default
// DefaultStateDir()) whose owning process is gone, killing what still runs inside them. It
// returns the namespaces it removed. Runs whose owner lives are left alone.
func CleanupStale(ctx context.Context, stateDir string) ([]string, error) {
	if stateDir == "" {
		stateDir = DefaultStateDir()
	}
	entries, err := os.ReadDir(stateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("netns: stale cleanup: %w", err)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	unlock, err := lockDir(stateDir)
	if err != nil {
		return nil, fmt.Errorf("netns: stale cleanup: %w", err)
	}
	defer unlock()
	entries, err = os.ReadDir(stateDir)
	if err != nil {
		return nil, fmt.Errorf("netns: stale cleanup: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(stateDir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("netns: stale cleanup: %w", err))
			continue
		}
		var st runState
		if err := json.Unmarshal(b, &st); err != nil || st.RunID+".json" != e.Name() || !validNames(st) {
			errs = append(errs, fmt.Errorf("netns: stale cleanup: %s: not a run state file", p))
			continue
		}
		if ownerAlive(st) {
			continue
		}
		if err := removeRun(ctx, stateDir, st); err != nil {
			errs = append(errs, fmt.Errorf("netns: stale cleanup of run %s (owner PID %d gone): %w", st.RunID, st.PID, err))
			continue
		}
		removed = append(removed, st.Namespaces...)
	}
	return removed, errors.Join(errs...)
}

// removeRun kills the processes left in the run's namespaces, deletes its interfaces and
// namespaces, and then its state file. What is already gone is not an error.
func removeRun(ctx context.Context, stateDir string, st runState) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, killGrace)
		defer cancel()
	}
	var errs []error
	for _, ns := range st.Namespaces {
		if err := killNamespacePIDs(ctx, ns); err != nil {
			errs = append(errs, fmt.Errorf("namespace %s: kill processes: %w", ns, err))
		}
	}
	for _, hv := range st.HostIfs {
		var ce *CommandError
		if _, err := ip(ctx, "link", "del", hv); err != nil && !(errors.As(err, &ce) && ce.notFound()) {
			errs = append(errs, fmt.Errorf("interface %s: delete: %w", hv, err))
		}
	}
	for _, ns := range st.Namespaces {
		var ce *CommandError
		if _, err := ip(ctx, "netns", "del", ns); err != nil && !(errors.As(err, &ce) && ce.notFound()) {
			errs = append(errs, fmt.Errorf("namespace %s: delete: %w", ns, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := os.Remove(statePath(stateDir, st.RunID)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove run state: %w", err)
	}
	return nil
}

// killNamespacePIDs SIGKILLs every process in the namespace and waits until they are gone.
func killNamespacePIDs(ctx context.Context, ns string) error {
	if _, err := os.Stat(filepath.Join("/run/netns", ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	out, err := ip(ctx, "netns", "pids", ns)
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) && ce.notFound() {
			return nil
		}
		return err
	}
	var errs []error
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid <= 1 || pid == os.Getpid() {
			continue
		}
		if err := KillAndWait(ctx, pid); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// KillAndWait sends SIGKILL to pid and waits, until ctx is done, for the process to exit.
// A process that is already gone is not an error.
func KillAndWait(ctx context.Context, pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("process %d: pidfd: %w", pid, err)
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("process %d: kill: %w", pid, err)
	}
	return waitPidfd(ctx, fd, pid)
}

// waitPidfd waits until the process behind fd has exited or ctx is done.
func waitPidfd(ctx context.Context, fd, pid int) error {
	for {
		timeout := 100 // ms; short so that a cancelled ctx is noticed
		if dl, ok := ctx.Deadline(); ok {
			if ms := int(time.Until(dl) / time.Millisecond); ms < timeout {
				timeout = max(ms, 0)
			}
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, timeout)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("process %d: wait: %w", pid, err)
		}
		if n > 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("process %d: still running after SIGKILL: %w", pid, err)
		}
	}
}
