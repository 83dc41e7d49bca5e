package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/hilt-project/hilt/drivers/mqtt"
	"github.com/hilt-project/hilt/wire"
)

// MQTT is the transport over the broker: requests on <prefix>/<id>/cmd, answers on
// <prefix>/<id>/resp.
type MQTT struct {
	device, prefix, id string
	c                  mqtt.Client
	seq                atomic.Int64
	tag                string
}

var _ Transport = (*MQTT)(nil)

// NewMQTT returns a transport to the device with logical ID id through client c, which
// must already be subscribed to the device's resp topic (see Topic). It does not own c.
func NewMQTT(device string, c mqtt.Client, prefix, id, tag string) *MQTT {
	return &MQTT{device: device, c: c, prefix: prefix, id: id, tag: tag}
}

// Topic returns <prefix>/<id>/<leaf>.
func Topic(prefix, id, leaf string) string { return prefix + "/" + id + "/" + leaf }

// Iface implements Transport.
func (m *MQTT) Iface() string { return "mqtt" }

// Close implements Transport; the client belongs to the caller.
func (m *MQTT) Close() error { return nil }

// Do implements Transport.
func (m *MQTT) Do(ctx context.Context, auth *wire.Auth, cmd string, args map[string]any) (json.RawMessage, error) {
	return m.do(ctx, 0, auth, cmd, args)
}

// DoRepeating is Do for a command that may safely run more than once (ping, info), sent to
// a device that may not be listening yet: one that is reconnecting to its broker loses a
// request published before it subscribes again. It publishes the request again every
// `every` (each copy under a correlation ID of its own; one that cannot be published, the
// harness's broker link down for a moment, is tried again too) and returns the first
// answer to any copy, however late, until ctx ends. An error answer is an answer.
func (m *MQTT) DoRepeating(ctx context.Context, every time.Duration, auth *wire.Auth, cmd string, args map[string]any) (json.RawMessage, error) {
	if every <= 0 {
		return nil, fmt.Errorf("%s: %s over mqtt: repeat interval %v, want > 0", m.device, cmd, every)
	}
	return m.do(ctx, every, auth, cmd, args)
}

// do publishes the request, again every `every` when it is positive, and waits for the
// answer to any copy.
func (m *MQTT) do(ctx context.Context, every time.Duration, auth *wire.Auth, cmd string, args map[string]any) (json.RawMessage, error) {
	rec := m.c.Recorder()
	mark := rec.Mark()
	lost := m.c.Status().Lost
	respTopic := Topic(m.prefix, m.id, "resp")
	sent := map[string]bool{}
	publish := func() error {
		corr := m.tag + "-q" + strconv.FormatInt(m.seq.Add(1), 10)
		b, err := json.Marshal(wire.Request{Corr: corr, Auth: auth, Cmd: cmd, Args: args})
		if err != nil {
			return err
		}
		sent[corr] = true
		if err := m.c.Publish(ctx, Topic(m.prefix, m.id, "cmd"), b, 1, false); err != nil {
			if st := m.c.Status(); errors.Is(err, mqtt.ErrNotConnected) || st.Lost != lost || !st.Connected {
				return fmt.Errorf("%s: %s over mqtt: %w: %w", m.device, cmd, ErrLinkLost, err)
			}
			return fmt.Errorf("%s: %s over mqtt: %w: %w", m.device, cmd, ErrNoAnswer, err)
		}
		return nil
	}
	var resp wire.Response
	answer := func(msg mqtt.Message) bool {
		if msg.Topic != respTopic {
			return false
		}
		var r wire.Response
		if json.Unmarshal(msg.Payload, &r) != nil || !sent[r.Corr] {
			return false
		}
		resp = r
		return true
	}
	// One request waits as long as ctx allows; a repeated one, a period per copy.
	wait := func() error {
		wctx := ctx
		if every > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, every)
			defer cancel()
		}
		_, err := rec.WaitFor(wctx, mark, answer)
		return err
	}
	var err, pubErr error
	for {
		// Repeating, a copy that could not be published (the harness's own link to the
		// broker down for a moment) is one more copy unanswered: the next is tried.
		if pubErr = publish(); pubErr != nil && every <= 0 {
			return nil, pubErr
		}
		if err = wait(); err == nil || ctx.Err() != nil || every <= 0 {
			break
		}
	}
	if err != nil && pubErr != nil {
		return nil, pubErr // the last copy did not even leave: say why
	}
	if err != nil {
		if st := m.c.Status(); st.Lost != lost || !st.Connected {
			// The harness's own connection to the broker broke meanwhile (or was down
			// already): the answer may have been lost with it, so the silence says nothing
			// about the device.
			return nil, fmt.Errorf("%s: %s over mqtt (answer awaited on %s): %w (%v): %w", m.device, cmd, respTopic, ErrLinkLost, st.LastErr, err)
		}
		return nil, fmt.Errorf("%s: %s over mqtt (answer awaited on %s): %w: %w", m.device, cmd, respTopic, ErrNoAnswer, err)
	}
	return decodeResponse(m.device, "mqtt", cmd, resp)
}
