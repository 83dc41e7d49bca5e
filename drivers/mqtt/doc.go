// Package mqtt is the harness's MQTT client, on the Eclipse Paho client: it publishes
// commands to a device, subscribes to what the device publishes, and records every
// message it receives, as evidence and for event-driven waits.
//
// Dial connects to a broker named by URL (mqtt://, tcp://, mqtts://, ssl://, tls://)
// with optional credentials and TLS (a CA file or pool). Connection failures say which
// failure it was, for errors.Is, and name the broker: ErrRefused (nothing listens),
// ErrNotAuthorized (bad credentials or not authorised), ErrRejected (the broker refused
// the CONNECT for another reason), ErrTLS (handshake or certificate), ErrTimeout.
//
// A lost connection is re-established automatically and every subscription is made
// again; Status tells the caller whether the client is connected, how often it lost the
// connection and why, and gives a channel to wait for the next change.
//
// The Recorder keeps the messages received (bounded), numbered by a sequence. Specs take
// a Mark, act, then WaitFor a message after the mark: there is no polling, a timeout is
// a *TimeoutError that says what was awaited and what was seen instead. WriteLog writes
// the messages as JSON lines for the evidence folder.
//
// Package mqtttest has a Fake client (a broker in memory) for unit tests and a
// conformance checker (mqtttest.TestClient).
//
// The tests start an embedded broker (github.com/mochi-mqtt/server/v2) on 127.0.0.1:0,
// with an authentication hook and a TLS listener whose certificates they generate:
//
//	go test ./drivers/mqtt/...
package mqtt
