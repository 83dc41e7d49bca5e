package sim

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/hilt-project/hilt/harness/broker"
	"github.com/hilt-project/hilt/harness/netns"
	"github.com/hilt-project/hilt/harness/pki"
)

// BrokerOptions configures StartBroker.
type BrokerOptions struct {
	// Dir receives the run's PKI (pki/ca.pem, broker.pem, broker.key) and a Mosquitto's
	// configuration (mosquitto/); it must exist.
	Dir string
	// RunID names the run in the CA's subject and in the device accounts.
	RunID string
	// Hosts are the addresses devices reach the broker on; its certificate names them, and
	// 127.0.0.1 and localhost for the harness.
	Hosts []netip.Addr
	// Units name the device accounts, one per unit: hilt-<unit>-<RunID>.
	Units []string
	// Mosquitto starts a private Mosquitto instead of the embedded broker.
	Mosquitto bool
	// TopicPrefix defaults to broker.DefaultTopicPrefix.
	TopicPrefix string
	// Log receives the broker's connection log (nil: none).
	Log io.Writer
}

// Broker is an embedded broker or a private Mosquitto with a run-scoped CA, a harness
// account and one account per unit, as the simulated bench starts it, for units hilt runs
// outside that bench (the emulated bench of harness/emu).
type Broker struct {
	b brokerBackend
}

// StartBroker makes a CA and a server certificate for o.Hosts and starts the broker
// listening on every host address. On error nothing is left running.
func StartBroker(ctx context.Context, o BrokerOptions) (*Broker, error) {
	if o.TopicPrefix == "" {
		o.TopicPrefix = broker.DefaultTopicPrefix
	}
	if o.RunID == "" {
		o.RunID = randomHex(3)
	}
	h := broker.Account{Username: broker.HarnessUsername, Password: randomPassword()}
	var devices []broker.Account
	for _, u := range o.Units {
		devices = append(devices, broker.Account{Username: fmt.Sprintf("hilt-%s-%s", u, o.RunID), Password: randomPassword()})
	}
	pkiDir := filepath.Join(o.Dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	ca, err := pki.NewCA("hilt bench " + o.RunID + " CA (TEST ONLY)")
	if err != nil {
		return nil, err
	}
	hosts := []string{"127.0.0.1", "localhost"}
	for _, a := range o.Hosts {
		if s := a.String(); s != "127.0.0.1" {
			hosts = append(hosts, s)
		}
	}
	leaf, err := ca.IssueServer(hosts)
	if err != nil {
		return nil, err
	}
	caPath := filepath.Join(pkiDir, "ca.pem")
	if err := ca.WriteCert(caPath); err != nil {
		return nil, err
	}
	if err := leaf.WriteFiles(filepath.Join(pkiDir, "broker.pem"), filepath.Join(pkiDir, "broker.key")); err != nil {
		return nil, err
	}
	opts := Options{TopicPrefix: o.TopicPrefix, BrokerLog: o.Log}
	if o.Mosquitto {
		m, err := startMosquitto(ctx, filepath.Join(o.Dir, "mosquitto"), ca, leaf, h, devices, opts)
		if err != nil {
			return nil, fmt.Errorf("broker: %w", err)
		}
		return &Broker{b: m}, nil
	}
	e, err := startEmbedded(ctx, leaf, ca.CertPEM(), caPath, h, devices, opts)
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	return &Broker{b: e}, nil
}

// Kind is KindEmbedded or KindMosquitto.
func (b *Broker) Kind() string { return b.b.kind() }

// HarnessURL is the broker as the harness on the host reaches it (mqtts://127.0.0.1:port).
func (b *Broker) HarnessURL() string { return b.b.harnessURL() }

// CAFile is the CA certificate the broker's certificate chains to.
func (b *Broker) CAFile() string { return b.b.caFile() }

// CAPEM is CAFile's content.
func (b *Broker) CAPEM() []byte { return b.b.caPEM() }

// Harness is the harness account.
func (b *Broker) Harness() broker.Account { return b.b.harness() }

// Device is the account of unit i (from 0, in the order of BrokerOptions.Units).
func (b *Broker) Device(i int) broker.Account { return b.b.deviceAccount(i + 1) }

// DeviceAddrs are the TLS and plaintext addresses (host:port) of the broker as a unit
// reaches it through host, the host's end of the unit's link.
func (b *Broker) DeviceAddrs(host netip.Addr) (tls, plain string) {
	return b.b.deviceAddrs(netns.Host{HarnessAddress: host})
}

// Bind restricts a unit's account to the ID the unit reports.
func (b *Broker) Bind(ctx context.Context, user, id string) (broker.Binding, error) {
	return b.b.bind(ctx, user, id)
}

// WaitConnected waits for the unit's first MQTT connection with its account, from its own
// address; the error says what the broker knows about why not.
func (b *Broker) WaitConnected(ctx context.Context, user, id string, from netip.Addr) error {
	return b.b.waitConnected(ctx, user, id, from)
}

// Close stops the broker.
func (b *Broker) Close() error { return b.b.close() }
