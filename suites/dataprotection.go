package suites

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"

	"github.com/hilt-project/hilt/drivers/mqtt"
	"github.com/hilt-project/hilt/drivers/netprobe"
	"github.com/hilt-project/hilt/harness/secretscan"
	"github.com/hilt-project/hilt/wire"
)

// dataProtection holds the DP checks: 8259A Data Protection.
func (e *Env) dataProtection() {
	e.check("DP-01", e.dp01)

	e.check("DP-02", func(ctx SpecContext, c *C) {
		in := e.S.Inst
		if in.HarnessAddress == "" {
			c.Errorf("the profile gives no harness_address for unit %s: nowhere to offer it a server", e.S.Name)
		}
		if e.S.MQ == nil {
			c.Errorf("no MQTT broker in the profile: the device's broker connection cannot be redirected and brought back")
		}
		srv, err := startUntrustedTLS(in.HarnessAddress)
		c.Must(err, "start a TLS server with an untrusted certificate")
		DeferCleanup(srv.Close)
		ifs, err := e.ifacesOver(ctx, wire.IfaceConsole)
		c.Must(err, "read the interface states on the console")
		// Cleanups run last first: take a mark, restore mqtt_broker, await the device
		// online on its own broker again.
		var mq int64
		redirected := false
		DeferCleanup(func(ctx SpecContext) {
			if !redirected || !ifs[wire.IfaceMQTT] {
				return
			}
			bctx, cancel := context.WithTimeout(ctx, e.S.Profile.Timeouts.Boot.Duration)
			defer cancel()
			if err := e.S.AwaitAnswering(bctx, mq); err != nil {
				c.Errorf("the device did not come back online and answering on its broker after mqtt_broker was restored: %v", err)
			}
		}, NodeTimeout(e.S.Profile.Timeouts.Check.Duration))
		c.Restore(ctx)
		DeferCleanup(func() { mq = e.S.MQ.Recorder().Mark() })
		c.Must(e.S.Set(ctx, "mqtt_broker", srv.Addr()), "point mqtt_broker at the harness's server "+srv.Addr())
		redirected = true
		if !ifs[wire.IfaceMQTT] {
			c.Must(e.setIface(ctx, wire.IfaceConsole, wire.IfaceMQTT, true), "switch mqtt on")
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		a, err := srv.Next(wctx)
		if err != nil {
			c.Errorf("the device made no connection to %s within 10 s after mqtt_broker was set to it: nothing observed (%v)", srv.Addr(), err)
		}
		c.writeEvidence("dp02-server.txt", "what the harness's untrusted TLS server saw", []byte(a.String()))
		switch {
		case !a.TLS && len(a.First) > 0:
			c.Failf("the device sent %d bytes that are not TLS to %s (%q...): it did not even try to verify the server", len(a.First), srv.Addr(), a.First)
		case a.Completed && len(a.Data) > 0:
			c.Failf("the device completed a TLS handshake with a server whose certificate is from an untrusted CA and sent %d bytes of application data (%s)", len(a.Data), describeMQTT(a.Data))
		case a.Completed:
			c.Failf("the device completed a TLS handshake with a server whose certificate is from an untrusted CA (it sent no data within %s)", dataWait)
		}
		if len(a.First) == 0 {
			c.Note("the device connected to the untrusted server and closed the connection without sending anything")
			return
		}
		c.Note("the device aborted the handshake with the untrusted server: %v", a.HandshakeErr)
	})

	e.check("DP-03", func(ctx SpecContext, c *C) {
		if e.Backend == nil {
			Skip("storage of an external unit cannot be read; declare storage in the profile")
		}
		psk := c.Secret("hilt-psk-" + randHex(12))
		c.Must(e.S.Call(ctx, wire.IfaceConsole, "userdata.set", map[string]any{"key": "wifi_psk", "value": psk}, nil), "store user data (wifi_psk) as admin")
		DeferCleanup(func(ctx SpecContext) {
			if err := e.S.Call(ctx, wire.IfaceConsole, "userdata.del", map[string]any{"key": "wifi_psk"}, nil); err != nil {
				c.Errorf("leave the device as found: delete the planted wifi_psk: %v", err)
			}
		})
		viewer := e.tempUser(ctx, c, "hiltdp", "viewer")
		secrets := []string{psk, viewer.Pass, e.S.Admin.Pass}
		names := []string{"the planted wifi_psk", "the password of user " + viewer.User, "the admin password"}
		if p := e.S.Inst.MQTT.Pass; p != "" {
			secrets, names = append(secrets, p), append(names, "the device's broker password")
		}
		keys, keyNames, err := e.keystoreSecrets()
		c.Must(err, "read the key store "+e.S.Inst.Storage.KeystoreDir)
		secrets, names = append(secrets, keys...), append(names, keyNames...)
		var hits []secretscan.Hit
		var scanned string
		e.withStorage(ctx, c, "scan the unit's storage for the secrets", false, func(path string) error {
			scanned = path
			st, err := os.Stat(path)
			if err != nil {
				return err
			}
			if st.IsDir() {
				hits, err = secretscan.ScanDir(ctx, path, secrets)
			} else {
				hits, err = secretscan.ScanFile(ctx, path, secrets)
			}
			return err
		})
		var f findings
		for _, h := range hits {
			f.add("%s is on the storage in the clear: %s (%s encoding)", names[h.Secret], hitPlace(h), h.Encoding)
		}
		f.failIfAny(c, "secrets are stored in the clear on "+scanned)
		c.Note("none of %d secrets (%s) found on %s", len(secrets), strings.Join(names, ", "), scanned)
	})

	e.check("DP-04", func(ctx SpecContext, c *C) {
		e.restore(ctx, c)
		c.Must(e.S.Set(ctx, "tls_min", "1.3"), "set tls_min to 1.3")
		var f findings
		if v, err := e.mgmtHandshake(ctx, tls.VersionTLS12); err == nil {
			f.add("with tls_min 1.3, a client offering at most TLS 1.2 completed a handshake (version %s)", tls.VersionName(v))
		} else {
			c.Note("tls_min 1.3, client at most TLS 1.2: refused (%v)", err)
			e.mustBeTLSRefusal(c, err)
		}
		if v, err := e.mgmtHandshake(ctx, tls.VersionTLS13); err != nil {
			e.mustBeTLSRefusal(c, err)
			f.add("with tls_min 1.3, a TLS 1.3 client failed: %v", err)
		} else if v != tls.VersionTLS13 {
			f.add("with tls_min 1.3, a TLS 1.3 client got version %s", tls.VersionName(v))
		}
		c.Must(e.S.Set(ctx, "tls_min", "1.2"), "set tls_min to 1.2")
		if _, err := e.mgmtHandshake(ctx, tls.VersionTLS12); err != nil {
			e.mustBeTLSRefusal(c, err)
			f.add("with tls_min 1.2, a TLS 1.2 client failed: %v", err)
		}
		e.S.Mgmt.Reset()
		f.failIfAny(c, "the device does not enforce its minimum TLS version setting on the management API")
	})
}

// dp01 captures the device's traffic and checks that all of it is TLS.
func (e *Env) dp01(ctx SpecContext, c *C) {
	in := e.S.Inst
	if in.CaptureInterface == "" {
		c.Errorf("no capture possible: the profile gives no capture_interface for unit %s (the host interface that carries all of its traffic)", e.S.Name)
	}
	if e.S.MQ == nil {
		c.Errorf("no MQTT broker in the profile: the device's telemetry flow cannot be awaited")
	}
	pcap := filepath.Join(c.Dir(), "dp01.pcapng")
	capt, err := netprobe.StartCapture(ctx, in.CaptureInterface, pcap, netprobe.WithHostFilter(in.Address))
	if err != nil {
		c.Errorf("no capture possible on %s: %v", in.CaptureInterface, err)
	}
	stopped := false
	DeferCleanup(func() {
		if !stopped {
			capt.Stop()
		}
	})
	mq := e.S.MQ.Recorder().Mark()
	c.Must(e.S.Reboot(ctx), "reboot the device (it logs in to its broker at boot)")
	c.Must(e.S.Call(ctx, wire.IfaceMgmt, "config.get", nil, nil), "use the management API as admin")
	tele := e.awaitTelemetry(ctx, c, mq)
	stats, err := capt.Stop()
	stopped = true
	c.Must(err, "stop the capture on "+in.CaptureInterface)
	c.Evidence(pcap, fmt.Sprintf("capture of the device's traffic on %s (%d packets)", in.CaptureInterface, stats.Packets))

	secrets, names := e.wireSecrets(tele)
	an, err := netprobe.AnalyzeFile(ctx, pcap, netprobe.AnalyzeOptions{Host: in.Address, Secrets: secrets})
	c.Must(err, "decode the capture "+pcap)
	var summary strings.Builder
	for _, fl := range an.Flows {
		fmt.Fprintf(&summary, "%s\n", flowString(fl))
	}
	c.writeEvidence("flows.txt", "flows seen in the capture and their classification", []byte(summary.String()))
	if len(an.Flows) == 0 {
		c.Errorf("the capture on %s holds no flow to or from %s (%d packets): nothing observed", in.CaptureInterface, in.Address, stats.Packets)
	}
	var f findings
	for _, fl := range an.Cleartext() {
		f.add("flow %s carries payload outside TLS", flowString(fl))
	}
	for _, cr := range an.Creds {
		f.add("a cleartext MQTT CONNECT (%s) carries the login of user %q (password sent: %v)", cr.Flow, cr.Username, cr.HasPassword)
	}
	for _, h := range an.Hits {
		name := h.Secret
		if h.SecretIndex >= 0 && h.SecretIndex < len(names) {
			name = names[h.SecretIndex]
		}
		f.add("%s found in the clear in %s (%s, %s encoding, %d times, first at byte %d)", name, h.Flow, h.Direction, h.Encoding, h.Count, h.Offset)
	}
	f.failIfAny(c, "the device's traffic is not all protected by TLS")
	var missing int64
	for _, fl := range an.Flows {
		missing += fl.Missing
	}
	switch {
	case stats.Dropped > 0:
		c.Errorf("the capture on %s is incomplete: the kernel dropped %d packets, so the absence of cleartext is not shown", in.CaptureInterface, stats.Dropped)
	case an.Truncated:
		c.Errorf("the capture %s ends inside a packet: the absence of cleartext is not shown", pcap)
	case missing > 0:
		c.Errorf("%d payload bytes of the device's flows are missing from the capture: the absence of secrets is not shown", missing)
	}
	for _, d := range e.declaredFlows() {
		if !anyFlow(an.Flows, in.Address, d) {
			c.Errorf("no TLS %s flow (direction %s, server port %d) of the device was seen in the capture on %s: the declared flow was not observed",
				d.Name, d.Direction, d.Port, in.CaptureInterface)
		}
	}
	c.Note("%d flows seen, all protected; none of %d secrets (%s) found in the capture", len(an.Flows), len(secrets), strings.Join(names, ", "))
}

// awaitTelemetry waits for a telemetry message of the device after mark, for at most
// two telemetry intervals and the boot timeout; it returns its payload.
func (e *Env) awaitTelemetry(ctx SpecContext, c *C, mark int64) []byte {
	wait := e.S.Profile.Timeouts.Boot.Duration
	if v, err := e.settingsOver(ctx, wire.IfaceConsole); err == nil {
		var n int
		if _, err := fmt.Sscan(v["telemetry_interval"], &n); err == nil && n > 0 && n < 3600 {
			wait += 2 * time.Duration(n) * time.Second
		}
	}
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	topic := e.S.MQTTTopic("telemetry")
	m, err := e.S.MQ.Recorder().WaitFor(wctx, mark, func(m mqtt.Message) bool { return m.Topic == topic })
	if err != nil {
		c.Errorf("no telemetry on %s within %s: %v", topic, wait, err)
	}
	return m.Payload
}

// wireSecrets lists what must never cross the wire in the clear, and names them.
func (e *Env) wireSecrets(telemetry []byte) ([]string, []string) {
	var secrets, names []string
	add := func(s, name string) {
		if len(s) >= 6 {
			secrets, names = append(secrets, s), append(names, name)
		}
	}
	add(e.S.Admin.Pass, "the admin password")
	add(e.S.Inst.MQTT.Pass, "the device's broker password")
	add(e.S.Profile.Broker.Password, "the harness's broker password")
	var t wire.Telemetry
	if json.Unmarshal(telemetry, &t) == nil && t.Time != "" {
		add(t.Time, "the time stamp of a telemetry message")
	}
	add(string(telemetry), "a telemetry message")
	return secrets, names
}

// declaredFlows returns the declared flows with port 0 resolved to the broker's port.
func (e *Env) declaredFlows() []flowDecl {
	var out []flowDecl
	if e.S.Decl == nil {
		return out
	}
	for _, f := range e.S.Decl.Flows {
		d := flowDecl{Name: f.Name, Port: f.Port, Direction: f.Direction}
		if d.Port == 0 {
			d.Port = brokerPort(e.S.Profile.Broker.URL)
		}
		out = append(out, d)
	}
	return out
}

// keystoreSecrets reads every file of the unit's key store that is long enough to be key
// material: the data storage must not hold any of them in the clear.
func (e *Env) keystoreSecrets() ([]string, []string, error) {
	dir := e.S.Inst.Storage.KeystoreDir
	if dir == "" {
		return nil, nil, nil
	}
	dir = e.S.Profile.Resolve(dir)
	label := ""
	if e.S.Inst.Label.File != "" {
		label = filepath.Clean(e.S.Profile.Resolve(e.S.Inst.Label.File))
	}
	var secrets, names []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || filepath.Clean(path) == label {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if len(b) >= 16 {
			secrets = append(secrets, string(b))
			names = append(names, "the key store file "+filepath.Base(path))
		}
		return nil
	})
	return secrets, names, err
}

// mgmtHandshake makes a TLS handshake with the management API offering at most max and
// returns the version agreed. A failure to reach the port is wrapped in errNotReached.
func (e *Env) mgmtHandshake(ctx context.Context, max uint16) (uint16, error) {
	cctx, cancel := context.WithTimeout(ctx, e.cmdTimeout())
	defer cancel()
	m := e.S.TLSMgmt(max)
	return tlsHandshake(cctx, m.Addr(), m.TLSConfig())
}

// mustBeTLSRefusal ends the check as an error when err says the port could not be
// reached at all (rather than a refused handshake).
func (e *Env) mustBeTLSRefusal(c *C, err error) {
	if errors.Is(err, errNotReached) {
		c.Errorf("the management API could not be reached: %v", err)
	}
}

func hitPlace(h secretscan.Hit) string {
	if h.Path == "" {
		return fmt.Sprintf("offset %d", h.Offset)
	}
	return fmt.Sprintf("%s at offset %d", h.Path, h.Offset)
}
