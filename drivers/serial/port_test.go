package serial_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/hilt-project/hilt/drivers/serial"
	"github.com/hilt-project/hilt/drivers/serial/serialtest"
)

// ptyDevice is the device end of a pseudo-terminal: the test writes the device's
// output to the master and reads what the port sent from it.
type ptyDevice struct {
	master *os.File
	path   string // the slave, which the port opens
}

func (d *ptyDevice) Output(ctx context.Context, p []byte) error {
	stop := context.AfterFunc(ctx, func() { d.master.SetWriteDeadline(time.Now()) })
	defer stop()
	if _, err := d.master.Write(p); err != nil {
		return fmt.Errorf("pty %s: write: %w", d.path, err)
	}
	return nil
}

func (d *ptyDevice) ReadInput(ctx context.Context, n int) ([]byte, error) {
	stop := context.AfterFunc(ctx, func() { d.master.SetReadDeadline(time.Now()) })
	defer stop()
	b := make([]byte, n)
	if _, err := io.ReadFull(d.master, b); err != nil {
		return nil, fmt.Errorf("pty %s: read: %w", d.path, err)
	}
	return b, nil
}

// newPTY opens a pseudo-terminal pair; the master is closed at the end of the test.
func newPTY(t testing.TB) *ptyDevice {
	t.Helper()
	master, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	path := tty.Name()
	// The port opens the slave by path; our own descriptor is not needed.
	if err := tty.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	return &ptyDevice{master: master, path: path}
}

// openPort opens a pty and a port on its slave, closed at the end of the test.
func openPort(t testing.TB, opts ...serial.Option) (serial.Port, *ptyDevice) {
	t.Helper()
	dev := newPTY(t)
	p, err := serial.Open(context.Background(), dev.path, opts...)
	if err != nil {
		t.Fatalf("serial.Open(%s): %v", dev.path, err)
	}
	t.Cleanup(func() { p.Close() })
	return p, dev
}

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestConformanceOnPTY(t *testing.T) {
	p, dev := openPort(t)
	if err := serialtest.TestConsole(testCtx(t, 20*time.Second), p, dev); err != nil {
		t.Fatal(err)
	}
}

func TestTimeoutError(t *testing.T) {
	p, dev := openPort(t)
	ctx := testCtx(t, 10*time.Second)
	out := strings.Repeat("x", 5000) + "\nrefdev> tail-marker"
	if err := dev.Output(ctx, []byte(out)); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Expect(ctx, serial.Literal("tail-marker")); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := p.Expect(short, serial.Regex(`OK (\{.*\})`))
	var te *serial.TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("got %v, want *TimeoutError", err)
	}
	if !errors.Is(err, serial.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v: want ErrTimeout and context.DeadlineExceeded", err)
	}
	if te.Port != dev.path {
		t.Errorf("Port: got %q, want %q", te.Port, dev.path)
	}
	if len(te.Last) != serial.LastOutputLen || !strings.HasSuffix(te.Last, "refdev> tail-marker") {
		t.Errorf("Last: got %d bytes ending %q, want %d bytes ending with the last output", len(te.Last), te.Last[max(0, len(te.Last)-30):], serial.LastOutputLen)
	}
	msg := err.Error()
	for _, want := range []string{dev.path, `OK (\\{.*\\})`, "tail-marker", "deadline exceeded"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
}

func TestPortVanishes(t *testing.T) {
	p, dev := openPort(t)
	ctx := testCtx(t, 10*time.Second)
	if err := dev.Output(ctx, []byte("last words before unplug\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Expect(ctx, serial.Literal("unplug")); err != nil {
		t.Fatal(err)
	}
	pending := make(chan error, 1)
	go func() {
		_, err := p.Expect(ctx, serial.Literal("never printed"))
		pending <- err
	}()
	dev.master.Close() // the adapter is unplugged

	for i, err := range []error{<-pending, expectErr(ctx, p)} {
		var ge *serial.GoneError
		if !errors.Is(err, serial.ErrPortGone) || !errors.As(err, &ge) {
			t.Fatalf("expect %d: got %v, want a *GoneError", i, err)
		}
		if ge.Port != dev.path || !strings.Contains(ge.Last, "last words before unplug") {
			t.Errorf("expect %d: GoneError names %q with last output %q", i, ge.Port, ge.Last)
		}
		if !strings.Contains(err.Error(), dev.path) {
			t.Errorf("expect %d: %q does not name the port", i, err)
		}
	}
	if err := p.Send(ctx, "reboot"); !errors.Is(err, serial.ErrPortGone) {
		t.Errorf("Send after unplug: got %v, want ErrPortGone", err)
	}
	// Output received before the port vanished can still be expected.
	if _, err := p.Expect(ctx, serial.Literal("\n")); err != nil {
		t.Errorf("Expect of output received before the port vanished: %v", err)
	}
}

func expectErr(ctx context.Context, p serial.Console) error {
	_, err := p.Expect(ctx, serial.Literal("nothing"))
	return err
}

func TestReopen(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	link := filepath.Join(t.TempDir(), "ttyUSB-by-id")
	dev1 := newPTY(t)
	if err := os.Symlink(dev1.path, link); err != nil {
		t.Fatal(err)
	}
	p, err := serial.Open(ctx, link)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := dev1.Output(ctx, []byte("first life\n")); err != nil {
		t.Fatal(err)
	}
	m1, err := p.Expect(ctx, serial.Literal("first life"))
	if err != nil {
		t.Fatal(err)
	}
	dev1.master.Close()
	if err := expectErr(ctx, p); !errors.Is(err, serial.ErrPortGone) {
		t.Fatalf("after unplug: got %v, want ErrPortGone", err)
	}

	// The adapter comes back as another pty behind the same name, while Reopen waits.
	reopened := make(chan error, 1)
	go func() { reopened <- p.Reopen(ctx) }()
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	dev2 := newPTY(t)
	if err := os.Symlink(dev2.path, link); err != nil {
		t.Fatal(err)
	}
	if err := <-reopened; err != nil {
		t.Fatalf("Reopen: %v", err)
	}
	if err := dev2.Output(ctx, []byte("second life\n")); err != nil {
		t.Fatal(err)
	}
	m2, err := p.Expect(ctx, serial.Literal("second life"))
	if err != nil {
		t.Fatal(err)
	}
	if m2.Start < m1.End {
		t.Errorf("offsets restarted: second match at %d, first ended at %d", m2.Start, m1.End)
	}
	if got := string(p.Transcript()); got != "first life\nsecond life\n" {
		t.Errorf("transcript: got %q", got)
	}
	if err := p.Send(ctx, "ping"); err != nil {
		t.Fatal(err)
	}
	if got, err := dev2.ReadInput(ctx, 5); err != nil || string(got) != "ping\n" {
		t.Errorf("after Reopen the device read %q, %v; want \"ping\\n\"", got, err)
	}
}

func TestReopenGivesUp(t *testing.T) {
	p, dev := openPort(t)
	dev.master.Close()
	// A pty slave cannot be opened again once its master is gone.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := p.Reopen(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), dev.path) {
		t.Fatalf("got %v, want a deadline error naming %s", err, dev.path)
	}
}

func TestClose(t *testing.T) {
	p, _ := openPort(t)
	ctx := testCtx(t, 10*time.Second)
	pending := make(chan error, 1)
	go func() {
		_, err := p.Expect(ctx, serial.Literal("never"))
		pending <- err
	}()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-pending; !errors.Is(err, serial.ErrPortClosed) {
		t.Errorf("pending Expect: got %v, want ErrPortClosed", err)
	}
	if err := p.Send(ctx, "x"); !errors.Is(err, serial.ErrPortClosed) {
		t.Errorf("Send after Close: got %v, want ErrPortClosed", err)
	}
	if err := p.Reopen(ctx); !errors.Is(err, serial.ErrPortClosed) {
		t.Errorf("Reopen after Close: got %v, want ErrPortClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestTranscriptLimit(t *testing.T) {
	const limit = 64 << 10
	p, dev := openPort(t, serial.WithTranscriptLimit(limit))
	ctx := testCtx(t, 20*time.Second)
	line := []byte(strings.Repeat("boot log line ", 10) + "\n") // 141 bytes
	var total int64
	go func() {
		for range 8000 { // about 1.1 MiB
			if err := dev.Output(ctx, line); err != nil {
				return
			}
		}
		dev.Output(ctx, []byte("refdev ready\n"))
	}()
	total = 8000*int64(len(line)) + int64(len("refdev ready\n"))
	m, err := p.Expect(ctx, serial.Literal("refdev ready\n"))
	if err != nil {
		t.Fatal(err)
	}
	if int64(m.End) != total {
		t.Errorf("match ends at %d, want %d (offsets count every byte)", m.End, total)
	}
	if got := p.Mark(); int64(got) != total {
		t.Errorf("Mark: got %d, want %d", got, total)
	}
	all := p.Transcript()
	if len(all) > limit || len(all) < limit/2 {
		t.Errorf("kept %d bytes, want between %d and %d", len(all), limit/2, limit)
	}
	if !bytes.HasSuffix(all, []byte("refdev ready\n")) {
		t.Errorf("transcript does not end with the last output")
	}
	if got := p.TranscriptSince(0); !bytes.Equal(got, all) {
		t.Errorf("TranscriptSince(0) (dropped) = %d bytes, want what is kept (%d)", len(got), len(all))
	}
	if got := p.TranscriptSince(serial.Mark(total - 13)); string(got) != "refdev ready\n" {
		t.Errorf("TranscriptSince(end-13) = %q", got)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestLogger(t *testing.T) {
	var log lockedBuffer
	p, dev := openPort(t, serial.WithLogger(&log))
	ctx := testCtx(t, 10*time.Second)
	dev.Output(ctx, []byte("tee me\x00\xff done\n"))
	if _, err := p.Expect(ctx, serial.Literal("done\n")); err != nil {
		t.Fatal(err)
	}
	if got := log.String(); got != "tee me\x00\xff done\n" {
		t.Errorf("logger got %q", got)
	}

	p2, dev2 := openPort(t, serial.WithLogger(failingWriter{}))
	dev2.Output(ctx, []byte("still works\n"))
	if _, err := p2.Expect(ctx, serial.Literal("still works")); err != nil {
		t.Fatal(err)
	}
	if err := p2.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Close: got %v, want the logger's error", err)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := testCtx(t, 10*time.Second)
	regular := filepath.Join(t.TempDir(), "not-a-tty")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/dev/does-not-exist", regular} {
		p, err := serial.Open(ctx, path)
		if err == nil || p != nil {
			t.Errorf("Open(%s): got %v, %v; want a nil Port and an error", path, p, err)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("Open(%s): %q does not name the path", path, err)
		}
	}
}

func TestWriteHonoursContext(t *testing.T) {
	p, _ := openPort(t)
	// Nobody reads the master: the pty buffer fills and the write stalls.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := p.Write(ctx, make([]byte, 4<<20))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want context.DeadlineExceeded", err)
	}
}

// TestAutoReopen: with WithAutoReopen, a write to a vanished line waits for the port to
// come back by its path and goes to the new line; when the port stays away the write fails
// with a *GoneError naming the port.
func TestAutoReopen(t *testing.T) {
	cases := []struct {
		name    string
		comesUp bool
	}{
		{"comes back within the write's time", true},
		{"stays away", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t, 10*time.Second)
			link := filepath.Join(t.TempDir(), "console")
			dev1 := newPTY(t)
			if err := os.Symlink(dev1.path, link); err != nil {
				t.Fatal(err)
			}
			p, err := serial.Open(ctx, link, serial.WithAutoReopen())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			os.Remove(link)
			dev1.master.Close() // unplugged
			if err := expectErr(ctx, p); !errors.Is(err, serial.ErrPortGone) {
				t.Fatalf("after unplug: got %v, want ErrPortGone", err)
			}
			if !tc.comesUp {
				wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
				defer cancel()
				err := p.Send(wctx, "ping")
				var ge *serial.GoneError
				if !errors.As(err, &ge) || ge.Port != link || !strings.Contains(err.Error(), link) {
					t.Fatalf("Send to a port that stays away: got %v, want a *GoneError naming %s", err, link)
				}
				return
			}
			sent := make(chan error, 1)
			go func() { sent <- p.Send(ctx, "ping") }()
			dev2 := newPTY(t)
			if err := os.Symlink(dev2.path, link); err != nil {
				t.Fatal(err)
			}
			if err := <-sent; err != nil {
				t.Fatalf("Send across a replug: %v", err)
			}
			if got, err := dev2.ReadInput(ctx, 5); err != nil || string(got) != "ping\n" {
				t.Errorf("the replugged device read %q, %v; want \"ping\\n\"", got, err)
			}
			if err := dev2.Output(ctx, []byte("pong\n")); err != nil {
				t.Fatal(err)
			}
			if _, err := p.Expect(ctx, serial.Literal("pong")); err != nil {
				t.Errorf("Expect after the replug: %v", err)
			}
		})
	}
}
