package qemu

import (
	"os"

	"golang.org/x/sys/unix"
)

// MakeRaw puts the tty f in raw mode, as cfmakeraw(3) does: no echo, no line editing, no
// CR/LF translation, as a serial console wants it. QEMU sets its pty raw already; the
// console guards against one that is not, and a program relaying the console (harness/emu)
// sets its own pty so.
//
// It goes through SyscallConn, not Fd, which would switch the file to blocking mode and so
// keep Close from ending a pending Read.
func MakeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = rc.Control(func(fd uintptr) { ioErr = setRaw(int(fd)) })
	if err != nil {
		return err
	}
	return ioErr
}

func setRaw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}
