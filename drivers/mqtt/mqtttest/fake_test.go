package mqtttest_test

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

func TestFakeConformance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := mqtttest.TestClient(ctx, mqtttest.NewFake()); err != nil {
		t.Fatal(err)
	}
}

func TestFakeRequestResponse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := mqtttest.NewFake()
	f.Respond(func(m mqtt.Message) []mqtt.Message {
		if m.Topic != "P/rd-1/cmd" {
			return nil
		}
		var req wire.Request
		if err := json.Unmarshal(m.Payload, &req); err != nil {
			return nil
		}
		resp, _ := json.Marshal(wire.Response{Corr: req.Corr, OK: true})
		return []mqtt.Message{{Topic: "P/rd-1/resp", Payload: resp, QoS: 1}}
	})
	if err := f.Subscribe(ctx, "P/rd-1/resp", 1); err != nil {
		t.Fatal(err)
	}
	mark := f.Recorder().Mark()
	req, _ := json.Marshal(wire.Request{Corr: "c7", Cmd: "ping"})
	if err := f.Publish(ctx, "P/rd-1/cmd", req, 1, false); err != nil {
		t.Fatal(err)
	}
	m, err := f.Recorder().WaitForTopic(ctx, mark, "P/rd-1/resp", func(m mqtt.Message) bool {
		var r wire.Response
		return json.Unmarshal(m.Payload, &r) == nil && r.Corr == "c7"
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.QoS != 1 {
		t.Errorf("QoS %d, want 1", m.QoS)
	}
	if p := f.Published(); len(p) != 1 || p[0].Topic != "P/rd-1/cmd" {
		t.Errorf("Published: %+v", p)
	}
}

func TestFakeDropRestoreRefuse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := mqtttest.NewFake()
	f.RefuseSubscribe("other/#")
	if err := f.Subscribe(ctx, "other/#", 0); !errors.Is(err, mqtt.ErrSubscribeRefused) {
		t.Errorf("refused filter: got %v", err)
	}
	st := f.Status()
	f.Drop(nil)
	select {
	case <-st.Changed:
	default:
		t.Errorf("Status.Changed not closed by Drop")
	}
	if err := f.Publish(ctx, "a", nil, 0, false); !errors.Is(err, mqtt.ErrNotConnected) {
		t.Errorf("Publish while down: got %v", err)
	}
	f.Restore()
	if s := f.Status(); !s.Connected || s.Lost != 1 || s.Reconnects != 1 || s.LastErr == nil {
		t.Errorf("status after restore: %+v", s)
	}
}
