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
)

// An installed hil, run outside a checkout, plays the built-in suite.
func TestRunUsesBuiltInSuiteOutsideACheckout(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv(rig.EnvPort, "")
	t.Setenv(rig.EnvPlatform, "legacy")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--run", "^basic on/off$"}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.Contains(t, stdout.String(), "basic on/off")
	assert.Contains(t, stdout.String(), "1 passed, 0 failed")
}

// A folder the user names must exist: no silent fallback to the suite.
func TestRunNamedScenarioFolderMustExist(t *testing.T) {
	t.Chdir(t.TempDir())
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--scenarios", "nowhere"}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "nowhere")
}

// A run that cannot start still writes its reports, saying why, and masks
// the secrets it knows.
func TestRunSetupFailureWritesReports(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(rig.EnvPort, "/dev/nonexistent-hil-port") // never opened: the bad port number stops it first
	t.Setenv(rig.EnvWiFiSSID, "lab")
	t.Setenv(rig.EnvWiFiPassword, "Setup-Secret-Pw-77")
	t.Setenv(rig.EnvBrokerHost, "127.0.0.1")
	t.Setenv(rig.EnvBrokerPort, "0")
	t.Setenv(rig.EnvPlatform, "legacy")
	junit, js := filepath.Join(dir, "j.xml"), filepath.Join(dir, "r.json")
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--junit", junit, "--json", js, "--run", "^basic on/off$"}, &stdout, &stderr)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	for _, p := range []string{junit, js} {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		assert.Contains(t, string(data), "setup", p)
		assert.Contains(t, string(data), "HIL_BROKER_PORT", p)
		assert.NotContains(t, string(data), "Setup-Secret-Pw-77", p)
	}
	var sum struct {
		Failed int `json:"failed"`
	}
	data, _ := os.ReadFile(js)
	require.NoError(t, json.Unmarshal(data, &sum))
	assert.Equal(t, 1, sum.Failed)
	assert.NotContains(t, stdout.String()+stderr.String(), "Setup-Secret-Pw-77")
}
