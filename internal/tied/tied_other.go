//go:build !linux

package tied

import (
	"os/exec"
	"syscall"
)

// Start starts cmd: there is no parent-death signal outside Linux.
func Start(cmd *exec.Cmd, _ syscall.Signal) error { return cmd.Start() }
