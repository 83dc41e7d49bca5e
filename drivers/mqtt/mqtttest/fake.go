package mqtttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hilt-project/hilt/drivers/mqtt"
)

// Fake is an mqtt.Client connected to a broker in memory: what it publishes reaches its
// own subscriptions (as a broker would send it back), retained messages are kept and
// delivered on subscribe, and the test plays the device with Deliver or a Responder.
type Fake struct {
	rec *mqtt.Recorder

	mu        sync.Mutex
	subs      map[string]byte
	retained  map[string]mqtt.Message
	published []mqtt.Message
	respond   Responder
	refused   map[string]bool
	closed    bool
	down      bool
	lost      int
	restored  int
	lastErr   error
	wake      chan struct{}
}

// Responder plays the device: it is called with each message the client publishes, and
// the messages it returns are delivered as if the device had published them.
type Responder func(m mqtt.Message) []mqtt.Message

var _ mqtt.Client = (*Fake)(nil)

// NewFake returns a connected Fake.
func NewFake() *Fake {
	return &Fake{
		rec:      mqtt.NewRecorder(0, 0),
		subs:     map[string]byte{},
		retained: map[string]mqtt.Message{},
		refused:  map[string]bool{},
		wake:     make(chan struct{}),
	}
}

// Respond installs r (nil removes it).
func (f *Fake) Respond(r Responder) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.respond = r
}

// RefuseSubscribe makes the broker refuse subscriptions to filter (an ACL denial).
func (f *Fake) RefuseSubscribe(filter string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refused[filter] = true
}

// Published returns what the client published, in order.
func (f *Fake) Published() []mqtt.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]mqtt.Message, len(f.published))
	copy(out, f.published)
	return out
}

// Deliver hands m to the broker as if another client (the device) published it: it is
// kept if retained and recorded if a subscription matches.
func (f *Fake) Deliver(m mqtt.Message) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routeLocked(m)
}

// Drop makes the connection go down (as a lost connection): publishes fail with
// mqtt.ErrNotConnected and messages are not received until Restore.
func (f *Fake) Drop(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = errors.New("connection reset")
	}
	f.down = true
	f.lost++
	f.lastErr = fmt.Errorf("mqtt fake: connection lost: %w", err)
	f.changedLocked()
}

// Restore brings a dropped connection back, with its subscriptions.
func (f *Fake) Restore() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		f.down = false
		f.restored++
	}
	f.changedLocked()
}

func (f *Fake) changedLocked() {
	close(f.wake)
	f.wake = make(chan struct{})
}

// routeLocked is the broker: keep retained messages and deliver to the subscriptions.
func (f *Fake) routeLocked(m mqtt.Message) {
	m.Payload = bytes.Clone(m.Payload)
	if m.Retained {
		if len(m.Payload) == 0 {
			delete(f.retained, m.Topic)
		} else {
			f.retained[m.Topic] = m
		}
	}
	if f.down || f.closed {
		return
	}
	granted, ok := -1, false
	for filter, q := range f.subs {
		if mqtt.MatchTopic(filter, m.Topic) {
			granted, ok = max(granted, int(q)), true
		}
	}
	if !ok {
		return
	}
	f.rec.Add(mqtt.Message{Topic: m.Topic, Payload: m.Payload, QoS: min(m.QoS, byte(granted))})
}

func (f *Fake) check(op, what string) error {
	switch {
	case f.closed:
		return fmt.Errorf("mqtt fake: %s %q: %w", op, what, mqtt.ErrClosed)
	case f.down:
		return fmt.Errorf("mqtt fake: %s %q: %w", op, what, mqtt.ErrNotConnected)
	}
	return nil
}

// Publish records the message, routes it, and runs the Responder.
func (f *Fake) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mqtt fake: publish %q: %w", topic, err)
	}
	f.mu.Lock()
	if err := f.check("publish", topic); err != nil {
		f.mu.Unlock()
		return err
	}
	m := mqtt.Message{Topic: topic, Payload: bytes.Clone(payload), QoS: qos, Retained: retained, Seq: int64(len(f.published) + 1)}
	f.published = append(f.published, m)
	f.routeLocked(m)
	r := f.respond
	f.mu.Unlock()
	if r != nil {
		for _, answer := range r(m) {
			f.Deliver(answer)
		}
	}
	return nil
}

// Subscribe subscribes and delivers the matching retained messages.
func (f *Fake) Subscribe(ctx context.Context, filter string, qos byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mqtt fake: subscribe %q: %w", filter, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("subscribe", filter); err != nil {
		return err
	}
	if f.refused[filter] {
		return fmt.Errorf("mqtt fake: subscribe %q: %w", filter, mqtt.ErrSubscribeRefused)
	}
	f.subs[filter] = qos
	for _, m := range f.retained {
		if mqtt.MatchTopic(filter, m.Topic) {
			f.rec.Add(mqtt.Message{Topic: m.Topic, Payload: m.Payload, QoS: min(m.QoS, qos), Retained: true})
		}
	}
	return nil
}

// Unsubscribe ends a subscription.
func (f *Fake) Unsubscribe(ctx context.Context, filter string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mqtt fake: unsubscribe %q: %w", filter, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("unsubscribe", filter); err != nil {
		return err
	}
	delete(f.subs, filter)
	return nil
}

// Recorder returns the recorder of received messages.
func (f *Fake) Recorder() *mqtt.Recorder { return f.rec }

// Status reports the simulated connection.
func (f *Fake) Status() mqtt.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return mqtt.Status{Connected: !f.closed && !f.down, Lost: f.lost, Reconnects: f.restored, LastErr: f.lastErr, Changed: f.wake}
}

// Close disconnects the Fake.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.changedLocked()
	return nil
}
