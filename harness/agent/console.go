package agent

import (
	"context"
	"fmt"

	"github.com/hilt-project/hilt/drivers/serial"
)

// ReadyLine is what a device prints on its console when it has booted.
const ReadyLine = "refdev ready"

// Console is the text transport over a serial console.
type Console struct {
	text
	c serial.Console
}

var _ Transport = (*Console)(nil)

// NewConsole returns a transport over console c of the named device. It does not own c.
func NewConsole(device string, c serial.Console) *Console {
	con := &Console{c: c}
	con.text = text{device: device, iface: "console", io: consoleIO{c}}
	return con
}

// Serial returns the console underneath, for expecting boot output.
func (c *Console) Serial() serial.Console { return c.c }

// Raw sends one line as given and returns the answer.
func (c *Console) Raw(ctx context.Context, line string) ([]byte, error) {
	r, err := c.text.Raw(ctx, c.loggedIn, line)
	return r, err
}

// WaitReady waits, from mark on, for the line the device prints when it has booted. The
// console session is logged out by a reboot, so the transport forgets its login.
func (c *Console) WaitReady(ctx context.Context, mark serial.Mark) error {
	c.Forget()
	if _, err := c.c.Expect(ctx, serial.Regex(`(?m)^`+ReadyLine+`\r?$`)); err != nil {
		return fmt.Errorf("%s: waiting for %q on the console: %w", c.device, ReadyLine, err)
	}
	return nil
}

type consoleIO struct{ c serial.Console }

func (c consoleIO) send(ctx context.Context, line string) error { return c.c.Send(ctx, line) }

func (c consoleIO) answer(ctx context.Context) (bool, string, error) {
	m, err := c.c.Expect(ctx, serial.Regex(answerRE.String()))
	if err != nil {
		return false, "", err
	}
	ok, rest := parseAnswer(m.Text)
	return ok, rest, nil
}
