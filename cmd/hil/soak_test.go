package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/rig"
)

// hil soak: a few seconds with frequent faults ends with every command
// accounted for and no mismatch, exit 0, figures printed and written as
// JSON.
func TestSoak(t *testing.T) {
	t.Setenv(rig.EnvPort, "")
	out := filepath.Join(t.TempDir(), "soak.json")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"soak", "--duration", "6s", "--seed", "11", "--fault-every", "700ms", "--json", out}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.NotContains(t, stderr.String(), "alias")
	assert.Contains(t, stdout.String(), "seed 11")
	assert.Contains(t, stdout.String(), "soak: ok: every command accounted for, no mismatch")
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	var fig struct {
		Commands, Applied, Ignored, Mismatches int
		Lost                                   map[string]int
		Faults                                 map[string]int
		Accounted, OK                          bool
	}
	require.NoError(t, json.Unmarshal(b, &fig))
	assert.True(t, fig.Accounted)
	assert.True(t, fig.OK)
	assert.Zero(t, fig.Mismatches)
	lost := 0
	for _, n := range fig.Lost {
		lost += n
	}
	assert.Equal(t, fig.Commands, fig.Applied+fig.Ignored+lost)
	assert.Positive(t, fig.Applied)
	assert.NotEmpty(t, fig.Faults)
}

func TestSoakBadDuration(t *testing.T) {
	for _, args := range [][]string{{"soak"}, {"soak", "--duration", "0s"}, {"soak", "--duration=-1m"}} {
		var stdout, stderr bytes.Buffer
		code := runMain(args, &stdout, &stderr)
		assert.Equal(t, 1, code, "%v", args)
		assert.Contains(t, stderr.String(), "want a positive duration, e.g. 10m", "%v", args)
	}
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 2, runMain([]string{"soak", "--duration", "soon"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "invalid value")
	assert.Contains(t, stderr.String(), "usage: hil soak --duration DURATION")
}

// hil run --soak DURATION, the old spelling, still works for one release
// and says so on stderr.
func TestRunSoakAlias(t *testing.T) {
	t.Setenv(rig.EnvPort, "")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--soak=3s", "--seed", "5", "--commands", "4", "--fault-every", "0"}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.Equal(t, 1, strings.Count(stderr.String(), "hil run --soak is now hil soak --duration; the alias goes in the next release"))
	assert.Contains(t, stdout.String(), "seed 5")
	assert.Contains(t, stdout.String(), "soak: ok: every command accounted for, no mismatch")
}

func TestRunSoakAliasBadInput(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--soak", "0s"}, &stdout, &stderr)
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr.String(), "hil run --soak is now hil soak")
	assert.Contains(t, stderr.String(), "--soak 0s: want a positive duration")
	code = runMain([]string{"run", "--soak", "soon"}, &stdout, &stderr)
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr.String(), "invalid value")
	stderr.Reset()
	assert.Equal(t, 2, runMain([]string{"run", "--soak", "1s", "stray"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "usage: hil run --soak DURATION")
	assert.Empty(t, stdout.String(), "nothing ran")
}
