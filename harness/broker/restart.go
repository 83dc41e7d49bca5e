package broker

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// ErrStopped is returned by Stop on a stopped broker and by Resume on a running one.
var ErrStopped = errors.New("broker stopped")

// Stop stops the broker as a crash would, for fault injection: both listeners close and
// every client is disconnected, with no will messages of its own. Accounts, bindings and
// the connection log are kept; retained messages are lost. Resume starts it again on the
// same ports.
func (b *Broker) Stop() error {
	b.restart.Lock()
	defer b.restart.Unlock()
	b.mu.Lock()
	if b.closed || b.stopped {
		b.mu.Unlock()
		return fmt.Errorf("broker: stop: %w", ErrStopped)
	}
	b.stopped = true
	b.mu.Unlock()
	// Not under mu: disconnecting clients may run the hooks, which take it.
	b.guard.close()
	return b.server.Close()
}

// Resume starts a stopped broker again on the ports it had.
func (b *Broker) Resume(ctx context.Context) error {
	b.restart.Lock()
	defer b.restart.Unlock()
	b.mu.Lock()
	closed, stopped := b.closed, b.stopped
	b.mu.Unlock()
	if closed {
		return fmt.Errorf("broker: resume: closed")
	}
	if !stopped {
		return fmt.Errorf("broker: resume: it runs, not %w", ErrStopped)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("broker: resume: %w", err)
	}
	old := b.tlsLn.(*tlsListener)
	plain, err := net.Listen("tcp", b.plain.Addr().String())
	if err != nil {
		return fmt.Errorf("broker: resume: plaintext listener on %s: %w", b.plain.Addr(), err)
	}
	raw, err := net.Listen("tcp", old.Addr().String())
	if err != nil {
		plain.Close()
		return fmt.Errorf("broker: resume: TLS listener on %s: %w", old.Addr(), err)
	}
	tlsLn := &tlsListener{Listener: raw, cfg: old.cfg, fail: old.fail}
	server, guard, err := b.newServer(b.log)
	if err != nil {
		raw.Close()
		plain.Close()
		return fmt.Errorf("broker: resume: %w", err)
	}
	for _, l := range []listeners.Listener{listeners.NewNet(ListenerTLS, tlsLn), listeners.NewNet(ListenerPlain, plain)} {
		if err := server.AddListener(l); err != nil {
			raw.Close()
			plain.Close()
			return fmt.Errorf("broker: resume: add listener %s: %w", l.ID(), err)
		}
	}
	if err := server.Serve(); err != nil {
		server.Close()
		return fmt.Errorf("broker: resume: serve: %w", err)
	}
	b.server, b.guard, b.tlsLn, b.plain = server, guard, tlsLn, plain
	b.mu.Lock()
	b.stopped = false
	b.mu.Unlock()
	return nil
}
