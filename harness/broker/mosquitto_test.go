package broker

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireMosquitto skips the test where Mosquitto is not installed, except in CI, where
// a missing Mosquitto is a broken CI setup and fails the test.
func requireMosquitto(t *testing.T) {
	t.Helper()
	for _, exe := range []string{"mosquitto", "mosquitto_passwd"} {
		if _, err := exec.LookPath(exe); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not installed, and CI=true: install it (apt-get install -y mosquitto)", exe)
			}
			t.Skipf("%s is not installed (apt-get install -y mosquitto); skipping", exe)
		}
	}
}

func TestMosquitto(t *testing.T) {
	requireMosquitto(t)
	ca, leaf := testCerts(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var log strings.Builder
	harness := Account{Username: HarnessUsername, Password: "harness-pass-0123456789"}
	m, err := StartMosquitto(ctx, t.TempDir(), MosquittoOptions{
		CAPEM: ca.CertPEM(), CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM,
		Harness: harness,
		Devices: []Account{
			{Username: "dev1", Password: "dev1-pass-0123456789"},
			{Username: "dev2", Password: "dev2-pass-0123456789"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := m.PID()
	t.Cleanup(func() {
		m.Close()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s\n%s", m.Log(), log.String())
		}
	})
	if !strings.HasPrefix(m.URL(), "mqtts://127.0.0.1:") || m.TLSPort() == m.PlainPort() {
		t.Errorf("URL %s, ports %d/%d", m.URL(), m.TLSPort(), m.PlainPort())
	}

	h := mustDial(t, m.URL(), ca, harness.Username, harness.Password, "hilt-harness-test")
	seen := newRecorder()
	if err := Subscribe(ctx, h, "hilt/#", seen.handle); err != nil {
		t.Fatalf("harness subscribe: %v", err)
	}
	if _, err := dial(t, m.URL(), ca, "dev1", "wrong-password-1", "rd-aaaa"); err == nil {
		t.Errorf("wrong password accepted")
	}
	if _, err := dial(t, m.PlainURL(), ca, "", "", "anon"); err == nil {
		t.Errorf("anonymous client accepted on the plaintext listener")
	}

	// Before Bind a device account may use any device's subtree; after, only its own.
	dev1 := mustDial(t, m.URL(), ca, "dev1", "dev1-pass-0123456789", "rd-aaaa")
	if err := Subscribe(ctx, dev1, "hilt/rd-aaaa/cmd", seen.handle); err != nil {
		t.Fatalf("dev1 subscribe own topic before Bind: %v", err)
	}
	if _, err := m.Bind(ctx, "dev1", "rd-aaaa"); err != nil {
		t.Fatal(err)
	}
	// Mosquitto's ACL file grants every SUBSCRIBE and checks read access at delivery: the
	// other device's message must not arrive, the marker after it must.
	got := newRecorder()
	if err := Subscribe(ctx, dev1, "hilt/rd-bbbb/cmd", got.handle); err != nil && !errors.Is(err, ErrDenied) {
		t.Errorf("dev1 subscribe another device's topic after Bind: %v", err)
	}
	if err := Subscribe(ctx, dev1, "hilt/rd-aaaa/x", got.handle); err != nil {
		t.Errorf("dev1 subscribe own topic after Bind: %v", err)
	}
	publish(t, h, "hilt/rd-bbbb/cmd", "secret")
	publish(t, h, "hilt/rd-aaaa/x", "marker")
	if before := got.waitFor(t, "hilt/rd-aaaa/x marker"); len(before) > 0 {
		t.Errorf("dev1 received %q, want nothing of another device's topics", before)
	}
	seen.waitFor(t, "hilt/rd-aaaa/x marker")
	publish(t, dev1, "hilt/rd-bbbb/telemetry", "forged")
	publish(t, dev1, "hilt/rd-aaaa/telemetry", "marker")
	if before := seen.waitFor(t, "hilt/rd-aaaa/telemetry marker"); len(before) > 0 {
		t.Errorf("harness received %q before the marker, want nothing", before)
	}
	if res, err := m.Bind(ctx, "dev1", "rd-aaaa"); err != nil || res.Previous != "" {
		t.Errorf("identical Bind: %+v, %v", res, err)
	}
	if _, err := m.Bind(ctx, "nobody", "rd-cccc"); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("Bind unknown: got %v, want ErrUnknownAccount", err)
	}

	// The plaintext listener serves device accounts (a plaintext-MQTT flaw uses it).
	dev2 := mustDial(t, m.PlainURL(), ca, "dev2", "dev2-pass-0123456789", "rd-bbbb")
	publish(t, dev2, "hilt/rd-bbbb/status", "online")
	seen.waitFor(t, "hilt/rd-bbbb/status online")

	// Rebinding moves the account: dev2's device now reports rd-cccc.
	if res, err := m.Bind(ctx, "dev2", "rd-bbbb"); err != nil || res.Previous != "" {
		t.Fatalf("bind dev2: %+v, %v", res, err)
	}
	if res, err := m.Bind(ctx, "dev2", "rd-cccc"); err != nil || res.Previous != "rd-bbbb" {
		t.Fatalf("rebind dev2: %+v, %v; want Previous rd-bbbb", res, err)
	}
	publish(t, dev2, "hilt/rd-bbbb/telemetry", "old-id")
	publish(t, dev2, "hilt/rd-cccc/telemetry", "new-id")
	if before := seen.waitFor(t, "hilt/rd-cccc/telemetry new-id"); len(before) > 0 {
		t.Errorf("harness received %q, want nothing from dev2's old subtree", before)
	}
	// Two devices reporting the same ID share it.
	if res, err := m.Bind(ctx, "dev2", "rd-aaaa"); err != nil || len(res.SharedWith) != 1 || res.SharedWith[0] != "dev1" {
		t.Errorf("shared bind: %+v, %v; want SharedWith [dev1]", res, err)
	}

	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("mosquitto PID %d after Close: kill -0 = %v, want ESRCH", pid, err)
	}
}

func TestMosquittoBadConfig(t *testing.T) {
	requireMosquitto(t)
	ca, leaf := testCerts(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A key that does not match the certificate: Mosquitto refuses to start, and the error
	// carries its log.
	_, other := testCerts(t)
	_, err := StartMosquitto(ctx, t.TempDir(), MosquittoOptions{
		CAPEM: ca.CertPEM(), CertPEM: leaf.CertPEM, KeyPEM: other.KeyPEM,
		Harness: Account{Username: HarnessUsername, Password: "harness-pass-0123456789"},
	})
	if !errors.Is(err, ErrMosquittoExited) {
		t.Fatalf("StartMosquitto with a mismatched key: got %v, want ErrMosquittoExited", err)
	}
	if _, err := StartMosquitto(ctx, t.TempDir(), MosquittoOptions{
		CAPEM: ca.CertPEM(), CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM,
		Harness: Account{Username: "has:colon", Password: "x"},
	}); err == nil {
		t.Errorf("user name with ':' accepted")
	}
}
