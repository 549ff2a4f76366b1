package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/harness/scenario"
)

// platformFlag is --platform's help.
const platformFlag = "OneNET platform the board logs in to: legacy, studio, or both (virtual board only: every scenario on each) (default $" + rig.EnvPlatform + ", else both on the virtual board and legacy on a real one)"

// checkPlatformFlag refuses a bad --platform before anything starts.
func checkPlatformFlag(v string) error {
	if v == "" || v == "both" {
		return nil
	}
	if _, err := scenario.ParsePlatform(v); err != nil {
		return fmt.Errorf("--platform %q: want legacy, studio or both", v)
	}
	return nil
}

// runPlatforms is the platforms --platform asks for ("": $HIL_PLATFORM's,
// else both on the virtual board, so the main job covers both platforms as
// `go test ./scenarios` does); both only on the virtual board.
func runPlatforms(v string, opts rig.Options) ([]scenario.Platform, error) {
	sandboxed, err := opts.Sandboxed()
	if err != nil {
		return nil, err
	}
	if v == "" && sandboxed && os.Getenv(rig.EnvPlatform) == "" {
		v = "both"
	}
	switch v {
	case "":
		p, err := scenario.ParsePlatform(string(opts.Platform))
		return []scenario.Platform{p}, err
	case "both":
		if !sandboxed {
			return nil, fmt.Errorf("--platform both: a real board is flashed for one platform; run legacy and studio one after the other")
		}
		return scenario.Platforms, nil
	}
	p, err := scenario.ParsePlatform(v)
	if err != nil {
		return nil, fmt.Errorf("--platform %q: want legacy, studio or both", v)
	}
	return []scenario.Platform{p}, nil
}

// runOnPlatforms plays scs on each platform in turn on one rig; with more
// than one, scenario names in the run are prefixed with the platform.
func runOnPlatforms(ctx context.Context, runner *scenario.Runner, r *rig.Rig, ps []scenario.Platform, scs []*scenario.Scenario, stdout io.Writer) (report.Run, error) {
	if len(ps) == 1 {
		if err := r.SetPlatform(ps[0]); err != nil {
			return report.Run{}, err
		}
		return runner.Run(ctx, scs), nil
	}
	all := report.Run{Target: r.Describe() + ", legacy and OneNET Studio", Started: time.Now()}
	for _, p := range ps {
		if err := r.SetPlatform(p); err != nil {
			return all, err
		}
		fmt.Fprintf(stdout, "platform %s:\n", p)
		run := runner.Run(ctx, scs)
		for _, s := range run.Scenarios {
			s.Name = string(p) + ": " + s.Name
			all.Scenarios = append(all.Scenarios, s)
		}
	}
	all.Duration = time.Since(all.Started)
	return all, nil
}
