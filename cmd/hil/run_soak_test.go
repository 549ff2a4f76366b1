package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hil run --soak: a few seconds with frequent faults ends with every
// command accounted for and no mismatch, exit 0, figures printed and
// written as JSON.
func TestRunSoak(t *testing.T) {
	t.Setenv("HIL_PORT", "")
	out := filepath.Join(t.TempDir(), "soak.json")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--soak", "6s", "--seed", "11", "--fault-every", "700ms", "--json", out}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
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

func TestRunSoakBadDuration(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--soak", "0s"}, &stdout, &stderr)
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr.String(), "--soak 0s: want a positive duration")
	code = runMain([]string{"run", "--soak", "soon"}, &stdout, &stderr)
	assert.NotEqual(t, 0, code)
	assert.Contains(t, stderr.String(), "invalid value")
}
