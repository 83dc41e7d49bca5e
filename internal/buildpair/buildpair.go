// Package buildpair pairs the hilt executable with the lean reference-device executable
// built beside it.
//
// A simulated device is the reference firmware in a process of its own, restarted at every
// reboot (RAM lost, as on hardware). The hilt executable can be that firmware itself
// (`hilt __refdev`), but every start of it pays for the initialisation of the packages the
// harness links in (gopacket's decoding tables above all: about 45 ms of CPU and 14 MB of
// memory more than the firmware alone, none of which the firmware uses), and a device starts again at every reboot, tens of
// times in a run. `make build` therefore also builds bin/hilt-refdev, the firmware alone
// (./fixtures/refdev/cmd/refdev), and links the same random stamp into both. The bench
// starts the devices from hilt-refdev only when it lies next to the hilt executable and
// carries the same stamp, so a firmware built from other sources is never paired with this
// harness; otherwise it starts them from the hilt executable.
package buildpair

import (
	"debug/buildinfo"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
)

// DeviceName is the file name of the lean device executable, next to hilt's.
const DeviceName = "hilt-refdev"

// stampFlag is the linker flag that carries the stamp: both executables of a pair are
// linked with `-ldflags "-X <stampFlag>=<the same random text>"`, and the stamp is read
// back from the -ldflags setting of each one's build information (runtime/debug), so the
// pair is the one the files on disk hold, whichever executable is running. Under
// -trimpath the go command leaves -ldflags out of the build information: no pair then.
// No variable receives it (the linker ignores -X for a name it does not know); the
// Makefile spells the same flag.
const stampFlag = "github.com/hilt-project/hilt/internal/buildpair.stamp"

// LinkFlag is the -ldflags text that links stamp into an executable: give both executables
// of a pair the same one.
func LinkFlag(stamp string) string { return "-X " + stampFlag + "=" + stamp }

// Device returns the device executable to start for the hilt executable at self: the
// hilt-refdev next to it when both carry the same build stamp, else self. why says, in a
// few words, why that one.
func Device(self string) (exe, why string) {
	cand := filepath.Join(filepath.Dir(self), DeviceName)
	st, err := os.Stat(cand)
	switch {
	case err != nil:
		return self, fmt.Sprintf("no %s next to it", DeviceName)
	case st.IsDir() || st.Mode()&0o111 == 0:
		return self, fmt.Sprintf("%s is not an executable file", cand)
	}
	mine, err := StampOf(self)
	switch {
	case err != nil:
		return self, fmt.Sprintf("its build stamp: %v", err)
	case mine == "":
		return self, fmt.Sprintf("it carries no build stamp to pair %s with; make build stamps both (not under -trimpath, which leaves -ldflags out of the build information)", cand)
	}
	theirs, err := StampOf(cand)
	if err != nil {
		return self, fmt.Sprintf("%s: %v", cand, err)
	}
	if theirs != mine {
		return self, fmt.Sprintf("%s was not built with it: build stamp %q, want %q", cand, theirs, mine)
	}
	return cand, "built with " + self
}

// StampOf reads the build stamp linked into the Go executable at path.
func StampOf(path string) (string, error) {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read build information: %w", err)
	}
	return stampIn(bi), nil
}

// stampIn finds the stamp in the -ldflags build setting of bi.
func stampIn(bi *debug.BuildInfo) string {
	for _, s := range bi.Settings {
		if s.Key != "-ldflags" {
			continue
		}
		for _, f := range strings.Fields(s.Value) {
			if v, ok := strings.CutPrefix(strings.Trim(f, `"'`), stampFlag+"="); ok {
				return v
			}
		}
	}
	return ""
}
