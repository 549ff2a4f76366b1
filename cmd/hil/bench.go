package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/harness/bench"
	"github.com/onenet-hil/hil/harness/fleet"
)

func init() {
	register(command{
		name:    "bench",
		summary: "measure the broker under a simulated fleet, side by side with bare Mochi and Mosquitto",
		run:     runBench,
	})
}

// The external broker's secrets (--broker HOST:PORT) come from the
// environment.
const (
	envBenchKey                = "HIL_BENCH_KEY"
	envBenchControllerPassword = "HIL_BENCH_CONTROLLER_PASSWORD"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	if f.worker {
		return fleet.Serve(ctx, os.Stdin, stdout)
	}
	if f.mochiWorker {
		return bench.ServeMochi(ctx, os.Stdin, stdout)
	}
	plan, err := f.plan()
	if err != nil {
		return err
	}
	opts, err := f.options(plan)
	if err != nil {
		return err
	}
	stop, err := f.tuneRuntime()
	if err != nil {
		return err
	}
	defer stop()
	if f.broker == "both" || f.broker == "all" {
		if _, err := bench.MosquittoBinary(); err != nil {
			fmt.Fprintf(stderr, "measuring without mosquitto: %v\n", err)
			plan.brokers = slices.DeleteFunc(plan.brokers, func(b string) bool { return b == "mosquitto" })
		}
	}
	results, err := f.measure(ctx, plan, opts, stderr)
	if err != nil {
		return err
	}
	if err := f.report(opts, results, stdout, stderr); err != nil {
		return err
	}
	return ctx.Err()
}

// benchFlags is hil bench's command line.
type benchFlags struct {
	devices                          int
	rate, broker, path, jsonFile     string
	duration, timeout                time.Duration
	inProcess, worker, mochiWorker   bool
	product, ctrlUser                string
	brokerPID, gogc                  int
	memLimit, cpuProfile, memProfile string
}

func parseBenchFlags(args []string, stderr io.Writer) (*benchFlags, error) {
	f := &benchFlags{}
	fs := flag.NewFlagSet("hil bench", flag.ContinueOnError)
	fs.IntVar(&f.devices, "devices", 1000, "simulated devices, each a real MQTT connection")
	fs.StringVar(&f.rate, "rate", "1000", "commands per second offered; a comma-separated list measures each rate")
	// 60 s: a window at a fleet's rate holds GC cycles, as a real run does.
	fs.DurationVar(&f.duration, "duration", 60*time.Second, "length of the load phase (long enough to hold GC cycles)")
	fs.StringVar(&f.broker, "broker", "all", "embedded, mochi (bare Mochi, no hooks), mosquitto, both (embedded and mosquitto), all (the three), or HOST:PORT of a running broker")
	fs.StringVar(&f.path, "path", "topic", "command path(s), comma-separated: topic (cmd/{id} -> rsp/{id}), creq ($creq/$crsp), http (POST /cmds); creq and http are the embedded broker's only")
	fs.StringVar(&f.jsonFile, "json", "", "write the figures to this JSON file")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "a command with no reply after this is lost")
	fs.BoolVar(&f.inProcess, "in-process", false, "run the fleet in this process (default: a child process, so the embedded broker's memory and CPU are its own)")
	fs.StringVar(&f.product, "product", bench.BenchProductID, "with HOST:PORT: the devices' product ID (their MQTT user name)")
	fs.StringVar(&f.ctrlUser, "controller-user", "hil-bench", "with HOST:PORT: the user that publishes cmd/# and subscribes rsp/+")
	fs.IntVar(&f.brokerPID, "broker-pid", 0, "with HOST:PORT: the broker's process id, to measure its memory and CPU")
	fs.IntVar(&f.gogc, "gogc", 0, "set this process's GOGC (the embedded broker's; the fleet keeps its own); 0 = as hil broker runs it (broker.ServeGOGC, 100, or $GOGC), -1 = off; bare Mochi gets the same")
	fs.StringVar(&f.memLimit, "gomemlimit", "", "set this process's soft memory limit (GOMEMLIMIT syntax: 1GiB, 512MiB)")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (the embedded broker's) to this file")
	fs.StringVar(&f.memProfile, "memprofile", "", "write a heap profile of this process at the end to this file")
	fs.BoolVar(&f.worker, "fleet-worker", false, "internal: serve as the fleet's child process on stdin/stdout")
	fs.BoolVar(&f.mochiWorker, "mochi-worker", false, "internal: serve bare Mochi as a child process on stdin/stdout")
	if err := parseFlags(fs, args, stderr, "usage: hil bench [--devices N] [--rate R] [--duration D] [--broker all|embedded|mochi|mosquitto|both|HOST:PORT] [--path topic,creq,http] [--json FILE]",
		"Measures the broker under a simulated fleet, side by side with bare Mochi (its floor) and Mosquitto.\n"+
			"With HOST:PORT the device key and the controller's password come from "+envBenchKey+" and "+envBenchControllerPassword+"."); err != nil {
		return nil, err
	}
	return f, nil
}

// benchPlan is what to measure: every rate on every broker and path.
type benchPlan struct {
	rates   []float64
	paths   []bench.Path
	brokers []string
}

func (f *benchFlags) plan() (benchPlan, error) {
	var p benchPlan
	for _, s := range strings.Split(f.rate, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || v <= 0 {
			return p, fmt.Errorf("--rate: %q is not a positive number", s)
		}
		p.rates = append(p.rates, v)
	}
	if f.devices <= 0 || f.duration <= 0 || f.timeout <= 0 {
		return p, errors.New("--devices, --duration and --timeout must be positive")
	}
	for _, s := range strings.Split(f.path, ",") {
		switch bench.Path(strings.TrimSpace(s)) {
		case bench.PathTopic, bench.PathCreq, bench.PathHTTP:
			p.paths = append(p.paths, bench.Path(strings.TrimSpace(s)))
		default:
			return p, fmt.Errorf("--path: unknown path %q (topic, creq or http)", s)
		}
	}
	switch f.broker {
	case "all":
		p.brokers = []string{"embedded", "mochi", "mosquitto"}
	case "both":
		p.brokers = []string{"embedded", "mosquitto"}
	case "embedded", "mochi", "mosquitto":
		p.brokers = []string{f.broker}
	default:
		if !strings.Contains(f.broker, ":") {
			return p, fmt.Errorf("--broker: %q is not all, embedded, mochi, mosquitto, both or HOST:PORT", f.broker)
		}
		p.brokers = []string{f.broker}
	}
	return p, nil
}

// options are the bench options every measurement starts from.
func (f *benchFlags) options(p benchPlan) (bench.Options, error) {
	opts := bench.Options{Devices: f.devices, Rate: p.rates[0], Duration: f.duration, Timeout: f.timeout}
	exe, err := os.Executable()
	if err != nil {
		return opts, fmt.Errorf("finding this program for the child processes: %w", err)
	}
	if !f.inProcess {
		opts.FleetWorker = []string{exe, "bench", "--fleet-worker"}
	}
	opts.MochiWorker = []string{exe, "bench", "--mochi-worker"}
	return opts, nil
}

// tuneRuntime sets GOGC and the memory limit and starts the CPU profile;
// stop ends the profile.
func (f *benchFlags) tuneRuntime() (stop func(), err error) {
	stop = func() {}
	if f.gogc == 0 && os.Getenv("GOGC") == "" {
		f.gogc = broker.ServeGOGC // measure the broker as hil broker runs it
	}
	if f.gogc != 0 {
		debug.SetGCPercent(f.gogc)
	}
	if f.memLimit != "" {
		n, err := parseBytes(f.memLimit)
		if err != nil {
			return stop, fmt.Errorf("--gomemlimit: %w", err)
		}
		debug.SetMemoryLimit(n)
	}
	if f.cpuProfile != "" {
		pf, err := os.Create(f.cpuProfile)
		if err != nil {
			return stop, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(pf); err != nil {
			pf.Close()
			return stop, fmt.Errorf("--cpuprofile: %w", err)
		}
		stop = func() { pprof.StopCPUProfile(); pf.Close() }
	}
	return stop, nil
}

// measure runs the plan: each rate on each broker and path.
func (f *benchFlags) measure(ctx context.Context, plan benchPlan, opts bench.Options, stderr io.Writer) ([]*bench.Result, error) {
	var results []*bench.Result
	for _, rate := range plan.rates {
		for _, b := range plan.brokers {
			for _, p := range plan.paths {
				if b != "embedded" && p != bench.PathTopic {
					if rate == plan.rates[0] {
						fmt.Fprintf(stderr, "skipping %s on %s: only the embedded broker has $creq and the HTTP API\n", p, b)
					}
					continue
				}
				if ctx.Err() != nil {
					break
				}
				o := opts
				o.Path, o.Rate = p, rate
				res, err := f.measureOne(ctx, b, o, stderr)
				if err != nil {
					return nil, fmt.Errorf("%s %s: %w", b, p, err)
				}
				results = append(results, res)
			}
		}
	}
	if len(results) == 0 {
		return nil, errors.New("nothing measured")
	}
	return results, nil
}

// measureOne is one load on broker b, with its progress on stderr.
func (f *benchFlags) measureOne(ctx context.Context, b string, o bench.Options, stderr io.Writer) (*bench.Result, error) {
	pr := newProgress(stderr, fmt.Sprintf("%s %s", b, o.Path), o)
	defer pr.finish()
	o.Progress = pr.update
	fmt.Fprintf(stderr, "%s, %s path: logging in %d devices, then %.0f commands/s for %v\n", b, o.Path, o.Devices, o.Rate, o.Duration)
	switch b {
	case "embedded":
		return bench.RunEmbedded(ctx, o)
	case "mosquitto":
		return bench.RunMosquitto(ctx, o)
	case "mochi":
		return bench.RunMochi(ctx, o, f.mochiEnv())
	}
	return bench.RunExternal(ctx, o, bench.External{Addr: b, ProductID: f.product, Key: os.Getenv(envBenchKey),
		ControllerUser: f.ctrlUser, ControllerPassword: os.Getenv(envBenchControllerPassword), PID: f.brokerPID})
}

// mochiEnv gives bare Mochi's process the collector settings the
// embedded broker runs with, so that the GC rows compare like with like.
func (f *benchFlags) mochiEnv() []string {
	var env []string
	switch {
	case f.gogc < 0:
		env = append(env, "GOGC=off")
	case f.gogc > 0:
		env = append(env, "GOGC="+strconv.Itoa(f.gogc))
	}
	if f.memLimit != "" {
		env = append(env, "GOMEMLIMIT="+f.memLimit)
	}
	return env
}

// report writes the heap profile, the table and the JSON figures.
func (f *benchFlags) report(opts bench.Options, results []*bench.Result, stdout, stderr io.Writer) error {
	if f.memProfile != "" {
		if err := writeHeapProfile(f.memProfile); err != nil {
			return fmt.Errorf("--memprofile: %w", err)
		}
	}
	rep := bench.NewReport(opts, results)
	if f.gogc != 0 {
		rep.Machine.GOGC = strconv.Itoa(f.gogc) + " (--gogc)"
	}
	if f.memLimit != "" {
		rep.Machine.Memlimit = f.memLimit + " (--gomemlimit)"
	}
	fmt.Fprintln(stdout)
	rep.WriteTable(stdout)
	if f.jsonFile != "" {
		if err := rep.WriteJSON(f.jsonFile); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
		fmt.Fprintf(stderr, "figures written to %s\n", f.jsonFile)
	}
	return nil
}

// parseBytes reads GOMEMLIMIT's syntax: a number with an optional B, KiB,
// MiB, GiB or TiB suffix.
func parseBytes(orig string) (int64, error) {
	s, mult := orig, int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = v, u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q: want a size such as 1GiB", orig)
	}
	return n * mult, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC() // the profile shows allocations up to the last completed GC
	return pprof.Lookup("heap").WriteTo(f, 0)
}

// progress shows a bar when stderr is a terminal, plain lines otherwise.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	label string
	bar   *progressbar.ProgressBar
	last  time.Time
	phase string
}

func newProgress(w io.Writer, label string, o bench.Options) *progress {
	p := &progress{w: w, label: label}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(int64(o.Duration/time.Millisecond),
			progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(label),
			progressbar.OptionThrottle(200*time.Millisecond), progressbar.OptionClearOnFinish(),
			progressbar.OptionSetPredictTime(false), progressbar.OptionShowDescriptionAtLineEnd())
	}
	return p
}

func (p *progress) update(s bench.Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	text := fmt.Sprintf("%s %s: %d sent, %d replied, %d lost", p.label, s.Phase, s.Commands, s.Replied, s.Lost)
	if p.bar != nil {
		p.bar.Describe(text)
		p.bar.Set64(int64(s.Elapsed / time.Millisecond))
		return
	}
	if s.Phase != p.phase || time.Since(p.last) >= time.Second {
		p.phase, p.last = s.Phase, time.Now()
		fmt.Fprintf(p.w, "%s (%.1fs/%.0fs)\n", text, s.Elapsed.Seconds(), s.Duration.Seconds())
	}
}

func (p *progress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		p.bar.Finish()
	}
}
