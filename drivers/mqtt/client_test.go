package mqtt_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hilt-project/hilt/drivers/mqtt"
	"github.com/hilt-project/hilt/drivers/mqtt/mqtttest"
)

func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func dial(t testing.TB, opts mqtt.Options) mqtt.Client {
	t.Helper()
	c, err := mqtt.Dial(testCtx(t, 10*time.Second), opts)
	if err != nil {
		t.Fatalf("Dial %s: %v", opts.URL, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConformance(t *testing.T) {
	b := startBroker(t, false)
	tests := []struct {
		name string
		opts mqtt.Options
	}{
		{"plain", mqtt.Options{URL: b.URL}},
		{"tls", mqtt.Options{URL: b.TLSURL, CAPool: b.CAPool}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, tt.opts)
			if err := mqtttest.TestClient(testCtx(t, 20*time.Second), c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestConformanceWithAuth(t *testing.T) {
	b := startBroker(t, true)
	c := dial(t, mqtt.Options{URL: b.TLSURL, CAPool: b.CAPool, Username: testUser, Password: testPass})
	if err := mqtttest.TestClient(testCtx(t, 20*time.Second), c); err != nil {
		t.Fatal(err)
	}
}

func TestDialErrors(t *testing.T) {
	b := startBroker(t, true)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, b.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(t.TempDir(), "junk.pem")
	if err := os.WriteFile(notPEM, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := "mqtt://" + closedPort(t)
	silent := "mqtt://" + blackhole(t)
	tests := []struct {
		name    string
		opts    mqtt.Options
		timeout time.Duration
		want    error
	}{
		{"nothing listens", mqtt.Options{URL: refused}, 0, mqtt.ErrRefused},
		{"no credentials", mqtt.Options{URL: b.URL}, 0, mqtt.ErrNotAuthorized},
		{"wrong password", mqtt.Options{URL: b.URL, Username: testUser, Password: "wrong"}, 0, mqtt.ErrNotAuthorized},
		{"wrong password in URL", mqtt.Options{URL: strings.Replace(b.URL, "//", "//"+testUser+":wrong@", 1)}, 0, mqtt.ErrNotAuthorized},
		{"unknown CA", mqtt.Options{URL: b.TLSURL, Username: testUser, Password: testPass}, 0, mqtt.ErrTLS},
		{"CA file not PEM", mqtt.Options{URL: b.TLSURL, CAFile: notPEM}, 0, mqtt.ErrTLS},
		{"TLS to a plain port", mqtt.Options{URL: strings.Replace(b.URL, "mqtt://", "mqtts://", 1), CAFile: caFile}, 0, mqtt.ErrTLS},
		{"broker never answers", mqtt.Options{URL: silent}, 300 * time.Millisecond, mqtt.ErrConnectTimeout},
		{"bad scheme", mqtt.Options{URL: "http://127.0.0.1:1883"}, 0, mqtt.ErrBadURL},
		{"no host", mqtt.Options{URL: "mqtt://"}, 0, mqtt.ErrBadURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testCtx(t, 10*time.Second)
			if tt.timeout > 0 {
				ctx = testCtx(t, tt.timeout)
			}
			c, err := mqtt.Dial(ctx, tt.opts)
			if err == nil {
				c.Close()
				t.Fatalf("Dial succeeded, want %v", tt.want)
			}
			if c != nil {
				t.Errorf("Dial returned a non-nil client with an error")
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			host := strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(tt.opts.URL, "mqtt://"), "mqtts://"), "http://")
			if i := strings.LastIndex(host, "@"); i >= 0 {
				host = host[i+1:]
			}
			if !strings.Contains(err.Error(), host) {
				t.Errorf("%q does not name the broker %q", err, host)
			}
			if strings.Contains(err.Error(), "wrong@") {
				t.Errorf("%q shows the password", err)
			}
		})
	}
}

func TestTLSWithCAFile(t *testing.T) {
	b := startBroker(t, false)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, b.CAPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{b.TLSURL, strings.Replace(b.TLSURL, "mqtts://", "ssl://", 1), strings.Replace(b.TLSURL, "127.0.0.1", "localhost", 1)} {
		c := dial(t, mqtt.Options{URL: u, CAFile: caFile})
		if !c.Status().Connected {
			t.Errorf("%s: not connected after Dial", u)
		}
	}
}

func TestSubscribeRefused(t *testing.T) {
	b := startBroker(t, true)
	c := dial(t, mqtt.Options{URL: b.URL, Username: testUser, Password: testPass})
	ctx := testCtx(t, 10*time.Second)
	if err := c.Subscribe(ctx, "allowed/x", 1); err != nil {
		t.Fatalf("allowed filter: %v", err)
	}
	err := c.Subscribe(ctx, "secret/#", 1)
	if !errors.Is(err, mqtt.ErrSubscribeRefused) || !strings.Contains(err.Error(), "secret/#") {
		t.Fatalf("got %v, want ErrSubscribeRefused naming the filter", err)
	}
}

func TestClosed(t *testing.T) {
	b := startBroker(t, false)
	c := dial(t, mqtt.Options{URL: b.URL})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t, 10*time.Second)
	if err := c.Publish(ctx, "a", nil, 0, false); !errors.Is(err, mqtt.ErrClosed) {
		t.Errorf("Publish after Close: got %v, want ErrClosed", err)
	}
	if err := c.Subscribe(ctx, "a", 0); !errors.Is(err, mqtt.ErrClosed) {
		t.Errorf("Subscribe after Close: got %v, want ErrClosed", err)
	}
	if c.Status().Connected {
		t.Errorf("Status: connected after Close")
	}
}

func TestReconnectResubscribes(t *testing.T) {
	b := startBroker(t, false)
	px := startProxy(t, strings.TrimPrefix(b.URL, "mqtt://"))
	ctx := testCtx(t, 30*time.Second)
	c := dial(t, mqtt.Options{URL: "mqtt://" + px.Addr(), MaxReconnectInterval: 200 * time.Millisecond})
	device := dial(t, mqtt.Options{URL: b.URL})

	const topic = "P/rd-1/status"
	if err := c.Subscribe(ctx, topic, 1); err != nil {
		t.Fatal(err)
	}
	mark := c.Recorder().Mark()
	px.cut() // the network drops

	// The device publishes (retained) while, or after, the harness reconnects: either way
	// the harness must get it through its renewed subscription.
	if err := device.Publish(ctx, topic, []byte(`{"online":true}`), 1, true); err != nil {
		t.Fatal(err)
	}
	defer device.Publish(ctx, topic, nil, 1, true)
	m, err := c.Recorder().WaitForTopic(ctx, mark, topic, nil)
	if err != nil {
		t.Fatalf("after reconnect: %v (status %+v)", err, c.Status())
	}
	if string(m.Payload) != `{"online":true}` {
		t.Errorf("got %q", m.Payload)
	}
	for {
		s := c.Status()
		if s.Lost >= 1 && s.Reconnects >= 1 && s.Connected {
			if s.LastErr == nil || !strings.Contains(s.LastErr.Error(), px.Addr()) {
				t.Errorf("LastErr = %v, want the reason naming the broker", s.LastErr)
			}
			break
		}
		select {
		case <-s.Changed:
		case <-ctx.Done():
			t.Fatalf("status never showed the loss and the reconnect: %+v", s)
		}
	}
}
