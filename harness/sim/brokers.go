package sim

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/hilt-project/hilt/harness/broker"
	"github.com/hilt-project/hilt/harness/netns"
	"github.com/hilt-project/hilt/harness/pki"
)

// Broker kinds, as written to the profile (broker.kind).
const (
	KindEmbedded  = "embedded"
	KindMosquitto = "mosquitto"
	KindExternal  = "external"
)

// brokerBackend is the broker a bench's devices use, whoever runs it.
type brokerBackend interface {
	kind() string
	// harnessURL is the broker as the harness on the host reaches it.
	harnessURL() string
	caFile() string
	caPEM() []byte
	harness() broker.Account
	// deviceAccount is device i's (from 1) own broker account.
	deviceAccount(i int) broker.Account
	// deviceAddrs are the TLS and plaintext addresses (host:port) as device h reaches them.
	deviceAddrs(h netns.Host) (tls, plain string)
	// bind restricts the device's account to its ID as soon as the ID is known, and again
	// whenever the ID changes.
	bind(ctx context.Context, user, id string) (broker.Binding, error)
	// waitConnected waits for the device's first MQTT connection.
	waitConnected(ctx context.Context, user, id string, from netip.Addr) error
	close() error
}

// embeddedBackend is the in-process mochi broker.
type embeddedBackend struct {
	b       *broker.Broker
	ca      []byte
	caPath  string
	h       broker.Account
	devices []broker.Account
}

func startEmbedded(ctx context.Context, leaf *pki.Leaf, ca []byte, caPath string, h broker.Account, devices []broker.Account, opts Options) (*embeddedBackend, error) {
	cert, err := leaf.TLSCertificate()
	if err != nil {
		return nil, err
	}
	b, err := broker.Start(ctx, broker.Options{
		Certificate: cert,
		TopicPrefix: opts.TopicPrefix,
		Harness:     h,
		Devices:     devices,
		Log:         opts.BrokerLog,
	})
	if err != nil {
		return nil, err
	}
	return &embeddedBackend{b: b, ca: ca, caPath: caPath, h: h, devices: devices}, nil
}

func (e *embeddedBackend) kind() string { return KindEmbedded }
func (e *embeddedBackend) harnessURL() string {
	return "mqtts://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(e.b.TLSAddr().Port))
}
func (e *embeddedBackend) caFile() string                     { return e.caPath }
func (e *embeddedBackend) caPEM() []byte                      { return e.ca }
func (e *embeddedBackend) harness() broker.Account            { return e.h }
func (e *embeddedBackend) deviceAccount(i int) broker.Account { return e.devices[i-1] }
func (e *embeddedBackend) deviceAddrs(h netns.Host) (string, string) {
	host := h.HarnessAddress.String()
	return net.JoinHostPort(host, strconv.Itoa(e.b.TLSAddr().Port)), net.JoinHostPort(host, strconv.Itoa(e.b.PlainAddr().Port))
}
func (e *embeddedBackend) bind(_ context.Context, user, id string) (broker.Binding, error) {
	return e.b.Bind(user, id)
}
func (e *embeddedBackend) waitConnected(ctx context.Context, user, _ string, from netip.Addr) error {
	_, err := e.b.WaitConnect(ctx, user, from)
	return err
}
func (e *embeddedBackend) close() error { return e.b.Close() }

// statusWaiter waits for devices' retained online status with one harness connection, for
// brokers that cannot tell the bench about connections.
type statusWaiter struct {
	url    string
	h      broker.Account
	ca     []byte
	prefix string

	mu sync.Mutex
	c  paho.Client
}

func (s *statusWaiter) wait(ctx context.Context, id string) error {
	s.mu.Lock()
	if s.c == nil {
		c, err := broker.Dial(ctx, broker.ClientConfig{URL: s.url, Username: s.h.Username, Password: s.h.Password, ClientID: "hilt-bench-" + randomHex(4), CAPEM: s.ca})
		if err != nil {
			s.mu.Unlock()
			return fmt.Errorf("harness account: %w", err)
		}
		s.c = c
	}
	c := s.c
	s.mu.Unlock()
	return broker.WaitOnline(ctx, c, s.prefix, id)
}

func (s *statusWaiter) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c != nil {
		s.c.Disconnect(100)
		s.c = nil
	}
}

// mosquittoBackend is a private Mosquitto process.
type mosquittoBackend struct {
	m *broker.Mosquitto
	statusWaiter
	// exe is the mosquitto executable; restarted is the process the fault control started
	// after stopping the first one (faultctl.go).
	exe       string
	faultMu   sync.Mutex
	restarted *restartedMosquitto
}

func startMosquitto(ctx context.Context, dir string, ca *pki.CA, leaf *pki.Leaf, h broker.Account, devices []broker.Account, opts Options) (*mosquittoBackend, error) {
	m, err := broker.StartMosquitto(ctx, dir, broker.MosquittoOptions{
		CAPEM: ca.CertPEM(), CertPEM: leaf.CertPEM, KeyPEM: leaf.KeyPEM,
		TopicPrefix: opts.TopicPrefix,
		Harness:     h,
		Devices:     devices,
		Log:         opts.BrokerLog,
		Start:       startTied,
	})
	if err != nil {
		return nil, err
	}
	return &mosquittoBackend{m: m, exe: "mosquitto", statusWaiter: statusWaiter{url: m.URL(), h: h, ca: ca.CertPEM(), prefix: opts.TopicPrefix}}, nil
}

func (m *mosquittoBackend) kind() string            { return KindMosquitto }
func (m *mosquittoBackend) harnessURL() string      { return m.m.URL() }
func (m *mosquittoBackend) caFile() string          { return m.m.CAFile() }
func (m *mosquittoBackend) caPEM() []byte           { return m.ca }
func (m *mosquittoBackend) harness() broker.Account { return m.h }
func (m *mosquittoBackend) deviceAccount(i int) broker.Account {
	return m.m.Devices()[i-1]
}
func (m *mosquittoBackend) deviceAddrs(h netns.Host) (string, string) {
	host := h.HarnessAddress.String()
	return net.JoinHostPort(host, strconv.Itoa(m.m.TLSPort())), net.JoinHostPort(host, strconv.Itoa(m.m.PlainPort()))
}
func (m *mosquittoBackend) bind(ctx context.Context, user, id string) (broker.Binding, error) {
	return m.m.Bind(ctx, user, id)
}
func (m *mosquittoBackend) waitConnected(ctx context.Context, user, id string, from netip.Addr) error {
	err := m.wait(ctx, id)
	if err == nil {
		return nil
	}
	// Mosquitto's log says why; quote what concerns this device.
	var lines []string
	for _, l := range strings.Split(m.m.Log(), "\n") {
		if strings.Contains(l, "u'"+user+"'") || (from.IsValid() && strings.Contains(l, from.String()+":")) || strings.Contains(l, " "+id+" ") {
			lines = append(lines, "  "+l)
		}
	}
	if len(lines) == 0 {
		return fmt.Errorf("%w; mosquitto logged nothing about account %q or %v", err, user, from)
	}
	return fmt.Errorf("%w; mosquitto's log about it:\n%s", err, strings.Join(lines, "\n"))
}
func (m *mosquittoBackend) close() error {
	m.statusWaiter.close()
	if m.stopRestarted() {
		m.m.Close() // reports the first process's exit, which the fault control caused
		return nil
	}
	return m.m.Close()
}

// externalBackend is a broker the user runs.
type externalBackend struct {
	u       broker.URL
	caPath  string
	devices []broker.Account
	notice  string
	statusWaiter
}

func newExternal(opts Options) (*externalBackend, error) {
	u, err := broker.ParseURL(opts.BrokerURL)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	if !u.TLS {
		return nil, fmt.Errorf("%w: broker %s: the reference device connects only over TLS: give an mqtts:// URL", ErrBadOptions, u)
	}
	if u.Username == "" || u.Password == "" {
		return nil, fmt.Errorf("%w: broker %s: the URL must carry the harness account (mqtts://user:pass@host:port)", ErrBadOptions, u)
	}
	if opts.BrokerCAFile == "" {
		return nil, fmt.Errorf("%w: broker %s: the CA certificate that its certificate chains to is required (--broker-ca)", ErrBadOptions, u)
	}
	caPath, err := filepath.Abs(opts.BrokerCAFile)
	if err != nil {
		return nil, fmt.Errorf("%w: broker CA: %w", ErrBadOptions, err)
	}
	ca, err := os.ReadFile(caPath)
	if err != nil {
		return nil, fmt.Errorf("%w: broker CA: %w", ErrBadOptions, err)
	}
	if !pemHasCert(ca) {
		return nil, fmt.Errorf("%w: broker CA %s holds no PEM certificate", ErrBadOptions, caPath)
	}
	h := broker.Account{Username: u.Username, Password: u.Password}
	e := &externalBackend{u: u, caPath: caPath, statusWaiter: statusWaiter{url: opts.BrokerURL, h: h, ca: ca, prefix: opts.TopicPrefix}}
	switch n := len(opts.DeviceBrokerAccounts); {
	case n == 0:
		for range opts.Devices {
			e.devices = append(e.devices, h)
		}
		e.notice = "devices use the harness account of the broker URL: separation between device and harness accounts is not tested (give device accounts with --broker-device)"
	case n == 1:
		for range opts.Devices {
			e.devices = append(e.devices, opts.DeviceBrokerAccounts[0])
		}
		e.notice = "all devices share one broker account: separation between devices is not tested"
	case n == opts.Devices:
		e.devices = append(e.devices, opts.DeviceBrokerAccounts...)
	default:
		return nil, fmt.Errorf("%w: %d device broker accounts for %d devices: give one for all or one per device", ErrBadOptions, n, opts.Devices)
	}
	return e, nil
}

func (e *externalBackend) kind() string                       { return KindExternal }
func (e *externalBackend) harnessURL() string                 { return e.u.String() }
func (e *externalBackend) caFile() string                     { return e.caPath }
func (e *externalBackend) caPEM() []byte                      { return e.ca }
func (e *externalBackend) harness() broker.Account            { return e.h }
func (e *externalBackend) deviceAccount(i int) broker.Account { return e.devices[i-1] }
func (e *externalBackend) bind(context.Context, string, string) (broker.Binding, error) {
	return broker.Binding{}, nil
}
func (e *externalBackend) deviceAddrs(h netns.Host) (string, string) {
	host, port, _ := net.SplitHostPort(e.u.Host)
	// A loopback broker address means the device's own loopback inside a namespace: send
	// the device to the host side of its link instead.
	if h.Namespace != "" && isLoopbackHost(host) {
		host = h.HarnessAddress.String()
	}
	return net.JoinHostPort(host, port), ""
}
func (e *externalBackend) waitConnected(ctx context.Context, user, id string, _ netip.Addr) error {
	if err := e.wait(ctx, id); err != nil {
		return fmt.Errorf("%w (an external broker gives no reason: look in its log for account %q)", err, user)
	}
	return nil
}
func (e *externalBackend) close() error {
	e.statusWaiter.close()
	return nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// loopbackNotice explains the address rewrite for an external broker on loopback.
func (e *externalBackend) loopbackNotice(mode netns.Mode) string {
	host, _, _ := net.SplitHostPort(e.u.Host)
	if mode != netns.ModeNamespace || !isLoopbackHost(host) {
		return ""
	}
	return fmt.Sprintf("broker %s is on loopback, which a device namespace does not share: devices connect to the host side of their link instead; the broker must listen there and its certificate must name that address", e.u)
}

func pemHasCert(b []byte) bool { return x509.NewCertPool().AppendCertsFromPEM(b) }
