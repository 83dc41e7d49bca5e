package runner

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/qemu"
	"github.com/hilt-project/hilt/harness/emu"
)

// fakeBench records what the control socket asks of a bench.
type fakeBench struct {
	image       string
	powerErr    error
	restartGate chan struct{} // when set, Restart waits for it
	restarted   chan string   // when set, receives each restarted unit

	mu      sync.Mutex
	calls   []string
	running bool
}

var _ unitPower = (*fakeBench)(nil)

func (f *fakeBench) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeBench) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeBench) PowerCut(_ context.Context, name string) error {
	f.record("power-cut " + name)
	f.mu.Lock()
	f.running = false // a failed QMP quit kills QEMU too
	f.mu.Unlock()
	return f.powerErr
}

func (f *fakeBench) ShutdownForScan(_ context.Context, name string) error {
	f.record("shutdown " + name)
	f.mu.Lock()
	f.running = false
	f.mu.Unlock()
	return nil
}

func (f *fakeBench) Restart(ctx context.Context, name string) error {
	if f.restartGate != nil {
		select {
		case <-f.restartGate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.record("restart " + name)
	f.mu.Lock()
	f.running = true
	f.mu.Unlock()
	if f.restarted != nil {
		f.restarted <- name
	}
	return nil
}

func (f *fakeBench) Unit(name string) (emu.Unit, bool) {
	if name != "dev1" {
		return emu.Unit{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return emu.Unit{Name: name, DataImage: f.image, Running: f.running, LastBoot: time.Second}, true
}

// serve starts a control socket on b for the test's lifetime.
func serve(t *testing.T, b unitPower) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "control.sock")
	ctx, cancel := context.WithCancel(context.Background())
	s, err := serveControl(ctx, sock, b, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		s.close()
		s.wait()
	})
	return sock
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestControlPowerCut(t *testing.T) {
	gate := make(chan struct{})
	b := &fakeBench{image: "/img", running: true, restartGate: gate}
	sock := serve(t, b)
	ctx := testCtx(t)
	if err := controlPowerCut(ctx, sock, "dev1"); err != nil {
		t.Fatalf("power cut: %v", err)
	}
	// The answer comes while the unit boots: the check waits for the ready line itself.
	if got, want := b.log(), []string{"power-cut dev1"}; !slices.Equal(got, want) {
		t.Errorf("after the answer: calls %v, want %v", got, want)
	}
	// The next request for the unit waits for the restart.
	done := make(chan error, 1)
	go func() {
		done <- controlStorage(ctx, sock, opStorage, "dev1", func(string) error { return nil })
	}()
	select {
	case err := <-done:
		t.Fatalf("a storage request ran during the restart after a power cut (err %v); calls %v", err, b.log())
	case <-time.After(200 * time.Millisecond):
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatalf("storage: %v", err)
	}
	want := []string{"power-cut dev1", "restart dev1", "shutdown dev1", "restart dev1"}
	if got := b.log(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

func TestControlStorage(t *testing.T) {
	b := &fakeBench{image: "/units/dev1/data.img", running: true}
	sock := serve(t, b)
	ctx := testCtx(t)
	var got string
	var during []string
	fnErr := errors.New("scan failed")
	err := controlStorage(ctx, sock, opStorage, "dev1", func(path string) error {
		got, during = path, b.log()
		return fnErr
	})
	if !errors.Is(err, fnErr) {
		t.Errorf("err %v, want fn's error", err)
	}
	if got != b.image {
		t.Errorf("fn got %q, want the data image %q", got, b.image)
	}
	if want := []string{"shutdown dev1"}; !slices.Equal(during, want) {
		t.Errorf("while fn ran: calls %v, want %v", during, want)
	}
	if want := []string{"shutdown dev1", "restart dev1"}; !slices.Equal(b.log(), want) {
		t.Errorf("calls %v, want %v", b.log(), want)
	}
}

func TestControlClientGone(t *testing.T) {
	b := &fakeBench{image: "/img", running: true, restarted: make(chan string, 1)}
	sock := serve(t, b)
	ctx, cancel := context.WithCancel(testCtx(t))
	err := controlStorage(ctx, sock, opStorage, "dev1", func(string) error {
		cancel() // the check process ends while the storage is out
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	select {
	case <-b.restarted:
	case <-time.After(5 * time.Second):
		t.Fatalf("the unit was not restarted after its client left: calls %v", b.log())
	}
}

func TestControlErrors(t *testing.T) {
	b := &fakeBench{image: "/img", running: true, powerErr: errors.New("QMP quit: broken pipe"), restarted: make(chan string, 1)}
	sock := serve(t, b)
	ctx := testCtx(t)
	cases := []struct {
		name, unit, want string
		do               func(unit string) error
	}{
		{"unknown unit", "dev9", "unknown unit", func(u string) error { return controlPowerCut(ctx, sock, u) }},
		{"bench fails", "dev1", "broken pipe", func(u string) error { return controlPowerCut(ctx, sock, u) }},
		{"unknown operation", "dev1", "unknown operation", func(u string) error {
			return controlStorage(ctx, sock, "frobnicate", u, func(string) error { return nil })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do(tc.unit)
			if !errors.Is(err, errBenchControl) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want errBenchControl saying %q", err, tc.want)
			}
		})
	}
	select {
	case <-b.restarted:
	case <-time.After(5 * time.Second):
		t.Errorf("a failed power cut left the unit off: calls %v", b.log())
	}
	if err := controlPowerCut(ctx, filepath.Join(t.TempDir(), "none.sock"), "dev1"); err == nil {
		t.Error("no socket: got no error")
	}
}

// TestControlFiles mounts a real ext4 image: root, mount and mkfs.ext4 are needed.
func TestControlFiles(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a disk image needs root")
	}
	for _, tool := range []string{"mount", "umount", "mkfs.ext4"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o700)
	os.WriteFile(filepath.Join(src, "slot-a.img"), []byte("image a"), 0o600)
	img := filepath.Join(dir, "dev1", "data.img")
	os.Mkdir(filepath.Dir(img), 0o700)
	if err := qemu.MakeExt4(testCtx(t), img, 8, "hilt-data", src); err != nil {
		t.Fatal(err)
	}
	b := &fakeBench{image: img, running: true}
	sock := serve(t, b)
	ctx := testCtx(t)
	var first string
	err := controlStorage(ctx, sock, opFiles, "dev1", func(root string) error {
		first = root
		if got, err := os.ReadFile(filepath.Join(root, "slot-a.img")); err != nil || string(got) != "image a" {
			t.Errorf("slot-a.img on the mounted image: %q, %v; want %q", got, err, "image a")
		}
		return os.WriteFile(filepath.Join(root, "slot-b.img"), []byte("image b"), 0o600)
	})
	if err != nil {
		t.Fatalf("files: %v", err)
	}
	if entries, _ := os.ReadDir(first); len(entries) != 0 {
		t.Errorf("%s still shows %d entries after done: not unmounted", first, len(entries))
	}
	err = controlStorage(ctx, sock, opFiles, "dev1", func(root string) error {
		if root != first {
			t.Errorf("second mount on %s, want the same folder %s", root, first)
		}
		if got, err := os.ReadFile(filepath.Join(root, "slot-b.img")); err != nil || string(got) != "image b" {
			t.Errorf("slot-b.img written through the first mount: %q, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("files again: %v", err)
	}
	want := []string{"shutdown dev1", "restart dev1", "shutdown dev1", "restart dev1"}
	if got := b.log(); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}
