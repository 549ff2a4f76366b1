package scenario

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/report"
)

// Runner plays scenarios against a Target and reports to a Sink.
type Runner struct {
	Target Target
	Sink   report.Sink // may be nil
	// Profile, when set, is the run's echo profile (--profile): scenarios
	// written for another profile are skipped. Empty: each scenario's own.
	Profile string
	// Timeouts override DefaultTimeouts for the whole run (zero fields keep
	// the default); a scenario's and a step's own timeouts win over them.
	Timeouts Timeouts
	// PinGrace bounds how long the pin may lag the echo: the virtual board
	// reports the pin and the serial line separately. Default 2s, for a
	// loaded machine; a pin that agrees ends the wait at once.
	PinGrace time.Duration
	// TailLines is how many serial lines a failure message shows (default 20).
	TailLines int
}

// Run plays every scenario in order and returns the run's results.
func (r *Runner) Run(ctx context.Context, scs []*Scenario) report.Run {
	run := report.Run{Target: r.Target.Describe(), Started: time.Now()}
	var gone error
	for _, sc := range scs {
		err := ctx.Err()
		if err == nil {
			err = gone
		}
		if err != nil {
			// Interrupted, or the board is gone: the rest is reported, not
			// attempted (each would only fail the same way).
			run.Scenarios = append(run.Scenarios, report.Scenario{Name: sc.Name, File: sc.File,
				Status: report.Skip, Reason: "not run: " + err.Error()})
			continue
		}
		res := r.RunScenario(ctx, sc)
		run.Scenarios = append(run.Scenarios, res)
		// A failure may be the board going away; a pass proves it is there.
		if g := r.Target.Capabilities().Liveness; g != nil && res.Status == report.Fail {
			gone = g.Gone(ctx)
		}
	}
	run.Duration = time.Since(run.Started)
	return run
}

// SkipReason says why sc cannot run on this target, or "".
func (r *Runner) SkipReason(sc *Scenario) string {
	if r.Profile != "" && sc.Profile != r.Profile {
		return fmt.Sprintf("written for profile %s; this run uses profile %s", sc.Profile, r.Profile)
	}
	if why := r.Target.Platform().SkipReason(sc); why != "" {
		return why
	}
	caps := r.Target.Capabilities()
	if sc.Needs(Virtual) && !caps.Virtual {
		return "needs a virtual board (requires: [virtual]); the target is " + r.Target.Describe()
	}
	for _, f := range sc.FaultsUsed() {
		if !caps.Supports(f) {
			return fmt.Sprintf("the target (%s) cannot inject fault %s", r.Target.Describe(), f)
		}
	}
	if caps.Heap == nil && slices.ContainsFunc(sc.Steps, func(st Step) bool { return st.Kind == HeapStep }) {
		return fmt.Sprintf("the target (%s) cannot measure the firmware's heap", r.Target.Describe())
	}
	if caps.Skip != nil {
		return caps.Skip(sc)
	}
	return ""
}

// RunScenario plays one scenario. It stops at the first failing step.
func (r *Runner) RunScenario(ctx context.Context, sc *Scenario) (res report.Scenario) {
	// res is named so that the deferred Duration reaches the caller.
	res = report.Scenario{Name: sc.Name, File: sc.File, Started: time.Now()}
	if r.Sink != nil {
		r.Sink.ScenarioStarted(sc.Name, len(sc.Steps))
	}
	defer func() {
		res.Duration = time.Since(res.Started)
		if r.Sink != nil {
			r.Sink.ScenarioDone(res)
		}
	}()
	res.Steps = make([]report.Step, len(sc.Steps))
	for i, st := range sc.Steps {
		res.Steps[i] = report.Step{Index: i, Line: st.Line, Kind: st.Kind.String(), Desc: st.String(),
			Status: report.NotRun, Expected: st.After, Echo: report.Unknown, Pin: report.Unknown}
	}
	if why := r.SkipReason(sc); why != "" {
		res.Status, res.Reason = report.Skip, why
		return res
	}
	prof, err := echo.Lookup(sc.Profile)
	if err != nil {
		res.Status, res.Reason = report.Fail, err.Error()
		return res
	}
	tail := r.TailLines
	if tail <= 0 {
		tail = 20
	}
	grace := r.PinGrace
	if grace <= 0 {
		grace = 2 * time.Second
	}
	plat, pin := r.Target.Platform(), r.Target.Capabilities().Pin
	x := &execution{r: r, sc: sc, prof: prof, res: &res, plat: plat, ser: r.Target.Serial(), pin: pin,
		check: Checker{Profile: prof, Platform: plat, Pin: pin},
		to:    sc.Timeouts.or(r.Timeouts.or(DefaultTimeouts)), tail: tail, grace: grace,
		echoLevel: report.Unknown, powerUp: true}
	err = x.play(ctx)
	res.Serial = x.log
	if err == nil {
		res.Status = report.Pass
		return res
	}
	res.Status = report.Fail
	var sf *stepFailure
	if errors.As(err, &sf) && sf.idx >= 0 {
		st := sc.Steps[sf.idx]
		res.Steps[sf.idx].Status, res.Steps[sf.idx].Message = report.Fail, sf.msg
		res.Reason = fmt.Sprintf("step %d (line %d: %s): %s", sf.idx+1, st.Line, st, sf.msg)
	} else {
		res.Reason = err.Error()
	}
	res.Reason += "\n" + x.tailText()
	return res
}

// stepFailure is a failure attributed to one step.
type stepFailure struct {
	idx int
	msg string
}

func (f *stepFailure) Error() string { return f.msg }

// pending is a send whose echo has not been fully seen yet.
type pending struct {
	idx    int
	step   *Step
	sentAt time.Time
	sent   Sent // what the checker compares its echo with
}

// execution is the state of one scenario being played.
type execution struct {
	r     *Runner
	sc    *Scenario
	prof  echo.Profile
	plat  Platform
	res   *report.Scenario
	ser   Serial
	pin   Pin
	check Checker // the echo and pin judgement, shared with the soak
	to    Timeouts
	tail  int
	grace time.Duration

	log    []report.Line
	events []echo.Event
	queue  []*pending
	cur    int // the step being played

	echoLevel   int  // last LED level the echo reported; report.Unknown
	powerUp     bool // no LED echo since the board started: the model's 0 is assumed
	bootOK      bool // a boot event is expected now (after Begin or power_cycle)
	lastIgnored bool // the last completed send was seen to be ignored
	prevStart   int  // log index where the previous step began
	thisStart   int  // log index where the current step began
	echoCursor  int  // log index after the last line an expect matched
}

func (x *execution) fail(idx int, format string, args ...any) error {
	idx = min(idx, len(x.sc.Steps)-1) // the final drain runs after the last step
	return &stepFailure{idx: idx, msg: fmt.Sprintf(format, args...)}
}

// tailText is the last serial lines, for failure messages.
func (x *execution) tailText() string {
	from := max(0, len(x.log)-x.tail)
	var b strings.Builder
	fmt.Fprintf(&b, "last %d serial lines:", len(x.log)-from)
	if len(x.log) == 0 {
		b.WriteString(" (none)")
	}
	for _, l := range x.log[from:] {
		fmt.Fprintf(&b, "\n  %s %s", l.At.Format("15:04:05.000"), strings.ToValidUTF8(l.Text, "\uFFFD"))
	}
	return b.String()
}

func (x *execution) play(ctx context.Context) error {
	t := x.r.Target
	x.cur = -1
	bctx, cancel := context.WithTimeout(ctx, x.to.Ready)
	err := t.Begin(bctx, Setup{Scenario: x.sc.Name, Profile: x.sc.Profile, WrongCredentials: x.sc.WrongCredentials})
	cancel()
	if err != nil {
		return fmt.Errorf("setting up the board: %w", err)
	}
	x.bootOK = true
	if !x.sc.WrongCredentials {
		if err := x.awaitKind(ctx, x.to.Ready, echo.MQTTUp, "the board to log in"); err != nil {
			return err
		}
	}
	for i := range x.sc.Steps {
		st := &x.sc.Steps[i]
		x.prevStart, x.thisStart = x.thisStart, len(x.log)
		x.cur = i
		if err := ctx.Err(); err != nil {
			return x.fail(i, "interrupted: %v", err)
		}
		if err := x.step(ctx, i, st); err != nil {
			return err
		}
		// A send passes in complete(), once its echo is in.
		if st.Kind != SendStep {
			x.res.Steps[i].Status = report.Pass
			x.done(i)
		}
	}
	x.cur = len(x.sc.Steps)
	return x.drain(ctx, x.to.Send)
}

func (x *execution) done(i int) {
	if x.r.Sink != nil {
		x.r.Sink.StepDone(x.sc.Name, x.res.Steps[i])
	}
}

func (x *execution) timeout(st *Step, def time.Duration) time.Duration {
	if st.Timeout > 0 {
		return st.Timeout
	}
	return def
}

func (x *execution) step(ctx context.Context, i int, st *Step) error {
	switch st.Kind {
	case SendStep:
		sctx, cancel := context.WithTimeout(ctx, x.timeout(st, x.to.Send))
		sentAt := time.Now()
		err := x.r.Target.Send(sctx, st.Channel, []byte(st.Payload), SendOptions{QoS: st.QoS})
		cancel()
		if err != nil {
			return x.fail(i, "sending failed: %v", err)
		}
		x.queue = append(x.queue, &pending{idx: i, step: st, sentAt: sentAt,
			sent: Sent{Desc: st.String(), Payload: st.Payload, Channel: st.Channel, Before: st.Before, After: st.After}})
		if st.NoWait {
			return nil
		}
		return x.drain(ctx, x.timeout(st, x.to.Send))

	case SyncStep:
		return x.drain(ctx, x.timeout(st, x.to.Send))

	case ExpectLEDStep:
		if err := x.drain(ctx, x.timeout(st, x.to.Expect)); err != nil {
			return err
		}
		return x.checkLevel(ctx, i, st.Level)

	case ExpectIgnoredStep:
		if err := x.drain(ctx, x.timeout(st, x.to.Expect)); err != nil {
			return err
		}
		if !x.lastIgnored {
			return x.fail(i, "the last send was not seen to be ignored")
		}
		return nil

	case ExpectEchoStep:
		return x.expectLine(ctx, i, x.timeout(st, x.to.Expect), fmt.Sprintf("a serial line matching /%s/", st.Pattern),
			func(l report.Line, _ echo.Event) bool { return st.Pattern.MatchString(l.Text) })

	case ExpectEventStep:
		rc := x.plat.ResolveRC(st.RC)
		what := "the echo " + st.String()[len("expect event "):]
		if rc != st.RC {
			what += fmt.Sprintf(" (%d on %s)", rc, x.plat)
		}
		return x.expectLine(ctx, i, x.timeout(st, x.to.Expect), what,
			func(_ report.Line, ev echo.Event) bool {
				return ev.Kind == st.Event && (rc < 0 || ev.RC == rc) && (st.Reason == "" || ev.Reason == st.Reason)
			})

	case ExpectBrokerStep:
		bctx, cancel := context.WithTimeout(ctx, x.timeout(st, x.to.Expect))
		defer cancel()
		want := st.Broker
		want.RC = x.plat.ResolveRC(want.RC)
		if err := x.r.Target.AwaitBroker(bctx, want); err != nil {
			return x.fail(i, "waiting for %s: %v", want, err)
		}
		return nil

	case WaitStep:
		t := time.NewTimer(st.Duration)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return x.fail(i, "interrupted: %v", ctx.Err())
		}

	case FaultStep:
		return x.fault(ctx, i, st)

	case HeapStep:
		if err := x.drain(ctx, x.timeout(st, x.to.Send)); err != nil {
			return err
		}
		// Boot, login and each command take a request of their own.
		hctx, cancel := context.WithTimeout(ctx, x.timeout(st, 2*x.to.Ready+time.Duration(st.Commands)*x.to.Send))
		defer cancel()
		h, err := x.r.Target.Capabilities().Heap.ProbeHeap(hctx, st.Commands)
		if h.Size > 0 {
			x.res.Heap = &h
		}
		if err != nil {
			return x.fail(i, "%v", err)
		}
		// It ends with a soft reset, as a power cycle does.
		x.bootOK, x.powerUp, x.echoLevel = true, true, report.Unknown
		return nil
	}
	return x.fail(i, "unknown step kind %d", st.Kind)
}

// faultEchoes are the echo events that show the board went through a fault:
// one stage after another, any kind of a stage will do. Kinds the profile
// never prints are left out.
func (x *execution) faultEchoes(f FaultKind) [][]echo.Kind {
	ready := echo.MQTTUp
	if x.sc.WrongCredentials {
		ready = echo.MQTTRefused
	}
	var seq [][]echo.Kind
	switch f {
	case RestartBroker, Kick, DropConnection:
		seq = [][]echo.Kind{{echo.MQTTDown}, {ready}}
	case PowerCycle:
		seq = [][]echo.Kind{{echo.Boot}, {ready}}
	case WifiDown:
		// Our firmware ends the session ("mqtt down reason=wifi" or a
		// socket error) at once; "wifi down" only after a failed re-join.
		seq = [][]echo.Kind{{echo.MQTTDown, echo.WifiDown}}
	case WifiUp:
		seq = [][]echo.Kind{{ready}}
	}
	var out [][]echo.Kind
	for _, stage := range seq {
		var keep []echo.Kind
		for _, k := range stage {
			if x.prof.Emits(k) {
				keep = append(keep, k)
			}
		}
		if len(keep) > 0 {
			out = append(out, keep)
		}
	}
	return out
}

func (x *execution) fault(ctx context.Context, i int, st *Step) error {
	to := x.timeout(st, x.to.Fault)
	// Commands sent offline are delivered by wifi_up; anything else in
	// flight must land before the fault.
	if st.Fault != WifiUp {
		if err := x.drain(ctx, x.timeout(st, x.to.Send)); err != nil {
			return err
		}
	}
	fctx, cancel := context.WithTimeout(ctx, to)
	err := x.r.Target.Fault(fctx, st.Fault)
	cancel()
	if err != nil {
		return x.fail(i, "injecting %s: %v", st.Fault, err)
	}
	if st.Fault == PowerCycle {
		x.bootOK, x.powerUp, x.echoLevel = true, true, report.Unknown
	}
	for _, stage := range x.faultEchoes(st.Fault) {
		names := make([]string, len(stage))
		for j, k := range stage {
			names[j] = fmt.Sprintf("%q", k)
		}
		what := fmt.Sprintf("the echo %s after %s", strings.Join(names, " or "), st.Fault)
		err := x.await(ctx, to, what, func(_ report.Line, ev echo.Event) bool { return slices.Contains(stage, ev.Kind) })
		if err != nil {
			return err
		}
	}
	return nil
}

// checkLevel compares the LED level the echo and the pin report with want.
func (x *execution) checkLevel(ctx context.Context, i int, want int) error {
	rs := &x.res.Steps[i]
	rs.Echo = x.echoLevel
	if x.echoLevel != report.Unknown && x.echoLevel != want {
		return x.fail(i, "model expects LED=%d, the last echo said %d", want, x.echoLevel)
	}
	if x.pin != nil {
		pctx, cancel := context.WithTimeout(ctx, x.grace)
		got, err := x.pin.Await(pctx, want)
		cancel()
		rs.Pin = got
		if got != want {
			if x.echoLevel != report.Unknown {
				return x.fail(i, "echo and pin disagree: echo says LED=%d, GPIO pin reads %d (%v)", x.echoLevel, got, err)
			}
			return x.fail(i, "model expects LED=%d, GPIO pin reads %d (%v)", want, got, err)
		}
		return nil
	}
	if x.echoLevel == report.Unknown {
		if x.powerUp {
			rs.Message = "not observable: no LED echo since power-up and no pin; the model's power-up level is assumed"
		} else {
			rs.Message = "not observable: the profile echoes no level for the last command and there is no pin"
		}
	}
	return nil
}

// next reads one line, records it and classifies it.
func (x *execution) next(ctx context.Context) (report.Line, echo.Event, error) {
	l, err := x.ser.Next(ctx)
	if err != nil {
		return l, echo.Event{}, err
	}
	ev := x.prof.Parse(l.Text)
	x.log = append(x.log, l)
	x.events = append(x.events, ev)
	return l, ev, nil
}

// await reads lines until done is true, feeding every event to handle. It
// fails after timeout without progress, naming what it waited for.
func (x *execution) await(ctx context.Context, timeout time.Duration, what string, done func(report.Line, echo.Event) bool) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if err := ctx.Err(); err != nil {
			return x.fail(x.cur, "interrupted while waiting for %s: %v", what, err)
		}
		l, ev, err := x.next(wctx)
		if err != nil {
			if ctx.Err() != nil {
				return x.fail(x.cur, "interrupted while waiting for %s: %v", what, ctx.Err())
			}
			if errors.Is(err, context.DeadlineExceeded) {
				return x.fail(x.blame(), "timed out after %s waiting for %s", timeout, what)
			}
			return x.fail(x.cur, "serial line failed while waiting for %s: %v", what, err)
		}
		if err := x.handle(ctx, l, ev); err != nil {
			return err
		}
		if done(l, ev) {
			return nil
		}
	}
}

// blame is the step a timeout is charged to: the oldest send in flight,
// else the current step.
func (x *execution) blame() int {
	if len(x.queue) > 0 {
		return x.queue[0].idx
	}
	return min(x.cur, len(x.sc.Steps)-1)
}

func (x *execution) awaitKind(ctx context.Context, timeout time.Duration, k echo.Kind, what string) error {
	return x.await(ctx, timeout, what, func(_ report.Line, ev echo.Event) bool { return ev.Kind == k })
}

// expectLine looks for a line among those read since the previous step
// began (so `send` then `expect: {echo: ...}` works), then waits for more.
func (x *execution) expectLine(ctx context.Context, i int, timeout time.Duration, what string, match func(report.Line, echo.Event) bool) error {
	for j := max(x.prevStart, x.echoCursor); j < len(x.log); j++ {
		if match(x.log[j], x.events[j]) {
			x.echoCursor = j + 1
			return nil
		}
	}
	if err := x.await(ctx, timeout, what, match); err != nil {
		return err
	}
	x.echoCursor = len(x.log)
	return nil
}

// drain waits until every send in flight has its echo; timeout runs from
// the last progress, so a long burst only fails when the board stalls.
func (x *execution) drain(ctx context.Context, timeout time.Duration) error {
	for len(x.queue) > 0 {
		n := len(x.queue)
		p := x.queue[0]
		what := fmt.Sprintf("the echo of %s (line %d; model: LED=%d)", p.step, p.step.Line, p.step.After)
		if n > 1 {
			what += fmt.Sprintf(", %d more in flight", n-1)
		}
		if err := x.await(ctx, timeout, what, func(report.Line, echo.Event) bool { return len(x.queue) < n }); err != nil {
			return err
		}
	}
	return nil
}

// handle checks one event against the sends in flight and the board's
// expected behaviour.
func (x *execution) handle(ctx context.Context, l report.Line, ev echo.Event) error {
	switch ev.Kind {
	case echo.Malformed:
		return x.fail(x.blame(), "malformed echo line %q: %v", ev.Line, ev.Err)
	case echo.Boot:
		if !x.bootOK {
			return x.fail(x.blame(), "the board rebooted unexpectedly: %q", ev.Line)
		}
	case echo.MQTTUp, echo.MQTTRefused:
		x.bootOK = false
	case echo.Received, echo.LED, echo.Ignored:
		return x.match(ctx, l, ev)
	}
	return nil
}

// match pairs a command echo with the oldest send in flight.
func (x *execution) match(ctx context.Context, l report.Line, ev echo.Event) error {
	if len(x.queue) == 0 {
		return x.fail(x.blame(), "unexpected echo %q: no command is in flight", ev.Line)
	}
	p := x.queue[0]
	done, level, err := x.check.Echo(&p.sent, ev)
	if err != nil {
		return x.fail(p.idx, "%v", err)
	}
	if !done {
		return nil // the receipt; the result follows
	}
	return x.complete(ctx, p, l.At, level)
}

// complete records a send whose echo has been seen and, when it is the
// only command in flight, compares the pin.
func (x *execution) complete(ctx context.Context, p *pending, at time.Time, echoLevel int) error {
	x.queue = x.queue[1:]
	rs := &x.res.Steps[p.idx]
	rs.Latency = at.Sub(p.sentAt)
	rs.Echo = echoLevel
	x.lastIgnored = !p.step.Command
	switch {
	case echoLevel != report.Unknown:
		x.echoLevel, x.powerUp = echoLevel, false
	case p.step.Command:
		// The profile printed no level for a command (tutorial toggle).
		x.echoLevel, x.powerUp = report.Unknown, false
	}
	// Later sends are in flight: the pin may already show them.
	if x.pin != nil && len(x.queue) == 0 {
		grace := x.grace
		if echoLevel == report.Unknown && p.step.Command {
			grace = x.timeout(p.step, x.to.Send) // the pin is the only witness
		}
		got, err := x.check.CheckPin(ctx, &p.sent, echoLevel, grace)
		rs.Pin = got
		if err != nil {
			return x.fail(p.idx, "%v", err)
		}
	}
	if echoLevel == report.Unknown && p.step.Command && x.pin == nil {
		rs.Message = "LED level not echoed by profile " + x.prof.Name()
	}
	rs.Status = report.Pass
	x.done(p.idx)
	return nil
}
