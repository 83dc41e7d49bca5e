// Package wire holds the plain message types of the hilt test-agent protocol
// (docs/PROTOCOL.md). It has no logic: the reference device and the harness each
// implement the protocol on their own and share only these shapes, so that a bug
// in one cannot hide behind the same bug in the other.
package wire

import "encoding/json"

// Auth carries credentials inside a JSON request (mgmt, MQTT).
type Auth struct {
	User string `json:"user"`
	Pass string `json:"pass"`
}

// Request is one command sent over mgmt or MQTT.
type Request struct {
	Corr string         `json:"corr"`
	Auth *Auth          `json:"auth,omitempty"`
	Cmd  string         `json:"cmd"`
	Args map[string]any `json:"args,omitempty"`
}

// Error is the error half of a Response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Response answers a Request; exactly one of Result and Error is set.
type Response struct {
	Corr   string          `json:"corr"`
	OK     bool            `json:"ok"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Error codes a device answers with.
const (
	CodeAuth      = "auth"
	CodeForbidden = "forbidden"
	CodeLocked    = "locked"
	CodeInvalid   = "invalid"
	CodeRejected  = "rejected"
	CodeDisabled  = "disabled"
	CodeUnknown   = "unknown-command"
	CodeState     = "state"
	CodeInternal  = "internal"
)

// Image describes the firmware image a device is running.
type Image struct {
	Version string `json:"version"`
	Nonce   string `json:"nonce"`
	Slot    string `json:"slot"`
}

// Component is one entry of a device's software inventory.
type Component struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	PURL    string `json:"purl,omitempty"`
}

// Info is the result of the info command.
type Info struct {
	ID                   string      `json:"id"`
	Model                string      `json:"model"`
	FirmwareVersion      string      `json:"firmware_version"`
	Image                Image       `json:"image"`
	BuildDate            string      `json:"build_date"`  // YYYY-MM-DD
	SupportEnd           string      `json:"support_end"` // YYYY-MM-DD
	VulnContact          string      `json:"vuln_contact"`
	UpdateKeyFingerprint string      `json:"update_key_fingerprint"`
	Inventory            []Component `json:"inventory"`
	Provisioned          bool        `json:"provisioned"`
}

// Event is one entry of the security event log, as read and as published.
type Event struct {
	Seq    int64             `json:"seq"`
	Time   string            `json:"time"` // RFC 3339 UTC with nanoseconds
	Type   string            `json:"type"`
	Iface  string            `json:"iface,omitempty"`
	ID     string            `json:"id,omitempty"` // set on published events
	Detail map[string]string `json:"detail,omitempty"`
}

// Telemetry is the periodic sensor report.
type Telemetry struct {
	ID    string  `json:"id"`
	Time  string  `json:"time"`
	TempC float64 `json:"temp_c"`
	Relay bool    `json:"relay"`
}

// Status is the retained online/offline message.
type Status struct {
	ID     string `json:"id"`
	Online bool   `json:"online"`
}

// Manifest is the signed part of an update image.
type Manifest struct {
	Format  int    `json:"format"`
	Model   string `json:"model"`
	Version string `json:"version"`
	Length  int64  `json:"length"`
	SHA256  string `json:"sha256"`
}

// Payload is the first JSON line of an image payload.
type Payload struct {
	Version string `json:"version"`
	Nonce   string `json:"nonce"`
}

// ImageMagic starts every update image.
const ImageMagic = "HILTFW01"

// MaxImageSize is the largest image a device accepts.
const MaxImageSize = 256 << 10

// Interface names.
const (
	IfaceConsole = "console"
	IfaceMgmt    = "mgmt"
	IfaceMQTT    = "mqtt"
	IfaceDebug   = "debug"
)

// Default ports of the network interfaces.
const (
	PortMgmt  = 8443
	PortDebug = 2323
)

// ChallengeMessage is what a device signs for the sign command.
func ChallengeMessage(id, nonceHex string) []byte {
	return []byte("hilt-challenge\n" + id + "\n" + nonceHex)
}
