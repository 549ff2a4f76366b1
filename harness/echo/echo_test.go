package echo

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseHILGrammar(t *testing.T) {
	cases := []struct {
		line string
		want Event
	}{
		{"HIL boot fw=1.0.3 id=503367129\r\n", Event{Kind: Boot, FW: "1.0.3", ID: "503367129"}},
		{"HIL wifi up ip=192.168.1.5", Event{Kind: WifiUp, IP: "192.168.1.5"}},
		{"HIL wifi down reason=timeout", Event{Kind: WifiDown, Reason: "timeout"}},
		{"HIL mqtt up broker=127.0.0.1:6002", Event{Kind: MQTTUp, Broker: "127.0.0.1:6002"}},
		{"HIL mqtt refused rc=4", Event{Kind: MQTTRefused, RC: 4}},
		{"HIL mqtt down reason=ECONNRESET", Event{Kind: MQTTDown, Reason: "ECONNRESET"}},
		{"HIL led state=1 cmd=on via=$creq/7f3c", Event{Kind: LED, State: 1, Cmd: "on", Via: "$creq/7f3c"}},
		{"HIL led state=0 cmd=toggle via=TurnipRobot", Event{Kind: LED, State: 0, Cmd: "toggle", Via: "TurnipRobot"}},
		// OneNET Studio's property set of led (false): the command it amounts to, via the set topic
		{"HIL led state=0 cmd=off via=$sys/386427/503367129/thing/property/set", Event{Kind: LED, State: 0, Cmd: "off", Via: "$sys/386427/503367129/thing/property/set"}},
		{"HIL ignored payload=b'ON' via=TurnipRobot", Event{Kind: Ignored, Payload: "ON", Via: "TurnipRobot"}},
		{`HIL ignored payload="it's \x00 odd" via=b'TurnipRobot'`, Event{Kind: Ignored, Payload: "it's \x00 odd", Via: "TurnipRobot"}},
		{"HIL ignored payload='a b  c' via=T", Event{Kind: Ignored, Payload: "a b  c", Via: "T"}},
		{"HIL ignored payload=b'' via=T", Event{Kind: Ignored, Payload: "", Via: "T"}},
		// ROM boot garbage before the echo, and an extra key from a newer firmware.
		{"\xff\x00\x8eHIL led state=1 cmd=on via=T heap=21000", Event{Kind: LED, State: 1, Cmd: "on", Via: "T"}},
		{`\xe0\x00l\x9c\x9e|r\x8c|HIL boot fw=1.0.0 id=-`, Event{Kind: Boot, FW: "1.0.0", ID: "-"}},
		{"ets Jan  8 2013,rst cause:2 HIL boot fw=1.0.0 id=5", Event{Kind: Boot, FW: "1.0.0", ID: "5"}},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			got, err := ParseHIL(c.line)
			require.NoError(t, err)
			c.want.Line = strings.TrimRight(c.line, "\r\n")
			assert.Equal(t, c.want, got)
		})
	}
}

func TestParseHILRejects(t *testing.T) {
	cases := map[string]string{
		"HIL led state=2 cmd=on via=T":         "not 0 or 1",
		"HIL led state=1 cmd=blink via=T":      "not on, off or toggle",
		"HIL led state=1 via=T":                "missing cmd=",
		"HIL mqtt refused rc=x":                "not a return code",
		"HIL mqtt refused rc=256":              "not a return code",
		"HIL reboot now=1":                     `unknown event "reboot"`,
		"HIL ignored payload=b'abc via=T":      "unterminated",
		"HIL ignored payload=b'abc'x via=T":    "after the closing quote",
		"HIL led state=1 state=1 cmd=on via=T": "given twice",
		"HIL led state=1 cmd=on via=":          "has no value",
		"HIL led state=1 cmd=on junk":          "not key=value",
		"HIL mqtt":                             `unknown event "mqtt"`,
	}
	for line, want := range cases {
		_, err := ParseHIL(line)
		require.Error(t, err, line)
		assert.NotErrorIs(t, err, ErrNotHIL, line)
		assert.Contains(t, err.Error(), want, line)
	}
	for _, line := range []string{"", ">>> ", "MicroPython v1.27 on 2025-01-01; ESP module with ESP8266", "HILboot", "hil boot fw=1 id=2", "xHILboot"} {
		_, err := ParseHIL(line)
		assert.ErrorIs(t, err, ErrNotHIL, line)
	}
}

func TestFormatRoundTrips(t *testing.T) {
	for _, ev := range []Event{
		{Kind: Boot, FW: "1.2", ID: "503367129"},
		{Kind: WifiUp, IP: "10.0.0.2"},
		{Kind: WifiDown, Reason: "lost"},
		{Kind: MQTTUp, Broker: "127.0.0.1:41234"},
		{Kind: MQTTRefused, RC: 5},
		{Kind: MQTTDown, Reason: "kicked"},
		{Kind: LED, State: 1, Cmd: "toggle", Via: "$creq/abc"},
		{Kind: Ignored, Payload: "\xe4\xb8\xad'\"\\\n", Via: "TurnipRobot"},
	} {
		line := Format(ev)
		got, err := ParseHIL(line)
		require.NoError(t, err, line)
		ev.Line = line
		assert.Equal(t, ev, got)
		assert.NotEmpty(t, ev.String())
	}
}

func TestHILProfile(t *testing.T) {
	p, err := Lookup("hil")
	require.NoError(t, err)
	assert.Equal(t, LED, p.Parse("HIL led state=0 cmd=off via=T\r").Kind)
	assert.Equal(t, Other, p.Parse("network config: ('1.2.3.4', '', '', '')").Kind)
	bad := p.Parse("HIL led state=7 cmd=on via=T")
	assert.Equal(t, Malformed, bad.Kind)
	assert.Contains(t, bad.String(), "not 0 or 1")
	assert.Equal(t, Confirmation{Result: LED}, p.Confirms("toggle"))
	assert.Equal(t, Confirmation{Result: Ignored}, p.Confirms("ON"))
	assert.False(t, p.Emits(Received))
	assert.True(t, p.Emits(Boot))
}

// The lines are the tutorial's own prints (seed/000_921af53e6c08698a.txt).
func TestTutorialProfile(t *testing.T) {
	p, err := Lookup("tutorial")
	require.NoError(t, err)
	cases := []struct {
		line string
		want Event
	}{
		{"connecting to network...", Event{Kind: Other}},
		{"network config: ('192.168.1.7', '255.255.255.0', '192.168.1.1', '192.168.1.1')", Event{Kind: WifiUp, IP: "192.168.1.7"}},
		{"Connected to 183.230.40.39, subscribed to b'TurnipRobot' topic", Event{Kind: MQTTUp, Broker: "183.230.40.39", Via: "TurnipRobot"}},
		{"(b'TurnipRobot', b'on')", Event{Kind: Received, Via: "TurnipRobot", Payload: "on"}},
		{`(b'$creq/5d1a-99', b"it's")`, Event{Kind: Received, Via: "$creq/5d1a-99", Payload: "it's"}},
		{`(b'TurnipRobot', b'\xe4\xb8\xad')`, Event{Kind: Received, Via: "TurnipRobot", Payload: "\xe4\xb8\xad"}},
		{"1\r", Event{Kind: LED, State: 1}},
		{"0", Event{Kind: LED, State: 0}},
		{"MQTTException: 4", Event{Kind: MQTTRefused, RC: 4}},
		{"OSError: [Errno 104] ECONNRESET", Event{Kind: MQTTDown, Reason: "ECONNRESET"}},
		{"(b'TurnipRobot', b'on'", Event{Kind: Other}},
		{"10", Event{Kind: Other}},
		{"HIL led state=1 cmd=on via=T", Event{Kind: Other}},
	}
	for _, c := range cases {
		got := p.Parse(c.line)
		c.want.Line = strings.TrimRight(c.line, "\r\n")
		assert.Equal(t, c.want, got, c.line)
	}
	assert.Equal(t, Confirmation{Receipt: true, Result: LED}, p.Confirms("off"))
	assert.Equal(t, Confirmation{Receipt: true, Result: Other}, p.Confirms("toggle"))
	assert.Equal(t, Confirmation{Receipt: true, Result: Other}, p.Confirms("blink"))
	assert.False(t, p.Emits(Boot))
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("umqtt")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "hil, tutorial")
	k, ok := ParseKind("mqtt_refused")
	assert.True(t, ok)
	assert.Equal(t, MQTTRefused, k)
}

func TestQuoteUnquote(t *testing.T) {
	for _, s := range []string{"", "on", "it's", `say "hi"`, `both ' and "`, "\x00\x7f\xff\\\n\r\t"} {
		q := Quote([]byte(s))
		v, rest, err := Unquote(q)
		require.NoError(t, err, q)
		assert.Equal(t, s, v, q)
		assert.Empty(t, rest)
	}
	v, _, err := Unquote(`'\101\7\q'`)
	require.NoError(t, err)
	assert.Equal(t, "A\a\\q", v)
	for _, bad := range []string{`'abc`, `b'\x4'`, `b'\xzz'`, `'\`, `abc`, `'\777'`} {
		_, _, err := Unquote(bad)
		assert.Error(t, err, bad)
	}
}

// FuzzParseHIL: no line panics the parser, errors and events are
// consistent, and an accepted line formats back to an equivalent event.
func FuzzParseHIL(f *testing.F) {
	for _, s := range []string{
		"HIL boot fw=1.0 id=503367129", "HIL wifi up ip=10.0.0.2", "HIL wifi down reason=lost",
		"HIL mqtt up broker=127.0.0.1:6002", "HIL mqtt refused rc=4", "HIL mqtt down reason=kicked",
		"HIL led state=1 cmd=on via=$creq/ab", "HIL ignored payload=b'\\xff\\'x' via=T",
		`HIL ignored payload="a b" via=b'T'`, "\xffHIL led state=0 cmd=off via=T", "HIL ", "HIL led state=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ev, err := ParseHIL(line)
		if err != nil {
			return
		}
		if ev.Kind < Boot || ev.Kind > Ignored {
			t.Fatalf("accepted %q as kind %v", line, ev.Kind)
		}
		if ev.Kind == LED && ev.State != 0 && ev.State != 1 {
			t.Fatalf("state %d", ev.State)
		}
		if !bareSafe(ev.FW, ev.ID, ev.IP, ev.Broker, ev.Reason, ev.Via) {
			return
		}
		again, err := ParseHIL(Format(ev))
		if err != nil {
			t.Fatalf("Format(%q) = %q does not parse: %v", line, Format(ev), err)
		}
		again.Line, ev.Line = "", ""
		if again != ev {
			t.Fatalf("round trip of %q: %+v != %+v", line, again, ev)
		}
	})
}

// bareSafe: values Format writes bare must not contain spaces or start
// like a quoted literal.
func bareSafe(vals ...string) bool {
	for _, v := range vals {
		if strings.ContainsAny(v, " \r\n") || strings.HasPrefix(v, "'") || strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "b'") || strings.HasPrefix(v, `b"`) {
			return false
		}
	}
	return true
}

func FuzzTutorial(f *testing.F) {
	for _, s := range []string{"(b'TurnipRobot', b'on')", "1", "0", "Connected to 1.2.3.4, subscribed to b'T' topic",
		"network config: ('1.2.3.4', 'x')", "MQTTException: 5", "OSError: 113", `(b"'", b'\x')`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ev := Tutorial.Parse(line)
		if ev.Kind == Received {
			// A received payload re-quoted parses back to itself.
			back := Tutorial.Parse("(" + Quote([]byte(ev.Via)) + ", " + Quote([]byte(ev.Payload)) + ")")
			if back.Payload != ev.Payload || back.Via != ev.Via {
				t.Fatalf("re-quoted tuple of %q differs: %+v", line, back)
			}
		}
	})
}

func FuzzQuote(f *testing.F) {
	f.Add([]byte("on"))
	f.Add([]byte("\x00'\"\\"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, rest, err := Unquote(Quote(b))
		if err != nil || rest != "" || v != string(b) {
			t.Fatalf("Quote(%q)=%q unquotes to %q, %q, %v", b, Quote(b), v, rest, err)
		}
	})
}

func BenchmarkParseHIL(b *testing.B) {
	line := "HIL led state=1 cmd=toggle via=$creq/1b4e28ba-2fa1-11d2-883f-0016d3cca427\r\n"
	for b.Loop() {
		if _, err := ParseHIL(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTutorialParse(b *testing.B) {
	for b.Loop() {
		Tutorial.Parse("(b'TurnipRobot', b'toggle')")
	}
}

func TestLoginLineIsTheProfilesLoginOrRefusal(t *testing.T) {
	up, refused := LoginLine(HIL, false), LoginLine(HIL, true)
	assert.True(t, up("HIL mqtt up broker=127.0.0.1:6002"))
	assert.False(t, up("HIL mqtt refused rc=4"))
	assert.False(t, up("HIL mqtt up"), "a malformed echo is not a login")
	assert.True(t, refused("HIL mqtt refused rc=4"))
	tut := LoginLine(Tutorial, false)
	assert.True(t, tut("Connected to 183.230.40.39, subscribed to b'TurnipRobot' topic"))
	assert.True(t, LoginLine(Tutorial, true)("MQTTException: 4"))
}
