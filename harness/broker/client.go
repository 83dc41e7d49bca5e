package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// URL is a parsed broker URL.
type URL struct {
	// TLS is true for mqtts:// (also ssl://, tls://), false for mqtt:// (also tcp://).
	TLS bool
	// Host is host:port (default port 8883 with TLS, 1883 without).
	Host     string
	Username string
	Password string
}

// ParseURL parses mqtts://[user[:pass]@]host[:port] or mqtt://... .
func ParseURL(raw string) (URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return URL{}, fmt.Errorf("broker URL: %w", err)
	}
	var out URL
	port := ""
	switch strings.ToLower(u.Scheme) {
	case "mqtts", "ssl", "tls", "mqtt+ssl":
		out.TLS, port = true, "8883"
	case "mqtt", "tcp":
		port = "1883"
	default:
		return URL{}, fmt.Errorf("broker URL %q: scheme %q: want mqtts:// or mqtt://", redact(raw), u.Scheme)
	}
	if u.Hostname() == "" {
		return URL{}, fmt.Errorf("broker URL %q: no host", redact(raw))
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return URL{}, fmt.Errorf("broker URL %q: unexpected path or query", redact(raw))
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return URL{}, fmt.Errorf("broker URL %q: bad port %q", redact(raw), p)
		}
		port = p
	}
	out.Host = net.JoinHostPort(u.Hostname(), port)
	if u.User != nil {
		out.Username = u.User.Username()
		out.Password, _ = u.User.Password()
	}
	return out, nil
}

// String returns the URL with the password left out.
func (u URL) String() string {
	scheme := "mqtt"
	if u.TLS {
		scheme = "mqtts"
	}
	user := ""
	if u.Username != "" {
		user = url.User(u.Username).String() + "@"
	}
	return scheme + "://" + user + u.Host
}

// redact removes a password from a URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// ClientConfig is what Dial needs to connect.
type ClientConfig struct {
	// URL is mqtts://host:port or mqtt://host:port; credentials in it are used unless
	// Username is set.
	URL      string
	Username string
	Password string
	ClientID string
	// CAPEM is the trust anchor for mqtts (required for it).
	CAPEM []byte
}

// Dial connects a paho client, for the bench's own checks (specs use drivers/mqtt). It
// fails when ctx ends before the broker accepts the connection.
func Dial(ctx context.Context, cfg ClientConfig) (paho.Client, error) {
	u, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Username == "" {
		cfg.Username, cfg.Password = u.Username, u.Password
	}
	o := paho.NewClientOptions().
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetCleanSession(true).
		SetOrderMatters(false)
	if dl, ok := ctx.Deadline(); ok {
		o.SetConnectTimeout(max(time.Until(dl), time.Millisecond))
	}
	if u.TLS {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(cfg.CAPEM) {
			return nil, fmt.Errorf("broker %s: no CA certificate to verify it with", u)
		}
		o.SetTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
		o.AddBroker("ssl://" + u.Host)
	} else {
		o.AddBroker("tcp://" + u.Host)
	}
	c := paho.NewClient(o)
	if err := waitToken(ctx, c.Connect()); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("broker %s: connect as %q: %w", u, cfg.Username, err)
	}
	return c, nil
}

// waitToken waits for a paho token until ctx ends.
func waitToken(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Subscribe subscribes c to filter and fails when the broker refuses it (SUBACK 0x80).
func Subscribe(ctx context.Context, c paho.Client, filter string, h paho.MessageHandler) error {
	t := c.Subscribe(filter, 1, h)
	if err := waitToken(ctx, t); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	st, ok := t.(*paho.SubscribeToken)
	if ok {
		if code, found := st.Result()[filter]; found && code >= 0x80 {
			return fmt.Errorf("subscribe %s: %w (SUBACK code %#x)", filter, ErrDenied, code)
		}
	}
	return nil
}

// ErrDenied is returned when the broker refuses a subscription.
var ErrDenied = errors.New("refused by the broker")

// WaitOnline waits until the device's retained status topic (<prefix>/<id>/status) says
// online:true, using the harness client c.
func WaitOnline(ctx context.Context, c paho.Client, prefix, id string) error {
	topic := prefix + "/" + id + "/status"
	online := make(chan struct{}, 1)
	err := Subscribe(ctx, c, topic, func(_ paho.Client, m paho.Message) {
		var st struct {
			Online bool `json:"online"`
		}
		if json.Unmarshal(m.Payload(), &st) == nil && st.Online {
			select {
			case online <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return err
	}
	defer c.Unsubscribe(topic)
	select {
	case <-online:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("device %s: no online status on %s: %w", id, topic, errors.Join(ErrNoConnect, ctx.Err()))
	}
}
