package scenario

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/echo"
)

func TestParseFullFile(t *testing.T) {
	src := `# every feature once
name: everything
description: all of it
channel: topic
profile: hil
requires: [virtual]
credentials: good
timeouts: {send: 3s, expect: 4s, fault: 20s, ready: 1m}
steps:
  - send: on
    timeout: 1s
  - expect: {led: 1}
  - send: blink
    channel: http
  - expect: ignored
  - expect: {echo: 'HIL ignored'}
    timeout: 2s
  - wait: 10ms
  - repeat: 2
    timeout: 7s
    steps:
      - send: toggle
      - expect: {event: led}
  - fault: power_cycle
  - expect: {led: 0}
  - expect: {event: mqtt_down, reason: kicked}
  - expect: {broker: connected}
  - fault: wifi_down
  - send: toggle
    channel: http
    qos: 1
    nowait: true
  - fault: wifi_up
  - random: 3
    seed: 1
    mix: [toggle]
    burst: true
    channel: creq
  - expect: {led: 0}
`
	sc, err := Parse("all.yaml", []byte(src))
	require.NoError(t, err)
	assert.Equal(t, "everything", sc.Name)
	assert.Equal(t, "all of it", sc.Description)
	assert.Equal(t, Topic, sc.Channel)
	assert.True(t, sc.Needs(Virtual))
	assert.False(t, sc.WrongCredentials)
	assert.Equal(t, Timeouts{3 * time.Second, 4 * time.Second, 20 * time.Second, time.Minute}, sc.Timeouts)
	assert.Equal(t, []FaultKind{PowerCycle, WifiDown, WifiUp}, sc.FaultsUsed())

	var desc []string
	var after []int
	for _, st := range sc.Steps {
		desc = append(desc, st.String())
		after = append(after, st.After)
	}
	assert.Equal(t, []string{
		"send on via topic", "expect led 1", "send blink via http", "expect ignored", "expect echo /HIL ignored/",
		"wait 10ms", "send toggle via topic", "expect event led", "send toggle via topic", "expect event led",
		"fault power_cycle", "expect led 0", "expect event mqtt down reason=kicked", "expect broker connected",
		"fault wifi_down", "send toggle via http (qos 1, nowait)", "fault wifi_up",
		"send toggle via creq (nowait)", "send toggle via creq (nowait)", "send toggle via creq (nowait)",
		"sync (echo of every send in flight)", "expect led 0",
	}, desc)
	assert.Equal(t, []int{1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0}, after)
	assert.Equal(t, 10, sc.Steps[0].Line)
	assert.Equal(t, time.Second, sc.Steps[0].Timeout)
	assert.Equal(t, 2*time.Second, sc.Steps[4].Timeout)
	assert.Equal(t, 7*time.Second, sc.Steps[6].Timeout, "a repeat's timeout is inherited")
	assert.Equal(t, 22, sc.Steps[6].Line, "expanded steps keep their own line")
	assert.True(t, sc.Steps[0].Command)
	assert.False(t, sc.Steps[2].Command)
	assert.Equal(t, 1, sc.Steps[6].Before)
	assert.Equal(t, -1, sc.Steps[12].RC)
}

func TestModel(t *testing.T) {
	var m Model
	for _, c := range []struct {
		p    string
		want int
		cmd  bool
	}{{"toggle", 1, true}, {"toggle", 0, true}, {"on", 1, true}, {"on", 1, true}, {"ON", 1, false},
		{"toggle", 0, true}, {"", 0, false}, {"off", 0, true}, {"on ", 0, false}} {
		got, cmd := m.Apply(c.p)
		assert.Equal(t, c.want, got, c.p)
		assert.Equal(t, c.cmd, cmd, c.p)
	}
	m.Apply("on")
	m.PowerUp()
	assert.Equal(t, 0, m.Level)
}

func TestRandomIsSeededAndMixed(t *testing.T) {
	gen := func(seed, mix string) []string {
		sc, err := Parse("r.yaml", []byte("name: r\nsteps:\n  - random: 400\n    seed: "+seed+"\n    mix: "+mix+"\n"))
		require.NoError(t, err)
		var out []string
		for _, st := range sc.Steps {
			out = append(out, st.Payload)
		}
		return out
	}
	a, b := gen("42", "[on, off, toggle, junk]"), gen("42", "[on, off, toggle, junk]")
	assert.Equal(t, a, b, "same seed, same sequence")
	assert.NotEqual(t, a, gen("43", "[on, off, toggle, junk]"))
	counts := map[string]int{}
	for _, p := range a {
		if !echo.IsCommand(p) {
			assert.Contains(t, JunkPayloads, p)
			p = "junk"
		}
		counts[p]++
	}
	for _, k := range []string{"on", "off", "toggle", "junk"} {
		assert.Greater(t, counts[k], 50, k)
	}
	for _, p := range gen("1", "[junk]") {
		assert.False(t, echo.IsCommand(p), p)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"syntax", "name: x\nsteps:\n  - send: on\n   bad: [\n", "bad.yaml:2: did not find expected"},
		{"empty", "", "bad.yaml: empty file"},
		{"not a mapping", "- send: on\n", "bad.yaml:1:1: scenario must be a mapping"},
		{"two documents", "name: a\nsteps: [{send: on}]\n---\nname: b\n", "bad.yaml:3: more than one YAML document"},
		{"unknown top key", "name: x\nstep:\n  - send: on\n", `bad.yaml:2:1: scenario: unknown key "step"`},
		{"missing name", "steps:\n  - send: on\n", "bad.yaml:1:1: scenario: missing name"},
		{"missing steps", "name: x\n", "scenario: missing steps"},
		{"empty steps", "name: x\nsteps: []\n", "bad.yaml:2:8: steps: the list is empty"},
		{"bad channel", "name: x\nchannel: mqtt\nsteps: [{send: on}]\n", `bad.yaml:2:10: channel: "mqtt" is not one of creq, topic, http`},
		{"bad profile", "name: x\nprofile: umqtt\nsteps: [{send: on}]\n", `profile: "umqtt" is not one of hil, tutorial`},
		{"bad requirement", "name: x\nrequires: [board]\nsteps: [{send: on}]\n", `requires: "board" is not one of virtual`},
		{"bad timeout", "name: x\ntimeouts: {send: 5}\nsteps: [{send: on}]\n", `bad.yaml:2:18: timeouts.send: "5" is not a duration`},
		{"two actions", "name: x\nsteps:\n  - send: on\n    wait: 1s\n", "bad.yaml:3:5: a step needs exactly one of send, expect, wait, fault, repeat, random, heap (found: send, wait)"},
		{"no action", "name: x\nsteps:\n  - timeout: 1s\n", "(found: )"},
		{"unknown step key", "name: x\nsteps:\n  - send: on\n    qos: 1\n    retain: true\n", `bad.yaml:5:5: send step: unknown key "retain" (allowed: send, channel, qos, nowait, timeout)`},
		{"bad qos", "name: x\nsteps:\n  - send: on\n    qos: 2\n", `qos: "2" is not a whole number from 0 to 1`},
		{"qos on topic", "name: x\nchannel: topic\nsteps:\n  - send: on\n    qos: 1\n", "bad.yaml:4:5: send: qos 1 needs channel creq or http"},
		{"null payload", "name: x\nsteps:\n  - send:\n", "bad.yaml:3:10: send must be a value"},
		{"step scalar", "name: x\nsteps:\n  - on\n", "bad.yaml:3:5: a step must be a mapping"},
		{"led contradicts model", "name: x\nsteps:\n  - send: on\n  - send: toggle\n  - expect: {led: 1}\n",
			"bad.yaml:5:5: expect led 1 contradicts the model: the LED is 0 here (after send toggle via creq on line 4)"},
		{"led at power-up", "name: x\nsteps:\n  - expect: {led: 1}\n", "the LED is 0 here (after power-up)"},
		{"ignored after command", "name: x\nsteps:\n  - send: toggle\n  - expect: ignored\n", `bad.yaml:4:5: expect ignored contradicts the model: the last send (line 3) is the command "toggle"`},
		{"ignored first", "name: x\nsteps:\n  - expect: ignored\n", "there is no send before it"},
		{"expect two things", "name: x\nsteps:\n  - expect: {led: 1, echo: x}\n", "expect needs exactly one of led, ignored, echo, event, broker (found: led, echo)"},
		{"expect rc with led", "name: x\nsteps:\n  - expect: {led: 0, rc: 4}\n", "expect: rc only goes with event or broker"},
		{"rc word", "name: x\ncredentials: wrong\nsteps:\n  - expect: {event: mqtt_refused, rc: wrong}\n", `rc: "wrong" is not a CONNACK code 0..255 or bad_credentials`},
		{"bad regexp", "name: x\nsteps:\n  - expect: {echo: 'a(('}\n", "bad.yaml:3:20: echo: bad regular expression"},
		{"bad event", "name: x\nsteps:\n  - expect: {event: reboot}\n", `event: "reboot" is not an echo event`},
		{"event profile lacks", "name: x\nprofile: tutorial\nsteps:\n  - expect: {event: boot}\n", "event: profile tutorial never prints boot"},
		{"bad broker", "name: x\nsteps:\n  - expect: {broker: left}\n", `broker: "left" is not one of connected, refused, disconnected, kicked`},
		{"wifi needs virtual", "name: x\nsteps:\n  - fault: wifi_down\n  - fault: wifi_up\n", "bad.yaml:3:12: fault wifi_down needs a virtual board: add `requires: [virtual]`"},
		{"tutorial no kick", "name: x\nprofile: tutorial\nsteps:\n  - fault: kick\n", "the tutorial's mqtt.py does not reconnect"},
		{"unknown fault", "name: x\nsteps:\n  - fault: unplug\n", `fault: "unplug" is not one of restart_broker, kick`},
		{"offline send waits", "name: x\nrequires: [virtual]\nsteps:\n  - fault: wifi_down\n  - send: on\n  - fault: wifi_up\n",
			"bad.yaml:5:5: send while Wi-Fi is down (wifi_down on line 4) must have `qos: 1` and `nowait: true`"},
		{"offline expect", "name: x\nrequires: [virtual]\nsteps:\n  - fault: wifi_down\n  - expect: {led: 0}\n  - fault: wifi_up\n", "put it after wifi_up"},
		{"ends offline", "name: x\nrequires: [virtual]\nsteps:\n  - fault: wifi_down\n", "bad.yaml:4:5: wifi_down has no wifi_up after it"},
		{"up without down", "name: x\nrequires: [virtual]\nsteps:\n  - fault: wifi_up\n", "wifi_up without a wifi_down"},
		{"down twice", "name: x\nrequires: [virtual]\nsteps:\n  - fault: wifi_down\n  - fault: wifi_down\n", "Wi-Fi is already down"},
		{"fault offline", "name: x\nrequires: [virtual]\nsteps:\n  - fault: wifi_down\n  - fault: kick\n  - fault: wifi_up\n", "fault kick while Wi-Fi is down"},
		{"wrong creds send", "name: x\ncredentials: wrong\nsteps:\n  - send: on\n", "with credentials: wrong the board never logs in"},
		{"too many", "name: x\nsteps:\n  - repeat: 1000\n    steps:\n      - repeat: 1000\n        steps:\n          - send: on\n", "expands to more than 100000 steps"},
		{"repeat zero", "name: x\nsteps:\n  - repeat: 0\n    steps: [{send: on}]\n", `repeat: "0" is not a whole number from 1 to 100000`},
		{"repeat no steps", "name: x\nsteps:\n  - repeat: 2\n", "repeat: missing steps"},
		{"random no seed", "name: x\nsteps:\n  - random: 2\n", "random: missing seed"},
		{"random bad mix", "name: x\nsteps:\n  - random: 2\n    seed: 1\n    mix: [on, blink]\n", `mix: "blink" is not one of on, off, toggle, junk`},
		{"alias", "name: x\nsteps:\n  - &s {send: on}\n  - *s\n", "bad.yaml:4:5: aliases (*s) are not supported"},
		{"duplicate key", "name: x\nname: y\nsteps: [{send: on}]\n", "bad.yaml:2:1"},
		{"bad burst", "name: x\nsteps:\n  - repeat: 2\n    burst: yes\n    steps: [{send: on}]\n", `burst: "yes" is not true or false`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(c.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			var pe *Error
			assert.True(t, errors.As(err, &pe), "a position-carrying *Error: %v", err)
			assert.True(t, strings.HasPrefix(err.Error(), "bad.yaml"), err.Error())
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse("bad.yaml", []byte("name: x\nchannel: mqtt\nprofile: nope\nsteps: [{send: on}]\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bad.yaml:2:10: channel")
	assert.Contains(t, err.Error(), "bad.yaml:3:10: profile")
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("name: a\nsteps: [{send: on}]\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "b.yml"), []byte("name: b\nsteps: [{sned: on}]\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a scenario"), 0o644))
	scs, err := LoadDir(dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), filepath.Join(dir, "b.yml")+":2:")
	require.Len(t, scs, 1, "the good file is still loaded")
	assert.Equal(t, "a", scs[0].Name)

	_, err = LoadDir(t.TempDir())
	assert.ErrorContains(t, err, "no scenario files")
	_, err = LoadDir(filepath.Join(dir, "missing"))
	assert.Error(t, err)
}

// TestSuiteFiles loads the real suite in scenarios/ and checks it covers
// what issue 6 lists.
func TestSuiteFiles(t *testing.T) {
	scs, err := LoadDir("../../scenarios")
	require.NoError(t, err)
	names := map[string]bool{}
	channels := map[Channel]bool{}
	faults := map[FaultKind]bool{}
	var tutorial, wrong, offline bool
	longestBurst := 0
	for _, sc := range scs {
		assert.False(t, names[sc.Name], "duplicate name %q", sc.Name)
		names[sc.Name] = true
		assert.NotEmpty(t, sc.Description, sc.File)
		burst := 0
		for _, st := range sc.Steps {
			if st.Kind == SendStep {
				channels[st.Channel] = true
				if st.NoWait {
					burst++
				}
				if st.QoS == 1 {
					offline = true
				}
			}
			if st.Kind == SyncStep {
				longestBurst = max(longestBurst, burst)
				burst = 0
			}
			if st.Kind == FaultStep {
				faults[st.Fault] = true
			}
		}
		tutorial = tutorial || sc.Profile == "tutorial"
		wrong = wrong || sc.WrongCredentials
	}
	assert.Len(t, channels, len(Channels), "every channel")
	assert.Len(t, faults, len(Faults), "every fault")
	assert.True(t, tutorial, "a tutorial-profile scenario")
	assert.True(t, wrong, "a wrong-credentials scenario")
	assert.True(t, offline, "an offline qos=1 scenario")
	assert.GreaterOrEqual(t, longestBurst, 1000, "a burst of 1,000")
}

// FuzzParse: no input panics the loader or makes it hang, every error
// names the file, and an accepted scenario is consistent with the model.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../../scenarios/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"name: x\nsteps:\n  - send: on\n  - expect: {led: 1}\n",
		"name: x\nsteps:\n  - repeat: 3\n    steps:\n      - random: 2\n        seed: 9\n        burst: true\n",
		"name: x\nrequires: [virtual]\nsteps:\n  - fault: wifi_down\n  - send: on\n    qos: 1\n    nowait: true\n  - fault: wifi_up\n",
		"name: x\nsteps:\n  - &a {send: on}\n  - *a\n", "{", "name: [\n", "\t- x", "name: x\nsteps: {}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := Parse("f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		if sc.Name == "" && len(sc.Steps) == 0 || len(sc.Steps) > MaxSteps {
			t.Fatalf("accepted a scenario with %d steps", len(sc.Steps))
		}
		var m Model
		for i, st := range sc.Steps {
			if st.Before != m.Level {
				t.Fatalf("step %d: Before %d, model %d", i, st.Before, m.Level)
			}
			switch st.Kind {
			case SendStep:
				m.Apply(st.Payload)
			case FaultStep:
				if st.Fault == PowerCycle {
					m.PowerUp()
				}
			case HeapStep:
				m.PowerUp()
			case ExpectLEDStep:
				if st.Level != m.Level {
					t.Fatalf("step %d: expect led %d accepted, model %d", i, st.Level, m.Level)
				}
			}
			if st.After != m.Level {
				t.Fatalf("step %d: After %d, model %d", i, st.After, m.Level)
			}
		}
	})
}

// TestReadmeExampleLoads keeps the format example in scenarios/README.md
// honest: it must load.
func TestReadmeExampleLoads(t *testing.T) {
	doc, err := os.ReadFile("../../scenarios/README.md")
	require.NoError(t, err)
	_, rest, found := strings.Cut(string(doc), "```yaml\n")
	require.True(t, found)
	example, _, found := strings.Cut(rest, "```")
	require.True(t, found)
	sc, err := Parse("README.md", []byte(example))
	require.NoError(t, err)
	assert.Equal(t, "toggle parity", sc.Name)
	assert.Greater(t, len(sc.Steps), 1000)
}

func TestParseBadCredentialsRC(t *testing.T) {
	sc, err := Parse("w.yaml", []byte("name: w\ncredentials: wrong\nsteps:\n  - expect: {event: mqtt_refused, rc: bad_credentials}\n  - expect: {broker: refused, rc: bad_credentials}\n  - expect: {broker: refused, rc: 5}\n"))
	require.NoError(t, err)
	require.Len(t, sc.Steps, 3)
	assert.Equal(t, RCBadCredentials, sc.Steps[0].RC)
	assert.Equal(t, "expect event mqtt refused rc=bad_credentials", sc.Steps[0].String())
	assert.Equal(t, BrokerEvent{Kind: "refused", RC: RCBadCredentials}, sc.Steps[1].Broker)
	assert.Equal(t, "expect broker refused rc=bad_credentials", sc.Steps[1].String())
	assert.Equal(t, 5, sc.Steps[2].Broker.RC)
	assert.Equal(t, 4, Legacy.ResolveRC(RCBadCredentials))
	assert.Equal(t, 5, Studio.ResolveRC(RCBadCredentials))
	assert.Equal(t, 3, Studio.ResolveRC(3))
	assert.Equal(t, -1, Studio.ResolveRC(-1))
}

func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]Platform{"": Legacy, "legacy": Legacy, "studio": Studio} {
		p, err := ParsePlatform(in)
		require.NoError(t, err)
		assert.Equal(t, want, p)
	}
	_, err := ParsePlatform("Studio")
	assert.EqualError(t, err, `platform "Studio": want legacy or studio`)
	assert.True(t, Studio.CommandTopic("$sys/386427/d/cmd/request/u"))
	assert.False(t, Studio.CommandTopic("$creq/u"))
	assert.True(t, Legacy.CommandTopic("$creq/u"))
	assert.False(t, Legacy.CommandTopic("$sys/386427/d/cmd/request/u"))
}
