package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/mqtt"
	"github.com/hilt-project/hilt/drivers/mqtt/mqtttest"
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
