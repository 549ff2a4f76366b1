package scenario

import (
	"context"
	"slices"

	"github.com/onenet-hil/hil/harness/report"
)

// Target is a board behind the stand-in broker, real or virtual: what the
// runner needs from the rest of the harness. Every method that waits is
// bounded by its ctx; errors should say what was seen (the runner adds the
// last serial lines itself).
type Target interface {
	// Describe names the target for reports ("virtual board", "/dev/ttyUSB0").
	Describe() string
	// Platform is the OneNET service the board logs in to now.
	Platform() Platform
	// Capabilities says what the target can do beyond the methods below;
	// the runner asks once per scenario.
	Capabilities() Capabilities

	// Begin gets the board ready for one scenario: flash the firmware of
	// setup.Profile with the credentials setup asks for (skipping files that
	// are up to date), start the broker if needed and reset the board. It
	// returns once the reset is under way; the runner then waits for the
	// login echo. Lines printed before the reset must not be returned by
	// Serial().Next afterwards; every line printed after it must be.
	Begin(ctx context.Context, setup Setup) error

	// Send delivers payload to the device through channel ch.
	Send(ctx context.Context, ch Channel, payload []byte, opt SendOptions) error

	// Fault injects f and returns once it has taken effect as far as the
	// target can see (wifi_down: the broker has seen the device go; restart_broker:
	// the broker is listening again). The runner waits for the board's echo.
	Fault(ctx context.Context, f FaultKind) error

	// Serial is the board's serial line, one line at a time.
	Serial() Serial

	// AwaitBroker waits until the broker's event feed shows want for the
	// device under test, counting only events since the last Begin or Fault
	// (so `expect: {broker: connected}` after a kick means a new login); its
	// error should list the last broker events.
	AwaitBroker(ctx context.Context, want BrokerEvent) error
}

// Capabilities are a target's optional parts, each zero when it lacks it.
type Capabilities struct {
	// Virtual: the board runs inside the harness (a scenario's
	// `requires: [virtual]`).
	Virtual bool
	// Faults are the faults the target can inject.
	Faults []FaultKind
	// Pin reads the LED's GPIO pin; nil when it cannot be read (a real board).
	Pin Pin
	// Liveness tells when the board has gone; nil: it never goes.
	Liveness Liveness
	// Heap measures the firmware's heap; nil when the target cannot.
	Heap HeapProber
	// Skip says why the target cannot run a scenario that the generic
	// checks allow ("" when it can), e.g. a real board and a program that
	// dials a fixed address only the virtual board redirects; nil: none.
	Skip func(sc *Scenario) string
}

// HeapProber measures the firmware's heap one step at a time (a heap
// step): boot, login, then commands commands, each its own request to the
// board, with the LED checked after each. It ends with the firmware
// running and logged in again, the LED off (after a failure: running
// again, as far as the board lets it). A MemoryError fails it with that
// reason.
type HeapProber interface {
	ProbeHeap(ctx context.Context, commands int) (report.Heap, error)
}

// Supports reports whether the target can inject fault f.
func (c Capabilities) Supports(f FaultKind) bool { return slices.Contains(c.Faults, f) }

// Liveness says, once the board can no longer be reached (its serial port
// closed or unplugged), why; nil while it can. The runner asks after a
// failed scenario; Gone may take a short, bounded time to find out.
type Liveness interface {
	Gone(ctx context.Context) error
}

// Setup is what a scenario needs from Begin.
type Setup struct {
	Scenario string
	// Profile selects the firmware: "hil" flashes ours, "tutorial" the
	// tutorial's files (boot.py, mqtt.py, main.py) with our MQTT client as
	// simple.py.
	Profile string
	// WrongCredentials: flash a key the broker refuses (CONNACK 4).
	WrongCredentials bool
}

// SendOptions qualify a send.
type SendOptions struct {
	// QoS 1 asks the broker to keep the command for an offline device and
	// deliver it at its next login (OneNET's qos=1 on POST /cmds).
	QoS int
	// Prompt returns a failure at once. Without it a target may first wait
	// a few seconds to learn whether the board's port went away with the
	// failure (an unplugged board drops off the network first), which a
	// caller that sends many commands to an often-offline device, and
	// watches the serial line itself, cannot afford.
	Prompt bool
}

// Serial yields the board's serial lines in order.
type Serial interface {
	// Next returns the next line (without its line ending) and the time it
	// was read. It returns ctx.Err() when ctx ends first, without losing
	// the line that was about to arrive; any other error ends the run.
	Next(ctx context.Context) (report.Line, error)
}

// Pin reads the LED pin of a virtual board.
type Pin interface {
	// Level returns the pin's level now (0 or 1).
	Level() (int, error)
	// Await returns as soon as the pin is at level, or when ctx ends; it
	// returns the last level seen either way.
	Await(ctx context.Context, level int) (int, error)
}
