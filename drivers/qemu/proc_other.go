//go:build !linux

package qemu

import "syscall"

// sysProcAttr puts QEMU in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
