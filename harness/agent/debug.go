package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// DialDebug connects to a device's plaintext debug service at addr (host:port).
func DialDebug(ctx context.Context, device, addr string) (Transport, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: debug service %s: %w", device, addr, err)
	}
	io := &connIO{conn: conn, r: bufio.NewReaderSize(conn, 64<<10)}
	return &text{device: device, iface: "debug", io: io, closer: conn.Close}, nil
}

// connIO reads answers from a stream connection line by line.
type connIO struct {
	conn net.Conn
	r    *bufio.Reader
}

func (c *connIO) send(ctx context.Context, line string) error {
	setDeadline(ctx, c.conn)
	_, err := c.conn.Write([]byte(line + "\n"))
	return err
}

func (c *connIO) answer(ctx context.Context) (bool, string, error) {
	setDeadline(ctx, c.conn)
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return false, "", err
		}
		if i := strings.LastIndex(l, "> "); i >= 0 && !strings.HasPrefix(l, "OK ") && !strings.HasPrefix(l, "ERR ") {
			l = l[i+2:]
		}
		if ok, rest := parseAnswer(l); ok || strings.HasPrefix(l, "ERR") {
			return ok, rest, nil
		}
	}
}

func setDeadline(ctx context.Context, c net.Conn) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	_ = c.SetDeadline(dl)
}
