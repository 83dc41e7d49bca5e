package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Listener IDs, as reported in Event.Listener.
const (
	ListenerTLS   = "tls"
	ListenerPlain = "plain"
)

// HarnessUsername is the conventional name of the harness account.
const HarnessUsername = "hilt-harness"

// DefaultTopicPrefix is the topic prefix of the reference device.
const DefaultTopicPrefix = "hilt"

// handshakeTimeout bounds a TLS handshake on the broker's listener.
const handshakeTimeout = 10 * time.Second

// Errors callers branch on.
var (
	// ErrNoConnect is wrapped by a ConnectError: the account did not connect in time.
	ErrNoConnect = errors.New("no MQTT connection")
	// ErrUnknownAccount is returned for a user name the broker has no account for.
	ErrUnknownAccount = errors.New("unknown account")
	// ErrBound is the reason a device account's connection with a client ID other than its
	// own, or with one bound to another account, is refused.
	ErrBound = errors.New("client ID bound otherwise")
)

// Account is a broker user.
type Account struct {
	Username string
	Password string
	// ClientID, for a device account, is the only client ID it may use; empty until the
	// device connects for the first time or Bind is called.
	ClientID string
}

// Options configures the embedded broker.
type Options struct {
	// Certificate is the TLS listener's server certificate (required).
	Certificate tls.Certificate
	// Host is the address both listeners bind, default 0.0.0.0 (every host address, so that
	// each device reaches the broker through the host side of its own link).
	Host string
	// TopicPrefix defaults to DefaultTopicPrefix.
	TopicPrefix string
	// Harness is the harness account (required).
	Harness Account
	// Devices are the device accounts.
	Devices []Account
	// Log receives one line per connection attempt and the broker's warnings; nil: none.
	Log io.Writer
}

// Event is one connection attempt on the broker.
type Event struct {
	Time     time.Time
	Listener string // ListenerTLS or ListenerPlain
	Remote   netip.AddrPort
	ClientID string
	Username string
	// OK is true for an accepted connection.
	OK bool
	// Reason says why the attempt was refused (or failed during the TLS handshake).
	Reason string
}

func (e Event) String() string {
	who := fmt.Sprintf("user %q client %q", e.Username, e.ClientID)
	if e.Username == "" && e.ClientID == "" {
		who = "before MQTT CONNECT"
	}
	s := fmt.Sprintf("%s %s from %s on the %s listener", e.Time.Format("15:04:05.000"), who, e.Remote, e.Listener)
	if e.OK {
		return s + ": connected"
	}
	return s + ": refused: " + e.Reason
}

// ConnectError says that an account did not connect in time, and what was seen instead.
type ConnectError struct {
	Username string
	// Attempts are the refused attempts by the account, or from the address the caller
	// named (TLS failures happen before the user name is known).
	Attempts []Event
	Err      error
}

func (e *ConnectError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "account %q: %v", e.Username, e.Err)
	if len(e.Attempts) == 0 {
		b.WriteString("; no connection attempt reached the broker")
		return b.String()
	}
	b.WriteString("; attempts seen:")
	for _, a := range e.Attempts {
		b.WriteString("\n  ")
		b.WriteString(a.String())
	}
	return b.String()
}

// Unwrap returns ErrNoConnect joined with the context's error.
func (e *ConnectError) Unwrap() error { return e.Err }

// Broker is the embedded MQTT broker.
type Broker struct {
	server *mqtt.Server   // replaced by Resume: under restart
	guard  *takeoverGuard // server's; replaced with it
	tlsLn  net.Listener   // replaced by Resume: under restart
	plain  net.Listener   // replaced by Resume: under restart
	// The listeners' addresses, set by Start and kept by Resume: read without a lock.
	tlsAddr, plainAddr *net.TCPAddr
	prefix             string
	log                io.Writer

	mu       sync.Mutex
	accounts map[string]*Account // by user name
	harness  string
	events   []Event
	changed  chan struct{} // closed and replaced on every new event
	closed   bool
	stopped  bool       // by Stop, until Resume (restart.go)
	restart  sync.Mutex // serialises Stop, Resume and Close's use of server
}

// Start starts the embedded broker. The listeners are open when it returns.
func Start(ctx context.Context, opts Options) (*Broker, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("broker: start: %w", err)
	}
	if len(opts.Certificate.Certificate) == 0 {
		return nil, errors.New("broker: start: no TLS certificate")
	}
	if opts.Harness.Username == "" || opts.Harness.Password == "" {
		return nil, errors.New("broker: start: harness account needs a user name and password")
	}
	if opts.Host == "" {
		opts.Host = "0.0.0.0"
	}
	if opts.TopicPrefix == "" {
		opts.TopicPrefix = DefaultTopicPrefix
	}
	b := &Broker{
		prefix:   opts.TopicPrefix,
		log:      opts.Log,
		accounts: map[string]*Account{},
		harness:  opts.Harness.Username,
		changed:  make(chan struct{}),
	}
	h := opts.Harness
	b.accounts[h.Username] = &h
	for _, d := range opts.Devices {
		if d.Username == "" || d.Password == "" {
			return nil, errors.New("broker: start: a device account needs a user name and password")
		}
		if _, dup := b.accounts[d.Username]; dup {
			return nil, fmt.Errorf("broker: start: account %q given twice", d.Username)
		}
		d := d
		if d.ClientID != "" {
			if err := validClientID(d.ClientID); err != nil {
				return nil, fmt.Errorf("broker: start: account %q: %w", d.Username, err)
			}
		}
		b.accounts[d.Username] = &d
	}

	var serr error
	if b.server, b.guard, serr = b.newServer(opts.Log); serr != nil {
		return nil, serr
	}

	var err error
	b.plain, err = net.Listen("tcp", net.JoinHostPort(opts.Host, "0"))
	if err != nil {
		return nil, fmt.Errorf("broker: plaintext listener on %s: %w", opts.Host, err)
	}
	raw, err := net.Listen("tcp", net.JoinHostPort(opts.Host, "0"))
	if err != nil {
		b.plain.Close()
		return nil, fmt.Errorf("broker: TLS listener on %s: %w", opts.Host, err)
	}
	b.tlsLn = &tlsListener{
		Listener: raw,
		cfg: &tls.Config{
			Certificates: []tls.Certificate{opts.Certificate},
			MinVersion:   tls.VersionTLS12,
		},
		fail: func(remote net.Addr, err error) {
			b.record(ListenerTLS, remote, "", "", false, "TLS handshake: "+err.Error())
		},
	}
	for _, l := range []listeners.Listener{listeners.NewNet(ListenerTLS, b.tlsLn), listeners.NewNet(ListenerPlain, b.plain)} {
		if err := b.server.AddListener(l); err != nil {
			b.tlsLn.Close()
			b.plain.Close()
			return nil, fmt.Errorf("broker: add listener %s: %w", l.ID(), err)
		}
	}
	if err := b.server.Serve(); err != nil {
		b.server.Close()
		return nil, fmt.Errorf("broker: serve: %w", err)
	}
	b.tlsAddr, b.plainAddr = b.tlsLn.Addr().(*net.TCPAddr), b.plain.Addr().(*net.TCPAddr)
	return b, nil
}

// newServer makes a mochi server with the broker's hooks (accounts and ACL, the takeover
// guard, returned too), logging errors to logw: Start's, and Resume's after a restart.
func (b *Broker) newServer(logw io.Writer) (*mqtt.Server, *takeoverGuard, error) {
	if logw == nil {
		logw = io.Discard
	}
	server := mqtt.New(&mqtt.Options{
		Logger:       slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelError})),
		InlineClient: false,
	})
	if err := server.AddHook(&hook{b: b}, nil); err != nil {
		return nil, nil, fmt.Errorf("broker: add auth hook: %w", err)
	}
	guard := newTakeoverGuard(server)
	if err := server.AddHook(guard, nil); err != nil {
		return nil, nil, fmt.Errorf("broker: add takeover guard: %w", err)
	}
	return server, guard, nil
}

// TLSAddr returns the TLS listener's address.
func (b *Broker) TLSAddr() *net.TCPAddr { return b.tlsAddr }

// PlainAddr returns the plaintext listener's address.
func (b *Broker) PlainAddr() *net.TCPAddr { return b.plainAddr }

// TopicPrefix returns the topic prefix the ACL is built on.
func (b *Broker) TopicPrefix() string { return b.prefix }

// Binding is the outcome of Bind.
type Binding struct {
	// Previous is the client ID the account was bound to before, if another one.
	Previous string
	// SharedWith are the other accounts bound to the same client ID (devices that report
	// the same ID: each may use it, and the harness account may not).
	SharedWith []string
}

// Bind binds a device account to clientID, the ID its device reports. It replaces an earlier
// binding (a device whose ID changed, or that connected first with a client ID other than
// the ID it reports: it may then connect only with its ID). Only the bench binds an ID that
// another account already holds, when two devices report the same ID; a device account
// cannot claim such an ID by connecting with it.
func (b *Broker) Bind(username, clientID string) (Binding, error) {
	if err := validClientID(clientID); err != nil {
		return Binding{}, fmt.Errorf("broker: bind account %q: %w", username, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.accounts[username]
	if !ok || username == b.harness {
		return Binding{}, fmt.Errorf("broker: bind %q: %w (not a device account)", username, ErrUnknownAccount)
	}
	var res Binding
	if a.ClientID != "" && a.ClientID != clientID {
		res.Previous = a.ClientID
	}
	res.SharedWith = b.ownersLocked(clientID, username)
	a.ClientID = clientID
	return res, nil
}

// ownersLocked returns the device accounts bound to clientID, except one.
func (b *Broker) ownersLocked(clientID, except string) []string {
	var out []string
	for name, a := range b.accounts {
		if name != b.harness && name != except && a.ClientID == clientID {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Account returns the current state of an account (its bound client ID included).
func (b *Broker) Account(username string) (Account, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.accounts[username]
	if !ok {
		return Account{}, false
	}
	return *a, true
}

// Events returns every connection attempt so far, oldest first.
func (b *Broker) Events() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Event(nil), b.events...)
}

// WaitConnect waits until the account has connected (now or before) and returns that
// connection. When ctx ends first it returns a *ConnectError listing the refused attempts by
// the account and, if from is valid, every refused attempt from that address.
func (b *Broker) WaitConnect(ctx context.Context, username string, from netip.Addr) (Event, error) {
	for {
		b.mu.Lock()
		var attempts []Event
		for _, e := range b.events {
			if e.Username == username && e.OK {
				b.mu.Unlock()
				return e, nil
			}
			if !e.OK && (e.Username == username || (from.IsValid() && e.Remote.Addr().Unmap() == from)) {
				attempts = append(attempts, e)
			}
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return Event{}, &ConnectError{Username: username, Attempts: attempts, Err: errors.Join(ErrNoConnect, ctx.Err())}
		}
	}
}

// Close stops the broker and disconnects every client. It is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	stopped := b.stopped
	b.mu.Unlock()
	b.restart.Lock()
	defer b.restart.Unlock()
	if stopped {
		return nil
	}
	b.guard.close()
	return b.server.Close()
}

// record appends an event and wakes the waiters.
func (b *Broker) record(listener string, remote net.Addr, user, clientID string, ok bool, reason string) {
	e := Event{Time: time.Now(), Listener: listener, Username: user, ClientID: clientID, OK: ok, Reason: reason}
	if remote != nil {
		if ap, err := netip.ParseAddrPort(remote.String()); err == nil {
			e.Remote = ap
		}
	}
	b.mu.Lock()
	b.events = append(b.events, e)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	if b.log != nil {
		fmt.Fprintf(b.log, "broker: %s\n", e)
	}
}

// validClientID accepts a client ID that can stand as one topic level.
func validClientID(id string) error {
	if id == "" || strings.ContainsAny(id, "/+#\x00") || len(id) > 128 {
		return fmt.Errorf("client ID %q cannot stand as a topic level", id)
	}
	return nil
}

// tlsListener does the TLS handshake itself so that failures are recorded with the peer.
type tlsListener struct {
	net.Listener
	cfg  *tls.Config
	fail func(remote net.Addr, err error)
}

func (l *tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &handshakeConn{Conn: tls.Server(c, l.cfg), fail: l.fail}, nil
}

// handshakeConn completes the handshake on first use (in the client's goroutine) and
// reports a failure once.
type handshakeConn struct {
	*tls.Conn
	fail func(remote net.Addr, err error)
	once sync.Once
	err  error
}

func (c *handshakeConn) handshake() error {
	c.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		if err := c.Conn.HandshakeContext(ctx); err != nil {
			c.err = err
			c.fail(c.RemoteAddr(), err)
		}
	})
	return c.err
}

func (c *handshakeConn) Read(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *handshakeConn) Write(p []byte) (int, error) {
	if err := c.handshake(); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
