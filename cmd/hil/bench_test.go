package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBenchRejectsBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "--path", "pigeon"}, "unknown path"},
		{[]string{"bench", "--broker", "nowhere"}, "is not all, embedded, mochi, mosquitto, both or HOST:PORT"},
		{[]string{"bench", "--devices", "0"}, "must be positive"},
	} {
		var out, errOut bytes.Buffer
		code := runMain(c.args, &out, &errOut)
		assert.Equal(t, 1, code, "%v", c.args)
		assert.Contains(t, errOut.String(), c.want, "%v", c.args)
	}
}

// By default the bench tells the whole truth: 60-second windows (they hold
// GC cycles) and three brokers in the same run, ours, bare Mochi (its
// floor) and Mosquitto; bare Mochi runs in this program's child process
// with the embedded broker's collector settings.
func TestBenchDefaultsAreThreeBrokersFor60s(t *testing.T) {
	f, err := parseBenchFlags(nil, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, 60*time.Second, f.duration)
	plan, err := f.plan()
	require.NoError(t, err)
	assert.Equal(t, []string{"embedded", "mochi", "mosquitto"}, plan.brokers)
	opts, err := f.options(plan)
	require.NoError(t, err)
	require.NotEmpty(t, opts.MochiWorker)
	assert.Equal(t, []string{"bench", "--mochi-worker"}, opts.MochiWorker[1:])
	assert.Equal(t, []string{"bench", "--fleet-worker"}, opts.FleetWorker[1:])

	f, err = parseBenchFlags([]string{"--gogc", "150", "--gomemlimit", "1GiB"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, []string{"GOGC=150", "GOMEMLIMIT=1GiB"}, f.mochiEnv())
	f, err = parseBenchFlags([]string{"--gogc", "-1", "--broker", "mochi"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, []string{"GOGC=off"}, f.mochiEnv())
	plan, err = f.plan()
	require.NoError(t, err)
	assert.Equal(t, []string{"mochi"}, plan.brokers)
}

// A tiny run on the embedded broker (the fleet in-process: the test
// binary cannot be the fleet's child) prints the table and writes JSON.
func TestBenchSmallRunWritesTableAndJSON(t *testing.T) {
	file := filepath.Join(t.TempDir(), "b.json")
	var out, errOut bytes.Buffer
	code := runMain([]string{"bench", "--broker", "embedded", "--path", "topic,creq", "--devices", "10", "--rate", "50",
		"--duration", "500ms", "--in-process", "--json", file}, &out, &errOut)
	require.Equal(t, 0, code, "stderr: %s", errOut.String())
	assert.Contains(t, out.String(), "round trip p99 ms")
	assert.Contains(t, errOut.String(), "embedded topic load", "plain progress lines when stderr is not a terminal")
	raw, err := os.ReadFile(file)
	require.NoError(t, err)
	var doc struct {
		Results []struct {
			Broker   string  `json:"broker"`
			Path     string  `json:"path"`
			Commands int64   `json:"commands"`
			Lost     int64   `json:"lost"`
			P99      float64 `json:"p99_ms"`
		} `json:"results"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.Len(t, doc.Results, 2)
	for _, r := range doc.Results {
		assert.Equal(t, "embedded", r.Broker)
		assert.Positive(t, r.Commands)
		assert.Zero(t, r.Lost)
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"1GiB": 1 << 30, "512MiB": 512 << 20, "4096": 4096, "10KiB": 10 << 10, "7B": 7} {
		got, err := parseBytes(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "1GB", "-1GiB", "lots"} {
		_, err := parseBytes(bad)
		assert.Error(t, err, bad)
	}
}
