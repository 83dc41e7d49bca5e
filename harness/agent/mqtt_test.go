package agent

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/mqtt"
	"github.com/hilt-project/hilt/drivers/mqtt/mqtttest"
	"github.com/hilt-project/hilt/wire"
)

// TestMQTTLinkLost: a command over MQTT that gets no answer is the device's silence
// (ErrNoAnswer) while the harness's broker connection is up, and the harness's link lost
// (ErrLinkLost) when that connection is down or broke meanwhile.
func TestMQTTLinkLost(t *testing.T) {
	cases := []struct {
		name  string
		setup func(f *mqtttest.Fake)
		want  error
	}{
		{"device silent", func(*mqtttest.Fake) {}, ErrNoAnswer},
		{"broker down before the command", func(f *mqtttest.Fake) { f.Drop(errors.New("EOF")) }, ErrLinkLost},
		{"broker lost during the wait", func(f *mqtttest.Fake) {
			f.Respond(func(m mqtt.Message) []mqtt.Message {
				go f.Drop(errors.New("connection reset"))
				return nil
			})
		}, ErrLinkLost},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := mqtttest.NewFake()
			defer f.Close()
			tc.setup(f)
			tr := NewMQTT("dev1", f, "hilt", "rd-1", "t1")
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := tr.Do(ctx, nil, "ping", nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want == ErrLinkLost && errors.Is(err, ErrNoAnswer) {
				t.Errorf("a lost broker connection reads as the device's silence: %v", err)
			}
		})
	}
}

// TestMQTTDoRepeating: a request the device does not hear (it is reconnecting) is sent
// again; an answer to any copy, however late, ends the wait; a device that never answers
// is ErrNoAnswer when the context ends.
func TestMQTTDoRepeating(t *testing.T) {
	cases := []struct {
		name string
		// answer says which copy (1-based) the device answers, and after how many copies
		// have been sent; 0 never.
		answerCopy, afterCopies int
		wantErr                 error
		minCopies               int
	}{
		{"answers the first copy at once", 1, 1, nil, 1},
		{"misses two copies, answers the third", 3, 3, nil, 3},
		{"answers the first copy late, after the third was sent", 1, 3, nil, 3},
		{"never answers", 0, 0, ErrNoAnswer, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := mqtttest.NewFake()
			defer f.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			playDevice(ctx, t, f, func(corrs []string) (string, bool) {
				if tc.answerCopy == 0 || len(corrs) != tc.afterCopies {
					return "", false
				}
				return corrs[tc.answerCopy-1], true
			})
			tr := NewMQTT("dev1", f, "hilt", "rd-1", "t1")
			res, err := tr.DoRepeating(ctx, 100*time.Millisecond, nil, "ping", nil)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr != nil) != (err != nil) {
				t.Fatalf("got %v (result %s), want %v", err, res, tc.wantErr)
			}
			if n := len(f.Published()); n < tc.minCopies {
				t.Errorf("%d copies published, want at least %d", n, tc.minCopies)
			}
			if err == nil && string(res) != `{"pong":true}` {
				t.Errorf("result %s, want the device's answer", res)
			}
		})
	}
}

// TestMQTTDoRepeatingLinkBack: copies that cannot be published while the harness's link to
// the broker is down are tried again, and the answer to one sent once it is back counts.
func TestMQTTDoRepeatingLinkBack(t *testing.T) {
	f := mqtttest.NewFake()
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	playDevice(ctx, t, f, func(corrs []string) (string, bool) { return corrs[len(corrs)-1], true })
	f.Drop(errors.New("connection reset"))
	time.AfterFunc(250*time.Millisecond, f.Restore)
	tr := NewMQTT("dev1", f, "hilt", "rd-1", "t1")
	if _, err := tr.DoRepeating(ctx, 50*time.Millisecond, nil, "ping", nil); err != nil {
		t.Fatalf("DoRepeating across a dropped and restored link: %v", err)
	}
	// Without a repeat, the same drop is the harness's link lost at once.
	f.Drop(errors.New("connection reset"))
	if _, err := tr.Do(ctx, nil, "ping", nil); !errors.Is(err, ErrLinkLost) {
		t.Errorf("Do with the link down: %v, want ErrLinkLost", err)
	}
}

// playDevice subscribes f to device rd-1's answers and plays the device: after each request
// it is given the correlation IDs seen so far and says which one to answer ({"pong":true}),
// if any.
func playDevice(ctx context.Context, t *testing.T, f *mqtttest.Fake, answer func(corrs []string) (string, bool)) {
	t.Helper()
	if err := f.Subscribe(ctx, Topic("hilt", "rd-1", "resp"), 1); err != nil {
		t.Fatal(err)
	}
	var corrs []string
	f.Respond(func(m mqtt.Message) []mqtt.Message {
		var req wire.Request
		if err := json.Unmarshal(m.Payload, &req); err != nil || m.Topic != Topic("hilt", "rd-1", "cmd") {
			return nil
		}
		corrs = append(corrs, req.Corr)
		corr, ok := answer(corrs)
		if !ok {
			return nil
		}
		b, _ := json.Marshal(wire.Response{Corr: corr, OK: true, Result: json.RawMessage(`{"pong":true}`)})
		return []mqtt.Message{{Topic: Topic("hilt", "rd-1", "resp"), Payload: b}}
	})
}
