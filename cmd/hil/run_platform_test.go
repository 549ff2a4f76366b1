package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/harness/scenario"
)

const runWrong = `name: refused
credentials: wrong
steps:
  - expect: {event: mqtt_refused, rc: bad_credentials}
  - expect: {broker: refused, rc: bad_credentials}
`

// --platform both plays every scenario on legacy, then on studio, on one
// virtual board; the report names the platform of each.
func TestRunPlatformBoth(t *testing.T) {
	t.Setenv(rig.EnvPort, "")
	t.Setenv(rig.EnvPlatform, "")
	dir := runDir(t, map[string]string{"a_pass.yaml": runPass, "c_wrong.yaml": runWrong})
	js := filepath.Join(t.TempDir(), "r.json")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--scenarios", dir, "--platform", "both", "--json", js}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	o := stdout.String()
	assert.Contains(t, o, "platform legacy:")
	assert.Contains(t, o, "platform studio:")
	assert.Contains(t, o, "4 passed, 0 failed, 0 skipped of 4")
	var sum struct {
		Target    string
		Scenarios []struct{ Name string }
	}
	data, err := os.ReadFile(js)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(data, &sum))
	var names []string
	for _, s := range sum.Scenarios {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"legacy: on and off", "legacy: refused", "studio: on and off", "studio: refused"}, names)
	assert.Contains(t, sum.Target, "legacy and OneNET Studio")
}

// $HIL_PLATFORM is the default; --platform wins over it.
func TestRunPlatformStudioFromEnv(t *testing.T) {
	t.Setenv(rig.EnvPort, "")
	t.Setenv(rig.EnvPlatform, "studio")
	dir := runDir(t, map[string]string{"c_wrong.yaml": runWrong})
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--scenarios", dir}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.Contains(t, stdout.String(), ", OneNET Studio")
	assert.NotContains(t, stdout.String(), "platform legacy:")

	stdout.Reset()
	code = runMain([]string{"run", "--scenarios", dir, "--platform", "legacy"}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.NotContains(t, stdout.String(), "OneNET Studio")
}

func TestRunPlatformBadInput(t *testing.T) {
	t.Setenv(rig.EnvPort, "")
	t.Setenv(rig.EnvPlatform, "")
	good := runDir(t, map[string]string{"a.yaml": runPass})
	for _, c := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--platform", "Studio"}, "", `--platform "Studio": want legacy, studio or both`},
		{[]string{"--platform", "both", "--port", "/dev/null"}, "", "--platform both: a real board is flashed for one platform"},
		{nil, "mqtts", `HIL_PLATFORM: platform "mqtts": want legacy or studio`},
	} {
		t.Setenv(rig.EnvPlatform, c.env)
		var stdout, stderr bytes.Buffer
		code := runMain(append([]string{"run", "--scenarios", good}, c.args...), &stdout, &stderr)
		assert.Equal(t, 1, code, "%v", c.args)
		assert.Contains(t, stderr.String(), c.want, "%v", c.args)
		assert.NotContains(t, stdout.String(), "SCENARIO", "%v: nothing ran", c.args)
	}
}

// With no --platform and no $HIL_PLATFORM the main job covers both
// platforms on the virtual board.
func TestRunPlatformDefaultsToBothOnTheVirtualBoard(t *testing.T) {
	t.Setenv(rig.EnvPort, "")
	t.Setenv(rig.EnvPlatform, "")
	dir := runDir(t, map[string]string{"a.yaml": runPass})
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--scenarios", dir}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.Contains(t, stdout.String(), "platform legacy:")
	assert.Contains(t, stdout.String(), "platform studio:")
}

// The platforms follow the board's kind: both on a sandboxed (virtual)
// board by default, one on a serial board; an unknown kind is an error.
func TestRunPlatformsFollowTheBoardKind(t *testing.T) {
	t.Setenv(rig.EnvPlatform, "")
	ps, err := runPlatforms("", rig.Options{})
	require.NoError(t, err)
	assert.Equal(t, scenario.Platforms, ps)
	ps, err = runPlatforms("", rig.Options{Board: "virtual"})
	require.NoError(t, err)
	assert.Equal(t, scenario.Platforms, ps)
	ps, err = runPlatforms("", rig.Options{Port: "/dev/ttyUSB0"})
	require.NoError(t, err)
	assert.Equal(t, []scenario.Platform{scenario.Legacy}, ps)
	_, err = runPlatforms("both", rig.Options{Board: "serial", Port: "/dev/ttyUSB0"})
	assert.ErrorContains(t, err, "a real board is flashed for one platform")
	_, err = runPlatforms("", rig.Options{Board: "jtag"})
	assert.ErrorContains(t, err, `unknown board kind "jtag"`)
}

func TestRunRefusesAnUnknownBoardKind(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--board", "jtag"}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), `unknown board kind "jtag" (known: serial, virtual)`)
}
