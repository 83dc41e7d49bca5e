// Package broker gives a simulated bench its MQTT broker: the embedded one (mochi-mqtt,
// in-process, the default), a private Mosquitto started from a generated configuration, or
// an external broker named by URL.
//
// # Embedded broker
//
// Start opens two listeners on ephemeral ports (0.0.0.0 by default): TLS with a run-scoped
// server certificate, and plaintext (legacy: only a device with a plaintext-MQTT flaw uses
// it). There is no anonymous access. Accounts:
//
//   - one harness account (conventionally hilt-harness): publish and subscribe anywhere
//     under <prefix>/;
//   - one account per device: publish and subscribe only under <prefix>/<client-id>/, where
//     <client-id> is the one client ID the account is bound to.
//
// The bench cannot know a device's ID before its first boot, so a device account is bound to
// a client ID at its first successful connection (the device connects with its ID as client
// ID), or earlier by Bind, which the bench calls as soon as the device reports its ID. Once
// bound, the account connects only with that client ID, no other account may claim it, and
// Bind with a different ID fails, naming both. The harness account cannot use a client ID
// bound to a device (it could otherwise take over the device's session). A will message
// outside the account's subtree is refused at connect time, as Mosquitto does.
//
// Every connection attempt (TLS handshake failures included) is recorded as an Event;
// WaitConnect waits, with the caller's deadline, for an account's first connection and,
// when it does not come, says what was seen instead (wrong password, refused client ID,
// TLS failure from the device's address, nothing at all).
//
// # Mosquitto
//
// StartMosquitto writes mosquitto.conf, a hashed password file (mosquitto_passwd -U) and an
// ACL file into a directory, starts `mosquitto -c` and waits until it has opened its
// listeners and accepts a connection. Mosquitto cannot bind an account to a client ID: an
// unbound device account may use <prefix>/+/# until Bind rewrites its ACL to
// <prefix>/<id>/# and reloads Mosquitto (SIGHUP). Its tests run where the mosquitto and
// mosquitto_passwd commands are installed (Debian: apt-get install mosquitto) and are
// skipped otherwise, except that they fail when CI=true.
//
// # External brokers
//
// ParseURL reads a broker URL (mqtts://user:pass@host:port or mqtt://...). The user in the
// URL is the harness account; devices get their own accounts from the caller, or share the
// harness account (then device/harness separation is not tested). See docs/SIM.md.
package broker
