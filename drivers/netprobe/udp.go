package netprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"
)

// UDPResult is the outcome of ProbeUDP. Exactly one of Open, Closed and OpenOrFiltered
// is true.
type UDPResult struct {
	// Open: the port answered; Reply holds the answer.
	Open bool
	// Closed: an ICMP port unreachable came back.
	Closed bool
	// OpenOrFiltered: nothing came back; a UDP service that ignores the payload and a
	// firewall that drops it look the same.
	OpenOrFiltered bool
	Reply          []byte
}

// DefaultUDPWait bounds ProbeUDP when ctx has no deadline.
const DefaultUDPWait = 2 * time.Second

// udpAttempts is how many times ProbeUDP sends the payload within its wait.
const udpAttempts = 2

// ProbeUDP sends payload to port on addr (an IP address or host name) from a connected
// UDP socket and waits for an answer, an ICMP port unreachable (which the kernel hands
// back as ECONNREFUSED), or the end of ctx (DefaultUDPWait if ctx has no deadline). The
// payload is sent twice in that time, as a datagram or its answer may be lost. A timeout
// is a result (OpenOrFiltered), not an error; ctx cancellation is an error.
func ProbeUDP(ctx context.Context, addr string, port int, payload []byte) (UDPResult, error) {
	if port < 1 || port > 65535 {
		return UDPResult{}, fmt.Errorf("netprobe: udp %s: %w: port %d", addr, ErrBadAddress, port)
	}
	target := net.JoinHostPort(addr, strconv.Itoa(port))
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultUDPWait)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", target)
	if err != nil {
		return UDPResult{}, fmt.Errorf("netprobe: udp %s: %w", target, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Now()) })
	defer stop()

	buf := make([]byte, 64<<10)
	slot := time.Until(deadline) / udpAttempts
	for attempt := range udpAttempts {
		if _, err := conn.Write(payload); err != nil {
			if errors.Is(err, syscall.ECONNREFUSED) {
				return UDPResult{Closed: true}, nil
			}
			return UDPResult{}, fmt.Errorf("netprobe: udp %s: send: %w", target, err)
		}
		wait := time.Now().Add(slot)
		if attempt == udpAttempts-1 {
			wait = deadline
		}
		if err := conn.SetReadDeadline(wait); err != nil {
			return UDPResult{}, fmt.Errorf("netprobe: udp %s: %w", target, err)
		}
		n, err := conn.Read(buf)
		switch {
		case err == nil:
			return UDPResult{Open: true, Reply: append([]byte(nil), buf[:n]...)}, nil
		case errors.Is(err, syscall.ECONNREFUSED):
			return UDPResult{Closed: true}, nil
		case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
			return UDPResult{}, fmt.Errorf("netprobe: udp %s: %w", target, ctx.Err())
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		default:
			return UDPResult{}, fmt.Errorf("netprobe: udp %s: receive: %w", target, err)
		}
	}
	return UDPResult{OpenOrFiltered: true}, nil
}
