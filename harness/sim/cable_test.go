package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"

	hserial "github.com/hilt-project/hilt/drivers/serial"
)

// echoDevice answers every line on the master of its pty with "OK <line>".
func echoDevice(t *testing.T) *os.File {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := makeRaw(slave); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	go func() {
		sc := bufio.NewScanner(master)
		for sc.Scan() {
			fmt.Fprintf(master, "OK %s\n", sc.Text())
		}
	}()
	return slave
}

// TestCableUnplugReplug: the harness's port, opened by the console link, sees the
// adapter vanish (ErrPortGone), and, with WithAutoReopen, talks to the device again
// through the same link once the adapter is replugged; the device is not disturbed.
func TestCableUnplugReplug(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	link := consoleLink(t.TempDir())
	c, err := newCable("dev1", link, echoDevice(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	p, err := hserial.Open(ctx, link, hserial.WithAutoReopen())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	roundTrip := func(ctx context.Context, line string) error {
		if err := p.Send(ctx, line); err != nil {
			return err
		}
		_, err := p.Expect(ctx, hserial.Literal("OK "+line+"\n"))
		return err
	}
	if err := roundTrip(ctx, "before"); err != nil {
		t.Fatalf("before unplug: %v", err)
	}
	if err := c.unplug(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(link); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the link is still there after unplug (%v)", err)
	}
	if _, err := p.Expect(ctx, hserial.Literal("never")); !errors.Is(err, hserial.ErrPortGone) {
		t.Fatalf("after unplug: got %v, want ErrPortGone", err)
	}
	if err := c.unplug(); !errors.Is(err, ErrUnplugged) {
		t.Errorf("second unplug: got %v, want ErrUnplugged", err)
	}
	// Unplugged for good (for this write): the error names the port.
	sctx, scancel := context.WithTimeout(ctx, 200*time.Millisecond)
	err = p.Send(sctx, "lost")
	scancel()
	var ge *hserial.GoneError
	if !errors.As(err, &ge) || ge.Port != link {
		t.Fatalf("write while unplugged: got %v, want a *GoneError naming %s", err, link)
	}
	done := make(chan error, 1)
	go func() { done <- roundTrip(ctx, "after") }()
	pts, err := c.plug()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := filepath.EvalSymlinks(link); err != nil || got != pts {
		t.Errorf("link after replug: %q, %v; want %s", got, err, pts)
	}
	if err := <-done; err != nil {
		t.Fatalf("after replug: %v", err)
	}
	for i := range 3 {
		if err := roundTrip(ctx, fmt.Sprintf("again %d", i)); err != nil {
			t.Fatalf("round trip %d after replug: %v", i, err)
		}
	}
}

// TestFaultCommands: the fault control's command language and its refusals.
func TestFaultCommands(t *testing.T) {
	b := &Bench{broker: &externalBackend{}} // a broker the bench cannot stop
	fc := &faultControl{b: b}
	cases := []struct {
		line string
		want error // nil: OK
	}{
		{"help", nil},
		{"unplug", ErrBadOptions},
		{"unplug dev9", ErrBadOptions},
		{"replug dev9", ErrBadOptions},
		{"broker restart", errNoBrokerFault},
		{"broker reboot", errNoBrokerFault},
		{"kill dev1", ErrBadOptions},
	}
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			_, err := fc.do(tc.line)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("%q: got %v, want %v", tc.line, err, tc.want)
			}
		})
	}
}

// TestFaultControlSocket: commands over the socket get one answer line each, and closing
// the control ends idle connections instead of waiting for them.
func TestFaultControlSocket(t *testing.T) {
	b := &Bench{dir: t.TempDir(), broker: &externalBackend{}}
	if err := b.startFaultControl(); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", b.FaultControlPath())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, tc := range []struct{ line, prefix string }{
		{"help", "OK unplug"},
		{"unplug dev1", "ERR "},
		{"", ""}, // blank lines are ignored
		{"broker stop", "ERR broker external"},
	} {
		fmt.Fprintln(c, tc.line)
		if tc.line == "" {
			continue
		}
		got, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(got, tc.prefix) {
			t.Errorf("%q: got %q, %v; want %q...", tc.line, got, err, tc.prefix)
		}
	}
	closed := make(chan struct{})
	go func() {
		b.faults.close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("closing the fault control waits for an idle connection")
	}
	if _, err := os.Stat(b.FaultControlPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is still there after close (%v)", err)
	}
}
