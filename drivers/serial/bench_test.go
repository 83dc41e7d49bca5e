package serial_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/serial"
)

// BenchmarkExpectFlood measures how fast a port takes in a flood of output (1 MiB of
// boot log per op, through a real pty) and finds the line that ends it.
func BenchmarkExpectFlood(b *testing.B) {
	const floodSize = 1 << 20
	line := []byte("[    1.234567] usb 1-1: new high-speed USB device number 2 using xhci_hcd\n")
	flood := bytes.Repeat(line, floodSize/len(line))
	for _, mk := range []struct {
		name string
		m    func(i int) serial.Matcher
	}{
		{"literal", func(i int) serial.Matcher { return serial.Literal(fmt.Sprintf("ready %d\n", i)) }},
		{"regex", func(i int) serial.Matcher { return serial.Regex(fmt.Sprintf(`ready (%d)\n`, i)) }},
		{"anyof", func(i int) serial.Matcher {
			return serial.AnyOf(serial.Literal("Kernel panic"), serial.Regex(fmt.Sprintf(`ready (%d)\n`, i)))
		}},
	} {
		b.Run(mk.name, func(b *testing.B) {
			p, dev := openPort(b)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			b.SetBytes(int64(len(flood)))
			i := 0
			for b.Loop() {
				i++
				errc := make(chan error, 1)
				go func(i int) {
					if err := dev.Output(ctx, flood); err != nil {
						errc <- err
						return
					}
					errc <- dev.Output(ctx, fmt.Appendf(nil, "ready %d\n", i))
				}(i)
				if _, err := p.Expect(ctx, mk.m(i)); err != nil {
					b.Fatal(err)
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkExpectLatency measures one round trip: the device prints a short line and
// the Expect waiting for it returns.
func BenchmarkExpectLatency(b *testing.B) {
	p, dev := openPort(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	i := 0
	for b.Loop() {
		i++
		want := fmt.Sprintf("OK %d\n", i)
		if err := dev.Output(ctx, []byte(want)); err != nil {
			b.Fatal(err)
		}
		if _, err := p.Expect(ctx, serial.Literal(want)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSearch measures the matchers alone: 1 MiB of output arriving in 4 KiB reads
// before the match, as the reader hands it over.
func BenchmarkSearch(b *testing.B) {
	line := "[    1.234567] eth0: link up, 100Mbps, full-duplex, lpa 0x45E1 \"quoted\"\n"
	text := []byte(strings.Repeat(line, (1<<20)/len(line)) + "refdev ready\nrefdev> ")
	for _, tt := range []struct {
		name string
		m    serial.Matcher
	}{
		{"literal", serial.Literal("refdev ready\n")},
		{"regex-line", serial.Regex(`refdev (\w+)\n`)},
		{"regex-multiline", serial.Regex(`refdev ready\s+refdev> `)},
		{"anyof", serial.AnyOf(serial.Literal("panic"), serial.Literal("Oops"), serial.Regex(`refdev (\w+)\n`))},
		{"allof", serial.AllOf(serial.Literal("refdev ready"), serial.Literal("refdev> "))},
		{"mustnot", serial.MustNotMatch(serial.Literal("refdev> "), serial.Regex(`(?i)kernel panic`))},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				s := serial.NewSearch(tt.m)
				found := false
				for end := 4096; !found; end += 4096 {
					end = min(end, len(text))
					_, ok, err := s.Next(text[:end], 0)
					if err != nil {
						b.Fatal(err)
					}
					found = ok
					if end == len(text) && !found {
						b.Fatal("no match")
					}
				}
			}
		})
	}
}
