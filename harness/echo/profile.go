package echo

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Profile turns the serial lines of one kind of firmware into Events and
// says which echo confirms a command.
type Profile interface {
	Name() string
	// Parse classifies one line (without its line ending). Lines that mean
	// nothing to the profile come back as Kind Other.
	Parse(line string) Event
	// Confirms says which echo the firmware prints for a payload it receives.
	Confirms(payload string) Confirmation
	// Emits reports whether the firmware ever prints events of kind k; the
	// runner only waits for events a profile can produce.
	Emits(k Kind) bool
}

// Confirmation describes the echo that follows one received payload.
type Confirmation struct {
	// Receipt: a Received event (with the payload) comes first.
	Receipt bool
	// Result is LED or Ignored when such an event follows, or Other when the
	// firmware prints nothing more (the LED must then be read from the pin).
	Result Kind
}

// IsCommand reports whether payload is one of the LED commands.
func IsCommand(payload string) bool {
	return payload == "on" || payload == "off" || payload == "toggle"
}

var profiles = map[string]Profile{}

func init() {
	for _, p := range []Profile{HIL, Tutorial} {
		profiles[p.Name()] = p
	}
}

// Lookup returns the profile with the given name.
func Lookup(name string) (Profile, error) {
	if p, ok := profiles[name]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("unknown echo profile %q (known: %s)", name, strings.Join(Names(), ", "))
}

// Names lists the known profiles.
func Names() []string {
	n := make([]string, 0, len(profiles))
	for k := range profiles {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// HIL is the profile of our firmware: the grammar parsed by ParseHIL.
var HIL Profile = hilProfile{}

type hilProfile struct{}

func (hilProfile) Name() string { return "hil" }

func (hilProfile) Parse(line string) Event {
	ev, err := ParseHIL(line)
	switch {
	case err == ErrNotHIL:
		return Event{Kind: Other, Line: ev.Line}
	case err != nil:
		return Event{Kind: Malformed, Line: ev.Line, Err: err}
	}
	return ev
}

func (hilProfile) Confirms(payload string) Confirmation {
	if IsCommand(payload) {
		return Confirmation{Result: LED}
	}
	return Confirmation{Result: Ignored}
}

func (hilProfile) Emits(k Kind) bool { return k != Received && k != Other && k != Malformed }

// Tutorial is the profile of the tutorial's own mqtt.py run unchanged: it
// prints every message as a Python tuple `(b'topic', b'msg')`, then `1`
// after on and `0` after off (nothing after toggle or anything else), and
// `Connected to <server>, subscribed to b'<topic>' topic` once logged in.
// boot.py prints `network config: ('<ip>', ...)`. A refused login ends the
// program with a traceback whose last line is `MQTTException: <rc>`.
var Tutorial Profile = tutorialProfile{}

type tutorialProfile struct{}

var (
	tutConnected = regexp.MustCompile(`^Connected to (.*), subscribed to (.*) topic$`)
	tutNetwork   = regexp.MustCompile(`^network config: \('([^']*)'`)
	tutRefused   = regexp.MustCompile(`^\w*MQTT\w*(?:Exception|Error): (\d+)$`)
	tutOSError   = regexp.MustCompile(`^OSError: (.*)$`)
)

func (tutorialProfile) Name() string { return "tutorial" }

func (tutorialProfile) Parse(line string) Event {
	line = strings.TrimRight(line, "\r\n")
	ev := Event{Kind: Other, Line: line}
	s := strings.TrimSpace(trimGarbage(line))
	switch {
	case s == "1" || s == "0":
		ev.Kind, ev.State = LED, int(s[0]-'0')
	case strings.HasPrefix(s, "(b"):
		topic, payload, ok := parseTuple(s)
		if ok {
			ev.Kind, ev.Via, ev.Payload = Received, topic, payload
		}
	case strings.HasPrefix(s, "Connected to "):
		if m := tutConnected.FindStringSubmatch(s); m != nil {
			ev.Kind, ev.Broker, ev.Via = MQTTUp, m[1], m[2]
			if t, rest, err := Unquote(m[2]); err == nil && rest == "" {
				ev.Via = t
			}
		}
	case strings.HasPrefix(s, "network config: "):
		if m := tutNetwork.FindStringSubmatch(s); m != nil {
			ev.Kind, ev.IP = WifiUp, m[1]
		}
	default:
		if m := tutRefused.FindStringSubmatch(s); m != nil {
			if rc, err := strconv.Atoi(m[1]); err == nil && rc <= 255 {
				ev.Kind, ev.RC = MQTTRefused, rc
			}
		} else if m := tutOSError.FindStringSubmatch(s); m != nil {
			f := strings.Fields(m[1])
			ev.Kind, ev.Reason = MQTTDown, "oserror"
			if len(f) > 0 {
				ev.Reason = f[len(f)-1]
			}
		}
	}
	return ev
}

// parseTuple reads `(b'topic', b'msg')`.
func parseTuple(s string) (topic, payload string, ok bool) {
	topic, rest, err := Unquote(s[1:])
	if err != nil || !strings.HasPrefix(rest, ", ") {
		return "", "", false
	}
	payload, rest, err = Unquote(rest[2:])
	if err != nil || rest != ")" {
		return "", "", false
	}
	return topic, payload, true
}

func (tutorialProfile) Confirms(payload string) Confirmation {
	if payload == "on" || payload == "off" {
		return Confirmation{Receipt: true, Result: LED}
	}
	return Confirmation{Receipt: true, Result: Other}
}

func (tutorialProfile) Emits(k Kind) bool {
	switch k {
	case WifiUp, MQTTUp, MQTTRefused, MQTTDown, LED, Received:
		return true
	}
	return false
}

// LoginLine is the one test of "the board is up": it reports whether line
// is p's echo that the firmware logged in to the broker (refused: that the
// broker refused it). The rig and the flasher both wait for it.
func LoginLine(p Profile, refused bool) func(line string) bool {
	want := MQTTUp
	if refused {
		want = MQTTRefused
	}
	return func(line string) bool { return p.Parse(line).Kind == want }
}
