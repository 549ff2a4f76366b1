// Package soak plays randomized commands (on, off, toggle and junk, on
// every channel, QoS 0) one at a time against a board behind the stand-in
// broker, while faults are injected at random moments, and accounts for
// every command: applied (its echo and the pin agree with the LED model),
// ignored (junk), or lost with the reason the platform gives. Each echo is
// judged by scenario.Checker, the scenario runner's own judgement.
package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/scenario"
)

// Target is a board behind the stand-in broker whose broker the soak can
// watch: the broker's event feed explains losses (the device's connection
// ended, it had not subscribed yet). *rig.Rig is one.
type Target interface {
	scenario.Target
	// Broker is the broker the board talks to.
	Broker() *broker.Broker
	// Masker masks the target's secrets in the result's texts.
	Masker() *report.Masker
}

// Options shape a soak.
type Options struct {
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
	// Device is the device id the board logs in with; default the demo
	// device (broker.DemoDeviceID), which is the rig's.
	Device string
}

// Bounds of the soak's own waits.
const (
	// pinGrace: how long the pin may lag the echo on a loaded machine.
	pinGrace = 5 * time.Second
	// lateGrace: how long an echo may still come once the broker saw the
	// connection end (or the device was offline at the send).
	lateGrace = 1500 * time.Millisecond
	// loginWait bounds the wait for the device to log in again after a
	// fault, and for a sync probe's echo.
	loginWait = 90 * time.Second
	// tailLines is how many serial lines an error shows.
	tailLines = 20
)

var channels = []scenario.Channel{scenario.Creq, scenario.Topic, scenario.HTTP}

// modelled are the faults whose effect the LED model follows from echoes
// alone: a power cycle (LED off) or a Wi-Fi outage left down would need
// more than that.
var modelled = []scenario.FaultKind{scenario.RestartBroker, scenario.Kick, scenario.DropConnection}

func (o Options) withDefaults() (Options, error) {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.FaultEvery == 0 {
		o.FaultEvery = 2 * time.Second
	}
	if len(o.Faults) == 0 {
		o.Faults = modelled
	}
	for _, f := range o.Faults {
		if !slices.Contains(modelled, f) {
			return o, fmt.Errorf("soak: fault %s: want restart_broker, kick or drop_connection", f)
		}
	}
	if o.EchoTimeout <= 0 {
		o.EchoTimeout = 10 * time.Second
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 10 * time.Second
	}
	if o.Device == "" {
		o.Device = broker.DemoDeviceID
	}
	return o, nil
}

// Run plays the soak on t: it begins a session with our firmware, then
// sends commands one at a time while another goroutine restarts the
// broker, kicks or drops the device at random moments. A loss is followed
// by sync probes until one is echoed, so that a late echo of a command
// reported lost is caught as a mismatch. An error means the soak could
// not go on (the board is gone, ctx ended); the result holds the figures
// so far.
func Run(ctx context.Context, t Target, o Options) (Result, error) {
	caps := t.Capabilities()
	if caps.Pin == nil {
		return Result{}, fmt.Errorf("soak: needs the virtual board (it kicks, restarts and reads the pin); the target is %s", t.Describe())
	}
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	for _, f := range o.Faults {
		if !caps.Supports(f) {
			return Result{}, fmt.Errorf("soak: the target (%s) cannot inject fault %s", t.Describe(), f)
		}
	}
	res := newResult(o.Seed)
	s := &state{t: t, br: t.Broker(), ser: t.Serial(), mask: t.Masker(), o: o, res: &res,
		rng:   rand.New(rand.NewPCG(o.Seed, 0x50a6)),
		check: scenario.Checker{Profile: echo.HIL, Platform: t.Platform(), Pin: caps.Pin}}
	s.scanned = s.br.Events().Mark() // the login and its subscription are after it
	if err := t.Begin(ctx, scenario.Setup{Scenario: "soak", Profile: echo.HIL.Name()}); err != nil {
		return res, fmt.Errorf("soak: setting up the board: %w", err)
	}
	if err := s.awaitLoginEcho(ctx); err != nil {
		return res, err
	}

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
	return res, err
}

// state is one soak under way.
type state struct {
	t     Target
	br    *broker.Broker
	ser   scenario.Serial
	mask  *report.Masker
	check scenario.Checker
	o     Options
	rng   *rand.Rand
	mu    sync.Mutex // res.Faults, FaultErrs, FaultWhy, Lost, Mismatches, Details (the fault goroutine, Progress)
	res   *Result
	model scenario.Model // the LED model the whole harness predicts from
	tail  []report.Line  // the last serial lines read, for errors
	// The device's subscription as the broker's feed tells it, followed
	// up to scanned.
	scanned    broker.Mark
	subscribed bool
	probes     int
}

// payload draws a command: on, off, toggle, or junk (random bytes that
// are none of them).
func (s *state) payload() []byte {
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
		if p := string(b); !echo.IsCommand(p) {
			return b
		}
	}
}

func (s *state) mismatch(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.res.Mismatches++
	if len(s.res.Details) < 20 {
		s.res.Details = append(s.res.Details, s.mask.Mask(fmt.Sprintf(format, args...)))
	}
}

func (s *state) lost(reason string) {
	s.mu.Lock()
	s.res.Lost[reason]++
	s.mu.Unlock()
}

// one sends a command and accounts for it. An error means the soak cannot
// go on (the board is gone, the context ended).
func (s *state) one(ctx context.Context) error {
	ch := channels[s.rng.IntN(len(channels))]
	p := s.payload()
	mark := s.br.Events().Mark()
	online := s.br.Online(s.o.Device)
	subscribed := s.subscribedAt(mark)
	s.res.Commands++
	s.res.ByChan[ch]++
	if err := s.t.Send(ctx, ch, p, scenario.SendOptions{Prompt: true}); err != nil {
		switch {
		case ctx.Err() != nil:
			s.res.Commands-- // never sent: the soak ended
			s.res.ByChan[ch]--
			return ctx.Err()
		case errors.Is(err, link.ErrGone):
			s.lost(LostGone)
			return fmt.Errorf("soak: sending %s: %w", scenario.ShowPayload(string(p)), err)
		}
		s.lost(s.refusalReason(err, online, mark))
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
			reason = lostUnexplained
		}
		s.lost(reason)
		return s.sync(ctx)
	}
	s.judge(ctx, desc, ch, string(p), ev)
	return nil
}

// judge accounts for a command from its echo, through the checker the
// runner uses: the echo against the model, then the pin against both.
func (s *state) judge(ctx context.Context, desc string, ch scenario.Channel, p string, ev echo.Event) {
	m := s.model // applied only once the echo agrees
	after, _ := m.Apply(p)
	sent := &scenario.Sent{Desc: desc, Payload: p, Channel: ch, Before: s.model.Level, After: after}
	done, level, err := s.check.Echo(sent, ev)
	if err == nil && !done {
		err = fmt.Errorf("echo %q is a receipt; the hil profile prints none", ev.Line)
	}
	if err != nil {
		s.mismatch("%s: %v", desc, err)
		if ev.Kind == echo.LED {
			s.model.Level = ev.State // follow the board from here on
		}
		return
	}
	s.model = m
	if _, err := s.check.CheckPin(ctx, sent, level, pinGrace); err != nil && ctx.Err() == nil {
		s.mismatch("%s: %v", desc, err)
		return
	}
	if sent.Command() {
		s.res.Applied++
	} else {
		s.res.Ignored++
	}
}

// echo waits for the next command echo on the serial line (an LED,
// ignored or boot event; a malformed echo is a mismatch): up to
// EchoTimeout while the device's connection holds, a short grace once the
// broker saw it end (or when the device was offline at the send).
func (s *state) echo(ctx context.Context, mark broker.Mark, online bool) (echo.Event, bool, error) {
	deadline := time.Now().Add(s.o.EchoTimeout)
	if !online {
		deadline = time.Now().Add(lateGrace)
	}
	ended := false
	for {
		if !ended && s.endedSince(mark) {
			ended = true
			if d := time.Now().Add(lateGrace); d.Before(deadline) {
				deadline = d
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return echo.Event{}, false, nil
		}
		// A slice at a time: the connection may end meanwhile, which
		// shortens the wait.
		l, err := s.next(ctx, min(250*time.Millisecond, left))
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				continue
			}
			return echo.Event{}, false, err
		}
		switch ev := s.check.Profile.Parse(l.Text); ev.Kind {
		case echo.LED, echo.Ignored, echo.Boot:
			return ev, true, nil
		case echo.Malformed:
			s.mismatch("malformed echo %q: %v", ev.Line, ev.Err)
		}
	}
}

// next reads one serial line within d, remembering the last few for
// error messages. It returns context.DeadlineExceeded when d passes.
func (s *state) next(ctx context.Context, d time.Duration) (report.Line, error) {
	nctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	l, err := s.ser.Next(nctx)
	switch {
	case err == nil:
		if len(s.tail) == tailLines {
			s.tail = append(s.tail[:0], s.tail[1:]...)
		}
		s.tail = append(s.tail, l)
		return l, nil
	case ctx.Err() != nil:
		return l, ctx.Err()
	case nctx.Err() != nil && errors.Is(err, nctx.Err()):
		return l, context.DeadlineExceeded
	}
	return l, fmt.Errorf("soak: serial: %w%s", err, s.tailText())
}

// tailText is the last serial lines read, for errors.
func (s *state) tailText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nlast %d serial lines read:", len(s.tail))
	if len(s.tail) == 0 {
		b.WriteString(" (none)")
	}
	for _, l := range s.tail {
		fmt.Fprintf(&b, "\n  %s %s", l.At.Format("15:04:05.000"), s.mask.Mask(l.Text))
	}
	return b.String()
}

// awaitLoginEcho reads past the lines of the board's start up to its
// login echo (Begin has seen it already, so this is quick): commands'
// echoes come after it.
func (s *state) awaitLoginEcho(ctx context.Context) error {
	wctx, cancel := context.WithTimeout(ctx, loginWait)
	defer cancel()
	for {
		l, err := s.next(wctx, loginWait)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("timed out after %s%s", loginWait, s.tailText())
			}
			return fmt.Errorf("soak: waiting for the board's login echo %q: %w", echo.MQTTUp, err)
		}
		if s.check.Profile.Parse(l.Text).Kind == echo.MQTTUp {
			return nil
		}
	}
}

// awaitOnline paces the soak after a refused send: the next command goes
// out once the device is logged in again (bounded; a device that never
// comes back ends the soak with an error).
func (s *state) awaitOnline(ctx context.Context) error {
	mark := s.br.Events().Mark()
	if s.br.Online(s.o.Device) {
		return nil
	}
	c, cancel := context.WithTimeout(ctx, loginWait)
	defer cancel()
	_, err := s.br.Events().WaitAfter(c, mark, broker.Is(broker.Connected, s.o.Device))
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("soak: the device did not log in again within %s: %w%s", loginWait, err, s.tailText())
	}
	return err
}

// sync sends junk probes on $creq until one is echoed; every command echo
// before it is a late echo of a command reported lost: a mismatch. It
// gives up after loginWait without an echoed probe.
func (s *state) sync(ctx context.Context) error {
	give := time.Now().Add(loginWait)
	for {
		if time.Now().After(give) {
			return fmt.Errorf("soak: no sync probe was echoed within %s (%d sent)%s", loginWait, s.probes, s.tailText())
		}
		if err := s.awaitOnline(ctx); err != nil {
			return err
		}
		s.probes++
		s.res.SyncProbes++
		probe := fmt.Sprintf("soak-sync-%d", s.probes)
		mark := s.br.Events().Mark()
		if err := s.t.Send(ctx, scenario.Creq, []byte(probe), scenario.SendOptions{Prompt: true}); err != nil {
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case errors.Is(err, link.ErrGone):
				return fmt.Errorf("soak: sending a sync probe: %w", err)
			}
			continue // refused (the device went again): another one once it is back
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

// faults injects a random fault after a random (exponential) gap, until
// ctx ends.
func (s *state) faults(ctx context.Context, rng *rand.Rand) {
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
		err := s.t.Fault(fctx, f)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		s.res.Faults[f]++
		if err != nil {
			s.res.FaultErrs++
			if len(s.res.FaultWhy) < 10 {
				s.res.FaultWhy = append(s.res.FaultWhy, s.mask.Mask(fmt.Sprintf("%s: %v", f, err)))
			}
		}
		s.mu.Unlock()
	}
}
