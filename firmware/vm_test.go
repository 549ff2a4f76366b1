package firmware_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/onenet-hil/hil/firmware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const wasmPkg = "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs"

// TestMicroPythonVM runs firmware/vmtest/vm.test.mjs: the firmware, its MQTT
// client and the tutorial's program on MicroPython 1.27 compiled to
// WebAssembly, under node. The package comes from the committed lock file.
func TestMicroPythonVM(t *testing.T) {
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "package-lock.json"), "the repository root must hold package-lock.json")
	node, err := exec.LookPath("node")
	require.NoError(t, err, "node is needed for the firmware tests on the MicroPython VM (Node.js >= 18; .ci/run installs it)")
	ensureNodeModules(t, root)

	// Go's rendering of the tutorial with awkward values, so the VM checks
	// that the Python literals carry them exactly.
	cfg := firmware.Config{
		WiFiSSID: "实验室 'lab'", WiFiPassword: `p\a"ss'wd`, BrokerHost: "127.0.0.1",
		DeviceID: "503367129", ProductID: "386427", Key: `k'ey"\1`, Topic: "TurnipRobot/led",
	}
	rendered := t.TempDir()
	for name, data := range firmware.Tutorial(cfg) {
		require.NoError(t, os.WriteFile(filepath.Join(rendered, name), data, 0o644))
	}
	cj, err := cfg.JSON()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(rendered, "config.json"), cj, 0o644))
	figFile := filepath.Join(t.TempDir(), "figures.json")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test-reporter=tap", filepath.Join("firmware", "vmtest", "vm.test.mjs"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "HIL_FW_RENDERED="+rendered, "HIL_FIGURES="+figFile, "NODE_TEST_CONTEXT=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	require.NoError(t, ctx.Err(), "the VM tests did not finish in time; output:\n%s", out.String())
	require.NoError(t, runErr, "VM tests failed; output:\n%s", out.String())

	pass := count(t, out.Bytes(), "pass")
	assert.Zero(t, count(t, out.Bytes(), "fail"), out.String())
	assert.GreaterOrEqual(t, pass, 16, "fewer VM tests ran than exist; output:\n%s", out.String())

	raw, err := os.ReadFile(figFile)
	require.NoError(t, err, "the VM tests wrote no figures; output:\n%s", out.String())
	var fig map[string]int
	require.NoError(t, json.Unmarshal(raw, &fig))
	total := 0
	for _, b := range firmware.Files() {
		total += len(b)
	}
	assert.Equal(t, total, fig["firmware_bytes"], "the VM saw other files than Files()")
	assert.Less(t, total, 16*1024, "the firmware must stay small for an ESP8266")
	t.Logf("firmware: %d files, %d bytes; heap held after boot %d bytes; gc.mem_free() before a command %d, after %d (%d bytes used); a Studio command %d bytes, a property set %d bytes",
		fig["firmware_files"], total, fig["heap_resident_after_boot"], fig["heap_free_before_command"],
		fig["heap_free_after_command"], fig["heap_used_by_command"], fig["heap_used_by_studio_command"], fig["heap_used_by_property_set"])
}

// count reads the test runner's closing "# pass N" / "# fail N" line.
func count(t *testing.T, out []byte, what string) int {
	m := regexp.MustCompile(`(?m)^# ` + what + ` (\d+)$`).FindSubmatch(out)
	require.NotNil(t, m, "no '# %s N' line in the node test output:\n%s", what, out)
	n, err := strconv.Atoi(string(m[1]))
	require.NoError(t, err)
	return n
}

// ensureNodeModules installs the MicroPython package from the lock file once
// when it is missing (a fresh clone), and fails clearly if that fails.
func ensureNodeModules(t *testing.T, root string) {
	if _, err := os.Stat(filepath.Join(root, wasmPkg)); err == nil {
		return
	}
	npm, err := exec.LookPath("npm")
	require.NoError(t, err, "%s is missing and npm is not installed to fetch it (run `npm ci` at the repository root)", wasmPkg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "`npm ci` failed at %s, so the MicroPython VM is not available:\n%s", root, out)
	require.FileExists(t, filepath.Join(root, wasmPkg), "`npm ci` ran but did not install the MicroPython package")
}
