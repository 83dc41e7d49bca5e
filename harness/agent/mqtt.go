package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

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
	corr := m.tag + "-q" + strconv.FormatInt(m.seq.Add(1), 10)
	b, err := json.Marshal(wire.Request{Corr: corr, Auth: auth, Cmd: cmd, Args: args})
	if err != nil {
		return nil, err
	}
	rec := m.c.Recorder()
	mark := rec.Mark()
	lost := m.c.Status().Lost
	respTopic := Topic(m.prefix, m.id, "resp")
	if err := m.c.Publish(ctx, Topic(m.prefix, m.id, "cmd"), b, 1, false); err != nil {
		if st := m.c.Status(); errors.Is(err, mqtt.ErrNotConnected) || st.Lost != lost || !st.Connected {
			return nil, fmt.Errorf("%s: %s over mqtt: %w: %w", m.device, cmd, ErrLinkLost, err)
		}
		return nil, fmt.Errorf("%s: %s over mqtt: %w: %w", m.device, cmd, ErrNoAnswer, err)
	}
	var resp wire.Response
	_, err = rec.WaitFor(ctx, mark, func(msg mqtt.Message) bool {
		if msg.Topic != respTopic {
			return false
		}
		var r wire.Response
		if json.Unmarshal(msg.Payload, &r) != nil || r.Corr != corr {
			return false
		}
		resp = r
		return true
	})
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
