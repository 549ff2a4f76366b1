// Package scenarios_test plays every scenario file of this folder on a
// board behind the stand-in broker: the virtual board, or the real one on
// $HIL_PORT (with $HIL_WIFI_SSID, $HIL_WIFI_PASSWORD, $HIL_BROKER_HOST).
// The virtual board plays them on both OneNET platforms, legacy then
// studio (only $HIL_PLATFORM's when it is set); a real board plays
// $HIL_PLATFORM's (default legacy). With $HIL_REPORT_DIR set it writes
// junit.xml, report.json, report.html and serial.log there.
package scenarios_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/harness/scenario"
)

// EnvReportDir is where the reports go when set.
const EnvReportDir = "HIL_REPORT_DIR"

// TestScenarios runs one subtest per platform and scenario file
// (TestScenarios/legacy/basic_on_off, TestScenarios/studio/...), all on one
// board and one broker: each scenario re-flashes what changed (between
// platforms, config.json alone) and resets the board.
func TestScenarios(t *testing.T) {
	scs, err := scenario.LoadDir(".")
	require.NoError(t, err)
	require.NotEmpty(t, scs)

	opts, err := rig.FromEnv()
	require.NoError(t, err)
	dir := os.Getenv(EnvReportDir)
	var serialLog *os.File
	if dir != "" {
		require.NoError(t, os.MkdirAll(dir, 0o755))
		serialLog, err = os.Create(filepath.Join(dir, "serial.log"))
		require.NoError(t, err)
		defer serialLog.Close()
		opts.SerialLog = serialLog
	}
	// Stop a little before `go test -timeout` would, so the reports are
	// still written.
	dl, ok := t.Deadline()
	if !ok {
		dl = time.Now().Add(24 * time.Hour)
	}
	ctx, cancel := context.WithDeadline(context.Background(), dl.Add(-30*time.Second))
	defer cancel()
	platforms := []scenario.Platform{opts.Platform}
	if opts.Port == "" && os.Getenv(rig.EnvPlatform) == "" {
		platforms = scenario.Platforms
	}
	opts.Platform = platforms[0]
	r, err := rig.New(ctx, opts)
	require.NoError(t, err)
	defer func() { assert.NoError(t, r.Close()) }()

	runner := &scenario.Runner{Target: r}
	run := report.Run{Target: r.Describe(), Started: time.Now()}
	if len(platforms) > 1 {
		run.Target += ", legacy and OneNET Studio"
	}
	var mu sync.Mutex
	for _, p := range platforms {
		t.Run(string(p), func(t *testing.T) {
			require.NoError(t, r.SetPlatform(p))
			for _, sc := range scs {
				name := strings.TrimSuffix(filepath.Base(sc.File), filepath.Ext(sc.File))
				t.Run(name, func(t *testing.T) {
					res := runner.RunScenario(ctx, sc)
					if len(platforms) > 1 {
						res.Name = string(p) + ": " + res.Name
					}
					mu.Lock()
					run.Scenarios = append(run.Scenarios, res)
					mu.Unlock()
					msg := r.Masker().Mask(res.Reason)
					switch res.Status {
					case report.Skip:
						t.Skip(msg)
					case report.Fail:
						t.Errorf("%s: %s", sc.Name, msg)
					default:
						t.Logf("%s", r.Masker().Mask(report.ResultLine(res)))
					}
				})
			}
		})
	}
	run.Duration = time.Since(run.Started)
	if dir != "" {
		writeReports(t, dir, run, r.Masker())
	}
}

func writeReports(t *testing.T, dir string, run report.Run, m *report.Masker) {
	for name, write := range map[string]func(*os.File) error{
		"junit.xml":   func(f *os.File) error { return report.WriteJUnit(f, run, m) },
		"report.json": func(f *os.File) error { return report.WriteJSON(f, run, m) },
		"report.html": func(f *os.File) error { return report.WriteHTML(f, run, m) },
	} {
		f, err := os.Create(filepath.Join(dir, name))
		require.NoError(t, err)
		assert.NoError(t, write(f), name)
		assert.NoError(t, f.Close(), name)
	}
	t.Logf("reports in %s", dir)
}
