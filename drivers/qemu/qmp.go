package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// qmpClient speaks QEMU's machine protocol (QMP): one JSON object a line; commands carry an
// id that the answer echoes; events arrive in between.
type qmpClient struct {
	vm      string
	conn    net.Conn
	onEvent func(name string, data json.RawMessage)

	wmu     sync.Mutex // serialises writes
	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan qmpReply
	err     error // set when the reader stopped
	done    chan struct{}
}

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	ID    *uint64         `json:"id"`
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
	QMP   json.RawMessage `json:"QMP"`
}

// newQMP reads the greeting on conn, starts the reader and leaves capability negotiation.
func newQMP(ctx context.Context, vm string, conn net.Conn, onEvent func(string, json.RawMessage)) (*qmpClient, error) {
	q := &qmpClient{vm: vm, conn: conn, onEvent: onEvent, pending: map[uint64]chan qmpReply{}, done: make(chan struct{})}
	r := bufio.NewReader(conn)
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("qemu %s: QMP greeting: %w", vm, err)
	}
	var greet qmpReply
	if err := json.Unmarshal(line, &greet); err != nil || greet.QMP == nil {
		return nil, fmt.Errorf("qemu %s: QMP greeting: not a QMP greeting: %q", vm, line)
	}
	_ = conn.SetReadDeadline(time.Time{})
	go q.read(r)
	if _, err := q.execute(ctx, "qmp_capabilities", nil); err != nil {
		q.close()
		return nil, err
	}
	return q, nil
}

func (q *qmpClient) read(r *bufio.Reader) {
	defer close(q.done)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			q.mu.Lock()
			q.err = err
			for id, ch := range q.pending {
				close(ch)
				delete(q.pending, id)
			}
			q.mu.Unlock()
			return
		}
		var m qmpReply
		if err := json.Unmarshal(line, &m); err != nil {
			continue
		}
		if m.Event != "" {
			if q.onEvent != nil {
				q.onEvent(m.Event, m.Data)
			}
			continue
		}
		if m.ID == nil {
			continue
		}
		q.mu.Lock()
		ch := q.pending[*m.ID]
		delete(q.pending, *m.ID)
		q.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// errQMPClosed is returned when the monitor connection closed before the answer came, as it
// does when QEMU exits.
var errQMPClosed = errors.New("QMP connection closed")

// execute runs one command and returns its "return" value.
func (q *qmpClient) execute(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	q.mu.Lock()
	if q.err != nil {
		q.mu.Unlock()
		return nil, fmt.Errorf("qemu %s: QMP %s: %w", q.vm, cmd, errQMPClosed)
	}
	q.nextID++
	id := q.nextID
	ch := make(chan qmpReply, 1)
	q.pending[id] = ch
	q.mu.Unlock()

	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        uint64 `json:"id"`
	}{cmd, args, id}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("qemu %s: QMP %s: %w", q.vm, cmd, err)
	}
	q.wmu.Lock()
	// A call without a deadline must not inherit an earlier call's (long expired) one.
	dl, _ := ctx.Deadline()
	_ = q.conn.SetWriteDeadline(dl)
	_, err = q.conn.Write(append(b, '\n'))
	q.wmu.Unlock()
	if err != nil {
		q.forget(id)
		return nil, fmt.Errorf("qemu %s: QMP %s: %w", q.vm, cmd, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return nil, fmt.Errorf("qemu %s: QMP %s: %w", q.vm, cmd, errQMPClosed)
		}
		if m.Error != nil {
			return nil, &QMPError{VM: q.vm, Command: cmd, Class: m.Error.Class, Desc: m.Error.Desc}
		}
		return m.Return, nil
	case <-ctx.Done():
		q.forget(id)
		return nil, fmt.Errorf("qemu %s: QMP %s: %w", q.vm, cmd, ctx.Err())
	}
}

func (q *qmpClient) forget(id uint64) {
	q.mu.Lock()
	delete(q.pending, id)
	q.mu.Unlock()
}

func (q *qmpClient) close() {
	q.conn.Close()
	<-q.done
}
