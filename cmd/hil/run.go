package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/onenet-hil/hil/harness/dut"
	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/harness/scenario"
	"github.com/onenet-hil/hil/scenarios"
)

func init() {
	register(command{
		name:    "run",
		summary: "play the scenarios on a board (virtual by default) and report: the main job",
		run:     runRun,
	})
}

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if soakRequested(args) { // soak.go: the old spelling of hil soak
		return runSoakAlias(ctx, args, stdout, stderr)
	}
	f, err := parseRunFlags(args, stderr)
	if err != nil {
		return err
	}
	scs, err := f.scenarios()
	if err != nil {
		return err
	}
	reps, err := openReports(stdout, f.junit, f.jsonOut, f.html)
	if err != nil {
		return err
	}
	defer reps.close()
	setup, mask, err := f.startRig(ctx)
	defer setup.close()
	if err != nil {
		return reps.setupFailed(report.Run{}, f.started, err, mask)
	}
	if err := f.flashMicroPythonFirst(ctx, setup.rig, stdout); err != nil { // run_rom.go
		return reps.setupFailed(report.Run{Scenarios: f.flashed}, f.started, err, mask)
	}
	return f.play(ctx, setup.rig, setup.platforms, scs, reps, stdout)
}

// runFlags is hil run's command line.
type runFlags struct {
	fl                                  *flag.FlagSet
	port, dir, profile, only, serialLog string
	junit, jsonOut, html                string
	lineRate                            bool
	heap                                int
	board                               string
	platform                            string
	filter                              *regexp.Regexp
	started                             time.Time
	micropython                         string            // run_rom.go
	flashed                             []report.Scenario // the --micropython write, reported first
}

func parseRunFlags(args []string, stderr io.Writer) (*runFlags, error) {
	f := &runFlags{fl: flag.NewFlagSet("hil run", flag.ContinueOnError)}
	fl := f.fl
	fl.StringVar(&f.port, "port", "", "a real board's serial port, or \"auto\" (default $"+rig.EnvPort+"; unset: the virtual board)")
	fl.StringVar(&f.board, "board", "", "the kind of board, "+strings.Join(dut.Kinds(), " or ")+" (default $"+rig.EnvBoard+"; unset: serial with --port, else virtual)")
	fl.StringVar(&f.dir, "scenarios", "scenarios", "folder of scenario files (*.yaml); when the default folder is absent, the suite built into hil")
	fl.StringVar(&f.profile, "profile", "", "echo profile of this run, hil or tutorial; scenarios of the other are skipped (default: each scenario's own)")
	fl.StringVar(&f.junit, "junit", "", "write a JUnit XML report to this file")
	fl.StringVar(&f.jsonOut, "json", "", "write a JSON summary (totals, per scenario pass/fail, steps, latency p50/p99) to this file")
	fl.StringVar(&f.html, "html", "", "write a self-contained HTML report (LED timeline, latency histogram, serial log) to this file")
	fl.BoolVar(&f.lineRate, "line-rate", false, "virtual board: pace its serial line at 115200 baud like the real one")
	fl.Func("heap", "virtual board: its GC heap, in bytes or KB (28K); default the ESP8266's 38K", func(s string) error {
		n, err := parseHeap(s)
		f.heap = n
		return err
	})
	fl.StringVar(&f.only, "run", "", "play only the scenarios whose name or file name matches this regexp")
	fl.StringVar(&f.serialLog, "log", "", "append every serial line, timestamped and masked, to this file")
	fl.StringVar(&f.platform, "platform", "", platformFlag) // run_platform.go
	fl.StringVar(&f.micropython, "micropython", "", micropythonFlagHelp)
	if err := parseFlags(fl, args, stderr, "usage: hil run [--port P] [--board KIND] [--scenarios DIR] [--profile NAME] [--junit FILE] [--json FILE] [--html FILE] [--line-rate] [--heap SIZE] [--run REGEX] [--log FILE] [--platform legacy|studio|both]",
		"Plays the scenarios on a board (the virtual one by default) and reports.\n"+
			"A real board also needs $"+rig.EnvWiFiSSID+", $"+rig.EnvWiFiPassword+" and $"+rig.EnvBrokerHost+
			" (this machine's address as the board sees it; the broker listens there on port 6002, 1883 on studio, or $"+rig.EnvBrokerPort+").\n"+
			"Exit status: 0 when no scenario failed, 1 when one did or the run could not start.\n"+
			"hil soak plays randomized commands with faults instead (see hil soak -h)."); err != nil {
		return nil, err
	}
	if f.profile != "" && f.profile != "hil" && f.profile != "tutorial" {
		return nil, fmt.Errorf("--profile %q: want hil or tutorial", f.profile)
	}
	if err := checkPlatformFlag(f.platform); err != nil {
		return nil, err
	}
	if f.only != "" {
		var err error
		if f.filter, err = regexp.Compile(f.only); err != nil {
			return nil, fmt.Errorf("--run: %w", err)
		}
	}
	return f, nil
}

// scenarios loads the --scenarios folder (or the built-in suite) and keeps
// those --run matches.
func (f *runFlags) scenarios() ([]*scenario.Scenario, error) {
	scs, err := loadScenarios(f.fl, f.dir)
	if err != nil {
		return nil, err
	}
	if f.filter != nil {
		var keep []*scenario.Scenario
		for _, sc := range scs {
			base := strings.TrimSuffix(filepath.Base(sc.File), filepath.Ext(sc.File))
			if f.filter.MatchString(sc.Name) || f.filter.MatchString(base) {
				keep = append(keep, sc)
			}
		}
		if len(keep) == 0 {
			return nil, fmt.Errorf("--run %q matches none of the %d scenarios in %s", f.only, len(scs), f.dir)
		}
		scs = keep
	}
	if len(scs) == 0 {
		return nil, fmt.Errorf("%s: no scenario files (*.yaml)", f.dir)
	}
	return scs, nil
}

// runSetup is what a run plays on.
type runSetup struct {
	rig       *rig.Rig
	platforms []scenario.Platform
	closers   []func() error // in the order to close
}

func (s *runSetup) close() {
	for _, c := range s.closers {
		c()
	}
}

// startRig builds the rig from the environment and the flags. On an error
// it also returns the masker for the error's text (the secrets known so
// far).
func (f *runFlags) startRig(ctx context.Context) (*runSetup, *report.Masker, error) {
	f.started = time.Now()
	s := &runSetup{}
	opts, err := rig.FromEnv()
	if err != nil {
		return s, report.NewMasker(), err
	}
	early := report.NewMasker(opts.WiFiPassword, opts.AuthInfo, opts.APIKey)
	if f.port != "" {
		opts.Port = f.port
	}
	if f.board != "" {
		opts.Board = f.board
	}
	opts.LineRate = f.lineRate
	opts.Heap = f.heap
	if s.platforms, err = runPlatforms(f.platform, opts); err != nil {
		return s, early, err
	}
	opts.Platform = s.platforms[0]
	if f.serialLog != "" {
		lf, err := openPrivate(f.serialLog, os.O_WRONLY|os.O_APPEND)
		if err != nil {
			return s, early, err
		}
		s.closers = append(s.closers, lf.Close)
		opts.SerialLog = lf
	}
	if s.rig, err = rig.New(ctx, opts); err != nil {
		return s, early, err
	}
	s.closers = append([]func() error{s.rig.Close}, s.closers...) // the rig before its serial log
	return s, early, nil
}

// play runs the scenarios on every platform, prints the summary and writes
// the reports.
func (f *runFlags) play(ctx context.Context, r *rig.Rig, platforms []scenario.Platform, scs []*scenario.Scenario, reps *reportFiles, stdout io.Writer) error {
	m := r.Masker()
	fmt.Fprintf(stdout, "run: %d scenario(s) from %s on %s\n", len(scs), f.dir, m.Mask(r.Describe()))
	con := &report.Console{W: stdout, Live: isTTY(stdout), Mask: m}
	runner := &scenario.Runner{Target: r, Sink: con, Profile: f.profile}
	run, err := runOnPlatforms(ctx, runner, r, platforms, scs, stdout)
	run.Scenarios = append(f.flashed, run.Scenarios...)
	if err != nil {
		return reps.setupFailed(run, f.started, err, m) // keeps what ran before it
	}
	fmt.Fprintln(stdout)
	if err := report.WriteSummary(stdout, run, m); err != nil {
		return err
	}
	if err := reps.write(run, m); err != nil {
		return err
	}
	if !run.OK() || ctx.Err() != nil {
		return exitError{1}
	}
	return nil
}

func isTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// loadScenarios reads the --scenarios folder. An installed hil run outside a
// checkout has no ./scenarios: unless the user named a folder, it plays the
// suite built into the binary.
func loadScenarios(fl *flag.FlagSet, dir string) ([]*scenario.Scenario, error) {
	named := false
	fl.Visit(func(f *flag.Flag) { named = named || f.Name == "scenarios" })
	if st, err := os.Stat(dir); !named && (err != nil || !st.IsDir()) {
		fmt.Fprintf(fl.Output(), "run: no ./%s folder here: playing the suite built into hil\n", dir)
		return scenario.LoadFS(scenarios.Suite, "scenarios")
	}
	return scenario.LoadDir(dir)
}

// maxHeap bounds --heap: far beyond any ESP8266 (38 KB), and a size the
// VM can always get.
const maxHeap = 1 << 20

// parseHeap reads a heap size: bytes, or KB with a K suffix.
func parseHeap(s string) (int, error) {
	mul := 1
	if t, ok := strings.CutSuffix(strings.ToUpper(s), "K"); ok {
		s, mul = t, 1024
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 4096/mul || n > maxHeap/mul {
		return 0, fmt.Errorf("%q: want a size from 4096 bytes to 1 MB, like 38K or 28672", s)
	}
	return n * mul, nil
}
