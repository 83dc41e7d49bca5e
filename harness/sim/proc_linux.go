package sim

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// The forker: device processes get PR_SET_PDEATHSIG=SIGKILL so that they die with the
// bench even when it is SIGKILLed. The kernel sends that signal when the *thread* that
// forked the child exits, not the process: a child forked from an ordinary Go thread dies
// whenever that thread happens to end (a goroutine that locked it and returned), and a
// thread of our own that we let exit would take with it every child some other code had
// forked from it before we locked it. So devices are forked from one locked thread that
// lives as long as the process: started at first use, never ended. It is the package's only
// process-wide state, and it holds nothing but that thread.
var (
	forkerOnce sync.Once
	forkerJobs chan func()
)

// startTied starts cmd in its own process group, with SIGKILL as its parent-death signal,
// from the forker thread.
func startTied(cmd *exec.Cmd) error {
	forkerOnce.Do(func() {
		forkerJobs = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: this thread must outlive every device
			for j := range forkerJobs {
				j()
			}
		}()
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	errc := make(chan error, 1)
	forkerJobs <- func() { errc <- cmd.Start() }
	return <-errc
}

// makeRaw puts a tty in raw mode (cfmakeraw) at 115200 baud, without touching the file's
// blocking mode (f.Fd() would make it blocking and end deadline support).
func makeRaw(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		t, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
		if err != nil {
			ioErr = err
			return
		}
		t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
		t.Oflag &^= unix.OPOST
		t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
		t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CBAUD
		t.Cflag |= unix.CS8 | unix.B115200
		t.Ispeed, t.Ospeed = unix.B115200, unix.B115200
		t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
		ioErr = unix.IoctlSetTermios(int(fd), unix.TCSETS, t)
	})
	if err != nil {
		return err
	}
	if ioErr != nil {
		return fmt.Errorf("set raw mode on %s: %w", f.Name(), ioErr)
	}
	return nil
}

// signalGroup signals the process group of pid (the device and anything it started).
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if err == syscall.ESRCH {
		return nil
	}
	return err
}
