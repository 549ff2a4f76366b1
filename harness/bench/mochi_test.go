package bench

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test binary serves bare Mochi itself when this is set (RunMochi's
// child process).
const envMochiWorker = "HIL_BENCH_TEST_MOCHI_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(envMochiWorker) == "1" {
		if err := ServeMochi(context.Background(), os.Stdin, os.Stdout); err != nil {
			os.Stderr.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// mochiWorker runs this test binary as the bare-Mochi child.
func mochiWorker(t testing.TB) []string {
	exe, err := os.Executable()
	require.NoError(t, err)
	t.Setenv(envMochiWorker, "1") // inherited by the child only: TestMain checks it at start
	return []string{exe}
}

// Bare Mochi in its child process loses nothing on the topic path and
// reports its Go runtime: GC cycles counted (zero included), bytes
// allocated per command, memory after a forced collection.
func TestMochiRunsAndReportsItsRuntime(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := Options{Devices: 30, Rate: 150, Duration: time.Second, MochiWorker: mochiWorker(t)}
	res, err := RunMochi(ctx, o, []string{"GOGC=50"})
	require.NoError(t, err)
	assert.Equal(t, "mochi", res.Broker)
	assert.Equal(t, 30, res.Connected)
	assert.Greater(t, res.Commands, int64(75))
	assert.Equal(t, res.Commands, res.Replied, "every command replied")
	assert.Zero(t, res.Lost, "lost: %v %v", res.LostBy, res.LostSample)
	assert.True(t, res.GoRuntime, "the child's runtime figures were read")
	assert.Equal(t, 50, res.GOGC, "the child runs with the GOGC it was given")
	assert.Greater(t, res.AllocPerCommandB, 0.0)
	assert.Greater(t, res.HeapAfterLoginMB, 0.0)
	assert.Greater(t, res.FullGCMs, 0.0)
	assert.Greater(t, res.BrokerCPUPercent, 0.0)

	rep := NewReport(o, []*Result{res})
	assert.Nil(t, rep.MochiRatioByRate, "no ratio without an embedded result")
}

// A worker that is not there is an error, not a hang.
func TestMochiWithoutWorker(t *testing.T) {
	_, err := RunMochi(context.Background(), Options{Devices: 1, Rate: 1, Duration: time.Second}, nil)
	assert.ErrorContains(t, err, "no worker command")
	_, err = RunMochi(context.Background(), Options{Devices: 1, Rate: 1, Duration: time.Second, MochiWorker: []string{"/bin/true"}}, nil)
	assert.ErrorContains(t, err, "exited before it listened")
}
