package rig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/scenario"
)

// SoakOptions shape a soak: randomized commands on every channel while
// faults are injected at random moments.
type SoakOptions struct {
	// Duration bounds the soak; Commands (when > 0) ends it earlier.
	Duration time.Duration
	Commands int
	// Seed makes the command and fault sequences repeatable (0: 1).
	Seed uint64
	// FaultEvery is the mean gap between faults (exponential); default
	// 2 s; negative: no faults.
	FaultEvery time.Duration
	// Faults are the kinds drawn from; default restart_broker, kick,
	// drop_connection.
	Faults []scenario.FaultKind
	// EchoTimeout bounds the wait for one command's echo while its
	// connection stays up (default 10 s: a loaded machine).
	EchoTimeout time.Duration
	// Progress receives a line of figures every ProgressEvery (default
	// 10 s); nil for silence.
	Progress      io.Writer
	ProgressEvery time.Duration
}

// SoakResult is what a soak saw. Every command sent is in exactly one of
// Applied, Ignored (junk the board refused, as it must) or Lost.
type SoakResult struct {
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

// Accounted reports whether every command ended applied, ignored or lost.
func (s SoakResult) Accounted() bool {
	lost := 0
	for _, n := range s.Lost {
		lost += n
	}
	return s.Applied+s.Ignored+lost == s.Commands
}

// OK: no mismatch and every command accounted for.
func (s SoakResult) OK() bool { return s.Mismatches == 0 && s.Accounted() }

// String is the figures, one per line.
func (s SoakResult) String() string {
	var b strings.Builder
	lost := 0
	for _, n := range s.Lost {
		lost += n
	}
	rate := 0.0
	if s.Duration > 0 {
		rate = float64(s.Commands) / s.Duration.Seconds()
	}
	fmt.Fprintf(&b, "soak: seed %d, %s, %d commands (%.0f/s): %d applied, %d ignored (junk), %d lost, %d mismatches\n",
		s.Seed, s.Duration.Round(time.Second), s.Commands, rate, s.Applied, s.Ignored, lost, s.Mismatches)
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

// Loss reasons. They follow OneNET: a QoS 0 command for an offline device
// is refused ("device not online"), a publish on a custom topic nobody is
// subscribed to goes nowhere, and a QoS 0 message written to a connection
// that then closes is gone.
const (
	LostOffline     = "device offline"
	LostUnreachable = "platform unreachable (broker restarting)"
	LostInFlight    = "connection closed in flight"
	LostNoSubscribe = "custom topic not subscribed yet (device logging in)"
)

// soakEcho is the serial lines a soak waits for.
var soakEcho = regexp.MustCompile(`HIL (?:led|ignored|boot) `)

// Soak plays randomized commands (on, off, toggle and junk, on every
// channel, QoS 0) one at a time on the virtual board, while another
// goroutine restarts the broker, kicks or drops the device at random
// moments. Each command ends applied (its echo and the pin agree with the
// LED model), ignored (junk), or lost with the reason the platform gives.
// A loss is followed by sync probes until one is echoed, so that a late
// echo of a command reported lost is caught as a mismatch.
func (r *Rig) Soak(ctx context.Context, o SoakOptions) (SoakResult, error) {
	if r.caps.Pins == nil {
		return SoakResult{}, errors.New("rig: the soak needs the virtual board (it kicks, restarts and reads the pin)")
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.FaultEvery == 0 {
		o.FaultEvery = 2 * time.Second
	}
	if len(o.Faults) == 0 {
		o.Faults = []scenario.FaultKind{scenario.RestartBroker, scenario.Kick, scenario.DropConnection}
	}
	for _, f := range o.Faults {
		// The LED model here follows echoes only: a power cycle (LED off)
		// or a Wi-Fi outage left down would need more than that.
		if f != scenario.RestartBroker && f != scenario.Kick && f != scenario.DropConnection {
			return SoakResult{}, fmt.Errorf("soak: fault %s: want restart_broker, kick or drop_connection", f)
		}
	}
	if o.EchoTimeout <= 0 {
		o.EchoTimeout = 10 * time.Second
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 10 * time.Second
	}
	res := SoakResult{Seed: o.Seed, Lost: map[string]int{}, ByChan: map[scenario.Channel]int{}, Faults: map[scenario.FaultKind]int{}}
	before := r.br.Events().Mark()
	if err := r.Begin(ctx, scenario.Setup{Scenario: "soak", Profile: "hil"}); err != nil {
		return res, fmt.Errorf("soak: setting up the board: %w", err)
	}
	s := &soak{r: r, o: o, res: &res, rng: rand.New(rand.NewPCG(o.Seed, 0x50a6)), cursor: r.link.Mark(), scanned: before}

	start := time.Now()
	// The deadline stops new commands and the faults; the command in
	// flight at the deadline is still waited for and accounted for.
	sctx, stop := context.WithCancel(ctx)
	if o.Duration > 0 {
		sctx, stop = context.WithDeadline(ctx, start.Add(o.Duration))
	}
	defer stop()
	var wg sync.WaitGroup
	if o.FaultEvery > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); s.faults(sctx, rand.New(rand.NewPCG(o.Seed, 0xfa17))) }()
	}
	next := start.Add(o.ProgressEvery)
	var err error
	for sctx.Err() == nil && (o.Commands <= 0 || res.Commands < o.Commands) {
		if err = s.one(ctx); err != nil {
			break
		}
		if o.Progress != nil && time.Now().After(next) {
			next = time.Now().Add(o.ProgressEvery)
			s.mu.Lock()
			fmt.Fprintf(o.Progress, "soak: %s: %d commands, %d applied, %d ignored, lost%s, %d mismatches, faults%s\n",
				time.Since(start).Round(time.Second), res.Commands, res.Applied, res.Ignored, countList(res.Lost), res.Mismatches, countList(res.Faults))
			s.mu.Unlock()
		}
	}
	stop()
	wg.Wait()
	res.Duration = time.Since(start)
	if err != nil {
		return res, err
	}
	return res, nil
}

type soak struct {
	r      *Rig
	o      SoakOptions
	rng    *rand.Rand
	mu     sync.Mutex // res.Faults, FaultErrs (the fault goroutine)
	res    *SoakResult
	model  scenario.Model // the LED model the whole harness predicts from
	cursor int64          // serial: lines before it are accounted for
	// The device's subscription as the broker's feed tells it, followed
	// up to scanned.
	scanned    broker.Mark
	subscribed bool
	probes     int
}

var soakChannels = []scenario.Channel{scenario.Creq, scenario.Topic, scenario.HTTP}

// payload draws a command: on, off, toggle, or junk (random bytes that
// are none of them).
func (s *soak) payload() []byte {
	switch s.rng.IntN(7) {
	case 0, 1:
		return []byte("on")
	case 2, 3:
		return []byte("off")
	case 4, 5:
		return []byte("toggle")
	}
	for {
		b := make([]byte, 1+s.rng.IntN(12))
		for i := range b {
			b[i] = byte(s.rng.IntN(256))
		}
		if p := string(b); p != "on" && p != "off" && p != "toggle" {
			return b
		}
	}
}

func (s *soak) mismatch(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res.Mismatches++
	if len(s.res.Details) < 20 {
		s.res.Details = append(s.res.Details, s.r.mask.Mask(fmt.Sprintf(format, args...)))
	}
}

func (s *soak) lost(reason string) {
	s.mu.Lock()
	s.res.Lost[reason]++
	s.mu.Unlock()
}

// one sends a command and accounts for it. An error means the soak cannot
// go on (the serial link is gone, the context ended).
func (s *soak) one(ctx context.Context) error {
	r := s.r
	ch := soakChannels[s.rng.IntN(len(soakChannels))]
	p := s.payload()
	mark := r.br.Events().Mark()
	online := r.br.Online(DeviceID)
	subscribed := s.subscribedAt(mark)
	s.res.Commands++
	s.res.ByChan[ch]++
	if err := r.send(ctx, ch, p, scenario.SendOptions{}); err != nil { // no wait for the port's fate: the soak reads the link itself
		if ctx.Err() != nil {
			s.res.Commands-- // never sent: the soak ended
			s.res.ByChan[ch]--
			return ctx.Err()
		}
		s.lost(sendReason(err))
		return s.awaitOnline(ctx)
	}
	desc := fmt.Sprintf("command %d (%s via %s)", s.res.Commands, scenario.ShowPayload(string(p)), ch)
	ev, seen, err := s.echo(ctx, mark, online)
	if err != nil {
		return err
	}
	if !seen {
		reason := s.lossReason(ch, online, subscribed, mark)
		if reason == "" {
			s.mismatch("%s: no echo within %s and nothing explains it", desc, s.o.EchoTimeout)
			reason = "unexplained"
		}
		s.lost(reason)
		return s.sync(ctx)
	}
	s.check(ctx, desc, p, ev)
	return nil
}

// echo waits for the next command echo after the cursor: up to
// EchoTimeout while the device's connection holds, a short grace once the
// broker saw it end (or when the device was offline at the send).
func (s *soak) echo(ctx context.Context, mark broker.Mark, online bool) (echo.Event, bool, error) {
	r := s.r
	deadline := time.Now().Add(s.o.EchoTimeout)
	const grace = 1500 * time.Millisecond
	if !online {
		deadline = time.Now().Add(grace)
	}
	ended := false
	for {
		slice := min(250*time.Millisecond, time.Until(deadline))
		if slice <= 0 {
			return echo.Event{}, false, nil
		}
		m, err := r.link.ExpectFrom(ctx, s.cursor, soakEcho, slice)
		if err == nil {
			s.cursor = m.Line.Seq + 1
			ev, perr := echo.ParseHIL(m.Line.Text)
			if perr != nil {
				s.mismatch("malformed echo %q: %v", m.Line.Text, perr)
				continue
			}
			return ev, true, nil
		}
		if ctx.Err() != nil {
			return echo.Event{}, false, ctx.Err()
		}
		if r.link.Err() != nil {
			return echo.Event{}, false, fmt.Errorf("soak: serial link: %w", r.link.Err())
		}
		if !ended && s.endedSince(mark) {
			ended = true
			if d := time.Now().Add(grace); d.Before(deadline) {
				deadline = d
			}
		}
	}
}

// endedSince reports whether the device's connection ended after mark.
func (s *soak) endedSince(mark broker.Mark) bool {
	c, cancel := context.WithCancel(context.Background())
	cancel() // only what is already in the feed
	_, err := s.r.br.Events().WaitAfter(c, mark, func(e broker.Event) bool {
		return e.DeviceID == DeviceID && (e.Kind == broker.Disconnected || e.Kind == broker.Kicked)
	})
	return err == nil
}

// lossReason explains a command the broker accepted and the board never
// echoed; "" when nothing does.
func (s *soak) lossReason(ch scenario.Channel, online, subscribed bool, mark broker.Mark) string {
	switch {
	case s.endedSince(mark):
		return LostInFlight
	case !online:
		return LostOffline
	case ch == scenario.Topic && !subscribed:
		return LostNoSubscribe
	}
	return ""
}

// subscribedAt follows the broker's feed up to mark and reports whether
// the device's session then had subscribed to the custom topic. The feed
// is read incrementally (scanned), a few events per command.
func (s *soak) subscribedAt(mark broker.Mark) bool {
	c, cancel := context.WithCancel(context.Background())
	cancel() // only what is already in the feed
	_, _ = s.r.br.Events().WaitAfter(c, s.scanned, func(e broker.Event) bool {
		if e.Seq > uint64(mark) {
			return true // later events are for the next call
		}
		s.scanned = broker.Mark(e.Seq)
		if e.DeviceID == DeviceID {
			switch e.Kind {
			case broker.Connected, broker.Disconnected, broker.Kicked:
				s.subscribed = false
			case broker.Subscribed:
				if e.Topic == Topic && e.Code == 0 {
					s.subscribed = true
				}
			}
		}
		return false
	})
	return s.subscribed
}

// sendReason names why the platform refused a send.
func sendReason(err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, broker.ErrOffline) || strings.Contains(msg, "not online") || strings.Contains(msg, "offline"):
		return LostOffline
	case errors.Is(err, broker.ErrClosed) || strings.Contains(msg, "connection refused") ||
		strings.Contains(msg, "controller login") || strings.Contains(msg, "broker closed") || strings.Contains(msg, "EOF") ||
		strings.Contains(msg, "connection reset") || strings.Contains(msg, "not sent in time"):
		return LostUnreachable
	}
	return "refused: " + msg
}

// awaitOnline paces the soak after a refused send: the next command goes
// out once the device is logged in again (bounded; a device that never
// comes back ends the soak with an error).
func (s *soak) awaitOnline(ctx context.Context) error {
	if s.r.br.Online(DeviceID) {
		return nil
	}
	mark := s.r.br.Events().Mark()
	if s.r.br.Online(DeviceID) {
		return nil
	}
	c, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	_, err := s.r.br.Events().WaitAfter(c, mark, broker.Is(broker.Connected, DeviceID))
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("soak: the device did not log in again within 90 s: %w", err)
	}
	return err
}

// sync sends junk probes on $creq until one is echoed; every command echo
// before it is a late echo of a command reported lost: a mismatch.
func (s *soak) sync(ctx context.Context) error {
	for {
		if err := s.awaitOnline(ctx); err != nil {
			return err
		}
		s.probes++
		s.res.SyncProbes++
		probe := fmt.Sprintf("soak-sync-%d", s.probes)
		mark := s.r.br.Events().Mark()
		if _, err := s.r.br.SendCommand(DeviceID, []byte(probe), broker.CommandOptions{}); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			continue
		}
		for {
			ev, seen, err := s.echo(ctx, mark, true)
			if err != nil {
				return err
			}
			if !seen {
				break // the probe was lost too: another one
			}
			if ev.Kind == echo.Ignored && ev.Payload == probe {
				return nil
			}
			if strings.HasPrefix(ev.Payload, "soak-sync-") {
				continue // an earlier probe, late: harmless
			}
			s.mismatch("echo %q after its command was reported lost", ev.Line)
			if ev.Kind == echo.LED {
				s.model.Level = ev.State
			}
		}
	}
}

// check compares an echo with the command and the model.
func (s *soak) check(ctx context.Context, desc string, p []byte, ev echo.Event) {
	cmd := string(p)
	switch cmd {
	case "on", "off", "toggle":
		if ev.Kind != echo.LED || ev.Cmd != cmd {
			s.mismatch("%s: echo %q", desc, ev.Line)
			if ev.Kind == echo.LED {
				s.model.Level = ev.State
			}
			return
		}
		want, _ := s.model.Apply(cmd)
		if ev.State != want {
			s.mismatch("%s: echo says led %d, the model %d", desc, ev.State, want)
			s.model.Level = ev.State
			return
		}
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := s.r.caps.Pins.WaitPin(c, LEDPin, want); err != nil && ctx.Err() == nil {
			s.mismatch("%s: pin %d stayed %d, the model and the echo say %d", desc, LEDPin, s.r.caps.Pins.Pin(LEDPin), want)
			return
		}
		s.res.Applied++
	default:
		if ev.Kind != echo.Ignored || ev.Payload != cmd {
			s.mismatch("%s: echo %q", desc, ev.Line)
			if ev.Kind == echo.LED {
				s.model.Level = ev.State
			}
			return
		}
		if lv := s.r.caps.Pins.Pin(LEDPin); lv != s.model.Level {
			s.mismatch("%s: junk ignored but the pin is %d, the model %d", desc, lv, s.model.Level)
			return
		}
		s.res.Ignored++
	}
}

// faults injects a random fault after a random (exponential) gap, until
// ctx ends.
func (s *soak) faults(ctx context.Context, rng *rand.Rand) {
	for {
		gap := time.Duration(rng.ExpFloat64() * float64(s.o.FaultEvery))
		t := time.NewTimer(gap)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C: // pacing of the fault schedule, not a synchronisation
		}
		f := s.o.Faults[rng.IntN(len(s.o.Faults))]
		fctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		err := s.r.Fault(fctx, f)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.res.Faults[f]++
		if err != nil {
			s.res.FaultErrs++
			if len(s.res.FaultWhy) < 10 {
				s.res.FaultWhy = append(s.res.FaultWhy, s.r.mask.Mask(fmt.Sprintf("%s: %v", f, err)))
			}
		}
		s.mu.Unlock()
	}
}
