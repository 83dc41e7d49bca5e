// Package session is the harness's connection to one device under test: its console,
// management API and MQTT, the identity pinned at first contact, and the operations
// checks share (reboot and wait, read and restore configuration, read the security log).
// One Session per device; sessions share nothing, so many devices can be tested at once.
package session

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hilt-project/hilt/drivers/mqtt"
	"github.com/hilt-project/hilt/drivers/serial"
	"github.com/hilt-project/hilt/harness/agent"
	"github.com/hilt-project/hilt/harness/profile"
	"github.com/hilt-project/hilt/wire"
)

// Pin is the identity the harness bound to a unit at first contact.
type Pin struct {
	Name   string `json:"name"`
	ID     string `json:"id"`
	PubKey string `json:"pubkey"` // base64 ed25519
}

// Session is an open connection to one unit.
type Session struct {
	Name    string
	Profile *profile.Profile
	Inst    *profile.Instance
	Decl    *profile.Declarations
	// ID and Key are the identity pinned at first contact (or declared in the profile).
	ID  string
	Key ed25519.PublicKey
	// Admin is the owner's credential from the profile.
	Admin *wire.Auth

	Port    serial.Port
	Console *agent.Console
	Mgmt    *agent.Mgmt
	MQ      mqtt.Client
	MQTT    *agent.MQTT

	log io.Writer
	// mqID is the ID the unit is addressed by on MQTT now; tag tells this session's
	// correlation IDs apart.
	mqID, tag string
}

// Option configures Open.
type Option func(*Session)

// WithLog sends progress lines to w.
func WithLog(w io.Writer) Option { return func(s *Session) { s.log = w } }

// WithPin uses an identity pinned earlier (by the run that started this one).
func WithPin(p Pin) Option {
	return func(s *Session) {
		if k, err := base64.StdEncoding.DecodeString(p.PubKey); err == nil && len(k) == ed25519.PublicKeySize {
			s.ID, s.Key = p.ID, ed25519.PublicKey(k)
		}
	}
}

// FirstContact opens the console of a unit and reads its ID and identity key: the pin
// every later check holds the unit to.
func FirstContact(ctx context.Context, p *profile.Profile, name string) (Pin, error) {
	in, ok := p.Instance(name)
	if !ok {
		return Pin{}, fmt.Errorf("no instance %q in profile %s", name, p.Path)
	}
	port, err := serial.Open(ctx, in.Serial.Port, serial.WithBaud(in.Serial.Baud), serial.WithAutoReopen())
	if err != nil {
		return Pin{}, fmt.Errorf("%s: open console: %w", name, err)
	}
	defer port.Close()
	con := agent.NewConsole(name, port)
	return readPin(ctx, p, name, con)
}

func readPin(ctx context.Context, p *profile.Profile, name string, con *agent.Console) (Pin, error) {
	var r struct{ ID, PubKey string }
	if err := untilAnswer(ctx, p.Timeouts.Boot.Duration, func(ctx context.Context) error {
		return agent.Call(ctx, con, nil, "pubkey", nil, &r)
	}); err != nil {
		return Pin{}, fmt.Errorf("%s: read identity on the console: %w", name, err)
	}
	if in, ok := p.Instance(name); ok && in.PubKey != "" {
		r.PubKey = in.PubKey // declared at the factory: that binding wins over what the unit says
	}
	return Pin{Name: name, ID: r.ID, PubKey: r.PubKey}, nil
}

// untilAnswer retries fn while the unit gives no answer (still booting), up to limit.
func untilAnswer(ctx context.Context, limit time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		err := fn(cctx)
		ccancel()
		if err == nil || !Gone(err) || ctx.Err() != nil {
			return err
		}
	}
}

// AwaitAnswer waits until the unit answers a ping on its console, for up to the profile's
// boot timeout (it may be booting). An error for which Gone is true means that it gave no
// answer in all that time.
func (s *Session) AwaitAnswer(ctx context.Context) error {
	return untilAnswer(ctx, s.Profile.Timeouts.Boot.Duration, func(ctx context.Context) error {
		return agent.Call(ctx, s.Console, nil, "ping", nil, nil)
	})
}

// Gone reports whether err, from AwaitAnswer, says that the unit gave no answer, rather
// than answering with an error of its own.
func Gone(err error) bool { return errors.Is(err, agent.ErrNoAnswer) || agent.LinkLost(err) }

// Open connects to the named unit of a profile.
func Open(ctx context.Context, p *profile.Profile, name string, opts ...Option) (_ *Session, err error) {
	in, ok := p.Instance(name)
	if !ok {
		return nil, fmt.Errorf("no instance %q in profile %s", name, p.Path)
	}
	s := &Session{Name: name, Profile: p, Inst: in, Decl: p.Declarations, log: io.Discard,
		Admin: &wire.Auth{User: in.Admin.User, Pass: in.Admin.Pass}}
	for _, o := range opts {
		o(s)
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.Port, err = serial.Open(ctx, in.Serial.Port, serial.WithBaud(in.Serial.Baud), serial.WithAutoReopen())
	if err != nil {
		return nil, fmt.Errorf("%s: open console %s: %w", name, in.Serial.Port, err)
	}
	s.Console = agent.NewConsole(name, s.Port)
	if s.Key == nil {
		pin, err := readPin(ctx, p, name, s.Console)
		if err != nil {
			return nil, err
		}
		WithPin(pin)(s)
		if s.Key == nil {
			return nil, fmt.Errorf("%s: the identity key %q is not a base64 ed25519 key", name, pin.PubKey)
		}
	} else if err := s.AwaitAnswer(ctx); err != nil {
		return nil, fmt.Errorf("%s: console does not answer: %w", name, err)
	}
	s.Mgmt = agent.NewMgmt(name, agent.HostPort(in.Address, mgmtPort(s.Decl)), agent.WithPin(s.Key))
	if p.Broker.URL != "" {
		if err := s.dialMQTT(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func mgmtPort(d *profile.Declarations) int {
	if d != nil {
		if f, ok := d.Interface(wire.IfaceMgmt); ok && f.Port != 0 {
			return f.Port
		}
	}
	return wire.PortMgmt
}

func (s *Session) dialMQTT(ctx context.Context) error {
	b := s.Profile.Broker
	var tag [4]byte
	rand.Read(tag[:])
	opts := mqtt.Options{URL: b.URL, ClientID: "hilt-" + s.Name + "-" + hex.EncodeToString(tag[:]), Username: b.Username, Password: b.Password}
	if b.CAFile != "" {
		opts.CAFile = s.Profile.Resolve(b.CAFile)
	}
	c, err := mqtt.Dial(ctx, opts)
	if err != nil {
		return fmt.Errorf("%s: MQTT broker %s: %w", s.Name, b.URL, err)
	}
	s.MQ = c
	if err := c.Subscribe(ctx, agent.Topic(b.TopicPrefix, s.ID, "#"), 1); err != nil {
		return fmt.Errorf("%s: subscribe %s: %w", s.Name, agent.Topic(b.TopicPrefix, s.ID, "#"), err)
	}
	s.mqID, s.tag = s.ID, hex.EncodeToString(tag[:])
	s.MQTT = agent.NewMQTT(s.Name, c, b.TopicPrefix, s.mqID, s.tag)
	return nil
}

// Via returns the transport for a declared interface. The debug transport is dialled
// anew and must be closed by the caller; the others belong to the session.
func (s *Session) Via(ctx context.Context, iface string) (agent.Transport, error) {
	switch iface {
	case wire.IfaceConsole:
		return s.Console, nil
	case wire.IfaceMgmt:
		return s.Mgmt, nil
	case wire.IfaceMQTT:
		if s.MQTT == nil {
			return nil, fmt.Errorf("%s: no MQTT broker in the profile", s.Name)
		}
		return s.MQTT, nil
	case wire.IfaceDebug:
		port := wire.PortDebug
		if f, ok := s.Decl.Interface(wire.IfaceDebug); ok && f.Port != 0 {
			port = f.Port
		}
		return agent.DialDebug(ctx, s.Name, agent.HostPort(s.Inst.Address, port))
	}
	return nil, fmt.Errorf("%s: no transport for interface %q", s.Name, iface)
}

// Transports returns the request transports the unit declares: console, mgmt, mqtt.
func (s *Session) Transports() []agent.Transport {
	ts := []agent.Transport{s.Console, s.Mgmt}
	if s.MQTT != nil {
		ts = append(ts, s.MQTT)
	}
	return ts
}

// Call sends a command as admin over iface and decodes the result into out.
func (s *Session) Call(ctx context.Context, iface, cmd string, args map[string]any, out any) error {
	t, err := s.Via(ctx, iface)
	if err != nil {
		return err
	}
	if iface == wire.IfaceDebug {
		defer t.Close()
	}
	cctx, cancel := context.WithTimeout(ctx, s.Profile.Timeouts.Command.Duration)
	defer cancel()
	return agent.Call(cctx, t, s.Admin, cmd, args, out)
}

// Info reads the info command over iface.
func (s *Session) Info(ctx context.Context, iface string) (wire.Info, error) {
	var in wire.Info
	err := s.Call(ctx, iface, "info", nil, &in)
	return in, err
}

// Config is a unit's settings and interface states.
type Config struct {
	Settings   map[string]any  `json:"settings"`
	Interfaces map[string]bool `json:"interfaces"`
}

// Snapshot reads the unit's settings and interfaces over the console.
func (s *Session) Snapshot(ctx context.Context) (Config, error) {
	var c Config
	if err := s.Call(ctx, wire.IfaceConsole, "config.get", nil, &c); err != nil {
		return c, err
	}
	var i Config
	if err := s.Call(ctx, wire.IfaceConsole, "iface.list", nil, &i); err != nil {
		return c, err
	}
	c.Interfaces = i.Interfaces
	return c, nil
}

// Restore sets back every setting and interface that differs from want.
func (s *Session) Restore(ctx context.Context, want Config) error {
	have, err := s.Snapshot(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for k, v := range want.Settings {
		if fmt.Sprint(have.Settings[k]) != fmt.Sprint(v) {
			errs = append(errs, s.Call(ctx, wire.IfaceConsole, "config.set", map[string]any{"key": k, "value": fmt.Sprint(v)}, nil))
		}
	}
	for name, on := range want.Interfaces {
		if have.Interfaces[name] != on {
			errs = append(errs, s.Call(ctx, wire.IfaceConsole, "iface.set", map[string]any{"name": name, "enabled": on}, nil))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: restore configuration: %w", s.Name, err)
	}
	return nil
}

// Set changes one setting as admin over the console.
func (s *Session) Set(ctx context.Context, key, value string) error {
	return s.Call(ctx, wire.IfaceConsole, "config.set", map[string]any{"key": key, "value": value}, nil)
}

// Events reads the security log as admin from seq since on.
func (s *Session) Events(ctx context.Context, since int64) ([]wire.Event, error) {
	var r struct{ Events []wire.Event }
	err := s.Call(ctx, wire.IfaceConsole, "log.read", map[string]any{"since": since}, &r)
	return r.Events, err
}

// LastSeq returns the sequence number of the newest event in the log (0 when empty).
func (s *Session) LastSeq(ctx context.Context) (int64, error) {
	evs, err := s.Events(ctx, 0)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	return evs[len(evs)-1].Seq, nil
}

// Reboot reboots the unit as admin and waits until it is ready on every interface.
func (s *Session) Reboot(ctx context.Context) error {
	mark := s.Port.Mark()
	mq := s.mqMark()
	if err := s.Call(ctx, wire.IfaceConsole, "reboot", nil, nil); err != nil {
		return fmt.Errorf("%s: reboot: %w", s.Name, err)
	}
	return s.AwaitBoot(ctx, mark, mq)
}

// Marks returns the console and MQTT positions to pass to AwaitBoot, taken before a
// command that makes the unit reboot.
func (s *Session) Marks() (serial.Mark, int64) { return s.Port.Mark(), s.mqMark() }

func (s *Session) mqMark() int64 {
	if s.MQ == nil {
		return 0
	}
	return s.MQ.Recorder().Mark()
}

// AwaitBoot waits for the boot that follows the marks: the ready line on the console, then
// the unit online and answering on MQTT when its MQTT interface is on.
func (s *Session) AwaitBoot(ctx context.Context, mark serial.Mark, mqMark int64) error {
	bctx, cancel := context.WithTimeout(ctx, s.Profile.Timeouts.Boot.Duration)
	defer cancel()
	if err := s.Console.WaitReady(bctx, mark); err != nil {
		return err
	}
	s.Mgmt.Reset()
	if s.MQ == nil {
		return nil
	}
	if err := s.follow(bctx); err != nil {
		return err
	}
	var info wire.Info
	if err := agent.Call(bctx, s.Console, nil, "info", nil, &info); err != nil {
		return fmt.Errorf("%s: read info after boot: %w", s.Name, err)
	}
	if !info.Provisioned {
		return nil // factory state after decommission: no owner to ask, no login to spend
	}
	var st Config
	if err := s.Call(bctx, wire.IfaceConsole, "iface.list", nil, &st); err != nil {
		return err
	}
	if !st.Interfaces[wire.IfaceMQTT] {
		return nil
	}
	return s.AwaitAnswering(bctx, mqMark)
}

// follow reads the unit's ID after a boot. A unit whose ID changed (a defect DI-03
// reports) is followed on MQTT under its new ID, so that one defect does not turn every
// later MQTT exchange into a timeout.
func (s *Session) follow(ctx context.Context) error {
	var r struct{ ID string }
	if err := agent.Call(ctx, s.Console, nil, "id", nil, &r); err != nil {
		return fmt.Errorf("%s: read the ID after boot: %w", s.Name, err)
	}
	if r.ID == "" || r.ID == s.mqID {
		return nil
	}
	fmt.Fprintf(s.log, "%s: the unit's ID changed at boot from %s to %s; following it on MQTT\n", s.Name, s.mqID, r.ID)
	topic := agent.Topic(s.Profile.Broker.TopicPrefix, r.ID, "#")
	if err := s.MQ.Subscribe(ctx, topic, 1); err != nil {
		return fmt.Errorf("%s: subscribe %s: %w", s.Name, topic, err)
	}
	s.mqID = r.ID
	s.MQTT = agent.NewMQTT(s.Name, s.MQ, s.Profile.Broker.TopicPrefix, r.ID, s.tag)
	return nil
}

// AwaitOnline waits for the unit's online status on MQTT after mark.
func (s *Session) AwaitOnline(ctx context.Context, mark int64) error {
	topic := agent.Topic(s.Profile.Broker.TopicPrefix, s.mqID, "status")
	_, err := s.MQ.Recorder().WaitFor(ctx, mark, func(m mqtt.Message) bool {
		var st wire.Status
		return m.Topic == topic && json.Unmarshal(m.Payload, &st) == nil && st.Online
	})
	if err != nil {
		return fmt.Errorf("%s: waiting for online status on %s: %w", s.Name, topic, err)
	}
	return nil
}

// AwaitAnswering waits for the unit online on MQTT after mark (AwaitOnline) and then for
// it to answer there (AwaitPing). Online is not yet listening: many MQTT stacks publish
// their status before their subscription to the command topic is in place.
func (s *Session) AwaitAnswering(ctx context.Context, mark int64) error {
	if err := s.AwaitOnline(ctx, mark); err != nil {
		return err
	}
	return s.AwaitPing(ctx)
}

// AwaitPing waits until the unit answers a ping over MQTT, or ctx ends. A request
// published while the unit does not listen (reconnecting to its broker, or online before
// its subscription is in place) is lost, so the ping is sent again every pingEvery, and an
// answer to any copy, however late, ends the wait.
func (s *Session) AwaitPing(ctx context.Context) error {
	start := time.Now()
	if _, err := s.MQTT.DoRepeating(ctx, pingEvery, nil, "ping", nil); err != nil {
		return fmt.Errorf("%s: no answer to a ping over MQTT (sent every %v) for %s: %w",
			s.Name, pingEvery, time.Since(start).Round(time.Millisecond), err)
	}
	return nil
}

// pingEvery is how often AwaitPing sends its ping again.
const pingEvery = 150 * time.Millisecond

// MQTTTopic returns <prefix>/<id>/<leaf> for the ID the unit uses on MQTT now.
func (s *Session) MQTTTopic(leaf string) string {
	return agent.Topic(s.Profile.Broker.TopicPrefix, s.mqID, leaf)
}

// Close releases every connection of the session.
func (s *Session) Close() error {
	if s.Mgmt != nil {
		s.Mgmt.Close()
	}
	if s.MQ != nil {
		s.MQ.Close()
	}
	if s.Port != nil {
		s.Port.Close()
	}
	return nil
}

// ReadLabel reads the unit's physical label: the declared text, or the file standing for it.
func (s *Session) ReadLabel() (string, error) {
	if s.Inst.Label.Text != "" {
		return s.Inst.Label.Text, nil
	}
	if s.Inst.Label.File == "" {
		return "", errors.New("the profile gives no label text or label file")
	}
	b, err := os.ReadFile(s.Profile.Resolve(s.Inst.Label.File))
	return string(b), err
}

// CAPool returns the broker CA of the profile, for servers that must be trusted.
func (s *Session) CAPool() (*x509.CertPool, error) {
	b, err := os.ReadFile(s.Profile.Resolve(s.Profile.Broker.CAFile))
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(b)
	return p, nil
}

// TLSMgmt returns a management transport that offers at most TLS version max.
func (s *Session) TLSMgmt(max uint16) *agent.Mgmt {
	return agent.NewMgmt(s.Name, s.Mgmt.Addr(), agent.WithPin(s.Key), agent.WithMaxTLS(max))
}
