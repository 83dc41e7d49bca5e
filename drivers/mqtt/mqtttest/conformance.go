package mqtttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hilt-project/hilt/drivers/mqtt"
)

// shortWait bounds the waits that are meant to time out.
const shortWait = 150 * time.Millisecond

// TestClient checks that c behaves as an mqtt.Client should against its broker and
// returns every misbehaviour it finds, joined (nil if none). It works under a topic of
// its own (hilt-conformance/<random>/...) and cleans up the retained message it sets.
// ctx bounds the whole check. Use it from a Go test or a Ginkgo spec alike.
func TestClient(ctx context.Context, c mqtt.Client) error {
	var b [4]byte
	_, _ = rand.Read(b[:])
	k := &checker{ctx: ctx, c: c, root: "hilt-conformance/" + hex.EncodeToString(b[:])}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"publish and receive", k.roundTrip},
		{"binary and empty payloads", k.payloads},
		{"retained", k.retained},
		{"unsubscribe", k.unsubscribe},
		{"wait timeout", k.timeout},
		{"marks and log", k.log},
	}
	var errs []error
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("mqtt conformance: stopped before %q: %w", s.name, err))
			break
		}
		if err := s.fn(); err != nil {
			errs = append(errs, fmt.Errorf("mqtt conformance: %s: %w", s.name, err))
		}
	}
	return errors.Join(errs...)
}

type checker struct {
	ctx  context.Context
	c    mqtt.Client
	root string
}

func (k *checker) topic(s string) string { return k.root + "/" + s }

func (k *checker) roundTrip() error {
	filter := k.topic("rt/#")
	if err := k.c.Subscribe(k.ctx, filter, 1); err != nil {
		return err
	}
	defer k.c.Unsubscribe(k.ctx, filter)
	mark := k.c.Recorder().Mark()
	topic := k.topic("rt/a")
	if err := k.c.Publish(k.ctx, topic, []byte(`{"hello":1}`), 1, false); err != nil {
		return err
	}
	m, err := k.c.Recorder().WaitForTopic(k.ctx, mark, topic, nil)
	if err != nil {
		return err
	}
	if string(m.Payload) != `{"hello":1}` || m.QoS != 1 || m.Retained || m.Seq <= mark || m.Time.IsZero() {
		return fmt.Errorf("got %+v, want payload {\"hello\":1}, QoS 1, not retained, Seq > %d, a time", m, mark)
	}
	return nil
}

func (k *checker) payloads() error {
	filter := k.topic("bin")
	if err := k.c.Subscribe(k.ctx, filter, 0); err != nil {
		return err
	}
	defer k.c.Unsubscribe(k.ctx, filter)
	mark := k.c.Recorder().Mark()
	bin := []byte{0, 1, 0xff, 0xfe, '\n'}
	for _, p := range [][]byte{bin, {}} {
		if err := k.c.Publish(k.ctx, filter, p, 0, false); err != nil {
			return err
		}
	}
	m1, err := k.c.Recorder().WaitForTopic(k.ctx, mark, filter, nil)
	if err != nil {
		return err
	}
	m2, err := k.c.Recorder().WaitForTopic(k.ctx, m1.Seq, filter, nil)
	if err != nil {
		return err
	}
	if !bytes.Equal(m1.Payload, bin) || len(m2.Payload) != 0 {
		return fmt.Errorf("got payloads %x and %x, want %x and empty", m1.Payload, m2.Payload, bin)
	}
	return nil
}

func (k *checker) retained() error {
	topic := k.topic("ret/status")
	if err := k.c.Publish(k.ctx, topic, []byte("online"), 1, true); err != nil {
		return err
	}
	defer k.c.Publish(k.ctx, topic, nil, 1, true) // clear it
	mark := k.c.Recorder().Mark()
	if err := k.c.Subscribe(k.ctx, topic, 1); err != nil {
		return err
	}
	defer k.c.Unsubscribe(k.ctx, topic)
	m, err := k.c.Recorder().WaitForTopic(k.ctx, mark, topic, nil)
	if err != nil {
		return err
	}
	if !m.Retained || string(m.Payload) != "online" {
		return fmt.Errorf("got %+v, want the retained \"online\" with Retained set", m)
	}
	return nil
}

func (k *checker) unsubscribe() error {
	gone, sentinel := k.topic("unsub/gone"), k.topic("unsub/sentinel")
	if err := k.c.Subscribe(k.ctx, gone, 1); err != nil {
		return err
	}
	if err := k.c.Subscribe(k.ctx, sentinel, 1); err != nil {
		return err
	}
	defer k.c.Unsubscribe(k.ctx, sentinel)
	if err := k.c.Unsubscribe(k.ctx, gone); err != nil {
		return err
	}
	mark := k.c.Recorder().Mark()
	if err := k.c.Publish(k.ctx, gone, []byte("x"), 1, false); err != nil {
		return err
	}
	if err := k.c.Publish(k.ctx, sentinel, []byte("y"), 1, false); err != nil {
		return err
	}
	if _, err := k.c.Recorder().WaitForTopic(k.ctx, mark, sentinel, nil); err != nil {
		return err
	}
	for _, m := range k.c.Recorder().Since(mark) {
		if m.Topic == gone {
			return fmt.Errorf("received %q after unsubscribing from it", gone)
		}
	}
	return nil
}

func (k *checker) timeout() error {
	ctx, cancel := context.WithTimeout(k.ctx, shortWait)
	defer cancel()
	never := k.topic("never")
	_, err := k.c.Recorder().WaitForTopic(ctx, k.c.Recorder().Mark(), never, nil)
	var te *mqtt.TimeoutError
	switch {
	case !errors.As(err, &te):
		return fmt.Errorf("got %v, want a *TimeoutError", err)
	case !errors.Is(err, mqtt.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%v: want ErrTimeout and context.DeadlineExceeded", err)
	case !bytes.Contains([]byte(te.What), []byte(never)):
		return fmt.Errorf("TimeoutError.What = %q, want it to name %q", te.What, never)
	}
	return nil
}

func (k *checker) log() error {
	topic := k.topic("log")
	if err := k.c.Subscribe(k.ctx, topic, 1); err != nil {
		return err
	}
	defer k.c.Unsubscribe(k.ctx, topic)
	rec := k.c.Recorder()
	mark := rec.Mark()
	payloads := [][]byte{[]byte("text é"), {0xff, 0x00}}
	for _, p := range payloads {
		if err := k.c.Publish(k.ctx, topic, p, 1, false); err != nil {
			return err
		}
	}
	last, err := rec.WaitFor(k.ctx, mark, func(m mqtt.Message) bool {
		return m.Topic == topic && bytes.Equal(m.Payload, payloads[1])
	})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := rec.WriteLog(&buf, mark); err != nil {
		return err
	}
	var lines []map[string]any
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var l map[string]any
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return fmt.Errorf("WriteLog line %q: %w", sc.Text(), err)
		}
		if l["topic"] == topic {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || lines[0]["payload"] != "text é" || lines[1]["payload_base64"] != "/wA=" {
		return fmt.Errorf("WriteLog wrote %v, want the text payload and the binary one in base64", lines)
	}
	if since := rec.Since(mark); len(since) == 0 || since[len(since)-1].Seq != last.Seq || since[0].Seq != mark+1 {
		return fmt.Errorf("Since(%d) is not the messages %d..%d", mark, mark+1, last.Seq)
	}
	return nil
}
