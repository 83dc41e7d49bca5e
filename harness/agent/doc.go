// Package agent is the harness's client of the hilt test-agent protocol
// (docs/PROTOCOL.md): the same commands over the serial console, the TLS management
// API, MQTT and the legacy debug service. Every transport implements Transport, so a
// check can send the same request over every interface a device declares and compare.
//
// The package is written against the protocol document only; it shares no code with
// the reference device.
package agent
