// Package bench measures a broker under a simulated fleet of OneNET LED
// boards: logins per second, the command round trip (command sent ->
// device reply received), sustained commands per second, memory per
// connected device and CPU, for the embedded OneNET stand-in and for a
// private Mosquitto started with the same credentials and topic rights.
// Every command is accounted for: replied, or lost with a reason.
package bench

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"sort"
	"sync"
	"time"

	"github.com/onenet-hil/hil/harness/fleet"
)

// Path is how commands reach the devices and replies come back.
type Path string

// Command paths.
const (
	// PathTopic: a custom topic per device (cmd/{id}) and a reply topic
	// (rsp/{id}); the same on every broker.
	PathTopic Path = "topic"
	// PathCreq: OneNET's $creq/{uuid} push and the device's $crsp/{uuid}
	// reply (embedded broker only).
	PathCreq Path = "creq"
	// PathHTTP: OneNET's HTTP API POST /cmds, then $creq/$crsp
	// (embedded broker only).
	PathHTTP Path = "http"
)

// Topic prefixes of the custom-topic path.
const (
	CommandPrefix = "cmd/"
	ReplyPrefix   = "rsp/"
)

// Options describe one measurement.
type Options struct {
	Devices  int
	Rate     float64       // commands per second offered
	Duration time.Duration // length of the load phase
	Path     Path
	// Timeout: a command with no reply after this long is lost
	// ("timeout"). Default 5 s.
	Timeout time.Duration
	// FleetWorker, when set, runs the fleet in that child process (a
	// program that calls fleet.Serve) so its memory and CPU are not
	// charged to an in-process broker. Empty: the fleet runs in this
	// process.
	FleetWorker []string
	// MochiWorker is the child process that serves bare Mochi (a program
	// that calls ServeMochi); RunMochi needs it.
	MochiWorker []string
	// LoginConcurrency: logins in flight at once (default 64).
	LoginConcurrency int
	// Progress, when set, is called about four times a second.
	Progress func(Progress)
	// AfterLogin, when set, is called once the fleet is in, before the
	// load (tests use it to inject faults).
	AfterLogin func(FleetControl)
}

// FleetControl lets a caller act on the running fleet.
type FleetControl interface {
	Drop(deviceID string) error
	Inject(deviceID string, f fleet.Fault) error
	DeviceIDs() []string
}

// Progress is a running total during one measurement.
type Progress struct {
	Broker   string
	Phase    string // "login", "load", "drain"
	Elapsed  time.Duration
	Duration time.Duration
	Commands int64
	Replied  int64
	Lost     int64
}

// Result is one broker's figures.
type Result struct {
	Broker    string  `json:"broker"`
	Path      Path    `json:"path"`
	Devices   int     `json:"devices"`
	Connected int     `json:"connected"`
	LoginFail int     `json:"login_failed"`
	LoginsPS  float64 `json:"logins_per_s"`
	Rate      float64 `json:"rate"`
	DurationS float64 `json:"duration_s"`

	Commands   int64            `json:"commands"`
	Replied    int64            `json:"replied"`
	Lost       int64            `json:"lost"`
	LostBy     map[string]int64 `json:"lost_reasons"`
	LostSample []LostCommand    `json:"lost_examples,omitempty"`
	Wrong      int64            `json:"wrong_state"`
	Late       int64            `json:"late_replies"`
	Unknown    int64            `json:"unmatched_replies"`

	ThroughputCPS float64 `json:"throughput_cps"`
	P50ms         float64 `json:"p50_ms"`
	P90ms         float64 `json:"p90_ms"`
	P99ms         float64 `json:"p99_ms"`
	MaxMs         float64 `json:"max_ms"`

	MemPerDeviceKB     float64 `json:"mem_per_device_kb"`
	HeapPerDeviceKB    float64 `json:"heap_per_device_kb,omitempty"`
	PeakRSSPerDeviceKB float64 `json:"peak_rss_per_device_kb,omitempty"`
	MemMethod          string  `json:"mem_method"`

	BrokerCPUPercent float64 `json:"broker_cpu_percent"`
	BenchCPUPercent  float64 `json:"bench_cpu_percent,omitempty"`
	FleetCPUPercent  float64 `json:"fleet_cpu_percent,omitempty"`
	FleetRSSPerDevKB float64 `json:"fleet_rss_per_device_kb,omitempty"`
	CPUMethod        string  `json:"cpu_method"`

	// Go brokers only (ours and bare Mochi): Go's collector during the
	// load. GCCycles is reported even when zero (GoRuntime says there
	// was a runtime to read).
	GoRuntime        bool    `json:"go_runtime,omitempty"`
	GOGC             int     `json:"gogc,omitempty"`
	GCCycles         uint32  `json:"gc_cycles"`
	GCPauseMaxMs     float64 `json:"gc_pause_max_ms,omitempty"`
	GCCPUPercent     float64 `json:"gc_cpu_percent,omitempty"`
	AllocPerCommandB float64 `json:"alloc_per_command_bytes,omitempty"`
	HeapAfterLoginMB float64 `json:"heap_after_login_mb,omitempty"`
	// FullGCMs is the wall time of one full, forced collection (and
	// return of memory to the OS) with the fleet logged in: what a GC
	// cycle costs at this fleet size.
	FullGCMs float64 `json:"full_gc_ms,omitempty"`

	Notes []string `json:"notes,omitempty"`
}

// target is one broker under test.
type target interface {
	name() string
	addr() string
	devices(n int) []fleet.Device
	// connect opens the command sender and reply collector.
	connect(ctx context.Context, path Path, l *ledger) (sender, error)
	// memory returns the broker's resident KiB and, when it can be told
	// apart, its live Go heap and stacks in KiB (-1 otherwise).
	memory() (rssKB, heapKB int64)
	// rss is the broker's resident KiB now, without a collection (read
	// during the load).
	rss() int64
	// runtimeStats are a Go broker's runtime figures (ok false for
	// Mosquitto or an external broker).
	runtimeStats() (st RuntimeStats, ok bool)
	cpu() time.Duration
	inProcess() bool
	close() error
}

// sender issues commands. send returns the reply key.
type sender interface {
	send(deviceID string, payload []byte) (key string, err error)
	workers() int // how many sends may run at once
	byDevice() bool
	close()
}

// fleetHandle is an in-process or child-process fleet.
type fleetHandle interface {
	Logins() fleet.LoginStats
	Drop(id string) error
	Inject(id string, f fleet.Fault) error
	Close() error
}

type control struct {
	f   fleetHandle
	ids []string
}

func (c control) Drop(id string) error                  { return c.f.Drop(id) }
func (c control) Inject(id string, f fleet.Fault) error { return c.f.Inject(id, f) }
func (c control) DeviceIDs() []string                   { return c.ids }

func (o *Options) check() error {
	if o.Devices <= 0 {
		return errors.New("devices must be positive")
	}
	if o.Rate <= 0 {
		return errors.New("rate must be positive")
	}
	if o.Duration <= 0 {
		return errors.New("duration must be positive")
	}
	switch o.Path {
	case "":
		o.Path = PathTopic
	case PathTopic, PathCreq, PathHTTP:
	default:
		return fmt.Errorf("unknown path %q (topic, creq or http)", o.Path)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.LoginConcurrency <= 0 {
		o.LoginConcurrency = 64
	}
	return nil
}

// run measures one target: the fleet logs in, commands are paced at
// o.Rate for o.Duration, the replies still on their way drain, and then
// every figure is read.
func run(ctx context.Context, t target, o Options) (*Result, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	m := newMeasurement(t, o)
	snd, err := t.connect(ctx, o.Path, m.l)
	if err != nil {
		return nil, err
	}
	defer snd.close()
	m.snd = snd

	var heap0 int64
	m.rss0, heap0 = t.memory()
	m.progress("login", 0)
	if err := m.startFleet(ctx); err != nil {
		return nil, fmt.Errorf("fleet: %w", err)
	}
	defer m.closeFleet()
	if err := m.loggedIn(heap0); err != nil {
		return m.res, err
	}
	if o.AfterLogin != nil {
		o.AfterLogin(control{f: m.fl, ids: m.ids})
	}

	base := m.baseline()
	stopSweep := m.sweep()
	ld := m.load(ctx)
	m.gcFigures(base, ld)
	m.drain(ld.interrupted)
	stopSweep()
	m.l.expire(time.Now(), o.Timeout, true)
	m.usageFigures(base, ld)
	m.progress("done", o.Duration)
	m.ledgerFigures()
	m.finalNotes(ld)
	return m.res, nil
}

// measurement is one run's state, shared by its phases.
type measurement struct {
	t    target
	o    Options
	devs []fleet.Device
	ids  []string
	l    *ledger
	res  *Result
	snd  sender

	fl         fleetHandle
	remote     *fleet.Remote // the fleet's child process, if it has one
	closeFleet func() error  // once; later calls return the first's error
	rss0, rss1 int64         // broker RSS (KiB) before and after the login
	n          float64       // devices logged in
}

func newMeasurement(t target, o Options) *measurement {
	devs := t.devices(o.Devices)
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = d.ID
	}
	l := newLedger(ids)
	// Room for every sample of the load up front: regrowing it would be
	// the bench's garbage, counted in an in-process broker's figures.
	l.samples = make([]time.Duration, 0, min(int(o.Rate*o.Duration.Seconds()*1.05)+1024, 1<<24))
	return &measurement{
		t: t, o: o, devs: devs, ids: ids, l: l,
		res: &Result{Broker: t.name(), Path: o.Path, Devices: o.Devices, Rate: o.Rate, DurationS: o.Duration.Seconds()},
	}
}

// progress reports the running totals, if the caller asked for them.
func (m *measurement) progress(phase string, el time.Duration) {
	if m.o.Progress != nil {
		c, r, lost := m.l.snapshot()
		m.o.Progress(Progress{Broker: m.t.name(), Phase: phase, Elapsed: el, Duration: m.o.Duration, Commands: c, Replied: r, Lost: lost})
	}
}

// startFleet starts the fleet, in this process or in FleetWorker, and
// waits until its devices have logged in.
func (m *measurement) startFleet(ctx context.Context) error {
	fopts := fleet.Options{
		Addr: m.t.addr(), Devices: m.devs, Concurrency: m.o.LoginConcurrency, KeepAlive: 120 * time.Second,
		OnEvent: func(e fleet.Event) {
			if e.Kind == fleet.Dropped {
				m.l.dropped(e.Device, e.Reason)
			}
		},
	}
	if m.o.Path == PathTopic {
		fopts.CommandPrefix, fopts.ReplyPrefix = CommandPrefix, ReplyPrefix
	}
	var err error
	if len(m.o.FleetWorker) > 0 {
		m.remote, err = fleet.StartRemote(ctx, m.o.FleetWorker, fopts)
		m.fl = m.remote
	} else {
		var f *fleet.Fleet
		f, err = fleet.Start(ctx, fopts)
		m.fl = f
	}
	if err != nil {
		return err
	}
	m.closeFleet = sync.OnceValue(m.fl.Close)
	return nil
}

// loggedIn takes the login figures and the memory per device (heap0: the
// broker's heap before the login); no device in is an error.
func (m *measurement) loggedIn(heap0 int64) error {
	res := m.res
	lg := m.fl.Logins()
	res.Connected, res.LoginFail, res.LoginsPS = lg.Connected, len(lg.Failed), lg.PerSecond()
	for _, f := range lg.Failed {
		m.l.dropped(f.Device, "login failed: "+f.Reason) // never sent a command
		if len(res.Notes) < 5 {
			res.Notes = append(res.Notes, fmt.Sprintf("device %s did not log in: %s", f.Device, f.Reason))
		}
	}
	if lg.Connected == 0 {
		return errors.New("no device could log in")
	}
	var heap1 int64
	m.rss1, heap1 = m.t.memory()
	m.n = float64(lg.Connected)
	res.MemPerDeviceKB = float64(m.rss1-m.rss0) / m.n
	if heap0 >= 0 && heap1 >= 0 {
		res.HeapPerDeviceKB = float64(heap1-heap0) / m.n
	}
	return nil
}

// baseline is what the load's figures are measured from.
type baseline struct {
	fleetCPU  time.Duration
	fleetRSS  int64
	rt        RuntimeStats // Go brokers only (rtOK)
	rtOK      bool
	brokerCPU time.Duration
	selfCPU   time.Duration
}

func (m *measurement) baseline() *baseline {
	var b baseline
	if m.remote != nil {
		if u, _, err := m.remote.Usage(10 * time.Second); err == nil {
			b.fleetCPU, b.fleetRSS = u.CPU, u.RSSKB-u.BaseRSSKB
		}
	}
	if b.rt, b.rtOK = m.t.runtimeStats(); b.rtOK {
		m.res.GoRuntime, m.res.GOGC = true, b.rt.GOGC
		m.res.HeapAfterLoginMB = float64(b.rt.HeapAlloc) / (1 << 20)
	}
	b.brokerCPU, b.selfCPU = m.t.cpu(), fleet.SelfUsage().CPU
	return &b
}

// sweep expires unanswered commands every 100 ms until the returned stop
// is called.
func (m *measurement) sweep() (stop func()) {
	stopSweep := make(chan struct{})
	sweepDone := make(chan struct{})
	go func() {
		defer close(sweepDone)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopSweep:
				return
			case now := <-tk.C:
				m.l.expire(now, m.o.Timeout, false)
			}
		}
	}()
	return func() {
		close(stopSweep)
		<-sweepDone
	}
}

// loadResult is how the load phase went.
type loadResult struct {
	start, end  time.Time
	peakRSS     int64 // KiB
	stalls      int64 // times every device was busy or gone
	interrupted bool
}

// load paces commands at o.Rate for o.Duration, or until ctx ends.
func (m *measurement) load(ctx context.Context) loadResult {
	ld := loadResult{start: time.Now(), peakRSS: m.rss1}
	send, sent := m.senders()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	nextProgress := ld.start
	issued := int64(0)
	for !ld.interrupted {
		el := time.Since(ld.start)
		if el >= m.o.Duration {
			break
		}
		issued = m.issue(issued, int64(m.o.Rate*el.Seconds())+1, send, &ld.stalls)
		if now := time.Now(); now.After(nextProgress) {
			m.progress("load", el)
			ld.peakRSS = max(ld.peakRSS, m.t.rss())
			nextProgress = now.Add(250 * time.Millisecond)
		}
		// Sleep until the next command is due (at least ~0.2 ms).
		wait := time.Duration(float64(issued)/m.o.Rate*float64(time.Second)) - time.Since(ld.start)
		select {
		case <-ctx.Done():
			ld.interrupted = true
		case <-resetTimer(timer, max(wait, 200*time.Microsecond)):
		}
	}
	sent()
	ld.end = time.Now()
	return ld
}

// issue sends the commands from number issued up to due and returns the
// new count; when every device is busy or gone it counts a stall and skips
// to due.
func (m *measurement) issue(issued, due int64, send func(job), stalls *int64) int64 {
	for ; issued < due; issued++ {
		dev, cmd, ok := m.l.pick()
		if !ok {
			*stalls++
			return due
		}
		send(job{dev: dev, cmd: cmd})
	}
	return issued
}

// senders returns how the load hands over a command and how it waits for
// the last to be sent. One sender sends from the pacing goroutine itself
// (no hand-off per command); several get a queue.
func (m *measurement) senders() (send func(job), sent func()) {
	payloads := map[string][]byte{}
	for _, c := range commandCycle {
		payloads[c] = []byte(c) // senders copy or only read them
	}
	do := func(j job) {
		if !m.l.sending(j.dev, time.Now()) {
			return
		}
		key, err := m.snd.send(m.ids[j.dev], payloads[j.cmd])
		if err != nil {
			m.l.refused(j.dev, LostRefused, err.Error())
			return
		}
		m.l.sent(j.dev, key)
	}
	if m.snd.workers() <= 1 {
		return do, func() {}
	}
	jobs := make(chan job, 4096)
	var wg sync.WaitGroup
	for range m.snd.workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				do(j)
			}
		}()
	}
	return func(j job) { jobs <- j }, func() { close(jobs); wg.Wait() }
}

// gcFigures are Go's collector's work during the load (Go brokers only),
// from the baseline's runtime figures, with a note when no cycle fell in
// it.
func (m *measurement) gcFigures(b *baseline, ld loadResult) {
	if !b.rtOK {
		return
	}
	st0 := b.rt
	st1, ok := m.t.runtimeStats()
	if !ok {
		m.res.Notes = append(m.res.Notes, "the broker's runtime figures could not be read after the load")
		return
	}
	res := m.res
	wall := ld.end.Sub(ld.start).Seconds()
	res.GCCycles = st1.GCCycles - st0.GCCycles
	for i := st0.GCCycles; i < st1.GCCycles && i < st0.GCCycles+256; i++ {
		res.GCPauseMaxMs = max(res.GCPauseMaxMs, ms(time.Duration(st1.PauseNs[i%256])))
	}
	res.GCCPUPercent = 100 * (st1.GCCPUSec - st0.GCCPUSec) / wall
	mb := func(kb int64) float64 { return float64(kb) / 1024 }
	res.Notes = append(res.Notes, fmt.Sprintf("Go memory after the load (before, after the login): heap in use %.0f MB (%.0f), heap free not yet returned %.0f MB (%.0f), stacks %.0f MB (%.0f), all the runtime holds %.0f MB (%.0f), RSS %.0f MB (%.0f)",
		mb(st1.HeapInuseKB), mb(st0.HeapInuseKB), mb(st1.HeapFreeKB), mb(st0.HeapFreeKB), mb(st1.StackKB), mb(st0.StackKB),
		mb(st1.SysKB), mb(st0.SysKB), mb(st1.RSSKB), mb(st0.RSSKB)))
	c, _, _ := m.l.snapshot()
	if c > 0 {
		res.AllocPerCommandB = float64(st1.AllocBytes-st0.AllocBytes) / float64(c)
	}
	if rate := float64(st1.AllocBytes-st0.AllocBytes) / wall; res.GCCycles == 0 && rate > 0 && st0.NextGC > st0.HeapAlloc && st0.GOGC > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("no GC cycle fell in the load: at %.1f MB/s allocated and a GC goal of %.0f MB, the first would have started %.0f s into the load; a steady run has one about every %.0f s",
			rate/(1<<20), float64(st0.NextGC)/(1<<20), float64(st0.NextGC-st0.HeapAlloc)/rate, float64(st0.HeapAlloc)*float64(st0.GOGC)/100/rate))
	}
}

// drain waits for the replies still on their way, at most Timeout.
func (m *measurement) drain(interrupted bool) {
	drainStart := time.Now()
	for {
		_, _, _ = m.l.snapshot()
		m.l.mu.Lock()
		inflight := m.l.inflight
		m.l.mu.Unlock()
		if inflight == 0 || time.Since(drainStart) > m.o.Timeout+200*time.Millisecond || interrupted {
			return
		}
		m.progress("drain", m.o.Duration)
		select {
		case <-m.l.drained:
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// usageFigures are the CPU and memory the load cost, from the baseline.
func (m *measurement) usageFigures(b *baseline, ld loadResult) {
	res := m.res
	wall := ld.end.Sub(ld.start).Seconds()
	res.BrokerCPUPercent = 100 * (m.t.cpu() - b.brokerCPU).Seconds() / wall
	if !m.t.inProcess() {
		res.BenchCPUPercent = 100 * (fleet.SelfUsage().CPU - b.selfCPU).Seconds() / wall
	}
	if m.remote != nil {
		if u, _, err := m.remote.Usage(10 * time.Second); err == nil {
			res.FleetCPUPercent = 100 * (u.CPU - b.fleetCPU).Seconds() / wall
			res.FleetRSSPerDevKB = float64(b.fleetRSS) / m.n
		}
	}
	res.PeakRSSPerDeviceKB = float64(ld.peakRSS-m.rss0) / m.n
}

// ledgerFigures copies the ledger's counts, losses and latencies.
func (m *measurement) ledgerFigures() {
	res, l := m.res, m.l
	l.mu.Lock()
	res.Commands, res.Replied, res.Wrong, res.Late, res.Unknown = l.commands, l.replied, l.wrong, l.late, l.unknown
	res.LostBy = map[string]int64{}
	for k, v := range l.lost {
		res.LostBy[k] = v
		res.Lost += v
	}
	res.LostSample = append(res.LostSample, l.examples...)
	lat := percentiles(l.samples)
	if l.replied > 0 && l.last.After(l.first) {
		res.ThroughputCPS = float64(l.replied) / l.last.Sub(l.first).Seconds()
	}
	l.mu.Unlock()
	res.P50ms, res.P90ms, res.P99ms, res.MaxMs = lat.P50, lat.P90, lat.P99, lat.Max
}

// finalNotes says what kept the load from its plan, and closes the fleet.
func (m *measurement) finalNotes(ld loadResult) {
	res := m.res
	if ld.stalls > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("the generator found every device busy %d times: the offered rate was not reached", ld.stalls))
	}
	if ld.interrupted {
		res.Notes = append(res.Notes, "interrupted before the end of the load phase")
	}
	if err := m.closeFleet(); err != nil {
		res.Notes = append(res.Notes, "fleet: "+err.Error())
	}
}

// gcPercent reads the current GOGC (-1: off) without changing it.
func gcPercent() int {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 100
	}
	if v := s[0].Value.Uint64(); v <= 1<<30 {
		return int(v)
	}
	return -1
}

func resetTimer(t *time.Timer, d time.Duration) <-chan time.Time {
	t.Reset(d) // Go 1.23+: Reset drops a stale expiry, no drain needed
	return t.C
}

type job struct {
	dev int
	cmd string
}

// Ratio divides each figure of a by b's; a figure b does not have (zero,
// such as Mosquitto's bytes per command) is left out.
func Ratio(a, b *Result) map[string]float64 {
	out := map[string]float64{}
	for k, v := range map[string][2]float64{
		"logins_per_s":            {a.LoginsPS, b.LoginsPS},
		"throughput_cps":          {a.ThroughputCPS, b.ThroughputCPS},
		"p50_ms":                  {a.P50ms, b.P50ms},
		"p90_ms":                  {a.P90ms, b.P90ms},
		"p99_ms":                  {a.P99ms, b.P99ms},
		"max_ms":                  {a.MaxMs, b.MaxMs},
		"mem_per_device_kb":       {a.MemPerDeviceKB, b.MemPerDeviceKB},
		"peak_rss_per_device_kb":  {a.PeakRSSPerDeviceKB, b.PeakRSSPerDeviceKB},
		"cpu_percent":             {a.BrokerCPUPercent, b.BrokerCPUPercent},
		"alloc_per_command_bytes": {a.AllocPerCommandB, b.AllocPerCommandB},
	} {
		if v[1] != 0 {
			out[k] = v[0] / v[1]
		}
	}
	return out
}

func sortedKeys(m map[string]int64) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}
