//go:build linux

package tied

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// startFromDyingThread calls start on a locked thread that exits right after (never the
// main thread, which Go does not end), and returns start's error once that thread is gone.
func startFromDyingThread(t *testing.T, start func() error) error {
	t.Helper()
	type result struct {
		tid int
		err error
	}
	res := make(chan result, 1)
	hold := make(chan struct{})
	defer close(hold)
	var run func()
	run = func() {
		runtime.LockOSThread() // unlocked only on the main thread: others exit with run
		if syscall.Gettid() == syscall.Getpid() {
			go run() // Go never ends the main thread: hold it, and start from another
			<-hold
			runtime.UnlockOSThread()
			return
		}
		res <- result{syscall.Gettid(), start()}
	}
	go run()
	r := <-res
	task := fmt.Sprintf("/proc/self/task/%d", r.tid)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) { // polling for the thread's exit, bounded
		if _, err := os.Stat(task); os.IsNotExist(err) {
			return r.err
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d still there 10 s after its goroutine ended", r.tid)
		}
	}
}

// TestStart: a child started by Start survives the exit of the thread whose goroutine
// called it; one started with the same parent-death signal by a plain cmd.Start from that
// thread gets the signal (which shows the test can tell them apart).
func TestStart(t *testing.T) {
	tests := []struct {
		name      string
		start     func(*exec.Cmd) error
		wantAlive bool
	}{
		{"tied.Start", func(c *exec.Cmd) error { return Start(c, syscall.SIGTERM) }, true},
		{"plain Start", func(c *exec.Cmd) error {
			c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
			return c.Start()
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sleep", "30")
			if err := startFromDyingThread(t, func() error { return tc.start(cmd) }); err != nil {
				t.Fatal(err)
			}
			var waitErr error
			done := make(chan struct{})
			go func() { waitErr = cmd.Wait(); close(done) }()
			defer func() {
				cmd.Process.Kill()
				<-done
			}()
			// The signal is sent as the thread exits, which has happened: the child's
			// death, if it comes, comes at once.
			select {
			case <-done:
				if tc.wantAlive {
					t.Fatalf("the child died with the thread that started it: %v", waitErr)
				}
			case <-time.After(2 * time.Second):
				if !tc.wantAlive {
					t.Fatalf("the child outlived its forking thread: the test cannot tell")
				}
			}
		})
	}
}
