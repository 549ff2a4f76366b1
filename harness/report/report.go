// Package report holds the results of a scenario run and writes them: a
// live console line per scenario and a summary table, JUnit XML, JSON and a
// self-contained HTML page. Every writer masks the secrets it is given.
package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/onenet-hil/hil/internal/secret"
)

// Status is the outcome of a scenario or a step.
type Status string

const (
	Pass Status = "pass"
	Fail Status = "fail"
	Skip Status = "skip"
	// NotRun marks the steps after a scenario's first failure.
	NotRun Status = "not run"
)

// Unknown is the value of an LED level nobody observed.
const Unknown = -1

// Line is one serial line with the time it was read.
type Line struct {
	At   time.Time `json:"at"`
	Text string    `json:"text"`
}

// Step is the result of one concrete step.
type Step struct {
	Index  int    `json:"index"` // 0-based position in the expanded list
	Kind   string `json:"kind"`  // send, expect, fault, wait, sync
	Line   int    `json:"line"`  // line in the scenario file
	Desc   string `json:"desc"`  // e.g. "send toggle via creq"
	Status Status `json:"status"`
	// Expected is the model's LED state after the step; Echo and Pin are
	// what the board's echo and the GPIO pin said (Unknown if not seen).
	Expected int           `json:"expected"`
	Echo     int           `json:"echo"`
	Pin      int           `json:"pin"`
	Latency  time.Duration `json:"latency_ns,omitempty"` // send to echo, sends only
	Message  string        `json:"message,omitempty"`    // why it failed, or a note
}

// Scenario is the result of one scenario.
type Scenario struct {
	Name     string        `json:"name"`
	File     string        `json:"file"`
	Status   Status        `json:"status"`
	Reason   string        `json:"reason,omitempty"` // why it failed or was skipped
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Steps    []Step        `json:"steps"`
	Serial   []Line        `json:"serial"`
	// Heap is the firmware's heap, when a heap step measured it.
	Heap *Heap `json:"heap,omitempty"`
}

// Heap is the firmware's heap as a heap step measured it, in bytes: boot,
// login and each command run as a request of their own.
type Heap struct {
	Size int `json:"size"` // the board's GC heap
	// Boot, Login and Command are the most each kind of step held;
	// Live is what stayed after the last command.
	Boot     int `json:"boot"`
	Login    int `json:"login"`
	Command  int `json:"command"`
	Live     int `json:"live"`
	Commands int `json:"commands"`
	// Over names the steps that held more than the heap at some point
	// before their collection (the virtual board's VM then adds a heap
	// area): the board would have needed a collection mid-step. That fails
	// boot and login (their compiles free their scratch themselves, so a
	// collection would not have helped); for a command it is a warning.
	Over []string `json:"over,omitempty"`
	// Method says how the figures were read: "peak" (the virtual board:
	// each step's live data plus all it allocated, an upper bound of
	// what the board needs) or "live" (a real board: gc.mem_alloc()
	// after a collection).
	Method string `json:"method"`
}

// Peak is the most any step held.
func (h Heap) Peak() int { return max(h.Boot, h.Login, h.Command) }

// String is the one-line summary: "peak 27.1 of 37.5 KB (boot 25.0,
// login 26.2, per command 27.1; live 21.0 after 200 commands)".
func (h Heap) String() string {
	kb := func(n int) string { return fmt.Sprintf("%.1f", float64(n)/1024) }
	s := fmt.Sprintf("%s %s of %s KB (boot %s, login %s, per command %s; live %s after %d commands)",
		h.Method, kb(h.Peak()), kb(h.Size), kb(h.Boot), kb(h.Login), kb(h.Command), kb(h.Live), h.Commands)
	if len(h.Over) > 0 {
		s += "; more than the heap before a collection in: " + strings.Join(h.Over, ", ")
	}
	return s
}

// Latencies returns the latencies of the scenario's confirmed sends.
func (s Scenario) Latencies() []time.Duration {
	var out []time.Duration
	for _, st := range s.Steps {
		if st.Latency > 0 {
			out = append(out, st.Latency)
		}
	}
	return out
}

// Run is one run of many scenarios.
type Run struct {
	Target    string        `json:"target"` // e.g. "virtual board" or "/dev/ttyUSB0"
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"duration_ns"`
	Scenarios []Scenario    `json:"scenarios"`
}

// Totals counts scenarios by status.
type Totals struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
	Total   int `json:"total"`
}

// Totals counts the run's scenarios.
func (r Run) Totals() Totals {
	var t Totals
	for _, s := range r.Scenarios {
		switch s.Status {
		case Pass:
			t.Passed++
		case Fail:
			t.Failed++
		case Skip:
			t.Skipped++
		}
	}
	t.Total = len(r.Scenarios)
	return t
}

// OK reports whether nothing failed.
func (r Run) OK() bool { return r.Totals().Failed == 0 }

// Percentile returns the p-th percentile (0..100) of ds by the nearest-rank
// method, or 0 for no data.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

// ms renders a duration as fractional milliseconds.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000
}

// Sink receives results while a run goes on (the console progress line).
type Sink interface {
	ScenarioStarted(name string, steps int)
	StepDone(name string, st Step)
	ScenarioDone(s Scenario)
}

// Masker replaces secrets with "****" (package secret holds it; this
// name keeps the report writers' signatures).
type Masker = secret.Masker

// NewMasker masks every non-empty secret, also in its escaped forms; see
// secret.NewMasker.
func NewMasker(secrets ...string) *Masker { return secret.NewMasker(secrets...) }

// Masked returns a deep copy of r with every string masked by m.
func Masked(m *Masker, r Run) Run {
	out := r
	out.Target = m.Mask(r.Target)
	out.Scenarios = make([]Scenario, len(r.Scenarios))
	for i, s := range r.Scenarios {
		s.Name, s.File, s.Reason = m.Mask(s.Name), m.Mask(s.File), m.Mask(s.Reason)
		steps := make([]Step, len(s.Steps))
		for j, st := range s.Steps {
			st.Desc, st.Message = m.Mask(st.Desc), m.Mask(st.Message)
			steps[j] = st
		}
		s.Steps = steps
		lines := make([]Line, len(s.Serial))
		for j, l := range s.Serial {
			l.Text = m.Mask(l.Text)
			lines[j] = l
		}
		s.Serial = lines
		out.Scenarios[i] = s
	}
	return out
}
