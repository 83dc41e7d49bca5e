//go:build linux

package netprobe

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// icmpUnreachable builds an ICMP destination-unreachable message of the given code about a
// TCP segment from src:sport to dst:dport, as a router or firewall sends it back.
func icmpUnreachable(code byte, src, dst netip.Addr, sport, dport int) []byte {
	m := make([]byte, 8+20+8)
	m[0], m[1] = 3, code // destination unreachable
	ip := m[8:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], 40)
	ip[8], ip[9] = 64, unix.IPPROTO_TCP
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:], s4[:])
	copy(ip[16:], d4[:])
	binary.BigEndian.PutUint16(ip[10:], ^onesSum(ip[:20]))
	binary.BigEndian.PutUint16(ip[20:], uint16(sport))
	binary.BigEndian.PutUint16(ip[22:], uint16(dport))
	binary.BigEndian.PutUint16(m[2:], ^onesSum(m))
	return m
}

// onesSum is the ones' complement sum of b, folded to 16 bits.
func onesSum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// TestSYNScanICMPErrors: ICMP errors about the scan's SYNs (a firewall's REJECT: port
// unreachable, administratively prohibited, host unreachable) leave the scan's result as
// it is, although the kernel reports them on the connected raw socket as errors of its
// next send or read.
func TestSYNScanICMPErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a SYN scan needs root (CAP_NET_RAW)")
	}
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	open := ln.Addr().(*net.TCPAddr).Port
	target := netip.MustParseAddr("127.0.0.2")

	icmp, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMP)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(icmp)

	for _, tc := range []struct {
		name string
		code byte
	}{
		{"port unreachable", 3},             // ECONNREFUSED on the next call
		{"administratively prohibited", 13}, // EHOSTUNREACH
		{"host unreachable", 1},             // not a hard error: the kernel keeps it to itself
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := openSYN(target)
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			inject := func() {
				m := icmpUnreachable(tc.code, s.src, target, s.sport, 9)
				if err := unix.Sendto(icmp, m, 0, &unix.SockaddrInet4{Addr: s.src.As4()}); err != nil {
					t.Errorf("send ICMP: %v", err)
				}
			}
			// One pending before the first send, then more while the scan runs.
			inject()
			time.Sleep(10 * time.Millisecond) // delivered: loopback
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond):
						inject()
					}
				}
			}()
			cfg := scanConfig{concurrency: DefaultConcurrency, dialTimeout: DefaultDialTimeout}
			for p := 1; p <= 65535; p++ {
				cfg.ports = append(cfg.ports, p)
			}
			states := make([]portState, len(cfg.ports))
			err = s.run(ctx, cfg, states)
			close(stop)
			<-done
			if err != nil {
				t.Fatalf("scan with ICMP errors coming: %v", err)
			}
			if states[open-1] != portOpen {
				t.Errorf("port %d: state %v, want open", open, states[open-1])
			}
		})
	}
}
