package rig

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/harness/board"
	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/scenario"
	"github.com/onenet-hil/hil/internal/testutil"
	"github.com/onenet-hil/hil/sim"
)

// Generous: the Python board, the broker and -race share 2 loaded cores.
const wait = 30 * time.Second

const wifiSecret = "rigtest-wifi-secret-7f2e"

func newRig(t *testing.T, opts Options) *Rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	r, err := New(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, r.Close()) })
	return r
}

func begin(t *testing.T, r *Rig, s scenario.Setup) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, r.Begin(ctx, s), "last serial lines: %v", r.Link().Tail(20))
}

// next reads serial lines until one matches re and returns every line read.
func next(t *testing.T, r *Rig, re string) []string {
	t.Helper()
	pat := regexp.MustCompile(re)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var seen []string
	for {
		l, err := r.Serial().Next(ctx)
		require.NoError(t, err, "waiting for /%s/; read so far: %q", re, seen)
		seen = append(seen, l.Text)
		if pat.MatchString(l.Text) {
			return seen
		}
	}
}

func awaitBroker(r *Rig, want scenario.BrokerEvent, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return r.AwaitBroker(ctx, want)
}

func TestVirtualBoardBeginSendAndSerial(t *testing.T) {
	log := &testutil.Buffer{}
	r := newRig(t, Options{WiFiPassword: wifiSecret, SerialLog: log})
	assert.True(t, r.Capabilities().Virtual)
	assert.Contains(t, r.Describe(), "virtual board")
	for _, f := range scenario.Faults {
		assert.True(t, r.Capabilities().Supports(f), f)
	}

	begin(t, r, scenario.Setup{Scenario: "a", Profile: "hil"})
	lines := next(t, r, `^HIL mqtt up broker=127\.0\.0\.1:\d+$`)
	assert.Contains(t, lines, "HIL boot fw=1.0.0 id="+DeviceID)
	for _, l := range lines {
		assert.NotContains(t, l, `"config.json"`, "the upload's exchange came before the reset")
	}
	require.NoError(t, awaitBroker(r, scenario.BrokerEvent{Kind: "connected", RC: -1}, wait))

	// Each channel reaches the board; the pin follows.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, r.Send(ctx, scenario.Creq, []byte("on"), scenario.SendOptions{}))
	next(t, r, `^HIL led state=1 cmd=on via=\$creq/`)
	got, err := r.Capabilities().Pin.Await(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, 1, got)
	require.NoError(t, r.Send(ctx, scenario.Topic, []byte("toggle"), scenario.SendOptions{}))
	next(t, r, `^HIL led state=0 cmd=toggle via=`+Topic+`$`)
	require.NoError(t, r.Send(ctx, scenario.HTTP, []byte("blink"), scenario.SendOptions{}))
	next(t, r, `^HIL ignored payload=b'blink' via=\$creq/`)
	lvl, err := r.Capabilities().Pin.Level()
	require.NoError(t, err)
	assert.Equal(t, 0, lvl)
	err = r.Send(ctx, scenario.Topic, []byte("on"), scenario.SendOptions{QoS: 1})
	assert.ErrorContains(t, err, "qos 1 needs channel creq or http")

	// A Next whose ctx ends loses nothing: the line comes out of the next one.
	ended, stop := context.WithCancel(context.Background())
	stop()
	_, err = r.Serial().Next(ended)
	assert.ErrorIs(t, err, context.Canceled)
	require.NoError(t, r.Send(ctx, scenario.Creq, []byte("on"), scenario.SendOptions{}))
	l, err := r.Serial().Next(ctx)
	require.NoError(t, err)
	assert.Regexp(t, `^HIL led state=1 cmd=on`, l.Text)

	// A second Begin: the old lines (this "on") never come out again.
	require.NoError(t, r.Send(ctx, scenario.Creq, []byte("off"), scenario.SendOptions{}))
	begin(t, r, scenario.Setup{Scenario: "b", Profile: "hil"})
	lines = next(t, r, `^HIL mqtt up`)
	for _, l := range lines {
		assert.NotContains(t, l, "HIL led", "a line from before the reset came out of Next")
	}
	lvl, _ = r.Capabilities().Pin.Level()
	assert.Equal(t, 0, lvl, "the LED is off after the reset")

	assert.Contains(t, log.String(), "HIL mqtt up")
	for _, s := range []string{wifiSecret, r.creds.Board.AuthInfo, r.creds.MasterKey} {
		assert.NotContains(t, log.String(), s)
	}
}

func TestKickIsADuplicateLoginKeptOutOfAwaitBroker(t *testing.T) {
	r := newRig(t, Options{})
	begin(t, r, scenario.Setup{Profile: "hil"})
	next(t, r, `^HIL mqtt up`)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	mark := r.Broker().Events().Mark()
	require.NoError(t, r.Fault(ctx, scenario.Kick))
	next(t, r, `^HIL mqtt down reason=`)
	require.NoError(t, awaitBroker(r, scenario.BrokerEvent{Kind: "kicked", RC: -1}, wait))
	// The intruder's own disconnect is not the board's.
	assert.Error(t, awaitBroker(r, scenario.BrokerEvent{Kind: "disconnected", RC: -1}, 300*time.Millisecond))
	require.NoError(t, awaitBroker(r, scenario.BrokerEvent{Kind: "connected", RC: -1}, wait))
	var logins []broker.Event
	for _, e := range r.Broker().Events().Last(100) {
		if e.Seq > uint64(mark) && e.Kind == broker.Connected && e.DeviceID == DeviceID {
			logins = append(logins, e)
		}
	}
	require.Len(t, logins, 2, "the duplicate login, then the board's own: %v", logins)
	next(t, r, `^HIL mqtt up`)
	assert.True(t, r.Broker().Online(DeviceID))
}

func TestWifiDownReturnsOnceTheBrokerSawTheDeviceGo(t *testing.T) {
	r := newRig(t, Options{})
	begin(t, r, scenario.Setup{Profile: "hil"})
	next(t, r, `^HIL mqtt up`)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, r.Fault(ctx, scenario.WifiDown))
	assert.False(t, r.Broker().Online(DeviceID))
	require.NoError(t, r.Send(ctx, scenario.HTTP, []byte("on"), scenario.SendOptions{QoS: 1}), "kept for the next login")
	assert.Error(t, r.Send(ctx, scenario.Creq, []byte("on"), scenario.SendOptions{}), "qos 0 to an offline device")
	require.NoError(t, r.Fault(ctx, scenario.WifiUp))
	next(t, r, `^HIL led state=1 cmd=on via=\$creq/`)

	require.NoError(t, r.Fault(ctx, scenario.DropConnection))
	require.NoError(t, awaitBroker(r, scenario.BrokerEvent{Kind: "disconnected", RC: -1}, wait))
	next(t, r, `^HIL mqtt down`)
	next(t, r, `^HIL mqtt up`)
}

func TestWrongCredentialsAreRefusedWithCode4(t *testing.T) {
	r := newRig(t, Options{})
	begin(t, r, scenario.Setup{Profile: "hil", WrongCredentials: true})
	next(t, r, `^HIL mqtt refused rc=4$`)
	require.NoError(t, awaitBroker(r, scenario.BrokerEvent{Kind: "refused", RC: 4}, wait))
	assert.Error(t, awaitBroker(r, scenario.BrokerEvent{Kind: "refused", RC: 5}, 200*time.Millisecond))
}

// The real-board path (no pin, no Wi-Fi control, broker on a given host)
// driven through a virtual board's pty, which has no modem lines either.
func TestRealBoardPathOnAPty(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b, err := sim.Start(ctx, sim.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	_, err = New(ctx, Options{Port: b.Port()})
	require.ErrorContains(t, err, "a real board needs HIL_WIFI_SSID, HIL_WIFI_PASSWORD and HIL_BROKER_HOST")

	r := newRig(t, Options{Port: b.Port(), WiFiSSID: "lab", WiFiPassword: wifiSecret,
		BrokerHost: "127.0.0.1", BrokerListen: "127.0.0.1:0"})
	caps := r.Capabilities()
	assert.False(t, caps.Virtual)
	assert.Equal(t, "board on "+b.Port(), r.Describe())
	assert.True(t, caps.Pin == nil, "a real nil Pin")
	assert.False(t, caps.Supports(scenario.WifiDown))
	assert.False(t, caps.Supports(scenario.PowerCycle), "a pty cannot reset the chip")
	assert.True(t, caps.Supports(scenario.Kick))
	assert.NotEmpty(t, caps.Skip(&scenario.Scenario{Profile: "tutorial"}))

	sc, err := scenario.Parse("wifi.yaml", []byte("name: w\nrequires: [virtual]\nsteps:\n  - fault: wifi_down\n  - fault: wifi_up\n"))
	require.NoError(t, err)
	ok, err := scenario.Parse("ok.yaml", []byte("name: ok\nsteps:\n  - send: on\n  - expect: {led: 1}\n  - fault: kick\n  - send: toggle\n"))
	require.NoError(t, err)
	run := (&scenario.Runner{Target: r}).Run(ctx, []*scenario.Scenario{sc, ok})
	require.Len(t, run.Scenarios, 2)
	assert.Equal(t, report.Skip, run.Scenarios[0].Status)
	assert.Contains(t, run.Scenarios[0].Reason, "needs a virtual board")
	assert.Equal(t, report.Pass, run.Scenarios[1].Status, run.Scenarios[1].Reason)
	assert.Equal(t, report.Unknown, run.Scenarios[1].Steps[0].Pin, "no pin was read")
	assert.Equal(t, 1, run.Scenarios[1].Steps[0].Echo)
}

func TestRunnerCatchesAPinThatDisagreesWithTheEcho(t *testing.T) {
	r := newRig(t, Options{})
	r.tweak = func(c *firmware.Config) { c.LEDPin = 5 }
	sc, err := scenario.Parse("pin.yaml", []byte("name: pin\nsteps:\n  - send: on\n  - expect: {led: 1}\n"))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res := (&scenario.Runner{Target: r}).RunScenario(ctx, sc)
	assert.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "echo and pin disagree after send on via creq: echo says LED=1, GPIO pin reads 0")
	assert.Equal(t, 1, res.Steps[0].Echo)
	assert.Equal(t, 0, res.Steps[0].Pin)
}

// One rig serves a whole run: a scenario that fails during a Wi-Fi outage
// or in the middle of a burst does not spoil the next one.
func TestNextScenarioRecoversFromAFailedOne(t *testing.T) {
	r := newRig(t, Options{})
	parse := func(src string) *scenario.Scenario {
		sc, err := scenario.Parse("x.yaml", []byte(src))
		require.NoError(t, err)
		return sc
	}
	outage := parse("name: outage\nrequires: [virtual]\nsteps:\n  - fault: wifi_down\n  - expect: {echo: never}\n    timeout: 500ms\n  - fault: wifi_up\n")
	// 300 commands in flight when the expect gives up.
	burst := parse("name: burst\nsteps:\n  - repeat: 300\n    steps: [{send: toggle, nowait: true}]\n  - expect: {echo: never}\n    timeout: 1ms\n")
	basic := parse("name: basic\nsteps:\n  - expect: {led: 0}\n  - send: on\n  - expect: {led: 1}\n  - send: toggle\n  - expect: {led: 0}\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	run := (&scenario.Runner{Target: r}).Run(ctx, []*scenario.Scenario{outage, basic, burst, basic})
	want := []report.Status{report.Fail, report.Pass, report.Fail, report.Pass}
	for i, s := range run.Scenarios {
		assert.Equal(t, want[i], s.Status, "%s: %s", s.Name, s.Reason)
	}
	assert.Contains(t, run.Scenarios[0].Reason, "timed out after 500ms waiting for a serial line matching /never/")
}

// A board whose program ignores Ctrl-C cannot be flashed through its REPL:
// Begin power-cycles it once and tries again.
func TestBeginPowerCyclesABoardThatDoesNotAnswer(t *testing.T) {
	r := newRig(t, Options{})
	r.repl = board.NewREPL(r.Link(), board.Options{Step: time.Second}) // fail fast
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	// main.py hangs with Ctrl-C disabled, once: it removes its flag file first.
	stuck := "import os, time, micropython\nif 'stuck' in os.listdir():\n    os.remove('stuck')\n    micropython.kbd_intr(-1)\n    print('STUCK')\n    while True:\n        time.sleep_ms(50)\n"
	_, err := r.repl.Put(ctx, "main.py", []byte(stuck))
	require.NoError(t, err)
	_, err = r.repl.Put(ctx, "stuck", []byte("1"))
	require.NoError(t, err)
	mark := r.Link().Mark()
	_, err = r.repl.Reset(ctx, board.ResetSoft)
	require.NoError(t, err)
	_, err = r.Link().ExpectFrom(ctx, mark, regexp.MustCompile(`^STUCK$`), wait)
	require.NoError(t, err)

	require.NoError(t, r.Begin(ctx, scenario.Setup{Profile: "hil"}))
	next(t, r, `^HIL mqtt up`)
	lines := r.Link().Lines()
	var texts []string
	for _, l := range lines {
		texts = append(texts, l.Text)
	}
	assert.Contains(t, strings.Join(texts, "\n"), "STUCK")
}

// The topic channel is a real MQTT publish from a second device of the
// product, logged in again after a broker restart.
func TestTopicChannelPublishesFromTheControllerDevice(t *testing.T) {
	r := newRig(t, Options{})
	begin(t, r, scenario.Setup{Profile: "hil"})
	next(t, r, `^HIL mqtt up`)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	mark := r.Broker().Events().Mark()
	require.NoError(t, r.Send(ctx, scenario.Topic, []byte("on"), scenario.SendOptions{}))
	next(t, r, `^HIL led state=1 cmd=on via=`+Topic+`$`)
	pub, err := r.Broker().Events().WaitAfter(ctx, mark, broker.Is(broker.Published, ControllerID))
	require.NoError(t, err)
	assert.Equal(t, Topic, pub.Topic)
	assert.Equal(t, "on", string(pub.Payload))

	require.NoError(t, r.Fault(ctx, scenario.RestartBroker))
	next(t, r, `^HIL mqtt down`)
	next(t, r, `^HIL mqtt up`)
	require.NoError(t, r.Send(ctx, scenario.Topic, []byte("toggle"), scenario.SendOptions{}))
	next(t, r, `^HIL led state=0 cmd=toggle via=`+Topic+`$`)
}

// HIL_BOARD names the kind of board; an unknown kind fails before anything
// is started, naming the kinds there are.
func TestBoardKindFromEnv(t *testing.T) {
	t.Setenv(EnvBoard, "jtag")
	o, err := FromEnv()
	require.NoError(t, err)
	assert.Equal(t, "jtag", o.Board)
	_, err = New(context.Background(), o)
	assert.ErrorContains(t, err, `unknown board kind "jtag" (known: serial, virtual)`)
}

// A secret too short to mask safely is refused before anything starts,
// without being shown.
func TestNewRefusesSecretsTooShortToMask(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := New(ctx, Options{WiFiPassword: "x7q"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), EnvWiFiPassword+" has 3 character(s)")
	assert.NotContains(t, err.Error(), "x7q")
}
