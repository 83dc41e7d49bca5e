package serial

import (
	"context"
	"errors"
	"fmt"
)

// Console is a device's text console as the specs use it.
type Console interface {
	// Send writes line followed by "\n".
	Send(ctx context.Context, line string) error
	// Write writes p as is.
	Write(ctx context.Context, p []byte) error
	// Expect waits until m matches the output after the cursor, moves the cursor past
	// the match and returns it.
	Expect(ctx context.Context, m Matcher) (Match, error)
	// Mark returns the current end of the output, to pass to TranscriptSince later.
	Mark() Mark
	// TranscriptSince returns the output received after mark (as much of it as is kept).
	TranscriptSince(mark Mark) []byte
	// Transcript returns all the output that is kept.
	Transcript() []byte
	// Name names the console: the port path for a serial port.
	Name() string
}

// Port is a Console together with the control of its line, for its owner.
type Port interface {
	Console
	// Reopen closes the line and opens it again, waiting until it can be opened (a
	// power-cycled USB adapter coming back) or ctx is done. The transcript, the offsets
	// and the cursor carry on.
	Reopen(ctx context.Context) error
	// Close closes the port. Pending and later calls fail with ErrPortClosed.
	Close() error
}

// Mark is a position in a console's output: the number of bytes received before it.
type Mark int64

// Match is what an Expect found.
type Match struct {
	// Text is the matched output.
	Text string
	// Groups holds, for a Regex, the whole match and then each capture group (as
	// regexp.FindSubmatch); for a Literal, the match; for AllOf, the match of each
	// matcher in order; for AnyOf, the groups of the alternative that matched.
	Groups []string
	// Start and End delimit the match. Expect reports them as output offsets (see
	// Mark); a Matcher's Find reports them relative to the text it was given.
	Start, End int
	// Index is, for AnyOf, the index of the alternative that matched; 0 otherwise.
	Index int
}

// Sentinel errors, for errors.Is.
var (
	// ErrTimeout: the context ended before the expected output arrived.
	ErrTimeout = errors.New("timed out waiting for console output")
	// ErrForbiddenOutput: output that must not appear appeared first (MustNotMatch).
	ErrForbiddenOutput = errors.New("forbidden console output")
	// ErrPortGone: the port vanished under the harness (read error, adapter unplugged).
	ErrPortGone = errors.New("serial port gone")
	// ErrPortClosed: the port was closed by its owner.
	ErrPortClosed = errors.New("serial port closed")
	// ErrBadMatcher: a matcher cannot work (an invalid regular expression).
	ErrBadMatcher = errors.New("bad matcher")
)

// LastOutputLen is how much of the latest output errors carry.
const LastOutputLen = 2048

// TimeoutError is returned when an Expect's context ends first.
type TimeoutError struct {
	Port string // the console's name
	Want string // what was awaited (the matcher's String)
	Last string // the last output (up to LastOutputLen bytes)
	Err  error  // the context's error
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("serial %s: %v waiting for %s (%v); last output: %q", e.Port, ErrTimeout, e.Want, e.Err, e.Last)
}

// Is reports ErrTimeout.
func (e *TimeoutError) Is(target error) bool { return target == ErrTimeout }

// Unwrap returns the context's error.
func (e *TimeoutError) Unwrap() error { return e.Err }

// ForbiddenError is returned when MustNotMatch's forbidden matcher matched first.
type ForbiddenError struct {
	Port  string
	Want  string // the whole matcher
	Match Match  // the forbidden output, with output offsets
	Last  string
}

func (e *ForbiddenError) Error() string {
	return fmt.Sprintf("serial %s: %v %q at offset %d while waiting for %s; last output: %q",
		e.Port, ErrForbiddenOutput, e.Match.Text, e.Match.Start, e.Want, e.Last)
}

// Is reports ErrForbiddenOutput.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbiddenOutput }

// GoneError is returned when the port vanished (and until it is reopened).
type GoneError struct {
	Port string
	Last string // the last output received before it vanished
	Err  error  // what the read returned
}

func (e *GoneError) Error() string {
	return fmt.Sprintf("serial %s: %v: %v; last output: %q", e.Port, ErrPortGone, e.Err, e.Last)
}

// Is reports ErrPortGone.
func (e *GoneError) Is(target error) bool { return target == ErrPortGone }

// Unwrap returns the read error.
func (e *GoneError) Unwrap() error { return e.Err }

// closedError says the owner closed the port.
func closedError(name, last string) error {
	return fmt.Errorf("serial %s: %w; last output: %q", name, ErrPortClosed, last)
}
