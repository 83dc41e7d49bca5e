package netns

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidNames: only the names a run of the file's ID makes are acted on.
func TestValidNames(t *testing.T) {
	tests := []struct {
		name string
		st   runState
		want bool
	}{
		{"a run's own names", runState{RunID: "1d9f6c", Namespaces: []string{"hilt-1d9f6c-1", "hilt-1d9f6c-2"}, HostIfs: []string{"hv1d9f6c1", "hv1d9f6c2"}}, true},
		{"no names", runState{RunID: "1d9f6c"}, true},
		{"the host's interface", runState{RunID: "1d9f6c", HostIfs: []string{"eth0"}}, false},
		{"another run's namespace", runState{RunID: "1d9f6c", Namespaces: []string{"hilt-aaaaaa-1"}}, false},
		{"a namespace not numbered", runState{RunID: "1d9f6c", Namespaces: []string{"hilt-1d9f6c-x"}}, false},
		{"an empty run ID", runState{Namespaces: []string{"hilt--1"}}, false},
		{"a run ID with a dash", runState{RunID: "a-b", Namespaces: []string{"hilt-a-b-1"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := validNames(tc.st); got != tc.want {
				t.Errorf("validNames(%+v) = %v, want %v", tc.st, got, tc.want)
			}
		})
	}
}

// TestCheckStateDir: a state folder others could write to, or a symlink, is refused.
func TestCheckStateDir(t *testing.T) {
	root := t.TempDir()
	ok := filepath.Join(root, "ok")
	open := filepath.Join(root, "open")
	link := filepath.Join(root, "link")
	for _, d := range []string{ok, open} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(ok, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dir, wantErr string
	}{
		{ok, ""},
		{open, "writable by its group or others"},
		{link, "not a folder"},
	}
	for _, tc := range tests {
		err := checkStateDir(tc.dir)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("checkStateDir(%s): %v, want nil", tc.dir, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("checkStateDir(%s): %v, want an error saying %q", tc.dir, err, tc.wantErr)
		}
	}
	if err := os.WriteFile(filepath.Join(open, "1d9f6c.json"), []byte(`{"run_id":"1d9f6c","host_ifs":["eth0"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CleanupStale(t.Context(), open); err == nil {
		t.Errorf("CleanupStale of a folder others may write: no error")
	}
}
