package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/harness/board"
	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/harness/onenet"
	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/internal/dirfiles"
	"github.com/onenet-hil/hil/internal/secret"
)

func init() {
	register(command{
		name:    "flash",
		summary: "upload the firmware and config.json to a board, reset it and wait until it logs in",
		run:     runFlash,
	})
}

// flashSettings are what a config file (--config) may hold; flags and the
// environment override it. Secrets are never printed.
type flashSettings struct {
	WiFiSSID     string `yaml:"wifi_ssid"`
	WiFiPassword string `yaml:"wifi_password"`
	DeviceID     string `yaml:"device_id"`
	ProductID    string `yaml:"product_id"`
	Key          string `yaml:"key"`
	Topic        string `yaml:"topic"`
	LEDPin       int    `yaml:"led_pin"`
	Broker       string `yaml:"broker"`
	API          string `yaml:"api"`
	APIKey       string `yaml:"api_key"`
}

func runFlash(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	f, err := parseFlashFlags(args, stderr)
	if err != nil {
		return err
	}
	s, err := f.settings()
	if err != nil {
		return err
	}
	// Firmware may print what it was given: every secret is masked in what
	// flash prints, in its errors (they carry the last serial lines) and in
	// the serial log.
	masterKey := rand.Text() // the embedded broker's product key, never shown
	mask := report.NewMasker(s.WiFiPassword, s.Key, s.APIKey, masterKey)
	stdout, stderr = mask.ChunkWriter(stdout), mask.ChunkWriter(stderr)
	defer func() {
		if err != nil {
			err = mask.MaskError(err)
		}
	}()

	files := firmware.Files()
	if f.fwDir != "" {
		if files, err = readFirmwareDir(f.fwDir); err != nil {
			return err
		}
	}
	// What can be checked without the board is checked before its port opens.
	if err := checkFlashTarget(s); err != nil {
		return err
	}
	if err := f.flashMicroPython(ctx, stdout); err != nil { // flash_rom.go
		return err
	}
	port, err := f.openPort(stdout, mask)
	if err != nil {
		return err
	}
	defer port.close()
	// What is on the port decides where the broker must listen: a virtual
	// board reaches only loopback, a real one this machine's LAN address.
	virtual, err := f.boardKind(ctx, port.repl, port.name, stdout)
	if err != nil {
		return err
	}
	if virtual {
		f.virtualDefaults(&s, stdout)
	}
	target, err := flashBroker(&s, f, masterKey, stdout)
	if err != nil {
		return err
	}
	defer target.close()
	cj, err := flashConfigJSON(s, target)
	if err != nil {
		return err
	}
	f.boardAddr = net.JoinHostPort(target.host, strconv.Itoa(target.port))
	return f.flashBoard(ctx, port.repl, files, cj, target.watch, stdout)
}

// flashFlags is hil flash's command line.
type flashFlags struct {
	port, fwDir, configFile, brokerAddr, api, listen, advertise string
	board                                                       string // auto, real or virtual
	ssid, wifiPass, deviceID, productID, key, topic             string
	ledPin                                                      int
	prune                                                       bool
	mode                                                        board.ResetMode
	ready                                                       *regexp.Regexp
	timeout                                                     time.Duration
	serialLog                                                   string
	boardAddr                                                   string // where the board is told the broker is
	micropython                                                 string // flash_rom.go
}

func parseFlashFlags(args []string, stderr io.Writer) (*flashFlags, error) {
	f := &flashFlags{}
	fl := flag.NewFlagSet("hil flash", flag.ContinueOnError)
	fl.StringVar(&f.port, "port", "", "serial port (default $"+rig.EnvPort+", else the one ESP8266-looking USB port)")
	fl.StringVar(&f.fwDir, "firmware", "", "flash the files of this directory instead of the built-in firmware")
	fl.StringVar(&f.micropython, "micropython", "", micropythonFlagHelp)
	fl.StringVar(&f.configFile, "config", "", "YAML file with wifi_ssid, wifi_password, device_id, product_id, key, topic, led_pin, broker, api, api_key")
	fl.StringVar(&f.brokerAddr, "broker", "", "HOST:PORT of a running broker the board should use (default: run an embedded one)")
	fl.StringVar(&f.api, "api", "", "with --broker: its OneNET-style HTTP API base URL, to see the board log in")
	fl.StringVar(&f.listen, "listen", "", "embedded broker: MQTT listen address (default: the --advertise address, port 6002: only that\ninterface, the one the board reaches; give 0.0.0.0:6002 to listen on every interface)")
	fl.StringVar(&f.advertise, "advertise", "", "embedded broker: host the board connects to (default: this machine's LAN address)")
	fl.StringVar(&f.ssid, "wifi-ssid", "", "Wi-Fi network name")
	fl.StringVar(&f.wifiPass, "wifi-password", "", "Wi-Fi password; prefer $"+rig.EnvWiFiPassword+" or wifi_password in --config\n(a flag's value shows in ps and the shell history)")
	fl.StringVar(&f.deviceID, "device-id", "", "OneNET device id (default: the demo device; the embedded broker registers the one given)")
	fl.StringVar(&f.productID, "product-id", "", "OneNET product id (default: the demo product; the embedded broker registers the one given)")
	fl.StringVar(&f.key, "key", "", "device auth_info or APIKey; prefer $"+rig.EnvDeviceKey+" or key in --config\n(a flag's value shows in ps and the shell history)")
	fl.StringVar(&f.topic, "topic", "", "custom topic the firmware subscribes to")
	fl.IntVar(&f.ledPin, "led-pin", 0, "GPIO of the LED (default 4)")
	fl.BoolVar(&f.prune, "prune", false, "remove board files the firmware does not have (boot.py is kept)")
	fl.StringVar(&f.board, "board", boardAuto, "what is on --port: auto asks the board over the raw REPL (the virtual board of hil sim\nsays so: then the broker listens on loopback and any Wi-Fi network name does), real or virtual")
	resetMode := fl.String("reset", "auto", "auto, hard (RTS), soft (Ctrl-D) or machine (machine.reset())")
	ready := fl.String("ready", "", "serial line (regexp) that says the firmware is up (default: the firmware's login echo, HIL mqtt up)")
	fl.DurationVar(&f.timeout, "timeout", 60*time.Second, "bound for the board to come up after the reset")
	fl.StringVar(&f.serialLog, "log", "", "append the board's serial lines, timestamped and with secrets masked, to this file")
	if err := parseFlags(fl, args, stderr, "usage: hil flash [--port P] [--board auto|real|virtual] [--wifi-ssid S] [--firmware DIR] [--config FILE] [--broker HOST:PORT --api URL] [--listen ADDR] [--advertise HOST] [flags]",
		"Uploads the firmware and config.json to a board, resets it and waits until it logs in to the broker (an embedded one unless --broker).\n"+
			"Secrets come from $"+rig.EnvWiFiPassword+", $"+rig.EnvDeviceKey+" and $"+rig.EnvAPIKey+" (or --config), never printed."); err != nil {
		return nil, err
	}
	var err error
	if f.mode, err = board.ParseResetMode(*resetMode); err != nil {
		return nil, err
	}
	if f.board != boardAuto && f.board != boardReal && f.board != boardVirtual {
		return nil, fmt.Errorf("--board %q: want %s, %s or %s", f.board, boardAuto, boardReal, boardVirtual)
	}
	if *ready != "" {
		if f.ready, err = regexp.Compile(*ready); err != nil {
			return nil, fmt.Errorf("--ready: %w", err)
		}
	}
	return f, nil
}

// settings reads --config, then lets the flags and the environment
// override it.
func (f *flashFlags) settings() (flashSettings, error) {
	var s flashSettings
	if f.configFile != "" {
		data, err := os.ReadFile(f.configFile)
		if err != nil {
			return s, err
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		dec.KnownFields(true)
		if err := dec.Decode(&s); err != nil && !errors.Is(err, io.EOF) {
			return s, fmt.Errorf("%s: %v", f.configFile, err)
		}
	}
	pick := func(dst *string, flagVal, env string) {
		if flagVal != "" {
			*dst = flagVal
		} else if v := os.Getenv(env); env != "" && v != "" {
			*dst = v
		}
	}
	pick(&s.WiFiSSID, f.ssid, "")
	pick(&s.WiFiPassword, f.wifiPass, rig.EnvWiFiPassword)
	pick(&s.DeviceID, f.deviceID, "")
	pick(&s.ProductID, f.productID, "")
	pick(&s.Key, f.key, rig.EnvDeviceKey)
	pick(&s.Topic, f.topic, "")
	pick(&s.Broker, f.brokerAddr, "")
	pick(&s.API, f.api, "")
	pick(&s.APIKey, "", rig.EnvAPIKey)
	if f.ledPin != 0 {
		s.LEDPin = f.ledPin
	}
	// A secret too short to tell from ordinary text would either shred
	// every log line or show through the mask: refuse it before anything.
	for _, c := range []struct{ what, v string }{
		{"the Wi-Fi password", s.WiFiPassword}, {"the device key", s.Key}, {"the API key ($" + rig.EnvAPIKey + ")", s.APIKey},
	} {
		if err := secret.Check(c.what, c.v); err != nil {
			return s, err
		}
	}
	return s, nil
}

// loginWatch marks the broker's view of the device just before the reset
// and returns the wait for its login after it: the serial echo alone does
// not prove the board logged in.
type loginWatch func() (wait func(ctx context.Context) error)

// flashTarget is the broker the board is told to use, how the flasher sees
// it log in there, and what ends the broker (an embedded one).
type flashTarget struct {
	host  string
	port  int
	watch loginWatch
	close func()
}

// flashBroker is the given broker (--broker), or an embedded one for the
// duration.
func flashBroker(s *flashSettings, f *flashFlags, masterKey string, stdout io.Writer) (flashTarget, error) {
	if s.Broker != "" {
		return externalFlashBroker(s)
	}
	return embeddedFlashBroker(s, f, masterKey, stdout)
}

// checkFlashTarget refuses, before the board is touched, a --broker that
// cannot be used or credentials given in part.
func checkFlashTarget(s flashSettings) error {
	if s.Broker != "" {
		_, _, err := parseExternalBroker(s)
		return err
	}
	_, _, err := flashRegistry(&s, "master-key-of-the-check") // a copy of s: the demo defaults stay out
	return err
}

// parseExternalBroker is --broker's host and port; it also wants the API
// that shows the login.
func parseExternalBroker(s flashSettings) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(s.Broker)
	if err != nil {
		return "", 0, fmt.Errorf("--broker %q: %v", s.Broker, err)
	}
	if port = atoiOr(p, -1); port <= 0 {
		return "", 0, fmt.Errorf("--broker %q: bad port", s.Broker)
	}
	if s.API == "" || s.APIKey == "" {
		return "", 0, fmt.Errorf("with --broker, give --api URL and $%s (or api/api_key in --config) so the flasher can see the board log in", rig.EnvAPIKey)
	}
	return h, port, nil
}

func externalFlashBroker(s *flashSettings) (flashTarget, error) {
	h, p, err := parseExternalBroker(*s)
	if err != nil {
		return flashTarget{}, err
	}
	t := flashTarget{host: h, port: p, close: func() {}}
	t.watch = apiOnlineWait(&onenet.Client{BaseURL: s.API, APIKey: s.APIKey}, s.DeviceID)
	return t, nil
}

func embeddedFlashBroker(s *flashSettings, f *flashFlags, masterKey string, stdout io.Writer) (flashTarget, error) {
	reg, regName, err := flashRegistry(s, masterKey)
	if err != nil {
		return flashTarget{}, err
	}
	host := f.advertise
	if host == "" {
		var note string
		host, note = lanAddress()
		fmt.Fprintln(stdout, "flash: "+note)
	}
	// A real board needs the broker on a LAN address: the one it is
	// told to dial, not every interface, unless --listen says so.
	b, err := broker.New(broker.Options{Registry: reg, MQTTAddr: flashListenAddr(f.listen, host), HTTPAddr: "127.0.0.1:0"})
	if err != nil {
		return flashTarget{}, err
	}
	if err := b.Start(); err != nil {
		return flashTarget{}, fmt.Errorf("embedded broker: %w", err)
	}
	_, p, _ := net.SplitHostPort(b.MQTTAddr())
	t := flashTarget{host: host, port: atoiOr(p, 0), close: func() { b.Close() }}
	fmt.Fprintf(stdout, "flash: embedded broker on %s (%s); the board will connect to %s:%d\n", b.MQTTAddr(), regName, host, t.port)
	deviceID := s.DeviceID
	t.watch = func() func(ctx context.Context) error {
		m := b.Events().Mark()
		return func(ctx context.Context) error {
			_, err := b.Events().WaitAfter(ctx, m, broker.Is(broker.Connected, deviceID))
			return err
		}
	}
	return t, nil
}

// flashConfigJSON is the board's config.json for the settings and the
// broker.
func flashConfigJSON(s flashSettings, t flashTarget) ([]byte, error) {
	cfg := firmware.Config{
		WiFiSSID: s.WiFiSSID, WiFiPassword: s.WiFiPassword, BrokerHost: t.host, BrokerPort: t.port,
		DeviceID: s.DeviceID, ProductID: s.ProductID, Key: s.Key, Topic: s.Topic, LEDPin: s.LEDPin,
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg.JSON()
}

// flashPort is the board's serial port, open, with its raw-REPL client.
type flashPort struct {
	name  string
	repl  *board.REPL
	close func()
}

// openPort opens the board's port (--port, $HIL_PORT or the one found),
// its serial log (--log, secrets masked) and a raw-REPL client on it.
func (f *flashFlags) openPort(stdout io.Writer, mask *report.Masker) (p flashPort, err error) {
	p.name = f.port
	if p.name == "" {
		p.name = os.Getenv(rig.EnvPort)
	}
	if p.name == "" {
		found, err := link.FindBoard()
		if err != nil {
			return p, err
		}
		p.name = found.Name
		fmt.Fprintf(stdout, "flash: using %s (%s %s:%s)\n", found.Name, found.Chip, found.VID, found.PID)
	}
	var closers []func()
	p.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	lo := link.Options{}
	if f.serialLog != "" {
		lf, err := openPrivate(f.serialLog, os.O_WRONLY|os.O_APPEND)
		if err != nil {
			return p, fmt.Errorf("open serial log: %w", err)
		}
		closers = append(closers, func() { lf.Close() }) // after the link: its last lines are written on Close
		lw := mask.LineWriter(lf)
		closers = append(closers, func() { lw.Flush() })
		lo.Log = lw
	}
	l, err := link.Open(p.name, lo)
	if err != nil {
		return p, err
	}
	closers = append(closers, func() { l.Close() })
	p.repl = board.NewREPL(l, board.Options{})
	return p, nil
}

// flashBoard syncs files and config.json to the board, resets it and waits
// for its ready line and for watch's login.
func (f *flashFlags) flashBoard(ctx context.Context, repl *board.REPL, files map[string][]byte, cj []byte, watch loginWatch, stdout io.Writer) error {
	want := maps.Clone(files)
	want[board.ConfigPath] = cj
	res, err := board.Sync(ctx, repl, want, board.SyncOptions{Prune: f.prune, Keep: []string{"boot.py"}, Progress: stdout})
	if err != nil {
		return err
	}
	boot, err := f.boot(ctx, repl, watch, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "flash: done: %d uploaded (%d bytes), %d unchanged, %d removed; %s reset; up in %s\n",
		len(res.Uploaded), res.Bytes, len(res.Skipped), len(res.Removed), boot.Reset, boot.Boot.Round(time.Millisecond))
	return nil
}

// boot resets the board and waits, within --timeout, for its ready line
// and the broker's login.
func (f *flashFlags) boot(ctx context.Context, repl *board.REPL, watch loginWatch, stdout io.Writer) (board.BootResult, error) {
	opts := board.BootOptions{Reset: f.mode, Timeout: f.timeout, Progress: stdout}
	ready, what := echo.LoginLine(echo.HIL, false), "the login echo (HIL mqtt up)"
	if f.ready != nil {
		ready, what = f.ready.MatchString, fmt.Sprintf("a line matching /%s/", f.ready)
	}
	// Stop also at a failure that waiting cannot mend, and name its fix.
	stop := &bootStopper{broker: f.boardAddr}
	opts.What = what
	opts.Ready = func(line string) bool { return ready(line) || stop.fatal(echo.HIL.Parse(line)) }
	bctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	wait := watch()
	boot, err := board.Boot(bctx, repl, opts)
	if err != nil {
		return boot, err
	}
	if stop.why != "" {
		return boot, fmt.Errorf("the board said %q: %s", boot.Ready, stop.why)
	}
	if err := wait(bctx); err != nil {
		return boot, fmt.Errorf("the board echoed %q but the broker saw no login: %w", boot.Ready, err)
	}
	return boot, nil
}

// bootStopper knows the board's reports that retrying cannot mend, and
// what to do about each.
type bootStopper struct {
	broker      string // the address the board was told to dial
	unreachable int
	why         string
}

// unreachableLimit is how many "unreachable" reports in a row end the
// wait: one can be the network coming up; three are the address.
const unreachableLimit = 3

// connackMeaning is OneNET's table of CONNACK codes (broker/README.md).
var connackMeaning = map[int]string{
	1: "the protocol version is refused (the firmware must speak MQTT 3.1.1)",
	2: "the client id is refused: the device ID (--device-id) is not a device of the product",
	3: "the server is unavailable",
	4: "bad user name or password: the product ID (--product-id) or the key ($" + rig.EnvDeviceKey + ") is wrong",
	5: "not authorized: the key or token does not belong to this device",
}

func (s *bootStopper) fatal(ev echo.Event) bool {
	switch {
	case ev.Kind == echo.WifiDown && ev.Reason == "config":
		s.why = "the board has no Wi-Fi network to join: give --wifi-ssid (and $" + rig.EnvWiFiPassword + ")"
	case ev.Kind == echo.WifiDown && ev.Reason == "password":
		s.why = "the Wi-Fi network refused the password: check $" + rig.EnvWiFiPassword
	case ev.Kind == echo.MQTTRefused:
		meaning, ok := connackMeaning[ev.RC]
		if !ok {
			meaning = "a code OneNET does not use"
		}
		s.why = fmt.Sprintf("the broker refused the login with CONNACK code %d: %s", ev.RC, meaning)
	case ev.Kind == echo.MQTTDown && ev.Reason == "unreachable":
		if s.unreachable++; s.unreachable < unreachableLimit {
			return false
		}
		s.why = fmt.Sprintf("the board cannot reach the broker at %s (%d times): give --advertise with this machine's "+
			"address as the board's network sees it (127.0.0.1 for a virtual board)", s.broker, s.unreachable)
	case ev.Kind == echo.MQTTDown:
		s.unreachable = 0
		return false
	default:
		return false
	}
	return true
}

// readFirmwareDir reads every regular file under dir (hidden ones and
// __pycache__ skipped) by its flash path.
func readFirmwareDir(dir string) (map[string][]byte, error) {
	files, err := dirfiles.Read(dir, func(name string) bool { return strings.HasPrefix(name, ".") || name == "__pycache__" })
	if err != nil {
		return nil, fmt.Errorf("--firmware: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("--firmware %s: no files", dir)
	}
	if _, ok := files[board.ConfigPath]; ok {
		return nil, fmt.Errorf("--firmware %s: holds a %s; the flasher writes that one", dir, board.ConfigPath)
	}
	return files, nil
}

// flashListenAddr is the embedded broker's MQTT address: --listen when
// given, else the advertised host on OneNET's port 6002.
func flashListenAddr(listen, advertised string) string {
	if listen != "" {
		return listen
	}
	return net.JoinHostPort(advertised, strconv.Itoa(firmware.DefaultPort))
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}

// lanAddress is this machine's first non-loopback IPv4 address on an
// interface that is up (loopback if there is none), and a note saying which
// it picked: the first is often docker0 or a VPN, not the board's Wi-Fi.
func lanAddress() (addr, note string) {
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
				ip := ipn.IP.String()
				return ip, fmt.Sprintf("the board will dial %s (interface %s, this machine's first non-loopback IPv4 address); "+
					"if the board is on another network, give --advertise with the address it can reach", ip, ifc.Name)
			}
		}
	}
	return "127.0.0.1", "no non-loopback IPv4 address here: the board would dial 127.0.0.1, which only a virtual board reaches; " +
		"give --advertise with an address the board can reach"
}

// flashRegistry is the embedded broker's registry: the demo one when no
// credentials were given (s then gets the demo device's), else the given
// product and device, the key as the device's auth_info. It returns a
// name for the registry that holds no secret.
func flashRegistry(s *flashSettings, masterKey string) (*broker.Registry, string, error) {
	if s.DeviceID == "" && s.ProductID == "" && s.Key == "" {
		s.DeviceID, s.ProductID, s.Key = broker.DemoDeviceID, broker.DemoProductID, broker.DemoAuthInfo
	}
	if s.DeviceID == broker.DemoDeviceID && s.ProductID == broker.DemoProductID && s.Key == broker.DemoAuthInfo {
		return broker.DemoRegistry(), "demo registry", nil
	}
	var missing []string
	for _, f := range []struct{ v, name string }{{s.DeviceID, "--device-id"}, {s.ProductID, "--product-id"}, {s.Key, "--key ($" + rig.EnvDeviceKey + ")"}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, "", fmt.Errorf("give --device-id, --product-id and --key ($%s) together, or none for the demo device; missing %s",
			rig.EnvDeviceKey, strings.Join(missing, ", "))
	}
	reg := broker.NewRegistry()
	if err := reg.AddProduct(broker.Product{ID: s.ProductID, Name: "hil flash", MasterKey: masterKey}); err != nil {
		return nil, "", err
	}
	if err := reg.AddDevice(s.ProductID, broker.Device{ID: s.DeviceID, Title: "hil flash", AuthInfo: s.Key}); err != nil {
		return nil, "", err
	}
	return reg, fmt.Sprintf("product %s, device %s", s.ProductID, s.DeviceID), nil
}

// apiOnlineWait watches an external broker through its OneNET-style HTTP
// API until it reports the device online. Weaker than the embedded broker's
// event feed: a session from before the reset also reads "online", so the
// fresh ready line on the serial port is what dates the login.
func apiOnlineWait(api *onenet.Client, deviceID string) loginWatch {
	return func() func(ctx context.Context) error {
		return func(ctx context.Context) error {
			var last string
			for {
				online, err := api.DeviceOnline(ctx, deviceID)
				if err != nil {
					last = err.Error()
				} else if online {
					return nil
				} else {
					last = "device offline"
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("broker API %s: %w (last answer: %s)", api.BaseURL, ctx.Err(), last)
				case <-time.After(250 * time.Millisecond): // polling interval
				}
			}
		}
	}
}
