package buildpair

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestStampIn(t *testing.T) {
	tests := []struct {
		name, ldflags, want string
	}{
		{"no ldflags", "", ""},
		{"other flags only", "-X main.version=v1 -s -w", ""},
		{"stamp among others", "-X main.version=v1 -X " + stampFlag + "=abc123 -s", "abc123"},
		{"quoted", `-X '` + stampFlag + `=abc123'`, "abc123"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bi := &debug.BuildInfo{}
			if tc.ldflags != "" {
				bi.Settings = append(bi.Settings, debug.BuildSetting{Key: "-ldflags", Value: tc.ldflags})
			}
			if got := stampIn(bi); got != tc.want {
				t.Errorf("stampIn(%q) = %q, want %q", tc.ldflags, got, tc.want)
			}
		})
	}
}

// TestDevice builds small executables with and without stamps, as the hilt executable and
// as the device beside it, and checks which one Device picks.
func TestDevice(t *testing.T) {
	if testing.Short() {
		t.Skip("builds Go executables (-short)")
	}
	src := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(src, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/dev\n\ngo 1.22\n")
	write("main.go", "package main\n\nfunc main() {}\n")
	build := func(out, stampText string) {
		args := []string{"build", "-o", out}
		if stampText != "" {
			args = append(args, "-ldflags", LinkFlag(stampText))
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = src
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
	}
	tests := []struct {
		name      string
		devStamp  string // "" no stamp; "-" no device file
		selfStamp string
		lean      bool
		why       string
	}{
		{"same stamp", "s1", "s1", true, "built with"},
		{"other stamp", "s2", "s1", false, "was not built with"},
		{"device without stamp", "", "s1", false, "was not built with"},
		{"hilt without stamp", "s1", "", false, "carries no build stamp"},
		{"no device", "-", "s1", false, "no hilt-refdev"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			self := filepath.Join(dir, "hilt")
			build(self, tc.selfStamp)
			if tc.devStamp != "-" {
				build(filepath.Join(dir, DeviceName), tc.devStamp)
			}
			exe, why := Device(self)
			if got := exe != self; got != tc.lean {
				t.Errorf("Device picked %s (%s), want lean %v", exe, why, tc.lean)
			}
			if !strings.Contains(why, tc.why) {
				t.Errorf("why = %q, want it to contain %q", why, tc.why)
			}
		})
	}
}
