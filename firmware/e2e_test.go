package firmware_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	e2eProduct = "386427"
	e2eDevice  = "503367129"
	e2eAuth    = "tpy-001-auth-secret"
	e2eWiFiPW  = "wifi-secret-5d1c"
	e2eTopic   = "TurnipRobot"
	e2eLED     = 4
	// Generous: a loaded 2-core machine runs the Python board, the broker
	// and -race at once.
	e2eWait = 30 * time.Second
)

// e2e is one run: the embedded broker, the virtual board running our
// firmware from its flash, and the board's serial port.
type e2e struct {
	t     *testing.T
	b     *broker.Broker
	board *sim.Board
	port  *link.Link
	host  string
	mport int
}

func startE2E(t *testing.T) *e2e {
	b := startE2EBroker(t)
	host, mport := splitAddr(t, b.MQTTAddr())
	cfg := firmware.Config{
		WiFiSSID: "lab", WiFiPassword: e2eWiFiPW, BrokerHost: host, BrokerPort: mport,
		DeviceID: e2eDevice, ProductID: e2eProduct, Key: e2eAuth, Topic: e2eTopic, LEDPin: e2eLED, Keepalive: 30,
	}
	return bootBoard(t, b, cfg)
}

// startE2EBroker runs the broker with the e2e product and device.
func startE2EBroker(t *testing.T) *broker.Broker {
	reg := broker.NewRegistry()
	require.NoError(t, reg.AddProduct(broker.Product{ID: e2eProduct, Name: e2eTopic, MasterKey: "master-key-secret"}))
	require.NoError(t, reg.AddDevice(e2eProduct, broker.Device{ID: e2eDevice, Title: "led-board", AuthInfo: e2eAuth}))
	b, err := broker.New(broker.Options{Registry: reg, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { b.Close() })
	return b
}

func splitAddr(t *testing.T, addr string) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)
	return host, port
}

// bootBoard flashes our firmware with cfg onto a fresh virtual board and
// opens its serial port.
func bootBoard(t *testing.T, b *broker.Broker, cfg firmware.Config) *e2e {
	files := firmware.Files()
	cj, err := cfg.JSON()
	require.NoError(t, err)
	files[firmware.ConfigPath] = cj
	e := bootFiles(t, b, files, sim.Options{})
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("HIL_E2E_LOG") != "" {
			t.Logf("serial log:\n%s", tailN(e.port, 200))
		}
	})
	e.host, e.mport = cfg.BrokerHost, cfg.WithDefaults().BrokerPort
	return e
}

// bootFiles starts a fresh virtual board (opts) with files on its flash
// and opens its serial port.
func bootFiles(t *testing.T, b *broker.Broker, files map[string][]byte, opts sim.Options) *e2e {
	opts.FlashDir = t.TempDir()
	for name, data := range files {
		require.NoError(t, os.WriteFile(filepath.Join(opts.FlashDir, name), data, 0o644))
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	board, err := sim.Start(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { board.Close() })
	port, err := link.Open(board.Port(), link.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { port.Close() })
	return &e2e{t: t, b: b, board: board, port: port}
}

// expect waits for the next serial line matching pattern.
func (e *e2e) expect(pattern string) link.Match {
	e.t.Helper()
	m, err := e.port.Expect(pattern, e2eWait)
	require.NoError(e.t, err, "broker events: %v", e.b.Events().Last(10))
	return m
}

// event waits for a broker event after mark.
func (e *e2e) event(mark broker.Mark, what string, match func(broker.Event) bool) broker.Event {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	ev, err := e.b.Events().WaitAfter(ctx, mark, match)
	require.NoError(e.t, err, "waiting for %s; last serial lines:\n%s", what, tail(e.port))
	return ev
}

func (e *e2e) pin(v int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	require.NoError(e.t, e.board.WaitPin(ctx, e2eLED, v), "GPIO%d never went to %d; last serial lines:\n%s", e2eLED, v, tail(e.port))
	assert.Equal(e.t, v, e.board.Pin(e2eLED))
}

func tail(l *link.Link) string { return tailN(l, link.TailLines) }

func tailN(l *link.Link, n int) string {
	var sb strings.Builder
	for _, ln := range l.Tail(n) {
		sb.WriteString("  | " + ln.String() + "\n")
	}
	return sb.String()
}

// up waits for a login (the echo and the broker's connected event, both).
func (e *e2e) up(mark broker.Mark) {
	e.t.Helper()
	e.expect(`^HIL mqtt up broker=` + regexp.QuoteMeta(net.JoinHostPort(e.host, strconv.Itoa(e.mport))) + `$`)
	ev := e.event(mark, "the device's login", broker.Is(broker.Connected, e2eDevice))
	assert.Equal(e.t, e2eProduct, ev.ProductID)
}

// push sends a $creq command and checks the echo, the pin, the $crsp reply
// and the $dp point.
func (e *e2e) push(cmd string, state int) {
	e.t.Helper()
	mark := e.b.Events().Mark()
	uuid, err := e.b.SendCommand(e2eDevice, []byte(cmd), broker.CommandOptions{})
	require.NoError(e.t, err)
	e.expect(`^HIL led state=` + strconv.Itoa(state) + ` cmd=` + cmd + ` via=\$creq/` + regexp.QuoteMeta(uuid) + `$`)
	e.pin(state)
	rep := e.event(mark, "the $crsp reply", broker.ForCommand(broker.CommandReplied, uuid))
	assert.JSONEq(e.t, `{"led":`+strconv.Itoa(state)+`}`, string(rep.Payload))
	e.datapoint(mark, state)
}

// publish sends a payload on the custom topic; state < 0 means "ignored".
func (e *e2e) publish(payload string, state int) {
	e.t.Helper()
	mark := e.b.Events().Mark()
	require.NoError(e.t, e.b.PublishCustom(e2eProduct, e2eTopic, []byte(payload)))
	if state < 0 {
		e.expect(`^HIL ignored payload=b'` + regexp.QuoteMeta(payload) + `' via=` + e2eTopic + `$`)
		return
	}
	e.expect(`^HIL led state=` + strconv.Itoa(state) + ` cmd=` + payload + ` via=` + e2eTopic + `$`)
	e.pin(state)
	e.datapoint(mark, state)
}

func (e *e2e) datapoint(mark broker.Mark, state int) {
	e.t.Helper()
	dp := e.event(mark, "the $dp point", func(ev broker.Event) bool {
		return ev.Kind == broker.DatapointReceived && ev.DeviceID == e2eDevice && ev.Topic == "led"
	})
	// legacy $dp {"led":1}; studio's property post {"led":{"value":true}}
	assert.Contains(e.t, []string{strconv.Itoa(state), []string{"false", "true"}[state]}, string(dp.Payload))
}

func TestFirmwareOnVirtualBoardAgainstBroker(t *testing.T) {
	e := startE2E(t)
	mark := broker.Mark(0)

	e.expect(`^HIL boot fw=` + regexp.QuoteMeta(firmware.Version) + ` id=` + e2eDevice + `$`)
	e.expect(`^HIL wifi up ip=\S+$`)
	e.up(mark)
	sub := e.event(mark, "the custom topic's subscription", broker.Is(broker.Subscribed, e2eDevice))
	assert.Equal(t, e2eTopic, sub.Topic)
	assert.Equal(t, byte(0), sub.Code)
	assert.Equal(t, 0, e.board.Pin(e2eLED), "the LED is off after boot")

	// on/off/toggle from $creq pushes and from the custom topic.
	e.push("on", 1)
	e.push("toggle", 0)
	e.publish("toggle", 1)
	e.publish("off", 0)
	e.publish("on", 1)
	e.push("off", 0)
	e.publish("blink", -1)
	assert.Equal(t, 0, e.board.Pin(e2eLED), "an ignored payload leaves the LED alone")

	// Kicked by the server: the board notices, backs off and logs in again.
	mark = e.b.Events().Mark()
	require.NoError(t, e.b.Kick(e2eDevice))
	e.expect(`^HIL mqtt down reason=\w+$`)
	e.up(mark)
	e.push("toggle", 1)

	// The broker restarts: the same again.
	mark = e.b.Events().Mark()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	require.NoError(t, e.b.Restart(ctx))
	e.expect(`^HIL mqtt down reason=\w+$`)
	e.up(mark)
	e.publish("toggle", 0)

	// Wi-Fi drops: the session ends; when the link is back the board joins
	// again and logs in by itself.
	mark = e.b.Events().Mark()
	require.NoError(t, e.board.SetWiFi(false))
	e.expect(`^HIL mqtt down reason=\w+$`)
	e.expect(`^HIL wifi down reason=lost$`)
	require.NoError(t, e.board.SetWiFi(true))
	e.expect(`^HIL wifi up ip=\S+$`)
	e.up(mark)
	e.push("on", 1)

	// Ctrl-C stops the firmware: a KeyboardInterrupt, the REPL, and the
	// broker sees the connection end.
	mark = e.b.Events().Mark()
	_, err := e.port.Write([]byte{0x03})
	require.NoError(t, err)
	e.expect(`^KeyboardInterrupt`)
	e.expect(`^Type "help\(\)" for more information\.`)
	e.event(mark, "the connection to end", broker.Is(broker.Disconnected, e2eDevice))

	// Every echo line keeps to the grammar the harness parses, and nothing
	// secret reached the serial port.
	var n int
	for _, ln := range e.port.Lines() {
		assert.NotContains(t, ln.Text, e2eAuth)
		assert.NotContains(t, ln.Text, e2eWiFiPW)
		if !strings.HasPrefix(ln.Text, "HIL ") {
			continue
		}
		n++
		_, err = echo.ParseHIL(ln.Text)
		assert.NoError(t, err, "echo line %q", ln.Text)
	}
	assert.GreaterOrEqual(t, n, 15)
}

// The tutorial's own program, unchanged but for its placeholders, with our
// client as simple.py: it still dials OneNET's 183.230.40.39:6002, which the
// virtual board's redirect table sends to the embedded broker.
func TestTutorialOnVirtualBoardAgainstBroker(t *testing.T) {
	b := startE2EBroker(t)
	cfg := firmware.Config{WiFiSSID: "lab", WiFiPassword: e2eWiFiPW, BrokerHost: "183.230.40.39",
		DeviceID: e2eDevice, ProductID: e2eProduct, Key: e2eAuth, Topic: e2eTopic}
	e := bootFiles(t, b, firmware.Tutorial(cfg), sim.Options{Redirects: map[string]string{"183.230.40.39:6002": b.MQTTAddr()}})

	e.expect(`^network config: \(`)
	e.expect(`^Connected to 183\.230\.40\.39, subscribed to b'` + e2eTopic + `' topic$`)
	e.event(0, "the tutorial's login", broker.Is(broker.Connected, e2eDevice))
	for _, step := range []struct {
		payload string
		state   int
	}{{"on", 1}, {"toggle", 0}, {"toggle", 1}, {"off", 0}} {
		require.NoError(t, b.PublishCustom(e2eProduct, e2eTopic, []byte(step.payload)))
		e.expect(`^\(b'` + e2eTopic + `', b'` + step.payload + `'\)$`)
		e.pin(step.state)
	}
	uuid, err := b.SendCommand(e2eDevice, []byte("on"), broker.CommandOptions{})
	require.NoError(t, err)
	e.expect(`^\(b'\$creq/` + regexp.QuoteMeta(uuid) + `', b'on'\)$`)
	e.expect(`^1$`)
	e.pin(1)
}
