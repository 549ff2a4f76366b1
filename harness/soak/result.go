package soak

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/onenet-hil/hil/harness/scenario"
)

// Result is what a soak saw. Every command sent is in exactly one of
// Applied, Ignored (junk the board refused, as it must) or Lost.
type Result struct {
	Seed     uint64
	Duration time.Duration
	Commands int
	Applied  int            // on/off/toggle echoed by the board with the model's level
	Ignored  int            // junk echoed as ignored
	Lost     map[string]int // by reason
	ByChan   map[scenario.Channel]int
	// Mismatches are commands whose outcome disagreed with the model: a
	// wrong level or command in the echo, a pin that disagrees, an echo
	// after the command was reported lost, a loss with no reason.
	Mismatches int
	Details    []string // the first mismatches, described
	Faults     map[scenario.FaultKind]int
	FaultErrs  int      // faults that did not take effect (e.g. a kick during a restart)
	FaultWhy   []string // why, for the first of them
	SyncProbes int      // junk sent after a loss to prove nothing late arrives (not counted as commands)
}

// Loss reasons. They follow OneNET: a QoS 0 command for an offline device
// is refused ("device not online"), a publish on a custom topic nobody is
// subscribed to goes nowhere, and a QoS 0 message written to a connection
// that then closes is gone.
const (
	LostOffline     = "device offline"
	LostUnreachable = "platform unreachable (broker restarting)"
	LostInFlight    = "connection closed in flight"
	LostNoSubscribe = "custom topic not subscribed yet (device logging in)"
	// LostGone is a command whose send failed because the board's serial
	// port went away; the soak ends there with an error.
	LostGone = "board gone (serial port closed)"
	// lostUnexplained is a command the board never echoed while nothing
	// explains it: also counted as a mismatch.
	lostUnexplained = "unexplained"
)

func newResult(seed uint64) Result {
	return Result{Seed: seed, Lost: map[string]int{}, ByChan: map[scenario.Channel]int{}, Faults: map[scenario.FaultKind]int{}}
}

// Accounted reports whether every command ended applied, ignored or lost.
func (s Result) Accounted() bool {
	return s.Applied+s.Ignored+s.lost() == s.Commands
}

// OK: no mismatch and every command accounted for.
func (s Result) OK() bool { return s.Mismatches == 0 && s.Accounted() }

func (s Result) lost() int {
	n := 0
	for _, k := range s.Lost {
		n += k
	}
	return n
}

// String is the figures, one per line.
func (s Result) String() string {
	var b strings.Builder
	rate := 0.0
	if s.Duration > 0 {
		rate = float64(s.Commands) / s.Duration.Seconds()
	}
	fmt.Fprintf(&b, "soak: seed %d, %s, %d commands (%.0f/s): %d applied, %d ignored (junk), %d lost, %d mismatches\n",
		s.Seed, s.Duration.Round(time.Second), s.Commands, rate, s.Applied, s.Ignored, s.lost(), s.Mismatches)
	fmt.Fprintf(&b, "  by channel:%s\n", countList(s.ByChan))
	fmt.Fprintf(&b, "  lost by reason:%s\n", countList(s.Lost))
	fmt.Fprintf(&b, "  faults injected:%s (%d did not take effect)\n", countList(s.Faults), s.FaultErrs)
	for _, w := range s.FaultWhy {
		fmt.Fprintf(&b, "  fault without effect: %s\n", firstLine(w))
	}
	fmt.Fprintf(&b, "  sync probes after losses: %d\n", s.SyncProbes)
	for _, d := range s.Details {
		fmt.Fprintf(&b, "  mismatch: %s\n", d)
	}
	return b.String()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func countList[K ~string](m map[K]int) string {
	if len(m) == 0 {
		return " none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, string(k))
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%d", k, m[K(k)])
	}
	return b.String()
}
