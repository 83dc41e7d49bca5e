package broker

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"net"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// hook is the embedded broker's authentication and ACL.
type hook struct {
	mqtt.HookBase
	b *Broker
}

func (h *hook) ID() string { return "hilt-auth" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

// OnConnectAuthenticate checks the password, binds or checks the client ID, and checks the
// will topic; every outcome is recorded.
func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	b := h.b
	user, id := string(cl.Properties.Username), cl.ID
	reason := b.authenticate(user, id, pk)
	b.record(cl.Net.Listener, remoteAddr(cl), user, id, reason == "", reason)
	return reason == ""
}

// authenticate returns why the connection is refused, or "".
func (b *Broker) authenticate(user, id string, pk packets.Packet) string {
	if user == "" {
		return "anonymous access is not allowed"
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	a, ok := b.accounts[user]
	if !ok {
		return "unknown user"
	}
	if subtle.ConstantTimeCompare([]byte(a.Password), pk.Connect.Password) != 1 {
		return "wrong password"
	}
	if user == b.harness {
		if owners := b.ownersLocked(id, ""); len(owners) > 0 {
			return fmt.Sprintf("client ID %q belongs to device account %q", id, owners[0])
		}
	} else {
		switch {
		case pk.Connect.ClientIdentifier == "":
			return "a device account must connect with its device ID as client ID (got an empty one)"
		case a.ClientID == "":
			if owners := b.ownersLocked(id, user); len(owners) > 0 {
				return fmt.Sprintf("%v: client ID %q is bound to account %q", ErrBound, id, owners[0])
			}
			a.ClientID = id // the account's first connection binds it
		case a.ClientID != id:
			return fmt.Sprintf("%v: the account is bound to client ID %q", ErrBound, a.ClientID)
		}
	}
	if pk.Connect.WillFlag && !b.allowedLocked(user, pk.Connect.WillTopic) {
		return fmt.Sprintf("will topic %q is outside the account's topics", pk.Connect.WillTopic)
	}
	return ""
}

// OnACLCheck allows the harness everything under <prefix>/ and a device everything under
// <prefix>/<its client ID>/, for topics and subscription filters alike.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	h.b.mu.Lock()
	ok := h.b.allowedLocked(user, topic)
	h.b.mu.Unlock()
	if !ok && h.b.log != nil {
		op := "subscribe to / receive"
		if write {
			op = "publish to"
		}
		fmt.Fprintf(h.b.log, "broker: denied: user %q client %q may not %s %q\n", user, cl.ID, op, topic)
	}
	return ok
}

func (b *Broker) allowedLocked(user, topic string) bool {
	a, ok := b.accounts[user]
	if !ok {
		return false
	}
	root := b.prefix
	if user != b.harness {
		if a.ClientID == "" {
			return false
		}
		root = b.prefix + "/" + a.ClientID
	}
	// A literal prefix check: wildcards are allowed only below the account's root.
	return topic == root || strings.HasPrefix(topic, root+"/")
}

func remoteAddr(cl *mqtt.Client) net.Addr {
	if cl.Net.Conn == nil {
		return nil
	}
	return cl.Net.Conn.RemoteAddr()
}
