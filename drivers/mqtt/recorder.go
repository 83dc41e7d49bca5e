package mqtt

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Message is one received message.
type Message struct {
	Topic    string
	Payload  []byte
	Retained bool
	QoS      byte
	// Time is when the harness received it.
	Time time.Time
	// Seq numbers the messages a Recorder received, from 1.
	Seq int64
}

// ErrTimeout: the context ended before the awaited message arrived.
var ErrTimeout = errors.New("timed out waiting for an MQTT message")

// TimeoutError is returned by WaitFor when its context ends first.
type TimeoutError struct {
	// What names what was awaited (a topic filter, "a message matching ...").
	What string
	// Since is the mark the wait started from.
	Since int64
	// Seen counts the messages after Since that did not match.
	Seen int
	// Topics lists some of the topics of those messages (at most 10).
	Topics []string
	// Err is the context's error.
	Err error
}

func (e *TimeoutError) Error() string {
	seen := "no message at all"
	if e.Seen > 0 {
		seen = fmt.Sprintf("%d other messages (topics: %s)", e.Seen, strings.Join(e.Topics, ", "))
	}
	return fmt.Sprintf("mqtt: %v: %s after seq %d (%v); saw %s", ErrTimeout, e.What, e.Since, e.Err, seen)
}

// Is reports ErrTimeout.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Unwrap returns the context's error.
func (e *TimeoutError) Unwrap() error { return e.Err }

// Recorder keeps the messages a client received, in order, within limits.
// It is safe for concurrent use.
type Recorder struct {
	maxMessages int
	maxBytes    int64

	mu      sync.Mutex
	msgs    []Message // consecutive Seqs
	bytes   int64     // payload bytes in msgs
	seq     int64     // Seq of the last message added
	dropped int64
	wake    chan struct{}
}

// Default limits of a Recorder.
const (
	DefaultRecordMessages = 100000
	DefaultRecordBytes    = 64 << 20
)

// NewRecorder returns a Recorder that keeps at most maxMessages messages and maxBytes
// bytes of payload, dropping the oldest beyond (0 means the default).
func NewRecorder(maxMessages int, maxBytes int64) *Recorder {
	if maxMessages <= 0 {
		maxMessages = DefaultRecordMessages
	}
	if maxBytes <= 0 {
		maxBytes = DefaultRecordBytes
	}
	return &Recorder{maxMessages: maxMessages, maxBytes: maxBytes, wake: make(chan struct{})}
}

// Add records m, setting its Seq (and its Time, if zero), and returns it. Clients call
// it for every message they receive; fakes and tests may call it too.
func (r *Recorder) Add(m Message) Message {
	if m.Time.IsZero() {
		m.Time = time.Now()
	}
	m.Payload = bytes.Clone(m.Payload)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	m.Seq = r.seq
	r.msgs = append(r.msgs, m)
	r.bytes += int64(len(m.Payload))
	for len(r.msgs) > 1 && (len(r.msgs) > r.maxMessages || r.bytes > r.maxBytes) {
		r.bytes -= int64(len(r.msgs[0].Payload))
		r.msgs[0] = Message{}
		r.msgs = r.msgs[1:]
		r.dropped++
	}
	close(r.wake)
	r.wake = make(chan struct{})
	return m
}

// Mark returns the Seq of the last message received (0 before the first): the messages
// after it are Since(mark).
func (r *Recorder) Mark() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// Dropped returns how many old messages were dropped to stay within the limits.
func (r *Recorder) Dropped() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.dropped
}

// afterLocked returns the kept messages with Seq > since. Called with mu held; the
// result shares the backing array (Add zeroes dropped entries), so callers copy it
// before unlocking.
func (r *Recorder) afterLocked(since int64) []Message {
	if len(r.msgs) == 0 {
		return nil
	}
	first := r.msgs[0].Seq
	i := max(0, since-first+1)
	if i >= int64(len(r.msgs)) {
		return nil
	}
	return r.msgs[i:]
}

// Since returns the kept messages received after mark, oldest first.
func (r *Recorder) Since(mark int64) []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.afterLocked(mark))
}

// WaitFor returns the first message after since for which pred is true, waiting for it
// until ctx is done. A message received before the call but after since counts. On
// timeout it returns a *TimeoutError.
func (r *Recorder) WaitFor(ctx context.Context, since int64, pred func(Message) bool) (Message, error) {
	return r.wait(ctx, since, "a message matching the predicate", pred)
}

// WaitForTopic returns the first message after since on a topic that matches filter
// (MQTT wildcards + and # allowed) and for which pred, if not nil, is true.
func (r *Recorder) WaitForTopic(ctx context.Context, since int64, filter string, pred func(Message) bool) (Message, error) {
	what := fmt.Sprintf("a message on %q", filter)
	if pred != nil {
		what += " matching the predicate"
	}
	return r.wait(ctx, since, what, func(m Message) bool {
		return MatchTopic(filter, m.Topic) && (pred == nil || pred(m))
	})
}

func (r *Recorder) wait(ctx context.Context, since int64, what string, pred func(Message) bool) (Message, error) {
	checked := since
	seen := 0
	var topics []string
	for {
		r.mu.Lock()
		batch := slices.Clone(r.afterLocked(checked))
		wake := r.wake
		r.mu.Unlock()
		for _, m := range batch {
			if pred(m) {
				return m, nil
			}
			seen++
			if len(topics) < 10 && !slices.Contains(topics, m.Topic) {
				topics = append(topics, m.Topic)
			}
			checked = m.Seq
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return Message{}, &TimeoutError{What: what, Since: since, Seen: seen, Topics: topics, Err: ctx.Err()}
		}
	}
}

// logLine is one message in WriteLog's JSON lines.
type logLine struct {
	Seq           int64     `json:"seq"`
	Time          time.Time `json:"time"`
	Topic         string    `json:"topic"`
	QoS           byte      `json:"qos"`
	Retained      bool      `json:"retained"`
	Payload       *string   `json:"payload,omitempty"`
	PayloadBase64 *string   `json:"payload_base64,omitempty"`
}

// WriteLog writes the kept messages after since to w, one JSON object per line:
// seq, time, topic, qos, retained, and the payload as "payload" (text, when it is valid
// UTF-8) or "payload_base64".
func (r *Recorder) WriteLog(w io.Writer, since int64) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, m := range r.Since(since) {
		l := logLine{Seq: m.Seq, Time: m.Time.UTC(), Topic: m.Topic, QoS: m.QoS, Retained: m.Retained}
		if utf8.Valid(m.Payload) {
			s := string(m.Payload)
			l.Payload = &s
		} else {
			s := base64.StdEncoding.EncodeToString(m.Payload)
			l.PayloadBase64 = &s
		}
		if err := enc.Encode(l); err != nil {
			return fmt.Errorf("mqtt: write message log: %w", err)
		}
	}
	return nil
}

// MatchTopic reports whether topic matches the subscription filter (MQTT 3.1.1 §4.7:
// "+" matches one level, a final "#" any number of levels including none; wildcards at
// the first level do not match topics that start with "$").
func MatchTopic(filter, topic string) bool {
	if filter == "" || topic == "" {
		return false
	}
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fs := strings.Split(filter, "/")
	ts := strings.Split(topic, "/")
	for i, f := range fs {
		if f == "#" {
			return i == len(fs)-1
		}
		if i >= len(ts) {
			return false
		}
		if f != "+" && f != ts[i] {
			return false
		}
	}
	return len(fs) == len(ts)
}
