package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/onenet-hil/hil/harness/board"
)

// Board kinds for hil flash --board.
const (
	boardAuto    = "auto"
	boardReal    = "real"
	boardVirtual = "virtual"
)

// virtualMarker is the module that tells the virtual board (hil sim) from a
// real one: the one-function bridge from the board's code to the harness
// that plays its hardware, registered by sim/runtime/host.mjs before
// boot.py runs and documented in sim/README.md. MicroPython's ESP8266 port
// has no module of that name, and sys.modules holds it only once it is
// imported (the probe never imports it), so a real board answers False even
// with a file of that name on its flash.
const virtualMarker = "_hil"

// virtualSSID is the Wi-Fi network a virtual board is told to join when
// none is given: it joins any.
const virtualSSID = "hil-sim"

// probeCode asks the board for its platform and whether it is the virtual
// board, one line: "esp8266 True".
const probeCode = "import sys\nprint(sys.platform, '" + virtualMarker + "' in sys.modules)\n"

// probeTimeout bounds the probe: entering the raw REPL (which stops a
// running main.py) and one line of code.
const probeTimeout = 20 * time.Second

// probeBoard asks the board on repl whether it is the virtual board; it
// returns the board's sys.platform too, for the message.
func probeBoard(ctx context.Context, repl *board.REPL) (virtual bool, platform string, err error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	out, err := repl.Exec(ctx, probeCode)
	if err != nil {
		return false, "", fmt.Errorf("asking the board what it is (raw REPL, --board %s): %w", boardAuto, err)
	}
	return parseProbe(string(out))
}

// parseProbe reads probeCode's answer.
func parseProbe(out string) (virtual bool, platform string, err error) {
	f := strings.Fields(out)
	if len(f) != 2 || (f[1] != "True" && f[1] != "False") {
		return false, "", fmt.Errorf("the board's answer to what it is was %q, not \"<platform> True|False\"; "+
			"give --board real or --board virtual", out)
	}
	return f[1] == "True", f[0], nil
}

// boardKind is what is on the port: --board, or, with auto, the board's
// answer to the probe.
func (f *flashFlags) boardKind(ctx context.Context, repl *board.REPL, port string, stdout io.Writer) (virtual bool, err error) {
	switch f.board {
	case boardVirtual:
		return true, nil
	case boardReal:
		return false, nil
	}
	virtual, platform, err := probeBoard(ctx, repl)
	if err != nil {
		return false, err
	}
	if virtual {
		fmt.Fprintf(stdout, "flash: %s is a virtual board (hil sim: it has the %s module); it reaches only this machine, so the "+
			"broker listens on loopback and the board joins any Wi-Fi network (--board real to treat it as a real one)\n", port, virtualMarker)
	} else {
		fmt.Fprintf(stdout, "flash: %s is a real board (sys.platform %s)\n", port, platform)
	}
	return virtual, nil
}

// virtualDefaults fills what a virtual board needs and the user did not
// give: a loopback broker address on a free port, and a Wi-Fi network name.
// What the user gave is kept; an address outside loopback gets a warning
// (the board will report it unreachable, and the stop names the fix).
func (f *flashFlags) virtualDefaults(s *flashSettings, stdout io.Writer) {
	if s.WiFiSSID == "" {
		s.WiFiSSID = virtualSSID
	}
	if s.Broker != "" {
		if h, _, err := net.SplitHostPort(s.Broker); err == nil && !isLoopback(h) {
			fmt.Fprintf(stdout, "flash: warning: --broker %s is not on loopback, which is all a virtual board reaches\n", s.Broker)
		}
		return
	}
	if f.advertise == "" {
		f.advertise = "127.0.0.1"
		if f.listen == "" {
			f.listen = "127.0.0.1:0"
		}
	} else if !isLoopback(f.advertise) {
		fmt.Fprintf(stdout, "flash: warning: --advertise %s is not on loopback, which is all a virtual board reaches\n", f.advertise)
	}
}

// isLoopback: host is a loopback IP address or "localhost".
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
