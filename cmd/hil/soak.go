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
	hsoak "github.com/onenet-hil/hil/harness/soak" // the file has a func named soak
)

func init() {
	register(command{
		name:    "soak",
		summary: "randomized commands with faults on the virtual board, until every command is accounted for",
		run:     runSoak,
	})
}

// soakRequested reports whether `hil run` was given --soak, the old
// spelling of hil soak (an alias for one release): the soak has its own
// flags and report, so run hands it over before parsing.
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

// runSoak is `hil soak --duration D`: randomized commands on the virtual
// board with faults at random moments, until D passes.
func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return soak(ctx, args, stdout, stderr, soakCommand)
}

// runSoakAlias is `hil run --soak D`, hil soak's old spelling.
func runSoakAlias(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fmt.Fprintln(stderr, "hil: hil run --soak is now hil soak --duration; the alias goes in the next release")
	return soak(ctx, args, stdout, stderr, soakAlias)
}

// soakSpelling is how the soak was asked for: its flag set's name, the
// name of its duration flag and the start of its usage line.
type soakSpelling struct{ name, durFlag, usage string }

var (
	soakCommand = soakSpelling{"hil soak", "duration", "hil soak --duration DURATION"}
	soakAlias   = soakSpelling{"hil run --soak", "soak", "hil run --soak DURATION"}
)

// soakFlags is the soak's command line.
type soakFlags struct {
	dur, faultEvery    time.Duration
	seed               uint64
	commands           int
	jsonOut, serialLog string
	lineRate           bool
}

func parseSoakFlags(args []string, stderr io.Writer, sp soakSpelling) (*soakFlags, error) {
	f := &soakFlags{}
	fl := flag.NewFlagSet(sp.name, flag.ContinueOnError)
	fl.DurationVar(&f.dur, sp.durFlag, 0, "play randomized commands for this long (e.g. 10m)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the command and fault sequences (default: from the clock, printed)")
	fl.IntVar(&f.commands, "commands", 0, "stop after this many commands (0: the duration alone)")
	fl.DurationVar(&f.faultEvery, "fault-every", 2*time.Second, "mean gap between injected faults (restart_broker, kick, drop_connection); 0: none")
	fl.StringVar(&f.jsonOut, "json", "", "write the figures as JSON to this file")
	fl.StringVar(&f.serialLog, "log", "", "append every serial line, timestamped and masked, to this file")
	fl.BoolVar(&f.lineRate, "line-rate", false, "pace the virtual board's serial line at 115200 baud")
	usage := "usage: " + sp.usage + " [--seed N] [--commands N] [--fault-every D] [--json FILE] [--log FILE] [--line-rate]"
	if err := parseFlags(fl, args, stderr, usage,
		"Plays on/off/toggle/junk commands on every channel (creq, topic, http; QoS 0) on the virtual board, one at a\n"+
			"time, while the broker is restarted and the device kicked or dropped at random moments. Every command ends\n"+
			"applied (echo and pin agree with the LED model), ignored (junk), or lost with OneNET's reason (a QoS 0\n"+
			"command for an offline device is refused). Exit status 1 on any mismatch or unaccounted command."); err != nil {
		return nil, err
	}
	if f.dur <= 0 {
		return nil, fmt.Errorf("--%s %v: want a positive duration, e.g. 10m", sp.durFlag, f.dur)
	}
	if f.seed == 0 {
		f.seed = uint64(time.Now().UnixNano())
	}
	return f, nil
}

func soak(ctx context.Context, args []string, stdout, stderr io.Writer, sp soakSpelling) error {
	f, err := parseSoakFlags(args, stderr, sp)
	if err != nil {
		return err
	}
	var out *os.File
	if f.jsonOut != "" {
		if out, err = openPrivate(f.jsonOut, os.O_WRONLY|os.O_TRUNC); err != nil {
			return err
		}
		defer out.Close() // writeSoakJSON closes it first, with its error
	}
	opts := rig.Options{LineRate: f.lineRate}
	if f.serialLog != "" {
		lf, err := openPrivate(f.serialLog, os.O_WRONLY|os.O_APPEND)
		if err != nil {
			return err
		}
		defer lf.Close()
		opts.SerialLog = lf
	}
	if os.Getenv(rig.EnvPort) != "" {
		fmt.Fprintf(stderr, "soak: $%s is ignored: the soak runs on the virtual board\n", rig.EnvPort)
	}
	r, err := rig.New(ctx, opts)
	if err != nil {
		return err
	}
	defer r.Close()
	return f.play(ctx, r, out, stdout)
}

// play runs the soak on r and reports it (on stdout, and as JSON to out
// when --json was given).
func (f *soakFlags) play(ctx context.Context, r *rig.Rig, out *os.File, stdout io.Writer) error {
	fe := f.faultEvery
	if fe == 0 {
		fe = -1
	}
	fmt.Fprintf(stdout, "soak: %s on %s, seed %d, a fault every %s on average\n", f.dur, r.Describe(), f.seed, f.faultEvery)
	res, err := hsoak.Run(ctx, r, hsoak.Options{Duration: f.dur, Commands: f.commands, Seed: f.seed, FaultEvery: fe, Progress: stdout})
	fmt.Fprint(stdout, res.String())
	if out != nil {
		if werr := writeSoakJSON(out, res); werr != nil {
			return fmt.Errorf("writing %s: %w", f.jsonOut, werr)
		}
		fmt.Fprintf(stdout, "report: %s\n", f.jsonOut)
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

func writeSoakJSON(f *os.File, res hsoak.Result) error {
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
