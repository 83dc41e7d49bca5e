//go:build !linux

package qemu

import "os"

// MakeRaw leaves the tty as it is where termios ioctls differ (QEMU sets its pty raw).
func MakeRaw(*os.File) error { return nil }
