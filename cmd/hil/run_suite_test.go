package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An installed hil, run outside a checkout, plays the built-in suite.
func TestRunUsesBuiltInSuiteOutsideACheckout(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("HIL_PORT", "")
	t.Setenv("HIL_PLATFORM", "legacy")
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
