package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/onenet-hil/hil/broker"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/onenet-hil/hil/harness/bench"
	"github.com/onenet-hil/hil/harness/fleet"
)

func init() {
	register(command{
		name:    "bench",
		summary: "measure the broker under a simulated fleet, side by side with Mosquitto",
		run:     runBench,
	})
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	devices := fs.Int("devices", 1000, "simulated devices, each a real MQTT connection")
	rateFlag := fs.String("rate", "1000", "commands per second offered; a comma-separated list measures each rate")
	duration := fs.Duration("duration", 10*time.Second, "length of the load phase")
	brokerFlag := fs.String("broker", "both", "embedded, mosquitto, both, or HOST:PORT of a running broker")
	pathFlag := fs.String("path", "topic", "command path(s), comma-separated: topic (cmd/{id} -> rsp/{id}), creq ($creq/$crsp), http (POST /cmds); creq and http are the embedded broker's only")
	jsonFile := fs.String("json", "", "write the figures to this JSON file")
	timeout := fs.Duration("timeout", 5*time.Second, "a command with no reply after this is lost")
	inProcess := fs.Bool("in-process", false, "run the fleet in this process (default: a child process, so the embedded broker's memory and CPU are its own)")
	product := fs.String("product", bench.BenchProductID, "with HOST:PORT: the devices' product ID (their MQTT user name)")
	ctrlUser := fs.String("controller-user", "hil-bench", "with HOST:PORT: the user that publishes cmd/# and subscribes rsp/+")
	brokerPID := fs.Int("broker-pid", 0, "with HOST:PORT: the broker's process id, to measure its memory and CPU")
	gogc := fs.Int("gogc", 0, "set this process's GOGC (the embedded broker's; the fleet keeps its own); 0 = as hil broker runs it (400, or $GOGC), -1 = off")
	memLimit := fs.String("gomemlimit", "", "set this process's soft memory limit (GOMEMLIMIT syntax: 1GiB, 512MiB)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (the embedded broker's) to this file")
	memProfile := fs.String("memprofile", "", "write a heap profile of this process at the end to this file")
	worker := fs.Bool("fleet-worker", false, "internal: serve as the fleet's child process on stdin/stdout")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: hil bench [--devices N] [--rate R] [--duration D] [--broker embedded|mosquitto|both|HOST:PORT] [--path topic,creq,http] [--json FILE]")
		fmt.Fprintln(stderr, "With HOST:PORT the device key and the controller's password come from HIL_BENCH_KEY and HIL_BENCH_CONTROLLER_PASSWORD.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *worker {
		return fleet.Serve(ctx, os.Stdin, stdout)
	}
	var rates []float64
	for _, f := range strings.Split(*rateFlag, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("--rate: %q is not a positive number", f)
		}
		rates = append(rates, v)
	}
	if *devices <= 0 || *duration <= 0 || *timeout <= 0 {
		return errors.New("--devices, --duration and --timeout must be positive")
	}
	var paths []bench.Path
	for _, p := range strings.Split(*pathFlag, ",") {
		switch bench.Path(strings.TrimSpace(p)) {
		case bench.PathTopic, bench.PathCreq, bench.PathHTTP:
			paths = append(paths, bench.Path(strings.TrimSpace(p)))
		default:
			return fmt.Errorf("--path: unknown path %q (topic, creq or http)", p)
		}
	}
	var brokers []string
	switch *brokerFlag {
	case "both":
		brokers = []string{"embedded", "mosquitto"}
	case "embedded", "mosquitto":
		brokers = []string{*brokerFlag}
	default:
		if !strings.Contains(*brokerFlag, ":") {
			return fmt.Errorf("--broker: %q is not embedded, mosquitto, both or HOST:PORT", *brokerFlag)
		}
		brokers = []string{*brokerFlag}
	}

	opts := bench.Options{Devices: *devices, Rate: rates[0], Duration: *duration, Timeout: *timeout}
	if !*inProcess {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding this program for the fleet's child process: %w", err)
		}
		opts.FleetWorker = []string{exe, "bench", "--fleet-worker"}
	}
	if *gogc == 0 && os.Getenv("GOGC") == "" {
		*gogc = broker.ServeGOGC // measure the broker as hil broker runs it
	}
	if *gogc != 0 {
		debug.SetGCPercent(*gogc)
	}
	if *memLimit != "" {
		n, err := parseBytes(*memLimit)
		if err != nil {
			return fmt.Errorf("--gomemlimit: %w", err)
		}
		debug.SetMemoryLimit(n)
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *brokerFlag == "both" {
		if _, err := bench.MosquittoBinary(); err != nil {
			fmt.Fprintf(stderr, "measuring the embedded broker only: %v\n", err)
			brokers = brokers[:1]
		}
	}
	var results []*bench.Result
	for _, rate := range rates {
		for _, b := range brokers {
			for _, p := range paths {
				if b != "embedded" && p != bench.PathTopic {
					if rate == rates[0] {
						fmt.Fprintf(stderr, "skipping %s on %s: only the embedded broker has $creq and the HTTP API\n", p, b)
					}
					continue
				}
				if ctx.Err() != nil {
					break
				}
				o := opts
				o.Path, o.Rate = p, rate
				pr := newProgress(stderr, fmt.Sprintf("%s %s", b, p), o)
				o.Progress = pr.update
				fmt.Fprintf(stderr, "%s, %s path: logging in %d devices, then %.0f commands/s for %v\n", b, p, o.Devices, o.Rate, o.Duration)
				var res *bench.Result
				var err error
				switch b {
				case "embedded":
					res, err = bench.RunEmbedded(ctx, o)
				case "mosquitto":
					res, err = bench.RunMosquitto(ctx, o)
				default:
					res, err = bench.RunExternal(ctx, o, bench.External{Addr: b, ProductID: *product, Key: os.Getenv("HIL_BENCH_KEY"),
						ControllerUser: *ctrlUser, ControllerPassword: os.Getenv("HIL_BENCH_CONTROLLER_PASSWORD"), PID: *brokerPID})
				}
				pr.finish()
				if err != nil {
					return fmt.Errorf("%s %s: %w", b, p, err)
				}
				results = append(results, res)
			}
		}
	}
	if len(results) == 0 {
		return errors.New("nothing measured")
	}
	if *memProfile != "" {
		if err := writeHeapProfile(*memProfile); err != nil {
			return fmt.Errorf("--memprofile: %w", err)
		}
	}
	rep := bench.NewReport(opts, results)
	if *gogc != 0 {
		rep.Machine.GOGC = strconv.Itoa(*gogc) + " (--gogc)"
	}
	if *memLimit != "" {
		rep.Machine.Memlimit = *memLimit + " (--gomemlimit)"
	}
	fmt.Fprintln(stdout)
	rep.WriteTable(stdout)
	if *jsonFile != "" {
		if err := rep.WriteJSON(*jsonFile); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
		fmt.Fprintf(stderr, "figures written to %s\n", *jsonFile)
	}
	return ctx.Err()
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
