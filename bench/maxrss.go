package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// GNUTime is where Run looks for GNU time (Debian package time), through which it starts
// a command to learn that command's own peak RSS.
//
// Why: the ru_maxrss that wait4 reports for a child of this process is at least this
// process's RSS at the fork. Go starts children with vfork semantics (CLONE_VM), and Linux
// records the high-water mark of the memory the child shared with its parent when the
// child execs; a small command measured directly from a 30 MB benchmark process reads as
// 30 MB. GNU time is a small C program that forks the command from itself and reports the
// command's ru_maxrss, which that inheritance then bounds by GNU time's own 2 MB.
const GNUTime = "/usr/bin/time"

// HaveGNUTime says whether GNUTime is GNU time (it accepts -f and -o).
func HaveGNUTime() bool {
	out, err := exec.Command(GNUTime, "--version").CombinedOutput()
	return err == nil && bytes.Contains(bytes.ToLower(out), []byte("gnu time"))
}

// wrapInTime makes cmd run under GNU time, which writes the command's peak RSS in KiB to
// the file it returns (removed by the caller). cmd must not be started.
func wrapInTime(cmd *exec.Cmd) (string, error) {
	f, err := os.CreateTemp("", "hiltbench-maxrss-*")
	if err != nil {
		return "", err
	}
	f.Close()
	cmd.Args = append([]string{GNUTime, "-f", "%M", "-o", f.Name(), "--", cmd.Path}, cmd.Args[1:]...)
	cmd.Path = GNUTime
	return f.Name(), nil
}

// readTimeRSS reads the peak RSS GNU time wrote: the last line of its output file (a
// line before it says how a failing command exited), KiB.
func readTimeRSS(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	kib, err := strconv.ParseInt(last, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("GNU time's output %q: not a peak RSS", b)
	}
	return kib << 10, nil
}
