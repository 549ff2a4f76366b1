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

const runPass = `name: on and off
steps:
  - send: on
  - expect: {led: 1}
  - send: "off"
  - expect: {led: 0}
`

// The pattern holds the Wi-Fi password, so the failure message does too:
// every output must mask it.
const runFail = `name: never printed
timeouts: {expect: 1s}
steps:
  - send: toggle
  - expect: {echo: 'never-seen runtest-wifi-secret-81c3'}
`

const runSecret = "runtest-wifi-secret-81c3"

func runDir(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, src := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644))
	}
	return dir
}

// hil run on the virtual board: progress line per scenario, summary table,
// the three report files, exit status 1 for a failure, secrets masked.
func TestRunVirtualBoardReportsAndExitCode(t *testing.T) {
	t.Setenv(rig.EnvPlatform, "legacy") // one platform: the counts below are per run
	t.Setenv(rig.EnvPort, "")
	t.Setenv(rig.EnvWiFiPassword, runSecret)
	dir := runDir(t, map[string]string{"a_pass.yaml": runPass, "b_fail.yaml": runFail})
	out := t.TempDir()
	junit, js, html, logf := filepath.Join(out, "j.xml"), filepath.Join(out, "r.json"), filepath.Join(out, "r.html"), filepath.Join(out, "serial.log")

	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--scenarios", dir, "--junit", junit, "--json", js, "--html", html, "--log", logf}, &stdout, &stderr)
	assert.Equal(t, 1, code, "a failed scenario makes the exit status 1; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	o := stdout.String()
	assert.Contains(t, o, " PASS on and off (4 steps")
	assert.Contains(t, o, " FAIL never printed (2 steps")
	assert.Contains(t, o, "SCENARIO")
	assert.Contains(t, o, "1 passed, 1 failed, 0 skipped of 2")
	assert.Contains(t, o, "never-seen ****", "the failure names the pattern, masked")

	var sum struct {
		Passed, Failed, Total int
		Scenarios             []struct {
			Name   string
			Passed bool
			Steps  int
			P50    float64 `json:"latency_p50_ms"`
			P99    float64 `json:"latency_p99_ms"`
		}
	}
	data, err := os.ReadFile(js)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &sum))
	assert.Equal(t, 1, sum.Passed)
	assert.Equal(t, 1, sum.Failed)
	require.Len(t, sum.Scenarios, 2)
	assert.True(t, sum.Scenarios[0].Passed)
	assert.Positive(t, sum.Scenarios[0].P50)
	assert.GreaterOrEqual(t, sum.Scenarios[0].P99, sum.Scenarios[0].P50)
	assert.False(t, sum.Scenarios[1].Passed)

	for _, p := range []string{junit, js, html, logf} {
		data, err := os.ReadFile(p)
		require.NoError(t, err, p)
		assert.NotContains(t, string(data), runSecret, p)
	}
	x, _ := os.ReadFile(junit)
	assert.Contains(t, string(x), `<failure message="step 2`)
	assert.Contains(t, string(x), "HIL led state=1 cmd=toggle", "the serial log is in system-out")
	h, _ := os.ReadFile(html)
	assert.Contains(t, string(h), "<svg")
	assert.NotContains(t, string(h), "<script")
	l, _ := os.ReadFile(logf)
	assert.Contains(t, string(l), "HIL mqtt up broker=127.0.0.1:")
	assert.NotContains(t, stdout.String()+stderr.String(), runSecret)
}

func TestRunOnlyPassingIsExitZero(t *testing.T) {
	t.Setenv(rig.EnvPlatform, "legacy") // one platform: the counts below are per run
	t.Setenv(rig.EnvPort, "")
	dir := runDir(t, map[string]string{"a_pass.yaml": runPass, "b_fail.yaml": runFail})
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--scenarios", dir, "--run", "^a_"}, &stdout, &stderr)
	assert.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.Contains(t, stdout.String(), "1 passed, 0 failed, 0 skipped of 1")
	assert.NotContains(t, stdout.String(), "never printed")
}

// Bad input fails before anything starts, with a clear message.
func TestRunBadInput(t *testing.T) {
	t.Setenv(rig.EnvPort, "")
	good := runDir(t, map[string]string{"a.yaml": runPass})
	bad := runDir(t, map[string]string{"bad.yaml": "name: x\nsteps:\n  - send: on\n  - expect: {led: 0}\n"})
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--scenarios", bad}, "bad.yaml:4:"},
		{[]string{"--scenarios", good, "--run", "nomatch"}, `--run "nomatch" matches none of the 1 scenarios`},
		{[]string{"--scenarios", good, "--run", "("}, "--run: "},
		{[]string{"--scenarios", good, "--profile", "x"}, `--profile "x": want hil or tutorial`},
		{[]string{"--scenarios", good, "--json", filepath.Join(good, "no", "such", "dir", "r.json")}, "no such file or directory"},
		{[]string{"--scenarios", filepath.Join(good, "missing")}, "missing"},
	} {
		var stdout, stderr bytes.Buffer
		code := runMain(append([]string{"run"}, c.args...), &stdout, &stderr)
		assert.Equal(t, 1, code, "%v", c.args)
		assert.Contains(t, stderr.String(), c.want, "%v", c.args)
		assert.False(t, strings.Contains(stdout.String(), "SCENARIO"), "%v: nothing ran", c.args)
	}
}

// A real board needs the lab's Wi-Fi and the broker's address.
func TestRunRealBoardNeedsEnvironment(t *testing.T) {
	t.Setenv(rig.EnvWiFiSSID, "")
	t.Setenv(rig.EnvWiFiPassword, "")
	t.Setenv(rig.EnvBrokerHost, "")
	dir := runDir(t, map[string]string{"a.yaml": runPass})
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--scenarios", dir, "--port", "/dev/null"}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "a real board needs HIL_WIFI_SSID, HIL_WIFI_PASSWORD and HIL_BROKER_HOST")
}

func TestParseHeap(t *testing.T) {
	for in, want := range map[string]int{"38K": 38 * 1024, "28k": 28 * 1024, "28672": 28672, "4096": 4096, "1024K": 1 << 20} {
		got, err := parseHeap(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "K", "4095", "3K", "1025K", "9007199254740993K", "-1", "38M"} {
		_, err := parseHeap(in)
		assert.Error(t, err, in)
	}
}
