// Package dut is the device under test as the rest of the harness sees
// it: one small Board interface that every kind of board implements, the
// optional capabilities a kind may have (found once, by Discover), and the
// registry of kinds that Open chooses from.
//
// The layering follows labgrid's: a kind is the resource (a pty or a USB
// serial port) with its driver (the serial link, harness/link); the
// strategy that gets the firmware running on it is harness/rig's, and it
// asks a board only for what this package names. A new kind of board is a
// new file here with an Opener, registered in kinds (kinds.go); nothing in
// the rig, the scenario runner or the soak changes.
package dut

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/onenet-hil/hil/harness/link"
)

// Board is one board on one serial port.
type Board interface {
	// Link is the board's serial link, opened by the kind.
	Link() *link.Link
	// Describe names the board for reports ("virtual board (/dev/pts/3)").
	Describe() string
	// Close closes the link and releases the board.
	Close() error
}

// PowerCycler restarts the chip from power-on (the virtual board's power
// switch; a real board's reset line through the USB bridge's RTS).
type PowerCycler interface {
	PowerCycle(ctx context.Context) error
}

// WiFiSwitch takes the board's Wi-Fi network away and gives it back.
type WiFiSwitch interface {
	SetWiFi(up bool) error
}

// PinReader reads the board's GPIO pins from outside the firmware.
type PinReader interface {
	// Pin is pin n's level now (0 or 1).
	Pin(n int) int
	// WaitPin returns once pin n is at level, or ctx.Err().
	WaitPin(ctx context.Context, n, level int) error
}

// Sandbox is a board that runs inside this machine: its network is this
// machine's loopback (a fixed address such as OneNET's is redirected to
// the local broker, so programs that dial one still work), it joins any
// Wi-Fi network, comes back on the network at once, and its flash holds
// only what the harness put there (so extra files may be pruned).
type Sandbox interface {
	// Redirects are the fixed addresses the board reaches on loopback.
	Redirects() map[string]string
}

// Caps are a board's optional capabilities, each nil (or false) when the
// board does not have it. Discover finds them once; callers branch on a
// capability, never on the kind.
type Caps struct {
	PowerCycle PowerCycler
	WiFi       WiFiSwitch
	Pins       PinReader
	Sandbox    Sandbox
}

// Discover returns b's capabilities.
func Discover(b Board) Caps {
	var c Caps
	c.PowerCycle, _ = b.(PowerCycler)
	c.WiFi, _ = b.(WiFiSwitch)
	c.Pins, _ = b.(PinReader)
	c.Sandbox, _ = b.(Sandbox)
	return c
}

// Spec says which board to open and how.
type Spec struct {
	// Kind names the kind (see Kinds); "" chooses KindSerial when Port is
	// set and KindVirtual otherwise.
	Kind string
	// Port is a serial board's port ("auto": the one ESP8266-looking USB
	// serial port).
	Port string
	// LineRate paces a virtual board's serial line at 115200 baud.
	LineRate bool
	// Heap is a virtual board's GC heap in bytes (0: the ESP8266's).
	Heap int
	// Redirects map fixed addresses a virtual board dials (OneNET's) to
	// loopback addresses (the local broker).
	Redirects map[string]string
	// Log receives every serial line, timestamped (the caller masks
	// secrets); nil for none.
	Log io.Writer
	// MaxLines is how many serial lines the link keeps (0: its default).
	MaxLines int
}

// Opener starts a board of one kind.
type Opener func(ctx context.Context, spec Spec) (Board, error)

// Kind is one registered kind of board.
type Kind struct {
	Open Opener
	// Sandboxed: boards of this kind are a Sandbox. It is known before a
	// board is opened because the broker it dials must listen first, and
	// where (loopback, or the lab network) depends on it.
	Sandboxed bool
}

// Kind names.
const (
	KindVirtual = "virtual"
	KindSerial  = "serial"
)

// Lookup returns the kind spec names, and its name.
func Lookup(spec Spec) (string, Kind, error) {
	name := spec.Kind
	if name == "" {
		name = KindVirtual
		if spec.Port != "" {
			name = KindSerial
		}
	}
	k, ok := kinds[name]
	if !ok {
		return name, Kind{}, fmt.Errorf("unknown board kind %q (known: %s)", name, strings.Join(Kinds(), ", "))
	}
	return name, k, nil
}

// Open starts the board spec names.
func Open(ctx context.Context, spec Spec) (Board, error) {
	_, k, err := Lookup(spec)
	if err != nil {
		return nil, err
	}
	return k.Open(ctx, spec)
}

// Kinds lists the registered kinds.
func Kinds() []string {
	names := make([]string, 0, len(kinds))
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// linkOptions are the link options a spec asks for.
func linkOptions(spec Spec) link.Options {
	o := link.Options{MaxLines: spec.MaxLines}
	if spec.Log != nil {
		o.Log = spec.Log
	}
	return o
}
