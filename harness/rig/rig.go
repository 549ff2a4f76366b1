// Package rig assembles the parts of a test bench into a scenario.Target:
// the OneNET stand-in broker, a board (the virtual one from package sim, or
// a real one on a serial port), the flasher (harness/board over
// harness/link, the same code path for both) and the firmware. Its Begin is
// the strategy that gets the board from whatever state it is in to "our
// firmware running and logged in": upload what changed through the raw
// REPL, reset, and wait for both the board's echo and the broker's event.
package rig

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/harness/board"
	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/scenario"
	"github.com/onenet-hil/hil/sim"
)

// Environment variables of a run against a real board.
const (
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
	// Platform is the OneNET service the board logs in to: legacy (""),
	// or studio (token login on the broker's studio listener, $sys topics).
	// The virtual board's rig can switch later (SetPlatform).
	Platform scenario.Platform
	// Port is a real board's serial port ("auto": the one ESP8266-looking
	// USB serial port); "" runs the virtual board.
	Port string
	// LineRate paces the virtual board's serial line at 115200 baud.
	LineRate bool
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
	opts   Options
	br     *broker.Broker
	sim    *sim.Board // nil for a real board
	link   *link.Link
	repl   *board.REPL
	mask   *report.Masker
	logw   *maskingWriter
	host   string // what config.json names as the broker
	port   int    // the legacy listener's port
	sport  int    // the studio listener's port
	resets bool   // the port has modem lines (a real power cycle)

	authInfo, masterKey, wrongKey, ctrlKey string
	// Studio: base64 keys as OneNET issues them, and the tokens made
	// from them (the device's, one signed with a wrong key, the
	// controller's, and a product-level one for the HTTP API).
	devKey, accessKey, ctrlDevKey              string
	devToken, wrongToken, ctrlToken, prodToken string
	tweak                                      func(*firmware.Config) // tests: a deliberately wrong config

	mu       sync.Mutex
	platform scenario.Platform
	cursor   int64       // serial: the next line Next returns
	mark     broker.Mark // broker feed: AwaitBroker looks after it
	intruder map[uint64]bool
	ctrl     paho.Client // the controller's session, made on the first topic send
}

var _ scenario.Target = (*Rig)(nil)

// secret returns a fresh random credential.
func secret(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// secretB64 returns a fresh random studio key (base64, as OneNET issues them).
func secretB64() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// New starts the broker and the board (virtual or real) and opens its
// serial link. Nothing is flashed until Begin.
func New(ctx context.Context, opts Options) (_ *Rig, err error) {
	plat, err := scenario.ParsePlatform(string(opts.Platform))
	if err != nil {
		return nil, fmt.Errorf("rig: %w", err)
	}
	opts.Platform = plat
	r := &Rig{opts: opts, intruder: map[uint64]bool{}, platform: plat,
		authInfo: secret("auth-"), masterKey: secret("key-"), wrongKey: secret("wrong-"), ctrlKey: secret("ctrl-"),
		devKey: secretB64(), accessKey: secretB64(), ctrlDevKey: secretB64()}
	if opts.AuthInfo != "" {
		r.authInfo = opts.AuthInfo
	}
	if opts.APIKey != "" {
		r.masterKey = opts.APIKey
	}
	if err := r.makeTokens(); err != nil {
		return nil, err
	}
	if opts.Port == "auto" {
		p, err := link.FindBoard()
		if err != nil {
			return nil, fmt.Errorf("rig: %s=auto: %w", EnvPort, err)
		}
		opts.Port = p.Name
	}
	real := opts.Port != ""
	if real {
		if opts.WiFiSSID == "" || opts.WiFiPassword == "" || opts.BrokerHost == "" {
			return nil, fmt.Errorf("rig: a real board needs %s, %s and %s (the address the board can reach)",
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
	} else {
		if opts.WiFiSSID == "" {
			opts.WiFiSSID = "hil-lab"
		}
		if opts.WiFiPassword == "" {
			opts.WiFiPassword = secret("wifi-")
		}
		if opts.BrokerListen == "" {
			opts.BrokerListen = "127.0.0.1:0"
		}
	}
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = 60 * time.Second
	}
	r.opts = opts
	r.mask = report.NewMasker(opts.WiFiPassword, r.authInfo, r.masterKey, r.wrongKey, r.ctrlKey,
		r.devKey, r.accessKey, r.ctrlDevKey, r.devToken, r.wrongToken, r.ctrlToken, r.prodToken)
	defer func() {
		if err != nil {
			r.Close()
		}
	}()

	reg := broker.NewRegistry()
	if err := reg.AddProduct(broker.Product{ID: ProductID, Name: Topic, MasterKey: r.masterKey, AccessKey: r.accessKey}); err != nil {
		return nil, err
	}
	if err := reg.AddDevice(ProductID, broker.Device{ID: DeviceID, Title: "led-board", AuthInfo: r.authInfo, Key: r.devKey}); err != nil {
		return nil, err
	}
	if err := reg.AddDevice(ProductID, broker.Device{ID: ControllerID, Title: "controller", AuthInfo: r.ctrlKey, Key: r.ctrlDevKey}); err != nil {
		return nil, err
	}
	// Both listeners always run: the board dials its platform's, and the
	// virtual board's rig can switch platform between scenarios.
	legacyAddr, studioAddr := opts.BrokerListen, "127.0.0.1:0"
	if real && plat == scenario.Studio {
		legacyAddr, studioAddr = "127.0.0.1:0", opts.BrokerListen
	}
	if r.br, err = broker.New(broker.Options{Registry: reg, MQTTAddr: legacyAddr, StudioAddr: studioAddr, HTTPAddr: "127.0.0.1:0"}); err != nil {
		return nil, err
	}
	if err := r.br.Start(); err != nil {
		return nil, fmt.Errorf("rig: %w", err)
	}
	h, p, err := net.SplitHostPort(r.br.MQTTAddr())
	if err != nil {
		return nil, err
	}
	r.port, _ = strconv.Atoi(p)
	r.host = h
	_, sp, err := net.SplitHostPort(r.br.StudioAddr())
	if err != nil {
		return nil, err
	}
	r.sport, _ = strconv.Atoi(sp)
	if real {
		r.host = opts.BrokerHost
	}

	port := opts.Port
	if !real {
		r.sim, err = sim.Start(ctx, sim.Options{
			LineRate:  opts.LineRate,
			Redirects: map[string]string{OneNETAddr: r.br.MQTTAddr()},
		})
		if err != nil {
			return nil, fmt.Errorf("rig: virtual board: %w", err)
		}
		port = r.sim.Port()
	}
	if opts.SerialLog != nil {
		r.logw = &maskingWriter{w: opts.SerialLog, m: r.mask}
	}
	lo := link.Options{MaxLines: 20000}
	if r.logw != nil {
		lo.Log = r.logw
	}
	if r.link, err = link.Open(port, lo); err != nil {
		return nil, fmt.Errorf("rig: %w", err)
	}
	r.repl = board.NewREPL(r.link, board.Options{})
	// A port with modem lines can reset the chip (the ESP8266 auto-reset
	// circuit): that is the real board's power cycle. The probe leaves both
	// lines off, the "run" state (RTS on would hold the chip in reset, DTR on
	// alone would start the bootloader at the next reset).
	r.resets = real && r.link.HasModemLines()
	return r, nil
}

// Close stops the board, the link and the broker.
func (r *Rig) Close() error {
	var errs []error
	r.mu.Lock()
	if r.ctrl != nil {
		r.ctrl.Disconnect(0)
	}
	r.mu.Unlock()
	if r.link != nil {
		errs = append(errs, r.link.Close())
	}
	if r.sim != nil {
		errs = append(errs, r.sim.Close())
	}
	if r.br != nil {
		errs = append(errs, r.br.Close())
	}
	if r.logw != nil {
		r.logw.Flush()
	}
	return errors.Join(errs...)
}

// Masker masks every secret the rig knows (the Wi-Fi password, the
// device's key, the product's API key, the wrong key).
func (r *Rig) Masker() *report.Masker { return r.mask }

// Broker is the stand-in broker the board talks to.
func (r *Rig) Broker() *broker.Broker { return r.br }

// Sim is the virtual board, or nil for a real one.
func (r *Rig) Sim() *sim.Board { return r.sim }

// Link is the board's serial link.
func (r *Rig) Link() *link.Link { return r.link }

// Describe names the board for reports (and the platform when it is
// studio).
func (r *Rig) Describe() string {
	d := "board on " + r.opts.Port
	if r.sim != nil {
		d = "virtual board (" + r.sim.Port() + ")"
		if r.opts.LineRate {
			d += " at 115200 baud"
		}
	}
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
// Begin flashes the matching config.json). Only the virtual board can: a
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
	if r.sim == nil {
		return fmt.Errorf("rig: a real board runs the platform it was set up for (%s); start another rig for %s", r.platform, p)
	}
	r.platform = p
	if r.ctrl != nil { // logged in on the other listener
		r.ctrl.Disconnect(0)
		r.ctrl = nil
	}
	return nil
}

// makeTokens signs the studio tokens: the device's and the controller's
// (device level), one signed with a key the broker does not know, and a
// product-level one for the synchronous command API.
func (r *Rig) makeTokens() error {
	et := time.Now().Add(tokenTTL)
	dev := "products/" + ProductID + "/devices/" + DeviceID
	var err error
	for _, t := range []struct {
		dst      *string
		res, key string
	}{
		{&r.devToken, dev, r.devKey},
		{&r.wrongToken, dev, secretB64()},
		{&r.ctrlToken, "products/" + ProductID + "/devices/" + ControllerID, r.ctrlDevKey},
		{&r.prodToken, "products/" + ProductID, r.accessKey},
	} {
		if *t.dst, err = broker.MakeToken(t.res, t.key, "sha256", et); err != nil {
			return fmt.Errorf("rig: studio token: %w", err)
		}
	}
	return nil
}

// Virtual reports whether the board is the virtual one.
func (r *Rig) Virtual() bool { return r.sim != nil }

// Supports reports whether fault f can be injected here.
func (r *Rig) Supports(f scenario.FaultKind) bool {
	switch {
	case r.sim != nil:
		return true
	case f.VirtualOnly():
		return false
	case f == scenario.PowerCycle:
		return r.resets
	}
	return true
}

// SkipReason says why sc cannot run on this board (the runner asks).
func (r *Rig) SkipReason(sc *scenario.Scenario) string {
	if r.sim == nil && sc.Profile == "tutorial" {
		return "the tutorial's mqtt.py dials OneNET (" + OneNETAddr + ") itself; only the virtual board redirects it to the local broker"
	}
	return ""
}

// config is the board's config.json for this run: legacy logs in with the
// device's auth_info, studio with a device-level token; wrong credentials
// are a key the broker does not know, or a token signed with one.
func (r *Rig) config(wrong bool) firmware.Config {
	c := firmware.Config{WiFiSSID: r.opts.WiFiSSID, WiFiPassword: r.opts.WiFiPassword,
		BrokerHost: r.host, BrokerPort: r.port, DeviceID: DeviceID, ProductID: ProductID,
		Key: r.authInfo, Topic: Topic, LEDPin: LEDPin, Keepalive: 60}
	if wrong {
		c.Key = r.wrongKey
	}
	if r.Platform() == scenario.Studio {
		c.Platform, c.BrokerPort, c.Key, c.Token = firmware.Studio, r.sport, "", r.devToken
		if wrong {
			c.Token = r.wrongToken
		}
	}
	if r.sim != nil {
		c.BackoffMS = VirtualBackoffMS
	}
	if r.tweak != nil {
		r.tweak(&c)
	}
	return c
}

// Ready lines by profile: logged in, refused.
var readyLines = map[string][2]*regexp.Regexp{
	"hil":      {board.DefaultReady, regexp.MustCompile(`^HIL mqtt refused\b`)},
	"tutorial": {regexp.MustCompile(`^Connected to `), regexp.MustCompile(`MQTT\w*(?:Exception|Error): \d+$`)},
}

// Begin flashes the firmware of setup.Profile (only what changed), resets
// the board and returns once it has logged in (or, with wrong
// credentials, been refused) as both its echo and the broker tell.
func (r *Rig) Begin(ctx context.Context, setup scenario.Setup) error {
	ready, ok := readyLines[setup.Profile]
	if !ok {
		return fmt.Errorf("rig: unknown profile %q (want hil or tutorial)", setup.Profile)
	}
	if setup.Profile == "tutorial" && r.Platform() == scenario.Studio {
		return errors.New("rig: the tutorial profile is legacy only (its mqtt.py logs in with a key and reads $creq)")
	}
	if r.sim != nil {
		// A scenario that failed during an outage must not leave it behind.
		if err := r.sim.SetWiFi(true); err != nil {
			return err
		}
	}
	cfg := r.config(setup.WrongCredentials)
	var files map[string][]byte
	var cj []byte
	switch setup.Profile {
	case "hil":
		files = firmware.Files()
		var err error
		if cj, err = cfg.JSON(); err != nil {
			return err
		}
	case "tutorial":
		files = firmware.Tutorial(cfg)
	}
	want := broker.Connected
	line := ready[0]
	if setup.WrongCredentials {
		want, line = broker.Refused, ready[1]
	}
	boot := r.opts.BootTimeout
	if dl, ok := ctx.Deadline(); ok {
		boot = time.Until(dl)
	}
	// Prune only the virtual board's flash, which is the rig's own: on a real
	// board the user's other files (data, lib/, certificates) must survive a
	// test run; the firmware's own files are overwritten either way.
	fo := board.FlashOptions{Prune: r.sim != nil, Keep: []string{"webrepl_cfg.py"}, Progress: r.opts.Progress}

	// First the upload alone: a board that does not answer its REPL is
	// power-cycled once (where the rig can) and tried again.
	up := fo
	up.NoReset = true
	if _, err := board.Flash(ctx, r.repl, files, cj, up); err != nil {
		if ctx.Err() != nil || !r.canPowerCycle() {
			return errors.New(r.mask.Mask(err.Error()))
		}
		if perr := r.powerCycle(ctx); perr != nil {
			return errors.New(r.mask.Mask(fmt.Sprintf("%v; power cycle to recover: %v", err, perr)))
		}
		if _, err2 := board.Flash(ctx, r.repl, files, cj, up); err2 != nil {
			return errors.New(r.mask.Mask(fmt.Sprintf("%v; again after a power cycle: %v", err, err2)))
		}
	}

	// Then the reset: the files are in place (checked again, nothing is
	// uploaded), and Begin returns once the board and the broker agree.
	fo.NoSoftReset, fo.Reset, fo.BootTimeout, fo.Ready = true, board.ResetAuto, boot, line
	fo.ArmConnected = func() func(context.Context) error {
		// Just before the reset: from here on every serial line and
		// broker event belongs to this scenario.
		r.mu.Lock()
		r.cursor = r.link.Mark()
		r.mark = r.br.Events().Mark()
		clear(r.intruder)
		mark := r.mark
		r.mu.Unlock()
		return func(ctx context.Context) error {
			_, err := r.br.Events().WaitAfter(ctx, mark, r.match(scenario.BrokerEvent{Kind: kindName[want], RC: -1}))
			return err
		}
	}
	if _, err := board.Flash(ctx, r.repl, files, cj, fo); err != nil {
		return errors.New(r.mask.Mask(err.Error()))
	}
	return nil
}

func (r *Rig) canPowerCycle() bool { return r.sim != nil || r.resets }

// powerCycle restarts the board: the virtual one's power, a real one's
// reset line.
func (r *Rig) powerCycle(ctx context.Context) error {
	if r.sim != nil {
		return r.sim.PowerCycle()
	}
	return board.HardReset(ctx, r.link)
}

// kindName maps the broker's event kinds to the scenario file's words.
var kindName = map[broker.EventKind]string{
	broker.Connected: "connected", broker.Refused: "refused", broker.Disconnected: "disconnected", broker.Kicked: "kicked",
}

// match selects the device's events of kind want, leaving out those of
// the harness's own duplicate login (Fault(kick)).
func (r *Rig) match(want scenario.BrokerEvent) func(broker.Event) bool {
	return func(e broker.Event) bool {
		if e.DeviceID != DeviceID || kindName[e.Kind] != want.Kind {
			return false
		}
		if want.Kind == "refused" && want.RC >= 0 && int(e.Code) != want.RC {
			return false
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return !r.intruder[e.Seq]
	}
}

// AwaitBroker waits for want about the device, counting only events since
// the last Begin or Fault.
func (r *Rig) AwaitBroker(ctx context.Context, want scenario.BrokerEvent) error {
	if _, ok := map[string]bool{"connected": true, "refused": true, "disconnected": true, "kicked": true}[want.Kind]; !ok {
		return fmt.Errorf("rig: unknown broker event %q", want.Kind)
	}
	r.mu.Lock()
	mark := r.mark
	r.mu.Unlock()
	_, err := r.br.Events().WaitAfter(ctx, mark, r.match(want))
	return err
}

// newMark starts a fault: AwaitBroker looks only after this point.
func (r *Rig) newMark() broker.Mark {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mark = r.br.Events().Mark()
	clear(r.intruder)
	return r.mark
}

// maskingWriter masks secrets line by line (a secret never spans lines).
type maskingWriter struct {
	mu  sync.Mutex
	w   io.Writer
	m   *report.Masker
	buf []byte
}

func (w *maskingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := indexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := io.WriteString(w.w, w.m.Mask(string(w.buf[:i+1]))); err != nil {
			return len(p), err
		}
		w.buf = w.buf[i+1:]
	}
}

// Flush writes an unfinished last line.
func (w *maskingWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		io.WriteString(w.w, w.m.Mask(string(w.buf)))
		w.buf = nil
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
