package qemu

import "syscall"

// sysProcAttr puts QEMU in a process group of its own (a terminal's ^C reaches the harness,
// which then stops QEMU in order) and kills QEMU if the harness dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
