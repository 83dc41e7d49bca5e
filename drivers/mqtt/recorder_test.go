package mqtt_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/mqtt"
)

func TestMatchTopic(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"P/rd-1/status", "P/rd-1/status", true},
		{"P/rd-1/status", "P/rd-1/statu", false},
		{"P/+/status", "P/rd-1/status", true},
		{"P/+/status", "P/rd-1/x/status", false},
		{"P/#", "P", true},
		{"P/#", "P/rd-1/events", true},
		{"#", "anything/at/all", true},
		{"#", "$SYS/broker/uptime", false},
		{"+/broker/uptime", "$SYS/broker/uptime", false},
		{"$SYS/#", "$SYS/broker/uptime", true},
		{"P/+", "P/", true},
		{"P/+/+", "P/a", false},
		{"", "P", false},
	}
	for _, tt := range tests {
		if got := mqtt.MatchTopic(tt.filter, tt.topic); got != tt.want {
			t.Errorf("MatchTopic(%q, %q): got %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestRecorderLimits(t *testing.T) {
	tests := []struct {
		name               string
		maxMsgs            int
		maxBytes           int64
		add                int
		payload            int
		wantKept, wantDrop int
	}{
		{"under", 10, 1000, 5, 10, 5, 0},
		{"message limit", 10, 1 << 20, 25, 10, 10, 15},
		{"byte limit", 1000, 100, 25, 10, 10, 15},
		{"one huge message is kept", 10, 5, 1, 50, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mqtt.NewRecorder(tt.maxMsgs, tt.maxBytes)
			for i := range tt.add {
				r.Add(mqtt.Message{Topic: fmt.Sprint("t/", i), Payload: make([]byte, tt.payload)})
			}
			got := r.Since(0)
			if len(got) != tt.wantKept || r.Dropped() != int64(tt.wantDrop) {
				t.Fatalf("kept %d, dropped %d; want %d and %d", len(got), r.Dropped(), tt.wantKept, tt.wantDrop)
			}
			if r.Mark() != int64(tt.add) || got[len(got)-1].Seq != int64(tt.add) {
				t.Errorf("Mark %d, last Seq %d; want %d", r.Mark(), got[len(got)-1].Seq, tt.add)
			}
			// Since a mark in the dropped part returns what is kept.
			if s := r.Since(1); len(s) != min(tt.wantKept, tt.add-1) {
				t.Errorf("Since(1): got %d messages", len(s))
			}
		})
	}
}

func TestRecorderWait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := mqtt.NewRecorder(0, 0)
	r.Add(mqtt.Message{Topic: "P/rd-1/telemetry", Payload: []byte(`{"t":21}`)})
	mark := r.Mark()
	r.Add(mqtt.Message{Topic: "P/rd-1/events", Payload: []byte(`{"type":"boot"}`)})

	// Already there after the mark.
	m, err := r.WaitForTopic(ctx, mark, "P/+/events", nil)
	if err != nil || m.Seq != 2 {
		t.Fatalf("got %+v, %v; want seq 2", m, err)
	}
	// Arrives later, from another goroutine.
	go r.Add(mqtt.Message{Topic: "P/rd-1/events", Payload: []byte(`{"type":"auth.failure"}`)})
	m, err = r.WaitFor(ctx, mark, func(m mqtt.Message) bool { return bytes.Contains(m.Payload, []byte("auth.failure")) })
	if err != nil || m.Seq != 3 {
		t.Fatalf("got %+v, %v; want seq 3", m, err)
	}

	short, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	_, err = r.WaitForTopic(short, 0, "P/rd-1/resp", nil)
	var te *mqtt.TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, mqtt.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a *TimeoutError", err)
	}
	if te.Seen != 3 || len(te.Topics) != 2 || !strings.Contains(te.Error(), `"P/rd-1/resp"`) || !strings.Contains(te.Error(), "3 other messages") {
		t.Errorf("timeout error %q (seen %d, topics %v), want it to name the filter and the 3 messages on 2 topics", te, te.Seen, te.Topics)
	}
}

func TestWriteLog(t *testing.T) {
	r := mqtt.NewRecorder(0, 0)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	r.Add(mqtt.Message{Topic: "a", Payload: []byte("<ok> é"), QoS: 1, Time: at})
	r.Add(mqtt.Message{Topic: "b", Payload: []byte{0xff, 0xfe}, Retained: true, Time: at})
	r.Add(mqtt.Message{Topic: "c", Time: at})
	var buf bytes.Buffer
	if err := r.WriteLog(&buf, 0); err != nil {
		t.Fatal(err)
	}
	want := `{"seq":1,"time":"2026-01-02T03:04:05.000000006Z","topic":"a","qos":1,"retained":false,"payload":"<ok> é"}
{"seq":2,"time":"2026-01-02T03:04:05.000000006Z","topic":"b","qos":0,"retained":true,"payload_base64":"//4="}
{"seq":3,"time":"2026-01-02T03:04:05.000000006Z","topic":"c","qos":0,"retained":false,"payload":""}
`
	if got := buf.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
