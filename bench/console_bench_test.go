package bench_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/creack/pty"
	bugst "go.bug.st/serial"

	"github.com/hilt-project/hilt/drivers/serial"
	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/harness/image"
)

// floodLine and floodSize are those of drivers/serial's BenchmarkExpectFlood, whose
// peer BenchmarkPTYFloodRaw is: the same bytes through the same kind of pty.
const floodLine = "[    1.234567] usb 1-1: new high-speed USB device number 2 using xhci_hcd\n"

const floodSize = 1 << 20

// newPTY opens a pseudo-terminal and returns its master and the path of its slave; the
// master is closed at the end of the benchmark.
func newPTY(b *testing.B) (*os.File, string) {
	b.Helper()
	master, tty, err := pty.Open()
	if err != nil {
		b.Fatalf("open pty: %v", err)
	}
	path := tty.Name()
	if err := tty.Close(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { master.Close() })
	return master, path
}

// openRaw opens the slave as drivers/serial does (go.bug.st/serial, 115200 8N1, raw),
// without anything on top: the transport's floor.
func openRaw(b *testing.B, path string) bugst.Port {
	b.Helper()
	p, err := bugst.Open(path, &bugst.Mode{BaudRate: 115200, DataBits: 8, Parity: bugst.NoParity, StopBits: bugst.OneStopBit})
	if err != nil {
		b.Fatalf("open %s: %v", path, err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// readUntil reads from p until want has been seen at the end of what arrived: the least
// a reader must do to know the device printed it.
func readUntil(p io.Reader, buf []byte, want []byte) error {
	tail := make([]byte, 0, 2*len(want))
	for {
		n, err := p.Read(buf)
		if n > 0 {
			tail = append(tail, buf[max(0, n-len(want)):n]...)
			if bytes.HasSuffix(tail, want) {
				return nil
			}
			tail = tail[max(0, len(tail)-len(want)):]
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
	}
}

// BenchmarkPTYFloodRaw reads 1 MiB of boot log and the line that ends it through a pty
// with plain reads: the peer of drivers/serial's BenchmarkExpectFlood.
func BenchmarkPTYFloodRaw(b *testing.B) {
	master, path := newPTY(b)
	p := openRaw(b, path)
	flood := bytes.Repeat([]byte(floodLine), floodSize/len(floodLine))
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(flood)))
	i := 0
	for b.Loop() {
		i++
		end := fmt.Appendf(nil, "ready %d\n", i)
		errc := make(chan error, 1)
		go func() {
			if _, err := master.Write(flood); err != nil {
				errc <- err
				return
			}
			_, err := master.Write(end)
			errc <- err
		}()
		if err := readUntil(p, buf, end); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPTYLatencyRaw is one short line from the device to a plain reader: the peer
// of drivers/serial's BenchmarkExpectLatency.
func BenchmarkPTYLatencyRaw(b *testing.B) {
	master, path := newPTY(b)
	p := openRaw(b, path)
	buf := make([]byte, 64<<10)
	i := 0
	for b.Loop() {
		i++
		want := fmt.Appendf(nil, "OK %d\n", i)
		if _, err := master.Write(want); err != nil {
			b.Fatal(err)
		}
		if err := readUntil(p, buf, want); err != nil {
			b.Fatal(err)
		}
	}
}

// device plays a console device on the master side of a pty: it answers every line
// with "OK" and a JSON result, then its prompt, as the reference device does.
func device(ctx context.Context, master *os.File, result string) {
	r := bufio.NewReaderSize(master, 64<<10)
	answer := []byte("OK " + result + "\nrefdev> ")
	for ctx.Err() == nil {
		if _, err := r.ReadSlice('\n'); err != nil && err != bufio.ErrBufferFull {
			return
		}
		if _, err := master.Write(answer); err != nil {
			return
		}
	}
}

// openConsole opens a serial port on a pty whose master a device goroutine answers.
func openConsole(b *testing.B, result string) *agent.Console {
	b.Helper()
	master, path := newPTY(b)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	p, err := serial.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	// Only now: a master read while no one has the slave open fails with EIO.
	go device(ctx, master, result)
	return agent.NewConsole("bench", p)
}

// BenchmarkConsoleCommand is one command over a console (a pty) and its answer, decoded:
// what every console step of a check costs the harness.
func BenchmarkConsoleCommand(b *testing.B) {
	con := openConsole(b, `{"key":"telemetry_interval","value":"5"}`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out struct{ Key, Value string }
	for b.Loop() {
		if err := agent.Call(ctx, con, nil, "config.get", map[string]any{"key": "telemetry_interval"}, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConsoleUpload sends a 64 KiB update image over a console in update.data lines
// of agent.ChunkSize base64 characters, each answered: the SU checks' console path.
func BenchmarkConsoleUpload(b *testing.B) {
	con := openConsole(b, "{}")
	img, err := image.Build(image.Spec{Model: "Refdev Thermostat", Version: "1.2.3", Nonce: "00", PayloadSize: 64 << 10, Key: image.NewKey()})
	if err != nil {
		b.Fatal(err)
	}
	enc := base64.StdEncoding.EncodeToString(img.Bytes)
	lines := 2 + (len(enc)+agent.ChunkSize-1)/agent.ChunkSize
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.SetBytes(int64(len(img.Bytes)))
	for b.Loop() {
		if err := agent.Call(ctx, con, nil, "update.install", map[string]any{"image": enc}, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*lines), "ns/line")
}
