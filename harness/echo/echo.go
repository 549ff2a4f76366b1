// Package echo is the harness's one parser of what a board prints on its
// serial line. The firmware's grammar (firmware/README.md, "Serial echo") is
//
//	HIL boot fw=<version> id=<device id>
//	HIL wifi up ip=<ip>              | HIL wifi down reason=<word>
//	HIL mqtt up broker=<host:port>   | HIL mqtt refused rc=<n> | HIL mqtt down reason=<word>
//	HIL led state=<0|1> cmd=<on|off|toggle> via=<topic>
//	HIL ignored payload=<quoted> via=<topic>
//
// (a studio property set of led is the led line of the command it amounts
// to, via= the thing/property/set topic)
//
// and a Profile turns the lines of one kind of firmware (ours: "hil"; the
// tutorial's mqtt.py: "tutorial") into typed Events.
package echo

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Kind says what a line means.
type Kind int

const (
	// Other is a line that means nothing to the profile (banner, REPL, noise).
	Other Kind = iota
	Boot
	WifiUp
	WifiDown
	MQTTUp
	MQTTRefused
	MQTTDown
	// LED: the LED changed (or was set) to State.
	LED
	// Ignored: a payload that is not a command was received and ignored.
	Ignored
	// Received: a message arrived (the tutorial prints every (topic, msg)).
	Received
	// Malformed: the line claims to be an echo line but breaks the grammar.
	Malformed
)

var kindNames = [...]string{
	Other: "other", Boot: "boot", WifiUp: "wifi up", WifiDown: "wifi down",
	MQTTUp: "mqtt up", MQTTRefused: "mqtt refused", MQTTDown: "mqtt down",
	LED: "led", Ignored: "ignored", Received: "received", Malformed: "malformed",
}

func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind is the inverse of Kind.String; it also accepts underscores
// ("mqtt_refused"), the spelling scenario files use.
func ParseKind(s string) (Kind, bool) {
	s = strings.ReplaceAll(s, "_", " ")
	for k, n := range kindNames {
		if n == s {
			return Kind(k), true
		}
	}
	return Other, false
}

// Event is one typed line. Only the fields of its Kind are set.
type Event struct {
	Kind Kind
	Line string // the line as read, without its line ending

	FW, ID  string // Boot
	IP      string // WifiUp
	Broker  string // MQTTUp (tutorial: the server it connected to)
	Reason  string // WifiDown, MQTTDown
	RC      int    // MQTTRefused
	State   int    // LED: 0 or 1
	Cmd     string // LED: on, off or toggle ("" when the profile does not say)
	Via     string // LED, Ignored, Received, MQTTUp (tutorial): the topic
	Payload string // Ignored, Received: the raw payload bytes
	Err     error  // Malformed: what is wrong
}

// String renders the event for messages and logs.
func (e Event) String() string {
	switch e.Kind {
	case Malformed:
		return fmt.Sprintf("malformed echo %q: %v", e.Line, e.Err)
	case Other:
		return fmt.Sprintf("line %q", e.Line)
	case Received:
		return fmt.Sprintf("received payload=%s via=%s", Quote([]byte(e.Payload)), e.Via)
	}
	if e.Kind == LED && e.Cmd == "" {
		return fmt.Sprintf("led state=%d", e.State)
	}
	return strings.TrimPrefix(Format(e), "HIL ")
}

// ErrNotHIL is returned by ParseHIL for a line that is not an echo line.
var ErrNotHIL = errors.New("not an HIL echo line")

const prefix = "HIL "

// Format renders ev in the firmware's grammar (the inverse of ParseHIL,
// used by fakes and tests). Payloads are written as Python bytes literals.
func Format(ev Event) string {
	switch ev.Kind {
	case Boot:
		return fmt.Sprintf("HIL boot fw=%s id=%s", ev.FW, ev.ID)
	case WifiUp:
		return "HIL wifi up ip=" + ev.IP
	case WifiDown:
		return "HIL wifi down reason=" + ev.Reason
	case MQTTUp:
		return "HIL mqtt up broker=" + ev.Broker
	case MQTTRefused:
		return "HIL mqtt refused rc=" + strconv.Itoa(ev.RC)
	case MQTTDown:
		return "HIL mqtt down reason=" + ev.Reason
	case LED:
		return fmt.Sprintf("HIL led state=%d cmd=%s via=%s", ev.State, ev.Cmd, ev.Via)
	case Ignored:
		return fmt.Sprintf("HIL ignored payload=%s via=%s", Quote([]byte(ev.Payload)), ev.Via)
	}
	return ev.Line
}

// eventWords maps the words after "HIL " to a kind and its required keys.
var eventWords = []struct {
	words string
	kind  Kind
	keys  []string
}{
	{"boot", Boot, []string{"fw", "id"}},
	{"wifi up", WifiUp, []string{"ip"}},
	{"wifi down", WifiDown, []string{"reason"}},
	{"mqtt up", MQTTUp, []string{"broker"}},
	{"mqtt refused", MQTTRefused, []string{"rc"}},
	{"mqtt down", MQTTDown, []string{"reason"}},
	{"led", LED, []string{"state", "cmd", "via"}},
	{"ignored", Ignored, []string{"payload", "via"}},
}

// ParseHIL parses one line of the firmware's echo grammar. Line endings and
// noise in front of the first "HIL " (the ESP8266 ROM's 74,880-baud boot
// log read at 115,200) are tolerated. It returns ErrNotHIL
// for any other line and a descriptive error for a line that starts with
// "HIL " but breaks the grammar. Unknown extra keys are allowed, so the
// firmware may add fields without breaking older harnesses.
func ParseHIL(line string) (Event, error) {
	line = strings.TrimRight(line, "\r\n")
	ev := Event{Line: line}
	s := trimGarbage(line)
	if !strings.HasPrefix(s, prefix) {
		// After a reset the ROM's boot log (74,880 baud read at 115,200)
		// can leave noise, printable or rendered as \xNN, in front of the
		// first echo on the same line.
		i := strings.Index(s, prefix)
		if i < 0 {
			return ev, ErrNotHIL
		}
		s = s[i:]
	}
	s = s[len(prefix):]
	var spec = -1
	for i, w := range eventWords {
		if s == w.words || strings.HasPrefix(s, w.words+" ") {
			spec = i
			break
		}
	}
	if spec < 0 {
		word, _, _ := strings.Cut(s, " ")
		return ev, fmt.Errorf("unknown event %q", word)
	}
	w := eventWords[spec]
	ev.Kind = w.kind
	kv, err := parsePairs(strings.TrimPrefix(s, w.words))
	if err != nil {
		return ev, err
	}
	for _, k := range w.keys {
		if _, ok := kv[k]; !ok {
			return ev, fmt.Errorf("%s: missing %s=", w.words, k)
		}
	}
	switch ev.Kind {
	case Boot:
		ev.FW, ev.ID = kv["fw"], kv["id"]
	case WifiUp:
		ev.IP = kv["ip"]
	case WifiDown, MQTTDown:
		ev.Reason = kv["reason"]
	case MQTTUp:
		ev.Broker = kv["broker"]
	case MQTTRefused:
		rc, err := strconv.Atoi(kv["rc"])
		if err != nil || rc < 0 || rc > 255 {
			return ev, fmt.Errorf("mqtt refused: rc=%q is not a return code", kv["rc"])
		}
		ev.RC = rc
	case LED:
		switch kv["state"] {
		case "0":
			ev.State = 0
		case "1":
			ev.State = 1
		default:
			return ev, fmt.Errorf("led: state=%q is not 0 or 1", kv["state"])
		}
		switch kv["cmd"] {
		case "on", "off", "toggle":
			ev.Cmd = kv["cmd"]
		default:
			return ev, fmt.Errorf("led: cmd=%q is not on, off or toggle", kv["cmd"])
		}
		ev.Via = kv["via"]
	case Ignored:
		ev.Payload, ev.Via = kv["payload"], kv["via"]
	}
	return ev, nil
}

// trimGarbage drops leading bytes that are not printable ASCII.
func trimGarbage(s string) string {
	i := 0
	for i < len(s) && (s[i] < 0x20 || s[i] >= 0x7f) {
		i++
	}
	return s[i:]
}

// parsePairs reads ` key=value key=value`; a value is either bare (up to the
// next space) or a quoted Python literal, which is unquoted.
func parsePairs(s string) (map[string]string, error) {
	kv := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return kv, nil
		}
		eq := strings.IndexByte(s, '=')
		sp := strings.IndexByte(s, ' ')
		if eq <= 0 || (sp >= 0 && sp < eq) {
			tok, _, _ := strings.Cut(s, " ")
			return nil, fmt.Errorf("%q is not key=value", tok)
		}
		key := s[:eq]
		for _, c := range key {
			if (c < 'a' || c > 'z') && c != '_' && (c < '0' || c > '9') {
				return nil, fmt.Errorf("bad key %q", key)
			}
		}
		if _, dup := kv[key]; dup {
			return nil, fmt.Errorf("key %s= given twice", key)
		}
		s = s[eq+1:]
		var val string
		if s != "" && (s[0] == '\'' || s[0] == '"' || (len(s) > 1 && s[0] == 'b' && (s[1] == '\'' || s[1] == '"'))) {
			v, rest, err := Unquote(s)
			if err != nil {
				return nil, fmt.Errorf("%s=: %v", key, err)
			}
			if rest != "" && rest[0] != ' ' {
				return nil, fmt.Errorf("%s=: text after the closing quote", key)
			}
			val, s = v, rest
		} else {
			val, s, _ = strings.Cut(s, " ")
			if val == "" {
				return nil, fmt.Errorf("%s= has no value", key)
			}
		}
		kv[key] = val
	}
}
