package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The JSON holds, for each broker measured, at least the figures the
// issue names (the GC cycles of the Go brokers even when zero), and the
// ratios when the brokers ran the same path.
func TestReportJSONShape(t *testing.T) {
	needMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o := Options{Devices: 20, Rate: 100, Duration: 500 * time.Millisecond, MochiWorker: mochiWorker(t)}
	emb, err := RunEmbedded(ctx, o)
	require.NoError(t, err)
	mos, err := RunMosquitto(ctx, o)
	require.NoError(t, err)
	bare, err := RunMochi(ctx, o, nil)
	require.NoError(t, err)
	rep := NewReport(o, []*Result{emb, mos, bare})
	path := filepath.Join(t.TempDir(), "bench.json")
	require.NoError(t, rep.WriteJSON(path))

	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(raw, &doc))
	results, ok := doc["results"].([]any)
	require.True(t, ok, "results is a list: %s", raw)
	require.Len(t, results, 3)
	for i, r := range results {
		m := r.(map[string]any)
		for _, k := range []string{"broker", "devices", "commands", "lost", "throughput_cps", "p50_ms", "p99_ms", "max_ms",
			"mem_per_device_kb", "peak_rss_per_device_kb", "broker_cpu_percent", "gc_cycles"} {
			assert.Contains(t, m, k, "result %d", i)
		}
		if m["broker"] != "mosquitto" {
			assert.Contains(t, m, "alloc_per_command_bytes", "result %d", i)
			assert.Equal(t, true, m["go_runtime"], "result %d", i)
		}
		assert.EqualValues(t, 20, m["devices"])
		assert.EqualValues(t, 0, m["lost"])
		assert.Greater(t, m["commands"], 0.0)
		assert.Greater(t, m["p99_ms"], 0.0)
	}
	assert.Equal(t, "embedded", results[0].(map[string]any)["broker"])
	assert.Equal(t, "mosquitto", results[1].(map[string]any)["broker"])
	ratio, ok := doc["ratio_embedded_to_mosquitto"].(map[string]any)
	require.True(t, ok, "ratio present: %s", raw)
	assert.InDelta(t, emb.P99ms/mos.P99ms, ratio["p99_ms"], 1e-9)
	assert.NotContains(t, ratio, "alloc_per_command_bytes", "Mosquitto has no such figure: no ratio")
	byRate, ok := doc["ratio_embedded_to_mochi_by_rate"].(map[string]any)
	require.True(t, ok, "ratio to bare Mochi present: %s", raw)
	assert.InDelta(t, emb.AllocPerCommandB/bare.AllocPerCommandB, byRate["100"].(map[string]any)["alloc_per_command_bytes"], 1e-9)

	var table bytes.Buffer
	rep.WriteTable(&table)
	assert.Contains(t, table.String(), "embedded/mosquitto")
	assert.Contains(t, table.String(), "embedded/mochi")
	assert.Contains(t, table.String(), "GC cycles in load")
	assert.Contains(t, table.String(), "round trip p99 ms")
}

func TestPercentilesNearestRank(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	l := percentiles(s)
	assert.Equal(t, Latency{P50: 50, P90: 90, P99: 99, Max: 100}, l)
	assert.Equal(t, Latency{P50: 7, P90: 7, P99: 7, Max: 7}, percentiles([]time.Duration{7 * time.Millisecond}))
	assert.Equal(t, Latency{}, percentiles(nil))
}

func TestOptionsAreChecked(t *testing.T) {
	ctx := context.Background()
	_, err := RunMosquitto(ctx, Options{Devices: 0, Rate: 1, Duration: time.Second})
	assert.ErrorContains(t, err, "devices")
	_, err = RunEmbedded(ctx, Options{Devices: 1, Rate: 1, Duration: time.Second, Path: "carrier-pigeon"})
	assert.ErrorContains(t, err, "unknown path")
}
