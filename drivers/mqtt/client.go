package mqtt

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync"
	"syscall"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// Publisher publishes messages.
type Publisher interface {
	// Publish sends payload to topic and waits until the broker has it (for QoS 1 and 2)
	// or it is written (QoS 0).
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error
}

// Subscriber subscribes to topics and records what arrives.
type Subscriber interface {
	// Subscribe subscribes to filter; messages that arrive are recorded by Recorder.
	// A filter the broker refuses gives ErrSubscribeRefused.
	Subscribe(ctx context.Context, filter string, qos byte) error
	// Unsubscribe ends the subscription to filter.
	Unsubscribe(ctx context.Context, filter string) error
	// Recorder returns the recorder of received messages.
	Recorder() *Recorder
}

// Client is a connection to a broker, for its owner.
type Client interface {
	Publisher
	Subscriber
	// Status returns the state of the connection.
	Status() Status
	// Close disconnects. Later calls fail with ErrClosed.
	Close() error
}

// Status is the state of a client's connection.
type Status struct {
	// Connected is true while the connection is up.
	Connected bool
	// Lost counts the connections lost since Dial.
	Lost int
	// Reconnects counts the connections re-established since Dial.
	Reconnects int
	// LastErr is why the connection was last lost, or why subscriptions could not be
	// made again after a reconnect; nil if nothing went wrong.
	LastErr error
	// Changed is closed at the next change of the status.
	Changed <-chan struct{}
}

// Sentinel errors, for errors.Is. Errors name the broker URL (without its password).
var (
	ErrRefused          = errors.New("connection refused")
	ErrNotAuthorized    = errors.New("not authorized")
	ErrRejected         = errors.New("connection rejected by the broker")
	ErrTLS              = errors.New("TLS failure")
	ErrConnectTimeout   = errors.New("connect timed out")
	ErrConnect          = errors.New("cannot connect")
	ErrBadURL           = errors.New("bad broker URL")
	ErrNotConnected     = errors.New("not connected")
	ErrSubscribeRefused = errors.New("subscription refused by the broker")
	ErrClosed           = errors.New("client closed")
)

// Options says how to reach a broker.
type Options struct {
	// URL is the broker: mqtt:// or tcp:// (plain, default port 1883), mqtts://, ssl://
	// or tls:// (TLS, default port 8883). User info in the URL is used when Username is
	// empty. The broker is dialled directly: proxy environment variables do not apply.
	URL string
	// ClientID defaults to "hilt-" and random hex.
	ClientID string
	Username string
	Password string
	// CAFile (PEM) or CAPool are the CAs the broker's certificate must chain to (the
	// system pool if neither is set).
	CAFile string
	CAPool *x509.CertPool
	// TLSConfig, if set, is the base TLS configuration (client certificates, server
	// name); CAFile and CAPool override its RootCAs.
	TLSConfig *tls.Config
	// ConnectTimeout bounds each connection attempt, the reconnections included (default
	// 10s; Dial's ctx also bounds the first, but not the later ones: a connection made
	// with little time left must not keep that little time for every reconnection).
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive (default 30s). The client also waits that long for
	// the broker's answer to a ping before it counts the connection as lost (paho's
	// default, 10 s, dropped healthy connections on a host busy with many devices).
	KeepAlive time.Duration
	// MaxReconnectInterval caps the back-off between reconnection attempts (default 5s).
	MaxReconnectInterval time.Duration
	// RecordMessages and RecordBytes bound the Recorder (0: the defaults).
	RecordMessages int
	RecordBytes    int64
}

type client struct {
	url  string // redacted, for errors
	pc   paho.Client
	rec  *Recorder
	opts Options

	mu         sync.Mutex
	subs       map[string]byte
	connects   int
	lost       int
	lastErr    error
	closed     bool
	statusWake chan struct{}
}

var _ Client = (*client)(nil)

// Dial connects to the broker and returns a connected Client.
func Dial(ctx context.Context, opts Options) (Client, error) {
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("mqtt %q: %w: %v", opts.URL, ErrBadURL, err)
	}
	name := u.Redacted()
	broker, secure, err := brokerURL(u)
	if err != nil {
		return nil, fmt.Errorf("mqtt %s: %w", name, err)
	}
	if opts.Username == "" && u.User != nil {
		opts.Username = u.User.Username()
		opts.Password, _ = u.User.Password()
	}
	if opts.ClientID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		opts.ClientID = "hilt-" + hex.EncodeToString(b[:])
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 30 * time.Second
	}
	if opts.MaxReconnectInterval <= 0 {
		opts.MaxReconnectInterval = 5 * time.Second
	}

	c := &client{
		url:        name,
		rec:        NewRecorder(opts.RecordMessages, opts.RecordBytes),
		opts:       opts,
		subs:       map[string]byte{},
		statusWake: make(chan struct{}),
	}
	po := paho.NewClientOptions().
		AddBroker(broker).
		SetClientID(opts.ClientID).
		SetUsername(opts.Username).
		SetPassword(opts.Password).
		SetCleanSession(true).
		SetProtocolVersion(4).
		SetAutoReconnect(true).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetConnectTimeout(opts.ConnectTimeout). // the first attempt: ctx bounds it too, below
		SetKeepAlive(opts.KeepAlive).
		SetPingTimeout(opts.KeepAlive).
		SetMaxReconnectInterval(opts.MaxReconnectInterval).
		SetOrderMatters(true).
		SetDefaultPublishHandler(c.onMessage).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(c.onLost)
	var tc *tls.Config
	if secure {
		if tc, err = tlsConfig(u, opts); err != nil {
			return nil, fmt.Errorf("mqtt %s: %w: %w", name, ErrTLS, err)
		}
	}
	po.SetCustomOpenConnectionFn(func(uri *url.URL, o paho.ClientOptions) (net.Conn, error) {
		return openConn(uri.Host, tc, o.ConnectTimeout)
	})
	c.pc = paho.NewClient(po)

	tok := c.pc.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.pc.Disconnect(0)
		return nil, fmt.Errorf("mqtt %s: connect: %w: %w", name, ErrConnectTimeout, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("mqtt %s: connect: %w: %w", name, classify(err), err)
	}
	return c, nil
}

// brokerURL returns the URL paho dials and whether it uses TLS.
func brokerURL(u *url.URL) (string, bool, error) {
	var scheme, port string
	var secure bool
	switch u.Scheme {
	case "mqtt", "tcp":
		scheme, port = "tcp", "1883"
	case "mqtts", "ssl", "tls":
		scheme, port, secure = "ssl", "8883", true
	default:
		return "", false, fmt.Errorf("%w: scheme %q (want mqtt, tcp, mqtts, ssl or tls)", ErrBadURL, u.Scheme)
	}
	if u.Hostname() == "" {
		return "", false, fmt.Errorf("%w: no host", ErrBadURL)
	}
	if u.Port() != "" {
		port = u.Port()
	}
	return scheme + "://" + net.JoinHostPort(u.Hostname(), port), secure, nil
}

func tlsConfig(u *url.URL, opts Options) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.TLSConfig != nil {
		tc = opts.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = u.Hostname()
	}
	if opts.CAPool != nil {
		tc.RootCAs = opts.CAPool
	}
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		pool := tc.RootCAs
		if pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificate in it", opts.CAFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// errHandshake marks an error of the TLS handshake, whatever its form (a certificate
// error, an alert, or the broker hanging up on a ClientHello it did not expect).
var errHandshake = errors.New("TLS handshake")

// openConn dials the broker (and shakes hands when tc is not nil), marking handshake
// failures so that they are told apart from TCP ones.
func openConn(addr string, tc *tls.Config, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.Dial("tcp", addr)
	if err != nil || tc == nil {
		return conn, err
	}
	tconn := tls.Client(conn, tc)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := tconn.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %w", errHandshake, err)
	}
	return tconn, nil
}

// classify says which sentinel a connection error falls under.
func classify(err error) error {
	var (
		certErr   *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		invalid   x509.CertificateInvalidError
		alert     tls.AlertError
		recErr    tls.RecordHeaderError
		netErr    net.Error
	)
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword), errors.Is(err, packets.ErrorRefusedNotAuthorised):
		return ErrNotAuthorized
	case errors.Is(err, packets.ErrorRefusedIDRejected), errors.Is(err, packets.ErrorRefusedBadProtocolVersion),
		errors.Is(err, packets.ErrorRefusedServerUnavailable):
		return ErrRejected
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrRefused
	case errors.Is(err, errHandshake) && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)):
		return ErrConnectTimeout
	case errors.Is(err, errHandshake),
		errors.As(err, &certErr), errors.As(err, &unknownCA), errors.As(err, &hostErr), errors.As(err, &invalid),
		errors.As(err, &alert), errors.As(err, &recErr):
		return ErrTLS
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return ErrConnectTimeout
	}
	return ErrConnect
}

func (c *client) onMessage(_ paho.Client, m paho.Message) {
	c.rec.Add(Message{Topic: m.Topic(), Payload: m.Payload(), Retained: m.Retained(), QoS: m.Qos()})
}

// changedLocked wakes the waiters on Status().Changed. Called with mu held.
func (c *client) changedLocked() {
	close(c.statusWake)
	c.statusWake = make(chan struct{})
}

func (c *client) onLost(_ paho.Client, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lost++
	c.lastErr = fmt.Errorf("mqtt %s: connection lost: %w", c.url, err)
	c.changedLocked()
}

func (c *client) onConnect(pc paho.Client) {
	c.mu.Lock()
	c.connects++
	reconnect := c.connects > 1
	subs := make(map[string]byte, len(c.subs))
	for f, q := range c.subs {
		subs[f] = q
	}
	c.changedLocked()
	c.mu.Unlock()
	if !reconnect || len(subs) == 0 {
		return
	}
	// A clean session forgets subscriptions: make them again.
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.ConnectTimeout)
	defer cancel()
	tok := pc.SubscribeMultiple(subs, nil)
	err := waitToken(ctx, tok)
	if err == nil {
		err = subackErr(tok)
	}
	if err != nil {
		c.mu.Lock()
		c.lastErr = fmt.Errorf("mqtt %s: resubscribe after reconnect: %w", c.url, err)
		c.changedLocked()
		c.mu.Unlock()
	}
}

func waitToken(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// subackErr reports the filters a SUBACK refused (return code 0x80, or a reason code
// of 0x80 and above from a broker that answers an MQTT 3.1.1 client with MQTT 5 codes).
func subackErr(tok paho.Token) error {
	st, ok := tok.(*paho.SubscribeToken)
	if !ok {
		return nil
	}
	var errs []error
	for f, code := range st.Result() {
		if code >= 0x80 {
			errs = append(errs, fmt.Errorf("%w: %q", ErrSubscribeRefused, f))
		}
	}
	return errors.Join(errs...)
}

func (c *client) usable(op, what string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("mqtt %s: %s %s: %w", c.url, op, what, ErrClosed)
	}
	return nil
}

func (c *client) wrap(op, what string, err error) error {
	if errors.Is(err, paho.ErrNotConnected) {
		return fmt.Errorf("mqtt %s: %s %q: %w: %w", c.url, op, what, ErrNotConnected, err)
	}
	return fmt.Errorf("mqtt %s: %s %q: %w", c.url, op, what, err)
}

func (c *client) Publish(ctx context.Context, topic string, payload []byte, qos byte, retained bool) error {
	if err := c.usable("publish", topic); err != nil {
		return err
	}
	if qos > 2 {
		return c.wrap("publish", topic, fmt.Errorf("invalid QoS %d", qos))
	}
	if err := waitToken(ctx, c.pc.Publish(topic, qos, retained, payload)); err != nil {
		return c.wrap("publish", topic, err)
	}
	return nil
}

func (c *client) Subscribe(ctx context.Context, filter string, qos byte) error {
	if err := c.usable("subscribe", filter); err != nil {
		return err
	}
	c.mu.Lock()
	c.subs[filter] = qos
	c.mu.Unlock()
	tok := c.pc.Subscribe(filter, qos, nil) // nil: messages go to the default handler, once
	err := waitToken(ctx, tok)
	if err == nil {
		err = subackErr(tok)
	}
	if err != nil {
		c.mu.Lock()
		delete(c.subs, filter)
		c.mu.Unlock()
		return c.wrap("subscribe", filter, err)
	}
	return nil
}

func (c *client) Unsubscribe(ctx context.Context, filter string) error {
	if err := c.usable("unsubscribe", filter); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.subs, filter)
	c.mu.Unlock()
	if err := waitToken(ctx, c.pc.Unsubscribe(filter)); err != nil {
		return c.wrap("unsubscribe", filter, err)
	}
	return nil
}

func (c *client) Recorder() *Recorder { return c.rec }

func (c *client) Status() Status {
	open := c.pc.IsConnectionOpen()
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{
		Connected:  !c.closed && open,
		Lost:       c.lost,
		Reconnects: max(0, c.connects-1),
		LastErr:    c.lastErr,
		Changed:    c.statusWake,
	}
}

func (c *client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.changedLocked()
	c.mu.Unlock()
	c.pc.Disconnect(250)
	return nil
}
