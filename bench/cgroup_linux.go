package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// ErrNoCgroup is wrapped when no cgroup v2 with the memory controller can be made.
var ErrNoCgroup = errors.New("no cgroup v2 memory controller")

var cgroupSeq atomic.Int64

// cgroup is a cgroup v2 made for one measured command.
type cgroup struct {
	dir string
	fd  *os.File
}

// cgroup2Mount returns where the cgroup v2 hierarchy is mounted.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && fs[2] == "cgroup2" {
			return fs[1], nil
		}
	}
	return "", fmt.Errorf("%w: no cgroup2 file system mounted", ErrNoCgroup)
}

// newCgroup makes a cgroup under the root of the cgroup v2 hierarchy, whose root must
// already delegate the memory controller to its children (the usual systemd setup); it
// changes nothing else.
func newCgroup() (*cgroup, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: not root", ErrNoCgroup)
	}
	mnt, err := cgroup2Mount()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(mnt, "cgroup.subtree_control"))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCgroup, err)
	}
	if !slices.Contains(strings.Fields(string(b)), "memory") {
		return nil, fmt.Errorf("%w: the cgroup2 root %s does not delegate it (cgroup.subtree_control: %q)", ErrNoCgroup, mnt, strings.TrimSpace(string(b)))
	}
	dir := filepath.Join(mnt, fmt.Sprintf("hiltbench-%d-%d", os.Getpid(), cgroupSeq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoCgroup, err)
	}
	cg := &cgroup{dir: dir}
	if _, err := os.Stat(filepath.Join(dir, "memory.peak")); err != nil {
		cg.remove()
		return nil, fmt.Errorf("%w: %s has no memory.peak (kernel older than 5.19?)", ErrNoCgroup, dir)
	}
	if cg.fd, err = os.Open(dir); err != nil {
		cg.remove()
		return nil, fmt.Errorf("%w: %w", ErrNoCgroup, err)
	}
	return cg, nil
}

// attach makes cmd start inside the cgroup (clone3 with CLONE_INTO_CGROUP): it and every
// process it starts are in it from their first instruction.
func (c *cgroup) attach(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.UseCgroupFD = true
	cmd.SysProcAttr.CgroupFD = int(c.fd.Fd())
}

// peak reads memory.peak in bytes.
func (c *cgroup) peak() (int64, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "memory.peak"))
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// remove deletes the cgroup; a process left in it (one that escaped its parent's end)
// keeps it, and is reported.
func (c *cgroup) remove() error {
	if c.fd != nil {
		c.fd.Close()
	}
	if err := os.Remove(c.dir); err != nil {
		return fmt.Errorf("bench: remove cgroup %s: %w", c.dir, err)
	}
	return nil
}
