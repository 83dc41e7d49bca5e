package broker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hilt-project/hilt/harness/pki"
)

// testCerts returns a run CA and a server certificate for 127.0.0.1.
func testCerts(t testing.TB) (*pki.CA, *pki.Leaf) {
	t.Helper()
	ca, err := pki.NewCA("broker test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.IssueServer([]string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	return ca, leaf
}

// recorder collects the messages a client receives.
type recorder struct {
	mu   sync.Mutex
	msgs []string // "topic payload"
	ch   chan string
}

func newRecorder() *recorder { return &recorder{ch: make(chan string, 100)} }

func (r *recorder) handle(_ paho.Client, m paho.Message) {
	s := m.Topic() + " " + string(m.Payload())
	r.mu.Lock()
	r.msgs = append(r.msgs, s)
	r.mu.Unlock()
	r.ch <- s
}

// waitFor waits for a message equal to want and returns every message received before it.
func (r *recorder) waitFor(t *testing.T, want string) []string {
	t.Helper()
	var before []string
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-r.ch:
			if got == want {
				return before
			}
			before = append(before, got)
		case <-timeout:
			t.Fatalf("no message %q within 10s; got %q", want, before)
		}
	}
}

func publish(t *testing.T, c paho.Client, topic, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func dial(t *testing.T, url string, ca *pki.CA, user, pass, id string) (paho.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, ClientConfig{URL: url, Username: user, Password: pass, ClientID: id, CAPEM: ca.CertPEM()})
	if err == nil {
		t.Cleanup(func() { c.Disconnect(0) })
	}
	return c, err
}

func mustDial(t *testing.T, url string, ca *pki.CA, user, pass, id string) paho.Client {
	t.Helper()
	c, err := dial(t, url, ca, user, pass, id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func startTestBroker(t *testing.T) (*Broker, *pki.CA) {
	t.Helper()
	ca, leaf := testCerts(t)
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	var logMu sync.Mutex
	b, err := Start(context.Background(), Options{
		Certificate: cert,
		Host:        "127.0.0.1",
		Harness:     Account{Username: HarnessUsername, Password: "harness-pass-0123456789"},
		Devices: []Account{
			{Username: "dev1", Password: "dev1-pass-0123456789"},
			{Username: "dev2", Password: "dev2-pass-0123456789"},
		},
		Log: writerFunc(func(p []byte) (int, error) {
			logMu.Lock()
			defer logMu.Unlock()
			return log.Write(p)
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			logMu.Lock()
			t.Logf("broker log:\n%s", log.String())
			logMu.Unlock()
		}
	})
	return b, ca
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestEmbeddedAuthAndACL(t *testing.T) {
	b, ca := startTestBroker(t)
	tlsURL := fmt.Sprintf("mqtts://127.0.0.1:%d", b.TLSAddr().Port)
	plainURL := fmt.Sprintf("mqtt://127.0.0.1:%d", b.PlainAddr().Port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	harness := mustDial(t, tlsURL, ca, HarnessUsername, "harness-pass-0123456789", "hilt-harness-test")
	seen := newRecorder()
	if err := Subscribe(ctx, harness, "hilt/#", seen.handle); err != nil {
		t.Fatalf("harness subscribe hilt/#: %v", err)
	}

	// dev1 binds to rd-aaaa at its first connection.
	dev1 := mustDial(t, tlsURL, ca, "dev1", "dev1-pass-0123456789", "rd-aaaa")
	if a, _ := b.Account("dev1"); a.ClientID != "rd-aaaa" {
		t.Errorf("dev1 bound to %q, want rd-aaaa", a.ClientID)
	}
	if _, err := b.WaitConnect(ctx, "dev1", netip.Addr{}); err != nil {
		t.Errorf("WaitConnect dev1: %v", err)
	}
	cmds := newRecorder()
	if err := Subscribe(ctx, dev1, "hilt/rd-aaaa/cmd", cmds.handle); err != nil {
		t.Fatalf("dev1 subscribe own cmd: %v", err)
	}
	for _, f := range []string{"hilt/#", "hilt/+/cmd", "hilt/rd-bbbb/cmd", "#", "other/x"} {
		if err := Subscribe(ctx, dev1, f, cmds.handle); !errors.Is(err, ErrDenied) {
			t.Errorf("dev1 subscribe %s: got %v, want ErrDenied", f, err)
		}
	}
	// A forbidden QoS 0 publish is dropped: the harness sees the marker that follows, not
	// it. (A forbidden QoS 1 publish from an MQTT 3.1.1 client gets it disconnected.)
	if tok := dev1.Publish("hilt/rd-bbbb/telemetry", 0, false, "forged"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	publish(t, dev1, "hilt/rd-aaaa/telemetry", "marker")
	if before := seen.waitFor(t, "hilt/rd-aaaa/telemetry marker"); len(before) > 0 {
		t.Errorf("harness received %q before the marker, want nothing (forbidden publish)", before)
	}
	publish(t, harness, "hilt/rd-aaaa/cmd", "ping")
	cmds.waitFor(t, "hilt/rd-aaaa/cmd ping")

	// Refusals.
	refusals := []struct {
		name, url, user, pass, id, reason string
	}{
		{"wrong password", tlsURL, "dev2", "wrong-password-123", "rd-bbbb", "wrong password"},
		{"unknown user", tlsURL, "nobody", "whatever-1234567", "x", "unknown user"},
		{"anonymous", tlsURL, "", "", "anon", "anonymous"},
		{"other client ID for bound account", tlsURL, "dev1", "dev1-pass-0123456789", "rd-cccc", "bound to client ID"},
		{"client ID of another account", tlsURL, "dev2", "dev2-pass-0123456789", "rd-aaaa", "bound to account"},
		{"harness with a device's client ID", tlsURL, HarnessUsername, "harness-pass-0123456789", "rd-aaaa", "belongs to device account"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			if _, err := dial(t, r.url, ca, r.user, r.pass, r.id); err == nil {
				t.Fatalf("connect as %q/%q: got nil error, want refused", r.user, r.id)
			}
			ev := b.Events()
			last := ev[len(ev)-1]
			if last.OK || !strings.Contains(last.Reason, r.reason) {
				t.Errorf("last event %v, want refused with %q", last, r.reason)
			}
		})
	}

	// dev2 is bound by the bench before it connects, then uses the plaintext listener.
	if _, err := b.Bind("dev2", "rd-bbbb"); err != nil {
		t.Fatal(err)
	}
	if res, err := b.Bind("dev2", "rd-bbbb"); err != nil || res.Previous != "" || len(res.SharedWith) > 0 {
		t.Errorf("second identical Bind: %+v, %v", res, err)
	}
	if _, err := b.Bind(HarnessUsername, "rd-eeee"); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("Bind harness: got %v, want ErrUnknownAccount", err)
	}
	if _, err := b.Bind("dev2", "a/b"); err == nil {
		t.Errorf("Bind to a client ID with '/': got nil error")
	}
	dev2 := mustDial(t, plainURL, ca, "dev2", "dev2-pass-0123456789", "rd-bbbb")
	publish(t, dev2, "hilt/rd-bbbb/status", "online")
	seen.waitFor(t, "hilt/rd-bbbb/status online")
	var plainOK bool
	for _, e := range b.Events() {
		if e.OK && e.Username == "dev2" && e.Listener == ListenerPlain {
			plainOK = true
		}
	}
	if !plainOK {
		t.Errorf("no OK event for dev2 on the plaintext listener")
	}
}

// TestRebindAndShare covers a device whose ID changes (rebinding) and two devices that report
// the same ID (sharing, as only the bench may set up).
func TestRebindAndShare(t *testing.T) {
	b, ca := startTestBroker(t)
	url := fmt.Sprintf("mqtts://127.0.0.1:%d", b.TLSAddr().Port)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := mustDial(t, url, ca, HarnessUsername, "harness-pass-0123456789", "harness")
	seen := newRecorder()
	if err := Subscribe(ctx, h, "hilt/#", seen.handle); err != nil {
		t.Fatal(err)
	}

	// dev1 connected as rd-old; its device then reports rd-new.
	old := mustDial(t, url, ca, "dev1", "dev1-pass-0123456789", "rd-old")
	old.Disconnect(0)
	res, err := b.Bind("dev1", "rd-new")
	if err != nil || res.Previous != "rd-old" {
		t.Fatalf("rebind: %+v, %v; want Previous rd-old", res, err)
	}
	if _, err := dial(t, url, ca, "dev1", "dev1-pass-0123456789", "rd-old"); err == nil {
		t.Errorf("dev1 connected with its old client ID after rebinding")
	}
	dev1 := mustDial(t, url, ca, "dev1", "dev1-pass-0123456789", "rd-new")
	publish(t, dev1, "hilt/rd-new/status", "up")
	seen.waitFor(t, "hilt/rd-new/status up")

	// dev2's device reports dev1's ID: dev2 cannot claim it by connecting, but the bench can
	// share it; the harness still cannot use it.
	if _, err := dial(t, url, ca, "dev2", "dev2-pass-0123456789", "rd-new"); err == nil {
		t.Errorf("dev2 claimed dev1's client ID by connecting")
	}
	res, err = b.Bind("dev2", "rd-new")
	if err != nil || len(res.SharedWith) != 1 || res.SharedWith[0] != "dev1" {
		t.Fatalf("shared bind: %+v, %v; want SharedWith [dev1]", res, err)
	}
	dev2 := mustDial(t, url, ca, "dev2", "dev2-pass-0123456789", "rd-new")
	publish(t, dev2, "hilt/rd-new/telemetry", "from-dev2")
	seen.waitFor(t, "hilt/rd-new/telemetry from-dev2")
	if _, err := dial(t, url, ca, HarnessUsername, "harness-pass-0123456789", "rd-new"); err == nil {
		t.Errorf("harness connected with a device's client ID")
	}
}

func TestWillOutsideSubtreeRefused(t *testing.T) {
	b, ca := startTestBroker(t)
	o := paho.NewClientOptions().
		AddBroker(fmt.Sprintf("tcp://127.0.0.1:%d", b.PlainAddr().Port)).
		SetClientID("rd-aaaa").SetUsername("dev1").SetPassword("dev1-pass-0123456789").
		SetWill("hilt/rd-bbbb/status", "offline", 1, true).
		SetAutoReconnect(false)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
		c.Disconnect(0)
		t.Fatalf("connect with a foreign will topic: got %v, want refused", tok.Error())
	}
	_ = ca
	ev := b.Events()
	if last := ev[len(ev)-1]; last.OK || !strings.Contains(last.Reason, "will topic") {
		t.Errorf("last event %v, want refused for the will topic", last)
	}
}

func TestWaitConnectReportsFailures(t *testing.T) {
	b, ca := startTestBroker(t)
	tlsURL := fmt.Sprintf("mqtts://127.0.0.1:%d", b.TLSAddr().Port)

	// A wrong password for dev1, and a client that does not trust the broker's CA.
	if _, err := dial(t, tlsURL, ca, "dev1", "not-the-password-1", "rd-aaaa"); err == nil {
		t.Fatal("wrong password accepted")
	}
	otherCA, _ := testCerts(t)
	if _, err := dial(t, tlsURL, otherCA, "dev1", "dev1-pass-0123456789", "rd-aaaa"); err == nil {
		t.Fatal("untrusting client connected")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := b.WaitConnect(ctx, "dev1", netip.MustParseAddr("127.0.0.1"))
	var ce *ConnectError
	if !errors.As(err, &ce) || !errors.Is(err, ErrNoConnect) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitConnect: got %v, want a ConnectError with ErrNoConnect and the deadline", err)
	}
	msg := err.Error()
	for _, want := range []string{"wrong password", "TLS handshake"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}

	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := b.WaitConnect(ctx2, "dev2", netip.Addr{}); err == nil || !strings.Contains(err.Error(), "no connection attempt") {
		t.Errorf("WaitConnect dev2: got %v, want no attempt seen", err)
	}
}

func TestStartBadOptions(t *testing.T) {
	_, leaf := testCerts(t)
	cert, err := leaf.TLSCertificate()
	if err != nil {
		t.Fatal(err)
	}
	h := Account{Username: HarnessUsername, Password: "p-0123456789"}
	tests := []struct {
		name string
		opts Options
	}{
		{"no certificate", Options{Harness: h}},
		{"no harness", Options{Certificate: cert}},
		{"duplicate account", Options{Certificate: cert, Harness: h, Devices: []Account{{Username: "d", Password: "p"}, {Username: "d", Password: "q"}}}},
		{"device without password", Options{Certificate: cert, Harness: h, Devices: []Account{{Username: "d"}}}},
		{"bad host", Options{Certificate: cert, Harness: h, Host: "203.0.113.77"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Start(context.Background(), tc.opts)
			if err == nil {
				b.Close()
				t.Fatalf("Start: got nil error")
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    URL
		wantErr bool
	}{
		{in: "mqtts://u:p@broker.example:8884", want: URL{TLS: true, Host: "broker.example:8884", Username: "u", Password: "p"}},
		{in: "mqtts://broker.example", want: URL{TLS: true, Host: "broker.example:8883"}},
		{in: "ssl://10.0.0.1", want: URL{TLS: true, Host: "10.0.0.1:8883"}},
		{in: "mqtt://h", want: URL{Host: "h:1883"}},
		{in: "tcp://[::1]:1884", want: URL{Host: "[::1]:1884"}},
		{in: "http://h", wantErr: true},
		{in: "mqtts://", wantErr: true},
		{in: "mqtts://h:99999", wantErr: true},
		{in: "mqtts://h/path", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseURL(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("ParseURL(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("ParseURL(%q) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
	u, _ := ParseURL("mqtts://u:secret@h")
	if strings.Contains(u.String(), "secret") {
		t.Errorf("String() %q shows the password", u.String())
	}
	if _, err := ParseURL("http://u:secret@h"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("error %v shows the password", err)
	}
}
