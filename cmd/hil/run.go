package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/term"

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
	if soakRequested(args) { // run_soak.go
		return runSoak(ctx, args, stdout, stderr)
	}
	fl := flag.NewFlagSet("run", flag.ContinueOnError)
	fl.SetOutput(stderr)
	port := fl.String("port", "", "a real board's serial port, or \"auto\" (default $"+rig.EnvPort+"; unset: the virtual board)")
	dir := fl.String("scenarios", "scenarios", "folder of scenario files (*.yaml); when the default folder is absent, the suite built into hil")
	profile := fl.String("profile", "", "echo profile of this run, hil or tutorial; scenarios of the other are skipped (default: each scenario's own)")
	junit := fl.String("junit", "", "write a JUnit XML report to this file")
	jsonOut := fl.String("json", "", "write a JSON summary (totals, per scenario pass/fail, steps, latency p50/p99) to this file")
	html := fl.String("html", "", "write a self-contained HTML report (LED timeline, latency histogram, serial log) to this file")
	lineRate := fl.Bool("line-rate", false, "virtual board: pace its serial line at 115200 baud like the real one")
	only := fl.String("run", "", "play only the scenarios whose name or file name matches this regexp")
	serialLog := fl.String("log", "", "append every serial line, timestamped and masked, to this file")
	platform := fl.String("platform", "", platformFlag) // run_platform.go
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: hil run [--port P] [--scenarios DIR] [--profile NAME] [--junit FILE] [--json FILE] [--html FILE] [--line-rate] [--run REGEX] [--log FILE] [--platform legacy|studio|both]")
		fmt.Fprintln(stderr, "\nA real board also needs $"+rig.EnvWiFiSSID+", $"+rig.EnvWiFiPassword+" and $"+rig.EnvBrokerHost+
			" (this machine's address as the board sees it; the broker listens there on port 6002, 1883 on studio, or $"+rig.EnvBrokerPort+").")
		fmt.Fprintln(stderr, "Exit status: 0 when no scenario failed, 1 when one did or the run could not start.")
		fmt.Fprintln(stderr, "hil run --soak DURATION plays randomized commands with faults instead (see hil run --soak 1s -h).")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fl.Arg(0))
	}
	if *profile != "" && *profile != "hil" && *profile != "tutorial" {
		return fmt.Errorf("--profile %q: want hil or tutorial", *profile)
	}
	if err := checkPlatformFlag(*platform); err != nil {
		return err
	}
	var filter *regexp.Regexp
	if *only != "" {
		var err error
		if filter, err = regexp.Compile(*only); err != nil {
			return fmt.Errorf("--run: %w", err)
		}
	}

	scs, err := loadScenarios(fl, *dir)
	if err != nil {
		return err
	}
	if filter != nil {
		var keep []*scenario.Scenario
		for _, sc := range scs {
			base := strings.TrimSuffix(filepath.Base(sc.File), filepath.Ext(sc.File))
			if filter.MatchString(sc.Name) || filter.MatchString(base) {
				keep = append(keep, sc)
			}
		}
		if len(keep) == 0 {
			return fmt.Errorf("--run %q matches none of the %d scenarios in %s", *only, len(scs), *dir)
		}
		scs = keep
	}
	if len(scs) == 0 {
		return fmt.Errorf("%s: no scenario files (*.yaml)", *dir)
	}

	// Open every output first: a bad path fails now, not after the run.
	outs := map[string]*os.File{}
	defer func() {
		for _, f := range outs {
			f.Close()
		}
	}()
	for _, p := range []string{*junit, *jsonOut, *html} {
		if p == "" {
			continue
		}
		f, err := os.Create(p)
		if err != nil {
			for q, g := range outs { // no empty report files left behind
				g.Close()
				os.Remove(q)
				delete(outs, q)
			}
			return err
		}
		outs[p] = f
	}

	// writeReports fills every report file asked for.
	writeReports := func(run report.Run, m *report.Masker) error {
		for p, write := range map[string]func(io.Writer, report.Run, *report.Masker) error{
			*junit: report.WriteJUnit, *jsonOut: report.WriteJSON, *html: report.WriteHTML,
		} {
			if p == "" {
				continue
			}
			if err := write(outs[p], run, m); err != nil {
				return fmt.Errorf("writing %s: %w", p, err)
			}
			if err := outs[p].Close(); err != nil {
				return fmt.Errorf("writing %s: %w", p, err)
			}
			delete(outs, p)
			fmt.Fprintf(stdout, "report: %s\n", p)
		}
		return nil
	}
	// A run that cannot start still leaves reports that say why (one failed
	// "setup" entry), never empty files a CI parser chokes on.
	started := time.Now()
	setupFailedAfter := func(run report.Run, err error, m *report.Masker) error {
		msg := m.Mask(err.Error())
		if run.Target == "" {
			run.Target, run.Started = "setup", started
		}
		run.Duration = time.Since(started)
		run.Scenarios = append(run.Scenarios, report.Scenario{
			Name: "setup", Status: report.Fail, Reason: msg, Started: started, Duration: time.Since(started)})
		if werr := writeReports(run, m); werr != nil {
			return errors.Join(errors.New(msg), werr)
		}
		return errors.New(msg)
	}
	setupFailed := func(err error, m *report.Masker) error { return setupFailedAfter(report.Run{}, err, m) }

	opts, err := rig.FromEnv()
	if err != nil {
		return setupFailed(err, report.NewMasker())
	}
	early := report.NewMasker(opts.WiFiPassword, opts.AuthInfo, opts.APIKey)
	if *port != "" {
		opts.Port = *port
	}
	opts.LineRate = *lineRate
	platforms, err := runPlatforms(*platform, opts)
	if err != nil {
		return setupFailed(err, early)
	}
	opts.Platform = platforms[0]
	if *serialLog != "" {
		f, err := os.OpenFile(*serialLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return setupFailed(err, early)
		}
		defer f.Close()
		opts.SerialLog = f
	}

	r, err := rig.New(ctx, opts)
	if err != nil {
		return setupFailed(err, early)
	}
	defer r.Close()
	m := r.Masker()
	fmt.Fprintf(stdout, "run: %d scenario(s) from %s on %s\n", len(scs), *dir, m.Mask(r.Describe()))
	con := &report.Console{W: stdout, Live: isTTY(stdout), Mask: m}
	runner := &scenario.Runner{Target: r, Sink: con, Profile: *profile}
	run, err := runOnPlatforms(ctx, runner, r, platforms, scs, stdout)
	if err != nil {
		return setupFailedAfter(run, err, m) // keeps what ran before it
	}
	fmt.Fprintln(stdout)
	if err := report.WriteSummary(stdout, run, m); err != nil {
		return err
	}
	if err := writeReports(run, m); err != nil {
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
