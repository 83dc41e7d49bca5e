package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hilt-project/hilt/drivers/serial"
	"github.com/hilt-project/hilt/wire"
)

func TestFormatLine(t *testing.T) {
	cases := []struct {
		name string
		cmd  string
		args map[string]any
		want string
		err  string
	}{
		{"no args", "info", nil, "info", ""},
		{"positional", "user.add", map[string]any{"user": "v", "pass": "p1", "role": "viewer"}, "user.add v p1 viewer", ""},
		{"rest of line", "config.set", map[string]any{"key": "ntp_server", "value": "a b"}, "config.set ntp_server a b", ""},
		{"bool as on/off", "iface.set", map[string]any{"name": "debug", "enabled": false}, "iface.set debug off", ""},
		{"optional last", "config.get", map[string]any{}, "config.get", ""},
		{"number", "log.read", map[string]any{"since": int64(7)}, "log.read 7", ""},
		{"space inside a word", "user.add", map[string]any{"user": "a b", "pass": "p", "role": "viewer"}, "", "space"},
		{"no console form", "config.get", map[string]any{"bogus": 1}, "", "no console form"},
		{"missing middle", "user.add", map[string]any{"user": "a", "role": "viewer"}, "", "missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FormatLine(tc.cmd, tc.args)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseAnswer(t *testing.T) {
	cases := []struct {
		in   string
		ok   bool
		rest string
	}{
		{"OK {\"id\":\"rd-1\"}\r\n", true, `{"id":"rd-1"}`},
		{"refdev> OK {}\n", true, "{}"},
		{"ERR auth wrong password\r\n", false, "auth wrong password"},
		{"refdev> ERR locked try later\n", false, "locked try later"},
		{"OK\n", true, ""},
	}
	for _, tc := range cases {
		ok, rest := parseAnswer(tc.in)
		if ok != tc.ok || rest != tc.rest {
			t.Errorf("parseAnswer(%q) = %v, %q; want %v, %q", tc.in, ok, rest, tc.ok, tc.rest)
		}
	}
}

// scripted is a lineIO that answers from a script, for the text transport's own tests.
type scripted struct {
	sent    []string
	answers []string
}

func (s *scripted) send(_ context.Context, line string) error {
	s.sent = append(s.sent, line)
	return nil
}

func (s *scripted) answer(context.Context) (bool, string, error) {
	if len(s.answers) == 0 {
		return false, "", errors.New("no more answers")
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	ok, rest := parseAnswer(a + "\n")
	return ok, rest, nil
}

func TestTextLogsInAndOut(t *testing.T) {
	io := &scripted{answers: []string{`OK {"user":"owner"}`, `OK {"settings":{}}`, "OK {}", "ERR auth not logged in"}}
	tr := &text{device: "dev1", iface: "console", io: io}
	admin := &wire.Auth{User: "owner", Pass: "pw-123"}
	if _, err := tr.Do(context.Background(), admin, "config.get", nil); err != nil {
		t.Fatal(err)
	}
	_, err := tr.Do(context.Background(), nil, "config.get", nil)
	if Code(err) != wire.CodeAuth {
		t.Fatalf("got %v, want a refusal with code auth", err)
	}
	want := []string{"login owner pw-123", "config.get", "logout", "config.get"}
	if strings.Join(io.sent, "|") != strings.Join(want, "|") {
		t.Errorf("sent %q, want %q", io.sent, want)
	}
}

func TestUploadChunks(t *testing.T) {
	img := strings.Repeat("A", 2*ChunkSize+12) // base64 text, a multiple of 4
	io := &scripted{answers: []string{"OK {}", "OK {}", "OK {}", "OK {}", `OK {"installed":true}`}}
	tr := &text{device: "dev1", iface: "console", io: io}
	r, err := tr.Do(context.Background(), nil, "update.install", map[string]any{"image": img})
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Installed bool }
	if json.Unmarshal(r, &got); !got.Installed {
		t.Errorf("result %s", r)
	}
	if len(io.sent) != 5 || !strings.HasPrefix(io.sent[0], "update.begin ") || io.sent[4] != "update.end" {
		t.Errorf("sent %d lines: %.80q", len(io.sent), io.sent)
	}
}

func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{"OK {}\n", "ERR auth x\r\n", "refdev> OK {\"a\":1}\n", "\x00OK\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok, rest := parseAnswer(s)
		if ok && strings.ContainsAny(rest, "\r\n") {
			t.Fatalf("answer %q kept a line break: %q", s, rest)
		}
	})
}

func FuzzDecodeResponse(f *testing.F) {
	f.Add([]byte(`{"corr":"c1","ok":true,"result":{"id":"x"}}`))
	f.Add([]byte(`{"corr":"c1","ok":false,"error":{"code":"auth","message":"no"}}`))
	f.Add([]byte(`{"ok":false}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r wire.Response
		if json.Unmarshal(b, &r) != nil {
			return
		}
		res, err := decodeResponse("d", "mqtt", "c", r)
		if r.OK && err != nil {
			t.Fatalf("an OK response gave an error: %v", err)
		}
		if !r.OK && (err == nil || res != nil) {
			t.Fatalf("a refusal gave result %s, error %v", res, err)
		}
	})
}

// lossy is a lineIO whose answers can fail; "SIGN" answers the last sign command with
// its nonce.
type lossy struct {
	sent    []string
	answers []any // string or error
}

func (l *lossy) send(_ context.Context, line string) error {
	l.sent = append(l.sent, line)
	return nil
}

func (l *lossy) answer(context.Context) (bool, string, error) {
	if len(l.answers) == 0 {
		return false, "", errors.New("no more answers")
	}
	a := l.answers[0]
	l.answers = l.answers[1:]
	if err, ok := a.(error); ok {
		return false, "", err
	}
	s := a.(string)
	if s == "SIGN" {
		nonce := strings.TrimPrefix(l.sent[len(l.sent)-1], "sign ")
		s = `OK {"id":"rd-1","nonce":"` + nonce + `","sig":"x"}`
	}
	ok, rest := parseAnswer(s + "\n")
	return ok, rest, nil
}

// TestTextResync: after a command whose answer was lost, the late answer is not taken for
// the next command's: the transport resynchronises on a nonce and logs out first. A lost
// serial port is the harness's link lost, a silent device no answer.
func TestTextResync(t *testing.T) {
	gone := &serial.GoneError{Port: "/dev/ttyUSB0", Err: errors.New("read: EIO")}
	timeout := &serial.TimeoutError{Port: "/dev/ttyUSB0", Want: "answer", Err: context.DeadlineExceeded}
	cases := []struct {
		name     string
		lost     error
		sentinel error
	}{
		{"port vanished", gone, ErrLinkLost},
		{"no answer in time", timeout, ErrNoAnswer},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			io := &lossy{answers: []any{
				tc.lost,                     // config.get: lost
				`OK {"settings":{"a":"1"}}`, // its late answer
				"SIGN",                      // the resync
				"ERR auth not logged in",    // logout
				`OK {"interfaces":{"console":true}}`,
			}}
			tr := &text{device: "dev1", iface: "console", io: io}
			_, err := tr.Do(context.Background(), nil, "config.get", nil)
			if !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), "/dev/ttyUSB0") {
				t.Fatalf("lost answer: got %v, want %v naming the port", err, tc.sentinel)
			}
			if tc.sentinel == ErrLinkLost && errors.Is(err, ErrNoAnswer) {
				t.Errorf("a vanished port reads as the device's silence: %v", err)
			}
			r, err := tr.Do(context.Background(), nil, "iface.list", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(r), "interfaces") {
				t.Errorf("iface.list got %s: a stale answer", r)
			}
			if len(io.sent) != 4 || !strings.HasPrefix(io.sent[1], "sign ") || io.sent[2] != "logout" || io.sent[3] != "iface.list" {
				t.Errorf("sent %q, want config.get, sign <nonce>, logout, iface.list", io.sent)
			}
		})
	}
}
