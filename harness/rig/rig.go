// Package rig assembles the parts of a test bench into a scenario.Target:
// the OneNET stand-in broker, a board of any kind (harness/dut: the
// virtual one, or a real one on a serial port), the raw-REPL client
// (harness/board, the same code path for every kind), the run's
// credentials and the firmware. Its Begin is the strategy that gets the
// board from whatever state it is in to "our firmware running and logged
// in": sync the files that changed, mark the serial log and the broker's
// event feed, reset, and wait for the ready echo and the broker's login.
// What differs between kinds of board is asked of the board's
// capabilities (dut.Caps), found once in New.
package rig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/harness/board"
	"github.com/onenet-hil/hil/harness/dut"
	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/scenario"
	"github.com/onenet-hil/hil/internal/secret"
	"github.com/onenet-hil/hil/sim"
)

// Environment variables of a run against a real board.
const (
	EnvBoard        = "HIL_BOARD"         // the kind of board (harness/dut); unset: serial with HIL_PORT, else virtual
	EnvPort         = "HIL_PORT"          // the board's serial port; unset: the virtual board
	EnvWiFiSSID     = "HIL_WIFI_SSID"     // the network the real board joins
	EnvWiFiPassword = "HIL_WIFI_PASSWORD" // its password (masked everywhere)
	EnvBrokerHost   = "HIL_BROKER_HOST"   // this machine's address as the board sees it
	EnvBrokerPort   = "HIL_BROKER_PORT"   // optional; default 6002 (legacy) or 1883 (studio)
	EnvDeviceKey    = "HIL_DEVICE_KEY"    // optional: the device's auth_info (default random)
	EnvAPIKey       = "HIL_API_KEY"       // optional: the product's API key (default random)
	EnvPlatform     = "HIL_PLATFORM"      // legacy (default) or studio: the OneNET service the board logs in to
)

// VirtualBackoffMS is the firmware's first reconnect delay on the virtual
// board (config.json "backoff_ms"): its network comes back at once, so the
// real board's 1 s default would only slow the suite. A real board keeps
// the default.
const VirtualBackoffMS = 100

// tokenTTL is how long the studio tokens flashed by a rig stay valid: any
// run ends long before.
const tokenTTL = 7 * 24 * time.Hour

// The device under test, as the stand-in broker registers it (the
// tutorial's product and device ids and its custom topic).
const (
	ProductID = broker.DemoProductID
	DeviceID  = broker.DemoDeviceID
	Topic     = "TurnipRobot"
	// ControllerID is a second device of the product: the harness logs in
	// as it to publish on the custom topic, as a phone app would.
	ControllerID = "503367130"
	LEDPin       = firmware.DefaultLEDPin
)

// OneNETAddr is the legacy MQTT address the tutorial's program dials; the
// virtual board redirects it to the local broker.
const OneNETAddr = "183.230.40.39:6002"

// Options choose the board and how the broker is reached.
type Options struct {
	// Board is the kind of board (harness/dut's Kinds); "" chooses by
	// Port: a serial board when it is set, the virtual board otherwise.
	Board string
	// Platform is the OneNET service the board logs in to: legacy (""),
	// or studio (token login on the broker's studio listener, $sys topics).
	// The virtual board's rig can switch later (SetPlatform).
	Platform scenario.Platform
	// Port is a serial board's port ("auto": the one ESP8266-looking USB
	// serial port).
	Port string
	// LineRate paces the virtual board's serial line at 115200 baud.
	LineRate bool
	// Heap is the virtual board's GC heap in bytes (0: the ESP8266's 38 KB).
	Heap int
	// WiFiSSID and WiFiPassword are written to config.json. The virtual
	// board accepts any; a real board needs the lab's.
	WiFiSSID, WiFiPassword string
	// AuthInfo and APIKey are the device's auth_info and the product's
	// API key (master key) the broker registers; "" makes random ones.
	// Both are masked everywhere, like every other secret.
	AuthInfo, APIKey string
	// BrokerListen is where the broker's MQTT listener of the platform
	// binds. Default: 127.0.0.1:0 for the virtual board,
	// BrokerHost:BrokerPort for a real one (the other platform's listener
	// then binds 127.0.0.1:0).
	BrokerListen string
	// BrokerPort is a real board's broker port when BrokerListen is
	// empty; 0 means OneNET's 6002 (legacy) or 1883 (studio).
	BrokerPort int
	// BrokerHost is the address the board dials (required for a real
	// board; the virtual board uses the listener's own address).
	BrokerHost string
	// SerialLog receives every serial line, timestamped, with the secrets
	// masked; nil for none.
	SerialLog io.Writer
	// Progress receives the flasher's progress lines; nil for silence.
	Progress io.Writer
	// BootTimeout bounds a reset until the board has logged in when the
	// caller's ctx has no deadline. Default 60 s.
	BootTimeout time.Duration
}

// FromEnv reads the options of `go test ./scenarios`: HIL_PORT chooses a
// real board, which also needs HIL_WIFI_SSID, HIL_WIFI_PASSWORD and
// HIL_BROKER_HOST (HIL_BROKER_PORT optional); HIL_PLATFORM the platform.
func FromEnv() (Options, error) {
	p, err := scenario.ParsePlatform(os.Getenv(EnvPlatform))
	if err != nil {
		return Options{}, fmt.Errorf("%s: %w", EnvPlatform, err)
	}
	o := Options{
		Platform:     p,
		Board:        os.Getenv(EnvBoard),
		Port:         os.Getenv(EnvPort),
		WiFiSSID:     os.Getenv(EnvWiFiSSID),
		WiFiPassword: os.Getenv(EnvWiFiPassword),
		BrokerHost:   os.Getenv(EnvBrokerHost),
		AuthInfo:     os.Getenv(EnvDeviceKey),
		APIKey:       os.Getenv(EnvAPIKey),
	}
	if s := os.Getenv(EnvBrokerPort); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 65535 {
			return o, fmt.Errorf("%s=%q: want a port number 1..65535", EnvBrokerPort, s)
		}
		o.BrokerPort = n
	}
	return o, nil
}

// Rig is a board behind the broker, ready for scenarios. It implements
// scenario.Target; its methods are meant for one runner at a time.
type Rig struct {
	opts  Options
	creds Credentials
	br    *broker.Broker
	board dut.Board
	caps  dut.Caps
	link  *link.Link
	repl  *board.REPL
	mask  *report.Masker
	logw  *secret.Writer // the serial log, masked line by line
	// boardHost is the broker's host as the board dials it.
	boardHost string
	tweak     func(*firmware.Config)  // tests: a deliberately wrong config
	patch     func(map[string][]byte) // tests: a deliberately changed firmware

	mu       sync.Mutex
	platform scenario.Platform
	cursor   int64       // serial: the next line Next returns
	mark     broker.Mark // broker feed: AwaitBroker looks after it
	intruder map[uint64]bool
	ctrl     paho.Client // the controller's session, made on the first topic send
}

var _ scenario.Target = (*Rig)(nil)

// Sandboxed reports whether the board o chooses runs inside this machine
// (a dut.Sandbox: the virtual board), which then reaches only loopback and
// can switch platform between scenarios.
func (o Options) Sandboxed() (bool, error) {
	_, kind, err := dut.Lookup(dut.Spec{Kind: o.Board, Port: o.Port})
	return kind.Sandboxed, err
}

// New starts the broker and the board and opens its serial link. Nothing
// is flashed until Begin.
func New(ctx context.Context, opts Options) (_ *Rig, err error) {
	spec := dut.Spec{Kind: opts.Board, Port: opts.Port, LineRate: opts.LineRate, Heap: opts.Heap, MaxLines: 20000}
	_, kind, err := dut.Lookup(spec)
	if err != nil {
		return nil, fmt.Errorf("rig: %w", err)
	}
	if opts, err = settle(opts, kind.Sandboxed); err != nil {
		return nil, err
	}
	// A secret too short to mask would leak into every log and report.
	for _, s := range []struct{ env, v string }{{EnvWiFiPassword, opts.WiFiPassword}, {EnvDeviceKey, opts.AuthInfo}, {EnvAPIKey, opts.APIKey}} {
		if err := secret.Check(s.env, s.v); err != nil {
			return nil, fmt.Errorf("rig: %w", err)
		}
	}
	r := &Rig{opts: opts, intruder: map[uint64]bool{}, platform: opts.Platform}
	if r.creds, err = newCredentials(opts.AuthInfo, opts.APIKey, time.Now().Add(tokenTTL)); err != nil {
		return nil, fmt.Errorf("rig: %w", err)
	}
	r.mask = report.NewMasker(append(r.creds.Secrets(), opts.WiFiPassword)...)
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if err := r.startBroker(kind.Sandboxed); err != nil {
		return nil, fmt.Errorf("rig: %w", err)
	}
	if err := r.openBoard(ctx, spec, kind.Sandboxed); err != nil {
		return nil, fmt.Errorf("rig: %w", err)
	}
	return r, nil
}

// settle checks opts and fills in the defaults for a board that is (or is
// not) sandboxed: a real board needs the lab's Wi-Fi and the address it
// reaches the broker at; a sandboxed one takes any.
func settle(opts Options, sandboxed bool) (Options, error) {
	plat, err := scenario.ParsePlatform(string(opts.Platform))
	if err != nil {
		return opts, fmt.Errorf("rig: %w", err)
	}
	opts.Platform = plat
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = 60 * time.Second
	}
	if sandboxed {
		if opts.WiFiSSID == "" {
			opts.WiFiSSID = "hil-lab"
		}
		if opts.WiFiPassword == "" {
			opts.WiFiPassword = randomSecret("wifi-")
		}
		if opts.BrokerListen == "" {
			opts.BrokerListen = "127.0.0.1:0"
		}
		return opts, nil
	}
	if opts.WiFiSSID == "" || opts.WiFiPassword == "" || opts.BrokerHost == "" {
		return opts, fmt.Errorf("rig: a real board needs %s, %s and %s (the address the board can reach)",
			EnvWiFiSSID, EnvWiFiPassword, EnvBrokerHost)
	}
	if opts.BrokerListen == "" {
		port := opts.BrokerPort
		if port == 0 {
			port = firmware.DefaultPort
			if plat == scenario.Studio {
				port = firmware.DefaultStudioPort
			}
		}
		opts.BrokerListen = net.JoinHostPort(opts.BrokerHost, strconv.Itoa(port))
	}
	return opts, nil
}

// startBroker registers the run's devices and starts both listeners: the
// board dials its platform's, and a sandboxed board's rig can switch
// platform between scenarios. A real board's platform gets BrokerListen,
// the other listener loopback.
func (r *Rig) startBroker(sandboxed bool) error {
	reg := broker.NewRegistry()
	if err := r.creds.register(reg); err != nil {
		return err
	}
	legacy, studio := r.opts.BrokerListen, "127.0.0.1:0"
	if !sandboxed && r.opts.Platform == scenario.Studio {
		legacy, studio = studio, legacy
	}
	var err error
	if r.br, err = broker.New(broker.Options{Registry: reg, MQTTAddr: legacy, StudioAddr: studio, HTTPAddr: "127.0.0.1:0"}); err != nil {
		return err
	}
	if err := r.br.Start(); err != nil {
		return err
	}
	r.boardHost = r.opts.BrokerHost
	if sandboxed {
		r.boardHost, _, err = net.SplitHostPort(r.br.MQTTAddr())
	}
	return err
}

// openBoard opens the board and its REPL; a sandboxed board reaches
// OneNET's own address (the tutorial dials it) on the local broker.
func (r *Rig) openBoard(ctx context.Context, spec dut.Spec, sandboxed bool) error {
	if sandboxed {
		spec.Redirects = map[string]string{OneNETAddr: r.br.MQTTAddr()}
	}
	if r.opts.SerialLog != nil {
		r.logw = r.mask.LineWriter(r.opts.SerialLog)
		spec.Log = r.logw
	}
	var err error
	if r.board, err = dut.Open(ctx, spec); err != nil {
		return err
	}
	r.caps = dut.Discover(r.board)
	r.link = r.board.Link()
	r.repl = board.NewREPL(r.link, board.Options{})
	return nil
}

// Close stops the board, the link and the broker.
func (r *Rig) Close() error {
	var errs []error
	r.mu.Lock()
	if r.ctrl != nil {
		r.ctrl.Disconnect(0)
	}
	r.mu.Unlock()
	if r.board != nil {
		errs = append(errs, r.board.Close())
	}
	if r.br != nil {
		errs = append(errs, r.br.Close())
	}
	if r.logw != nil {
		r.logw.Flush()
	}
	return errors.Join(errs...)
}

// Masker masks every secret the rig knows (the Wi-Fi password and every
// key and token of Credentials).
func (r *Rig) Masker() *report.Masker { return r.mask }

// Broker is the stand-in broker the board talks to.
func (r *Rig) Broker() *broker.Broker { return r.br }

// Board is the board under test.
func (r *Rig) Board() dut.Board { return r.board }

// Sim is the virtual board, or nil for another kind (tests look inside).
func (r *Rig) Sim() *sim.Board { return dut.Sim(r.board) }

// Link is the board's serial link.
func (r *Rig) Link() *link.Link { return r.link }

// Describe names the board for reports (and the platform when it is
// studio).
func (r *Rig) Describe() string {
	d := r.board.Describe()
	if r.Platform() == scenario.Studio {
		d += ", OneNET Studio"
	}
	return d
}

// Platform is the OneNET service the board logs in to (the runner asks).
func (r *Rig) Platform() scenario.Platform {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.platform
}

// SetPlatform switches the platform for the following scenarios (the next
// Begin flashes the matching config.json). Only a sandboxed board can: a
// real one dials the address its platform's listener was bound to in New.
func (r *Rig) SetPlatform(p scenario.Platform) error {
	p, err := scenario.ParsePlatform(string(p))
	if err != nil {
		return fmt.Errorf("rig: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p == r.platform {
		return nil
	}
	if r.caps.Sandbox == nil {
		return fmt.Errorf("rig: a real board runs the platform it was set up for (%s); start another rig for %s", r.platform, p)
	}
	r.platform = p
	if r.ctrl != nil { // logged in on the other listener
		r.ctrl.Disconnect(0)
		r.ctrl = nil
	}
	return nil
}

// listener is the address of platform p's MQTT listener.
func (r *Rig) listener(p scenario.Platform) string {
	if p == scenario.Studio {
		return r.br.StudioAddr()
	}
	return r.br.MQTTAddr()
}

// Capabilities are what this board can do (scenario.Target): the faults
// its capabilities allow, the LED pin where it can be read, and whether
// it is gone.
func (r *Rig) Capabilities() scenario.Capabilities {
	c := scenario.Capabilities{Virtual: r.caps.Sandbox != nil, Liveness: r, Skip: r.skipReason, Heap: r}
	for _, f := range scenario.Faults {
		if r.canInject(f) {
			c.Faults = append(c.Faults, f)
		}
	}
	if r.caps.Pins != nil {
		c.Pin = ledPin{r.caps.Pins}
	}
	return c
}

// canInject reports whether fault f can be injected on this board.
func (r *Rig) canInject(f scenario.FaultKind) bool {
	switch f {
	case scenario.WifiDown, scenario.WifiUp:
		return r.caps.WiFi != nil
	case scenario.PowerCycle:
		return r.caps.PowerCycle != nil
	}
	return true
}

// skipReason says why sc cannot run on this board.
func (r *Rig) skipReason(sc *scenario.Scenario) string {
	if r.caps.Sandbox == nil && sc.Profile == "tutorial" {
		return "the tutorial's mqtt.py dials OneNET (" + OneNETAddr + ") itself; only the virtual board redirects it to the local broker"
	}
	return ""
}
