package rundir

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestOwner(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		wantPID int
		wantOK  bool
	}{
		{"vm folder", "/tmp/hilt-qemu-123-456789", 123, true},
		{"run folder, not taken for a vm folder", "/tmp/hilt-qemu-run-77-abc", 77, true},
		{"socket folder", "hq-9-1", 9, true},
		{"old name without a pid", "/tmp/hilt-qemu-1591152114", 0, false},
		{"no random part", "/tmp/hilt-emu-12-", 0, false},
		{"not a number", "/tmp/hilt-emu-x1-2", 0, false},
		{"zero pid", "/tmp/hilt-emu-0-2", 0, false},
		{"other prefix", "/tmp/hilt-sim-12-3", 0, false},
	}
	if pid, ok := Owner("/tmp/hilt-qemu-run-77-abc", QEMUVM); ok {
		t.Errorf("a run folder is taken for a VM folder of PID %d when only %q is asked for", pid, QEMUVM)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pid, ok := Owner(tc.path, All...)
			if pid != tc.wantPID || ok != tc.wantOK {
				t.Errorf("Owner(%q) = %d, %v; want %d, %v", tc.path, pid, ok, tc.wantPID, tc.wantOK)
			}
		})
	}
}

func TestNewNamesTheOwner(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	d, err := New(Emu)
	if err != nil {
		t.Fatal(err)
	}
	if pid, ok := Owner(d, All...); !ok || pid != os.Getpid() {
		t.Errorf("New(%q) = %s: owner %d, %v; want this process (%d)", Emu, d, pid, ok, os.Getpid())
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	mk := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Join(p, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "sub", "f"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dead := mk("hilt-emu-1001-a")
	deadRun := mk("hilt-qemu-run-1002-b")
	live := mk("hq-1003-c")
	unnamed := mk("hilt-qemu-4444")
	other := mk("hilt-sim-1001-d")
	mine := mk("hilt-emu-" + strconv.Itoa(os.Getpid()) + "-e")
	alive := func(pid int) bool { return pid == 1003 }

	removed, err := removeStale(dir, All, alive)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []string{dead, deadRun}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, p := range []string{live, unnamed, other, mine} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v (a live owner's, an unnamed or a foreign folder must stay)", p, err)
		}
	}
	for _, p := range []string{dead, deadRun} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s: still there (%v)", p, err)
		}
	}
}

func TestMountsUnder(t *testing.T) {
	info := filepath.Join(t.TempDir(), "mountinfo")
	lines := []string{
		`22 1 8:1 / / rw shared:1 - ext4 /dev/sda1 rw`,
		`40 22 7:0 / /tmp/hilt-qemu-run-5-x/units/dev1/files rw - ext4 /dev/loop0 rw`,
		`41 22 7:1 / /tmp/hilt-qemu-run-5-x/a\040b rw - ext4 /dev/loop1 rw`,
		`42 22 7:2 / /tmp/hilt-qemu-run-5-xy rw - ext4 /dev/loop2 rw`,
	}
	if err := os.WriteFile(info, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := mountsUnder(info, "/tmp/hilt-qemu-run-5-x")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/tmp/hilt-qemu-run-5-x/units/dev1/files", "/tmp/hilt-qemu-run-5-x/a b"}
	if !slices.Equal(got, want) {
		t.Errorf("mountsUnder = %q, want %q (deepest first, escapes undone, a sibling with a longer name excluded)", got, want)
	}
}

// TestRemoveStaleUnmounts mounts a file system image inside a stale folder, as a killed
// run's storage scan leaves it: the folder is removed, the mount gone first, and an image
// kept outside the folder is untouched (nothing is deleted through the mount).
func TestRemoveStaleUnmounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	for _, tool := range []string{"mkfs.ext4", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	dir := t.TempDir()
	img := filepath.Join(t.TempDir(), "data.img")
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	stale := filepath.Join(dir, "hilt-qemu-run-1001-a")
	mnt := filepath.Join(stale, "units", "dev1", "files")
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Skipf("mount -o loop: %v (%s): no loop devices here", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(mnt, "secret"), []byte("kept"), 0o600); err != nil {
		t.Fatal(err)
	}

	removed, err := removeStale(dir, All, func(int) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{stale}) {
		t.Errorf("removed %v, want [%s]", removed, stale)
	}
	if left, _ := mountsUnder("/proc/self/mountinfo", stale); len(left) > 0 {
		t.Errorf("still mounted: %v", left)
	}
	// The image's file system still has its file: the removal did not go through the mount.
	check := t.TempDir()
	if out, err := exec.Command("mount", "-o", "loop,ro", img, check).CombinedOutput(); err != nil {
		t.Fatalf("mount the image again: %v\n%s", err, out)
	}
	defer syscall.Unmount(check, 0)
	if b, err := os.ReadFile(filepath.Join(check, "secret")); err != nil || string(b) != "kept" {
		t.Errorf("the image's file after the removal: %q, %v; want it untouched", b, err)
	}
}
