//go:build !linux

package bench

import (
	"errors"
	"os/exec"
)

// ErrNoCgroup is wrapped when no cgroup v2 with the memory controller can be made.
var ErrNoCgroup = errors.New("no cgroup v2 memory controller")

type cgroup struct{}

func newCgroup() (*cgroup, error)      { return nil, ErrNoCgroup }
func (c *cgroup) attach(*exec.Cmd)     {}
func (c *cgroup) peak() (int64, error) { return 0, ErrNoCgroup }
func (c *cgroup) remove() error        { return nil }

// sampler does nothing where there is no /proc to read.
type sampler struct{ stats treeStats }

func newSampler(int) *sampler    { return &sampler{} }
func (s *sampler) skipRoot()     {}
func childrenOf(int) []int       { return nil }
func (s *sampler) sample()       {}
func (s *sampler) fill(u *Usage) { s.stats.fill(u) }
