// Package scenario holds the scenario file format, the LED model that
// predicts every expectation, and the runner that plays a scenario against
// a Target (a board of any kind behind the stand-in broker). A Target
// states what it can do as Capabilities (faults, the LED pin, liveness,
// its own skip reasons), asked once per scenario; the runner never asks
// which kind of board it is.
package scenario

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/onenet-hil/hil/harness/echo"
)

// Channel is how a command reaches the board.
type Channel string

const (
	// Creq pushes the command as a OneNET `$creq/{uuid}` publish.
	Creq Channel = "creq"
	// Topic publishes the command on the device's custom topic.
	Topic Channel = "topic"
	// HTTP posts the command to the OneNET-style HTTP API (POST /cmds).
	HTTP Channel = "http"
	// Property sets the thing-model property led through OneNET Studio's
	// API (set-device-property): on is true, off false. Studio only.
	Property Channel = "property"
)

// Channels lists the channels in file order.
var Channels = []Channel{Creq, Topic, HTTP, Property}

// FaultKind is a fault the runner can inject.
type FaultKind string

const (
	RestartBroker  FaultKind = "restart_broker"
	Kick           FaultKind = "kick"            // a duplicate login with the device's client id
	DropConnection FaultKind = "drop_connection" // the broker closes the device's TCP connection
	PowerCycle     FaultKind = "power_cycle"
	WifiDown       FaultKind = "wifi_down" // virtual board only
	WifiUp         FaultKind = "wifi_up"   // virtual board only
)

// Faults lists every fault kind.
var Faults = []FaultKind{RestartBroker, Kick, DropConnection, PowerCycle, WifiDown, WifiUp}

// VirtualOnly reports whether only a virtual board can undergo f.
func (f FaultKind) VirtualOnly() bool { return f == WifiDown || f == WifiUp }

// Requirement is a need a scenario declares with `requires:`.
type Requirement string

// Virtual: the scenario needs a virtual board (Wi-Fi faults, the pin).
const Virtual Requirement = "virtual"

// Timeouts bound every wait; zero fields take the next level's value
// (step -> scenario -> runner -> DefaultTimeouts).
type Timeouts struct {
	Send   time.Duration // a send until its echo
	Expect time.Duration // an expect step
	Fault  time.Duration // a fault until the board is back (reconnect backoff included)
	Ready  time.Duration // the board's start (flash, reset, Wi-Fi, login)
}

// DefaultTimeouts are generous: they must hold on a loaded 2-core machine.
var DefaultTimeouts = Timeouts{Send: 5 * time.Second, Expect: 5 * time.Second, Fault: 45 * time.Second, Ready: 120 * time.Second}

func (t Timeouts) or(d Timeouts) Timeouts {
	pick := func(a, b time.Duration) time.Duration {
		if a > 0 {
			return a
		}
		return b
	}
	return Timeouts{pick(t.Send, d.Send), pick(t.Expect, d.Expect), pick(t.Fault, d.Fault), pick(t.Ready, d.Ready)}
}

// Scenario is a loaded, validated and expanded scenario file.
type Scenario struct {
	Name        string
	Description string
	File        string
	Channel     Channel
	Profile     string // echo profile and firmware: "hil" or "tutorial"
	Requires    []Requirement
	// WrongCredentials: the board is flashed with a key the broker refuses.
	WrongCredentials bool
	Timeouts         Timeouts
	// Steps is the flat list of concrete steps (repeat and random expanded).
	Steps []Step
}

// Needs reports whether the scenario declares requirement q.
func (s *Scenario) Needs(q Requirement) bool {
	for _, r := range s.Requires {
		if r == q {
			return true
		}
	}
	return false
}

// FaultsUsed lists the distinct faults the scenario injects.
func (s *Scenario) FaultsUsed() []FaultKind {
	var out []FaultKind
	seen := map[FaultKind]bool{}
	for _, st := range s.Steps {
		if st.Kind == FaultStep && !seen[st.Fault] {
			seen[st.Fault] = true
			out = append(out, st.Fault)
		}
	}
	return out
}

// StepKind is what a concrete step does.
type StepKind int

const (
	SendStep StepKind = iota
	ExpectLEDStep
	ExpectIgnoredStep
	ExpectEchoStep   // a serial line matching a regular expression
	ExpectEventStep  // a typed echo event (mqtt refused rc=4, ...)
	ExpectBrokerStep // an event in the broker's feed
	WaitStep
	FaultStep
	// SyncStep waits for the echo of every send still in flight (the end
	// of a burst).
	SyncStep
	// HeapStep measures the firmware's heap one step at a time: boot, login
	// and Commands commands (Target capability Heap).
	HeapStep
)

var stepKindNames = [...]string{"send", "expect", "expect", "expect", "expect", "expect", "wait", "fault", "sync", "heap"}

func (k StepKind) String() string { return stepKindNames[k] }

// BrokerEvent is what an `expect: {broker: ...}` step waits for in the
// broker's event feed about the device under test.
type BrokerEvent struct {
	Kind string // "connected", "refused", "disconnected" or "kicked"
	// RC is the CONNACK return code for "refused"; -1: any;
	// RCBadCredentials: the platform's code (the runner resolves it).
	RC int
}

func (b BrokerEvent) String() string {
	if b.Kind == "refused" && b.RC != -1 {
		return fmt.Sprintf("broker %s rc=%s", b.Kind, rcString(b.RC))
	}
	return "broker " + b.Kind
}

func rcString(rc int) string {
	if rc == RCBadCredentials {
		return "bad_credentials"
	}
	return fmt.Sprint(rc)
}

// Step is one concrete step with the model's prediction.
type Step struct {
	Kind StepKind
	Line int // line in the scenario file

	// SendStep
	Payload string
	Channel Channel
	QoS     int
	NoWait  bool // do not wait for the echo here (burst, offline)
	// ExpectLEDStep: the level expected (always equal to After).
	Level int
	// ExpectEchoStep
	Pattern *regexp.Regexp
	// ExpectEventStep: the kind, and RC (-1 any, RCBadCredentials the
	// platform's code) / Reason ("" any).
	Event  echo.Kind
	RC     int
	Reason string
	// ExpectBrokerStep
	Broker BrokerEvent
	// FaultStep
	Fault FaultKind
	// WaitStep
	Duration time.Duration
	// HeapStep: how many commands to measure.
	Commands int
	// Timeout overrides the scenario's timeout for this step (0: default).
	Timeout time.Duration

	// Before and After are the model's LED levels around the step.
	Before, After int
	// Command: the payload is on, off or toggle.
	Command bool
}

// ShowPayload renders a payload for messages: bare when it is a plain
// word, else as a Python bytes literal.
func ShowPayload(p string) string {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || c == '\'' || c == '"' || c == '\\' {
			return echo.Quote([]byte(p))
		}
	}
	if p == "" {
		return "b''"
	}
	return p
}

// String describes the step for reports and messages.
func (s Step) String() string {
	switch s.Kind {
	case SendStep:
		d := fmt.Sprintf("send %s via %s", ShowPayload(s.Payload), s.Channel)
		var opts []string
		if s.QoS > 0 {
			opts = append(opts, fmt.Sprintf("qos %d", s.QoS))
		}
		if s.NoWait {
			opts = append(opts, "nowait")
		}
		if len(opts) > 0 {
			d += " (" + strings.Join(opts, ", ") + ")"
		}
		return d
	case ExpectLEDStep:
		return fmt.Sprintf("expect led %d", s.Level)
	case ExpectIgnoredStep:
		return "expect ignored"
	case ExpectEchoStep:
		return fmt.Sprintf("expect echo /%s/", s.Pattern)
	case ExpectEventStep:
		d := "expect event " + s.Event.String()
		if s.RC != -1 {
			d += " rc=" + rcString(s.RC)
		}
		if s.Reason != "" {
			d += " reason=" + s.Reason
		}
		return d
	case ExpectBrokerStep:
		return "expect " + s.Broker.String()
	case WaitStep:
		return "wait " + s.Duration.String()
	case FaultStep:
		return "fault " + string(s.Fault)
	case SyncStep:
		return "sync (echo of every send in flight)"
	case HeapStep:
		return fmt.Sprintf("heap: boot, login and %d commands, one request at a time", s.Commands)
	}
	return "?"
}
