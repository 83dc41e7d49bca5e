package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hilt-project/hilt/wire"
)

// Transport sends one command to a device over one interface.
type Transport interface {
	// Iface names the interface: console, mgmt, mqtt or debug.
	Iface() string
	// Do sends cmd with args, authenticated as auth (nil: unauthenticated), and
	// returns the result, or a *DeviceError when the device refused.
	Do(ctx context.Context, auth *wire.Auth, cmd string, args map[string]any) (json.RawMessage, error)
	// Close releases the transport.
	Close() error
}

// DeviceError is a device's refusal of a command: the device answered, and said no.
type DeviceError struct {
	Device, Iface, Cmd string
	Code, Message      string
}

func (e *DeviceError) Error() string {
	return fmt.Sprintf("%s: %s over %s: refused (%s): %s", e.Device, e.Cmd, e.Iface, e.Code, e.Message)
}

// Code returns the device's error code when err is a refusal, else "".
func Code(err error) string {
	var de *DeviceError
	if errors.As(err, &de) {
		return de.Code
	}
	return ""
}

// Refused reports whether err is a refusal by the device (as opposed to a transport fault).
func Refused(err error) bool { return Code(err) != "" }

// ErrNoAnswer is wrapped when a device did not answer a command in time or the
// transport to it broke: an infrastructure fault unless the check was attacking it.
var ErrNoAnswer = errors.New("no answer from device")

// ErrLinkLost is wrapped when the harness's own path to the device broke during a command
// (the serial port vanished, the harness's broker connection was lost): an infrastructure
// fault whatever the check did before, since it says nothing about the device.
var ErrLinkLost = errors.New("the harness's link to the device was lost")

// LinkLost reports whether err is a fault of the harness's path to the device.
func LinkLost(err error) bool { return errors.Is(err, ErrLinkLost) }

// Call sends a command and decodes its result into out (which may be nil).
func Call(ctx context.Context, t Transport, auth *wire.Auth, cmd string, args map[string]any, out any) error {
	raw, err := t.Do(ctx, auth, cmd, args)
	if err != nil {
		return err
	}
	if out == nil || len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s over %s: decode result %.200q: %w", cmd, t.Iface(), raw, err)
	}
	return nil
}

// decodeResponse turns a wire.Response into a result or a *DeviceError.
func decodeResponse(device, iface, cmd string, r wire.Response) (json.RawMessage, error) {
	if r.OK {
		return r.Result, nil
	}
	de := &DeviceError{Device: device, Iface: iface, Cmd: cmd, Code: wire.CodeInternal, Message: "error without detail"}
	if r.Error != nil {
		de.Code, de.Message = r.Error.Code, r.Error.Message
	}
	return nil, de
}
