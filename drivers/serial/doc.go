// Package serial drives a device's text console over a serial line: a real tty
// (/dev/ttyUSB0), the pty of a simulated device, QEMU's pty. Ports are opened with
// go.bug.st/serial.
//
// A Console is what specs use: Send a command, Expect an answer. A Port is what the
// device session owns: a Console it can also Reopen and Close.
//
// One goroutine per port reads everything the device prints into a transcript (bounded,
// see WithTranscriptLimit) and wakes the Expect calls that wait on it; no Expect polls.
// Expect searches from a consumption cursor and, on a match, moves the cursor past it,
// so that two Expects of the same prompt need two prompts. Matchers are built with
// Literal, Regex, AnyOf, AllOf and MustNotMatch. Offsets (Match.Start and End, Mark) count
// bytes since the port was opened and stay meaningful when old output is dropped.
//
// Failures are values: a context deadline or cancellation gives a *TimeoutError (which
// is ErrTimeout and the context's error) carrying what was awaited and the last output;
// forbidden output gives a *ForbiddenError (ErrForbiddenOutput); a port that vanishes
// (USB adapter unplugged, pty master closed) gives a *GoneError (ErrPortGone) to every
// pending and later Expect until Reopen brings it back (a power-cycled adapter, a device
// whose USB console re-enumerates on reset). With WithAutoReopen a write to a vanished
// port reopens it by its path first, waiting as long as the write's ctx allows, and fails
// with a *GoneError naming the port when it does not come back.
//
// Package serialtest has a Fake console for unit tests of other packages and a
// conformance checker (serialtest.TestConsole) that any Console can be held to.
//
// The tests open real pseudo-terminals (github.com/creack/pty) and need no hardware:
//
//	go test ./drivers/serial/...
//	go test ./drivers/serial/ -run '^$' -bench .
package serial
