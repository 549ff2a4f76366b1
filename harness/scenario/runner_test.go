package scenario

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/report"
)

func mustParse(t *testing.T, src string) *Scenario {
	t.Helper()
	sc, err := Parse("test.yaml", []byte(src))
	require.NoError(t, err)
	return sc
}

// run plays src on b with short timeouts: a failing test fails in
// well under a second, a passing one never waits on them.
func run(t *testing.T, b *fakeBoard, src string) report.Scenario {
	t.Helper()
	r := &Runner{Target: b, Timeouts: Timeouts{Send: 2 * time.Second, Expect: 2 * time.Second, Fault: 2 * time.Second, Ready: 2 * time.Second}}
	return r.RunScenario(context.Background(), mustParse(t, src))
}

const basic = `
name: basic
steps:
  - send: on
  - expect: {led: 1}
  - send: toggle
  - send: junk
  - expect: ignored
  - send: toggle
  - expect: {led: 1}
  - send: off
`

func TestRunnerPassesOnVirtualBoard(t *testing.T) {
	b := newFakeBoard(true)
	res := run(t, b, basic)
	require.Equal(t, report.Pass, res.Status, res.Reason)
	require.Len(t, res.Steps, 8)
	for _, st := range res.Steps {
		assert.Equal(t, report.Pass, st.Status, st.Desc)
	}
	assert.Equal(t, []int{1, 1, 0, 0, 0, 1, 1, 0}, expected(res))
	on := res.Steps[0]
	assert.Equal(t, 1, on.Echo)
	assert.Equal(t, 1, on.Pin)
	assert.Positive(t, on.Latency)
	assert.Len(t, res.Latencies(), 5, "one latency per send")
	assert.Equal(t, 0, res.Steps[3].Pin, "junk leaves the pin at 0")
	assert.NotEmpty(t, res.Serial)
	assert.Positive(t, res.Duration, "the scenario's duration reaches the caller")
	assert.Equal(t, []Setup{{Scenario: "basic", Profile: "hil"}}, b.setups)
}

func expected(res report.Scenario) []int {
	var out []int
	for _, st := range res.Steps {
		out = append(out, st.Expected)
	}
	return out
}

func TestRunnerFailsOnWrongEchoState(t *testing.T) {
	b := newFakeBoard(false)
	b.wrongStateAt = 2
	res := run(t, b, basic)
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "step 3 (line 6: send toggle via creq): model expects LED=0 after toggle (from 1), echo says state=1")
	assert.Contains(t, res.Reason, "last ")
	assert.Contains(t, res.Reason, "HIL led state=1 cmd=toggle")
	assert.Equal(t, report.Fail, res.Steps[2].Status)
	assert.Equal(t, report.NotRun, res.Steps[3].Status)
}

func TestRunnerFailsWhenPinDisagreesWithEcho(t *testing.T) {
	b := newFakeBoard(true)
	b.pinStuck = true
	res := run(t, b, basic)
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "echo and pin disagree after send on via creq: echo says LED=1, GPIO pin reads 0")
	assert.Equal(t, 1, res.Steps[0].Echo)
	assert.Equal(t, 0, res.Steps[0].Pin)
}

func TestRunnerTimesOutWithLastLines(t *testing.T) {
	b := newFakeBoard(false)
	b.silentAt = 1
	src := "name: silent\ntimeouts: {send: 300ms}\nsteps:\n  - send: on\n"
	start := time.Now()
	res := run(t, b, src)
	require.Equal(t, report.Fail, res.Status)
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Contains(t, res.Reason, "step 1 (line 4: send on via creq): timed out after 300ms waiting for the echo of send on via creq (line 4; model: LED=1)")
	assert.Contains(t, res.Reason, "HIL mqtt up broker=127.0.0.1:6002", "the failure shows the last serial lines")
}

func TestRunnerBurstKeepsOrder(t *testing.T) {
	b := newFakeBoard(true)
	res := run(t, b, "name: burst\nsteps:\n  - random: 1000\n    seed: 7\n    burst: true\n  - send: toggle\n")
	require.Equal(t, report.Pass, res.Status, res.Reason)
	assert.Len(t, res.Latencies(), 1001)
	assert.Equal(t, 1002, len(res.Steps), "1000 sends, a sync, a toggle")

	b = newFakeBoard(false)
	b.swapAt = 500
	res = run(t, b, "name: burst\nsteps:\n  - repeat: 1000\n    burst: true\n    steps:\n      - send: toggle\n      - send: on\n")
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "step 500 (line 7: send on via creq (nowait)): echo is for cmd=toggle but the command in flight is on (order lost?)")
}

func TestRunnerOfflineCommandsArriveAtNextLogin(t *testing.T) {
	b := newFakeBoard(true)
	src := `
name: offline
requires: [virtual]
channel: http
steps:
  - send: on
  - fault: wifi_down
  - send: toggle
    qos: 1
    nowait: true
  - send: toggle
    qos: 1
    nowait: true
  - send: junk
    qos: 1
    nowait: true
  - fault: wifi_up
  - expect: {event: wifi_up}
  - expect: {led: 1}
`
	res := run(t, b, src)
	require.Equal(t, report.Pass, res.Status, res.Reason)
	assert.Equal(t, []FaultKind{WifiDown, WifiUp}, b.faults)
	assert.Equal(t, 0, res.Steps[2].Echo)
	assert.Equal(t, 1, res.Steps[3].Echo)
	assert.Equal(t, 1, res.Steps[7].Pin)
}

func TestRunnerPowerCycle(t *testing.T) {
	b := newFakeBoard(true)
	res := run(t, b, "name: pc\nsteps:\n  - send: on\n  - fault: power_cycle\n  - expect: {led: 0}\n  - send: toggle\n  - expect: {led: 1}\n")
	require.Equal(t, report.Pass, res.Status, res.Reason)
	assert.Equal(t, 0, res.Steps[2].Pin)

	// On a real board the level after power-up is not observable: noted.
	b = newFakeBoard(false)
	res = run(t, b, "name: pc\nsteps:\n  - send: on\n  - fault: power_cycle\n  - expect: {led: 0}\n  - send: toggle\n")
	require.Equal(t, report.Pass, res.Status, res.Reason)
	assert.Contains(t, res.Steps[2].Message, "not observable")

	b = newFakeBoard(false)
	b.rebootAt = 2
	res = run(t, b, "name: pc\nsteps:\n  - send: on\n  - send: off\n")
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "the board rebooted unexpectedly")
}

func TestRunnerFaultsWaitForReconnect(t *testing.T) {
	b := newFakeBoard(false)
	res := run(t, b, "name: f\nsteps:\n  - send: on\n  - fault: restart_broker\n  - fault: kick\n  - fault: drop_connection\n  - send: toggle\n  - expect: {echo: 'HIL mqtt down reason=\\w+'}\n")
	// The expect looks back over the lines of the previous step only.
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "timed out after 2s waiting for a serial line matching /HIL mqtt down reason=\\w+/")

	b = newFakeBoard(false)
	res = run(t, b, "name: f\nsteps:\n  - send: on\n  - fault: kick\n  - expect: {event: mqtt_down, reason: closed}\n  - send: toggle\n  - expect: {echo: 'state=0 cmd=toggle'}\n")
	require.Equal(t, report.Pass, res.Status, res.Reason)
	assert.Equal(t, []FaultKind{Kick}, b.faults)
}

func TestRunnerWrongCredentials(t *testing.T) {
	b := newFakeBoard(false)
	src := "name: creds\ncredentials: wrong\nsteps:\n  - expect: {event: mqtt_refused, rc: 4}\n  - expect: {broker: refused, rc: 4}\n"
	res := run(t, b, src)
	require.Equal(t, report.Pass, res.Status, res.Reason)
	assert.True(t, b.setups[0].WrongCredentials)

	b = newFakeBoard(false)
	res = run(t, b, "name: creds\ncredentials: wrong\nsteps:\n  - expect: {broker: refused, rc: 5}\n")
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "waiting for broker refused rc=5: not seen; broker events: [broker refused rc=4]")
}

const tutorial = `
name: tutorial
profile: tutorial
channel: topic
steps:
  - send: on
  - send: toggle
  - send: blink
  - send: toggle
  - expect: {led: 1}
  - send: off
  - fault: power_cycle
  - send: on
`

func TestRunnerTutorialProfile(t *testing.T) {
	b := newFakeBoard(true)
	res := run(t, b, tutorial)
	require.Equal(t, report.Pass, res.Status, res.Reason)
	assert.Equal(t, "tutorial", b.setups[0].Profile)
	assert.Equal(t, 0, res.Steps[1].Pin, "toggle is checked on the pin")
	assert.Equal(t, report.Unknown, res.Steps[1].Echo)
	assert.Equal(t, 1, res.Steps[4].Pin)

	// Without a pin the toggle is only seen to arrive: noted, not failed.
	b = newFakeBoard(false)
	res = run(t, b, tutorial)
	require.Equal(t, report.Pass, res.Status, res.Reason)
	assert.Contains(t, res.Steps[1].Message, "not echoed by profile tutorial")
	assert.Contains(t, res.Steps[4].Message, "not observable")

	b = newFakeBoard(true)
	b.pinStuck = true
	res = run(t, b, "name: t\nprofile: tutorial\nchannel: topic\ntimeouts: {send: 300ms}\nsteps:\n  - send: toggle\n")
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "model expects LED=1 after send toggle via topic, GPIO pin reads 0")

	b = newFakeBoard(false)
	b.wrongStateAt = 1
	res = run(t, b, "name: t\nprofile: tutorial\nsteps:\n  - send: on\n")
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "model expects LED=1 after on (from 0), echo says state=0: \"0\"")
}

func TestRunnerRejectsStrayAndMalformedEchoes(t *testing.T) {
	b := newFakeBoard(false)
	b.print("HIL led state=1 cmd=on via=TurnipRobot")
	res := run(t, b, "name: stray\nsteps:\n  - send: on\n")
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "unexpected echo")

	b = newFakeBoard(false)
	res = run(t, b, "name: m\nsteps:\n  - send: on\n  - wait: 1ms\n")
	require.Equal(t, report.Pass, res.Status, res.Reason)
	b.print("HIL led state=9 cmd=on via=T")
	b.print("HIL mqtt up broker=x")
	res = run(t, b, "name: m\nsteps:\n  - send: on\n")
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, `malformed echo line "HIL led state=9 cmd=on via=T": led: state="9" is not 0 or 1`)
}

func TestRunnerChecksTheTopicTheCommandCameOn(t *testing.T) {
	b := newFakeBoard(false)
	b.wrongVia = true
	res := run(t, b, "name: via\nchannel: http\nsteps:\n  - send: on\n")
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, `sent via http on legacy, so it must arrive on the platform's command topic $creq/{uuid}, but the board got it on topic "TurnipRobot"`)
}

func TestRunnerStudioPlatform(t *testing.T) {
	const cmds = "name: p\nchannel: %s\nsteps:\n  - send: on\n  - send: junk\n  - expect: ignored\n  - send: toggle\n  - expect: {led: 0}\n"
	for _, ch := range []Channel{Creq, Topic, HTTP} {
		b := newFakeBoard(true)
		b.platform = Studio
		res := run(t, b, fmt.Sprintf(cmds, ch))
		assert.Equal(t, report.Pass, res.Status, "%s: %s", ch, res.Reason)
	}

	// The property channel: on and off only, arriving on thing/property/set,
	// on studio; legacy skips it.
	const props = "name: pr\nchannel: property\nsteps:\n  - send: on\n  - send: toggle\n    channel: creq\n  - send: on\n  - expect: {led: 1}\n  - send: off\n  - expect: {led: 0}\n"
	b := newFakeBoard(true)
	b.platform = Studio
	res := run(t, b, props)
	assert.Equal(t, report.Pass, res.Status, res.Reason)
	sc := mustParse(t, props)
	assert.Equal(t, "the legacy platform has no thing model: channel property is OneNET Studio's thing/property/set (set-device-property)", Legacy.SkipReason(sc))
	b = newFakeBoard(true)
	b.platform, b.pushVia = Studio, "$sys/386427/503367129/cmd/request/1b4e28ba"
	res = run(t, b, props)
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, `sent via property on studio, so it must arrive on the property set topic $sys/{pid}/{name}/thing/property/set, but the board got it on topic "$sys/386427/503367129/cmd/request/1b4e28ba"`)
	for _, bad := range []string{"toggle", "junk"} {
		_, err := Parse("p.yaml", []byte("name: p\nchannel: property\nsteps:\n  - send: "+bad+"\n"))
		assert.ErrorContains(t, err, "via property: only on and off", bad)
	}
	_, err := Parse("p.yaml", []byte("name: p\nsteps:\n  - send: on\n    channel: property\n    qos: 1\n"))
	assert.ErrorContains(t, err, "a property send is never kept")

	// A legacy $creq push is not a studio command, and the reverse.
	b = newFakeBoard(true)
	b.platform, b.pushVia = Studio, "$creq/1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	res = run(t, b, fmt.Sprintf(cmds, "creq"))
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, `sent via creq on studio, so it must arrive on the platform's command topic $sys/{pid}/{name}/cmd/request/{uuid}, but the board got it on topic "$creq/`)
	b = newFakeBoard(true)
	b.pushVia = "$sys/386427/503367129/cmd/request/1b4e28ba"
	res = run(t, b, fmt.Sprintf(cmds, "http"))
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, `sent via http on legacy, so it must arrive on the platform's command topic $creq/{uuid}`)

	// bad_credentials is 4 on legacy, 5 on studio; a literal code is taken as is.
	const wrong = "name: w\ncredentials: wrong\nsteps:\n  - expect: {event: mqtt_refused, rc: %s}\n  - expect: {broker: refused, rc: %s}\n"
	for _, p := range Platforms {
		b := newFakeBoard(false)
		b.platform = p
		res := run(t, b, fmt.Sprintf(wrong, "bad_credentials", "bad_credentials"))
		assert.Equal(t, report.Pass, res.Status, "%s: %s", p, res.Reason)
	}
	b = newFakeBoard(false)
	b.platform = Studio
	res = run(t, b, fmt.Sprintf(wrong, "4", "4"))
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, `timed out after 2s waiting for the echo mqtt refused rc=4`)
	b = newFakeBoard(false)
	b.platform = Studio
	res = run(t, b, fmt.Sprintf(wrong, "bad_credentials", "4"))
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "waiting for broker refused rc=4: not seen")
	b = newFakeBoard(false)
	b.platform, b.wrongStateAt = Legacy, 0
	res = run(t, b, "name: w\ncredentials: wrong\nsteps:\n  - expect: {event: mqtt_refused, rc: 5}\n")
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "timed out")

	// Studio skips what the platform cannot do, with the reason.
	b = newFakeBoard(true)
	b.platform = Studio
	r := &Runner{Target: b}
	res = r.RunScenario(context.Background(), mustParse(t, tutorial))
	assert.Equal(t, report.Skip, res.Status)
	assert.Contains(t, res.Reason, "the tutorial's mqtt.py logs in to the legacy platform")
	res = r.RunScenario(context.Background(), mustParse(t, "name: q\nrequires: [virtual]\nchannel: http\nsteps:\n  - fault: wifi_down\n  - send: on\n    qos: 1\n    nowait: true\n  - fault: wifi_up\n  - expect: {led: 1}\n"))
	assert.Equal(t, report.Skip, res.Status)
	assert.Contains(t, res.Reason, "OneNET Studio keeps no command for an offline device")
	assert.Empty(t, b.setups, "a skipped scenario never touches the board")
}

func TestRunnerSkipsWithReason(t *testing.T) {
	real := newFakeBoard(false)
	r := &Runner{Target: real}
	sc := mustParse(t, "name: w\nrequires: [virtual]\nsteps:\n  - fault: wifi_down\n  - fault: wifi_up\n")
	res := r.RunScenario(context.Background(), sc)
	assert.Equal(t, report.Skip, res.Status)
	assert.Equal(t, "needs a virtual board (requires: [virtual]); the target is fake real board", res.Reason)
	assert.Empty(t, real.setups, "a skipped scenario never touches the board")

	r.Profile = "hil"
	res = r.RunScenario(context.Background(), mustParse(t, tutorial))
	assert.Equal(t, report.Skip, res.Status)
	assert.Contains(t, res.Reason, "written for profile tutorial; this run uses profile hil")

	real.noFault = map[FaultKind]bool{RestartBroker: true}
	res = r.RunScenario(context.Background(), mustParse(t, "name: rb\nsteps:\n  - fault: restart_broker\n"))
	assert.Equal(t, report.Skip, res.Status)
	assert.Contains(t, res.Reason, "cannot inject fault restart_broker")
}

func TestRunnerReportsToSink(t *testing.T) {
	var out bytes.Buffer
	b := newFakeBoard(true)
	r := &Runner{Target: b, Sink: &report.Console{W: &out}}
	rr := r.Run(context.Background(), []*Scenario{mustParse(t, basic), mustParse(t, "name: skip me\nrequires: [virtual]\nsteps:\n  - fault: wifi_down\n  - fault: wifi_up\n")})
	assert.True(t, rr.OK())
	assert.Equal(t, report.Totals{Passed: 2, Total: 2}, rr.Totals())
	assert.Equal(t, "fake virtual board", rr.Target)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 2)
	assert.Contains(t, lines[0], "PASS basic (8 steps")
}

func TestRunnerInterrupted(t *testing.T) {
	b := newFakeBoard(false)
	b.silentAt = 1
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := &Runner{Target: b}
	res := r.RunScenario(ctx, mustParse(t, "name: i\nsteps:\n  - send: on\n"))
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "interrupted")

	rr := r.Run(ctx, []*Scenario{mustParse(t, basic)})
	require.Len(t, rr.Scenarios, 1)
	assert.Equal(t, report.Skip, rr.Scenarios[0].Status)
	assert.Equal(t, "not run: context canceled", rr.Scenarios[0].Reason)
}

// TestSuiteFilesAgreeWithRunner plays the real suite on the fake board: not
// an end-to-end test (that is scenarios/), but proof that every file means
// to the runner what its author meant (look-back of expects, fault echoes).
func TestSuiteFilesAgreeWithRunner(t *testing.T) {
	scs, err := LoadDir("../../scenarios")
	require.NoError(t, err)
	for _, sc := range scs {
		t.Run(sc.Name, func(t *testing.T) {
			b := newFakeBoard(true)
			if Legacy.SkipReason(sc) != "" {
				b.platform = Studio // channel property
			}
			r := &Runner{Target: b}
			res := r.RunScenario(context.Background(), sc)
			assert.Equal(t, report.Pass, res.Status, res.Reason)
		})
	}
}

// BenchmarkRunnerBurst measures the runner's own cost per command (matching,
// model check, pin check) on a burst of 1,000 against the in-process fake.
func BenchmarkRunnerBurst(b *testing.B) {
	sc, err := Parse("bench.yaml", []byte("name: burst\nsteps:\n  - random: 1000\n    seed: 1\n    burst: true\n"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		r := &Runner{Target: newFakeBoard(true)}
		if res := r.RunScenario(context.Background(), sc); res.Status != report.Pass {
			b.Fatal(res.Reason)
		}
	}
}

func TestRunnerFinalDrainBlamesTheSend(t *testing.T) {
	b := newFakeBoard(false)
	b.silentAt = 2
	res := run(t, b, "name: d\ntimeouts: {send: 300ms}\nsteps:\n  - send: on\n    nowait: true\n  - send: off\n    nowait: true\n")
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "step 2 (line 6: send off via creq (nowait)): timed out after 300ms")
	assert.Equal(t, report.Pass, res.Steps[0].Status)
	assert.Equal(t, report.Fail, res.Steps[1].Status)
}

func TestRunnerAsksTheTargetsSkipper(t *testing.T) {
	b := newFakeBoard(false)
	b.skip = func(sc *Scenario) string {
		if sc.Profile == "tutorial" {
			return "this board cannot reach the tutorial's server"
		}
		return ""
	}
	r := &Runner{Target: b, Timeouts: Timeouts{Send: 2 * time.Second, Expect: 2 * time.Second, Fault: 2 * time.Second, Ready: 2 * time.Second}}
	res := r.RunScenario(context.Background(), mustParse(t, "name: t\nprofile: tutorial\nsteps:\n  - send: on\n"))
	assert.Equal(t, report.Skip, res.Status)
	assert.Equal(t, "this board cannot reach the tutorial's server", res.Reason)
	assert.Empty(t, b.setups, "a skipped scenario never touches the board")
	res = r.RunScenario(context.Background(), mustParse(t, basic))
	assert.Equal(t, report.Pass, res.Status, res.Reason)
}
