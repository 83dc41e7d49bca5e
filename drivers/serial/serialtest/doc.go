// Package serialtest supports tests of code that uses package serial: a Fake console
// (a serial.Port in memory, played by the test) and TestConsole, a conformance check
// that any serial.Console can be held to (the real port on a pty, the Fake, a future
// ser2net console).
//
//	go test ./drivers/serial/serialtest/
package serialtest
