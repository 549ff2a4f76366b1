package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/harness/scenario"
)

// soakRequested reports whether `hil run` was given --soak: the soak has
// its own flags and report, so run hands it over before parsing.
func soakRequested(args []string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		name := strings.TrimLeft(a, "-")
		if strings.HasPrefix(a, "-") && (name == "soak" || strings.HasPrefix(name, "soak=")) {
			return true
		}
	}
	return false
}

// runSoak is `hil run --soak DURATION`: randomized commands on the
// virtual board with faults at random moments, until DURATION passes.
func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("run --soak", flag.ContinueOnError)
	fl.SetOutput(stderr)
	dur := fl.Duration("soak", 0, "play randomized commands for this long (e.g. 10m)")
	seed := fl.Uint64("seed", 0, "seed of the command and fault sequences (default: from the clock, printed)")
	commands := fl.Int("commands", 0, "stop after this many commands (0: DURATION alone)")
	faultEvery := fl.Duration("fault-every", 2*time.Second, "mean gap between injected faults (restart_broker, kick, drop_connection); 0: none")
	jsonOut := fl.String("json", "", "write the figures as JSON to this file")
	serialLog := fl.String("log", "", "append every serial line, timestamped and masked, to this file")
	lineRate := fl.Bool("line-rate", false, "pace the virtual board's serial line at 115200 baud")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "usage: hil run --soak DURATION [--seed N] [--commands N] [--fault-every D] [--json FILE] [--log FILE] [--line-rate]")
		fmt.Fprintln(stderr, "\nPlays on/off/toggle/junk commands on every channel (creq, topic, http; QoS 0) on the virtual board, one at a")
		fmt.Fprintln(stderr, "time, while the broker is restarted and the device kicked or dropped at random moments. Every command ends")
		fmt.Fprintln(stderr, "applied (echo and pin agree with the LED model), ignored (junk), or lost with OneNET's reason (a QoS 0")
		fmt.Fprintln(stderr, "command for an offline device is refused). Exit status 1 on any mismatch or unaccounted command.")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fl.Arg(0))
	}
	if *dur <= 0 {
		return fmt.Errorf("--soak %v: want a positive duration, e.g. 10m", *dur)
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	var out *os.File
	if *jsonOut != "" {
		f, err := os.Create(*jsonOut)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	opts := rig.Options{LineRate: *lineRate}
	if *serialLog != "" {
		f, err := os.OpenFile(*serialLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.SerialLog = f
	}
	if os.Getenv(rig.EnvPort) != "" {
		fmt.Fprintf(stderr, "run --soak: $%s is ignored: the soak runs on the virtual board\n", rig.EnvPort)
	}
	r, err := rig.New(ctx, opts)
	if err != nil {
		return err
	}
	defer r.Close()
	fe := *faultEvery
	if fe == 0 {
		fe = -1
	}
	fmt.Fprintf(stdout, "soak: %s on %s, seed %d, a fault every %s on average\n", *dur, r.Describe(), *seed, *faultEvery)
	res, err := r.Soak(ctx, rig.SoakOptions{Duration: *dur, Commands: *commands, Seed: *seed, FaultEvery: fe, Progress: stdout})
	fmt.Fprint(stdout, res.String())
	if out != nil {
		if werr := writeSoakJSON(out, res); werr != nil {
			return fmt.Errorf("writing %s: %w", *jsonOut, werr)
		}
		fmt.Fprintf(stdout, "report: %s\n", *jsonOut)
	}
	if err != nil {
		return err
	}
	if !res.OK() {
		fmt.Fprintln(stdout, "soak: FAILED")
		return exitError{1}
	}
	fmt.Fprintln(stdout, "soak: ok: every command accounted for, no mismatch")
	return nil
}

func writeSoakJSON(f *os.File, res rig.SoakResult) error {
	faults := map[string]int{}
	for k, v := range res.Faults {
		faults[string(k)] = v
	}
	byChan := map[string]int{}
	for _, ch := range scenario.Channels {
		byChan[string(ch)] = res.ByChan[ch]
	}
	enc := json.NewEncoder(f)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{
		"seed": res.Seed, "duration_s": res.Duration.Seconds(), "commands": res.Commands,
		"applied": res.Applied, "ignored": res.Ignored, "lost": res.Lost, "by_channel": byChan,
		"mismatches": res.Mismatches, "mismatch_details": res.Details, "faults": faults,
		"fault_errors": res.FaultErrs, "fault_errors_why": res.FaultWhy, "sync_probes": res.SyncProbes, "accounted": res.Accounted(), "ok": res.OK(),
	}); err != nil {
		return err
	}
	return f.Close()
}
