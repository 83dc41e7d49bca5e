package tied

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

var (
	forkerOnce sync.Once
	forkerJobs chan func()
)

// Start starts cmd from the forker thread with sig as its parent-death signal; the rest of
// cmd.SysProcAttr (a process group of its own) is the caller's.
func Start(cmd *exec.Cmd, sig syscall.Signal) error {
	forkerOnce.Do(func() {
		forkerJobs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: this thread must outlive every child
			for j := range forkerJobs {
				j()
			}
		}()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
	errc := make(chan error, 1)
	forkerJobs <- func() { errc <- cmd.Start() }
	return <-errc
}
