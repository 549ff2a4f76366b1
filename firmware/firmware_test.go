package firmware_test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/onenet-hil/hil/firmware"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFilesAreTheBoardDirectory(t *testing.T) {
	files := firmware.Files()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	assert.Equal(t, []string{"app.py", "appboot.py", "boot.py", "main.py", "mqtt.py", "mqttio.py"}, names)
	for n, b := range files {
		disk, err := os.ReadFile(filepath.Join("board", n))
		require.NoError(t, err)
		assert.Equal(t, disk, b, n)
	}
	// The caller owns the result.
	files["app.py"][0] = 'X'
	delete(files, "boot.py")
	again := firmware.Files()
	assert.NotEqual(t, byte('X'), again["app.py"][0])
	assert.Contains(t, again, "boot.py")
}

func TestVersionMatchesTheFirmware(t *testing.T) {
	m := regexp.MustCompile(`(?m)^VERSION = "([^"]+)"$`).FindSubmatch(firmware.Files()["app.py"])
	require.NotNil(t, m, "app.py has no VERSION line")
	assert.Equal(t, firmware.Version, string(m[1]))
}

// The firmware may import only what MicroPython on an ESP8266 has
// (README.md, "The board's MicroPython") and its own modules.
func TestFirmwareImportsOnlyBoardModules(t *testing.T) {
	allowed := map[string]bool{
		"machine": true, "network": true, "socket": true, "time": true, "json": true, "struct": true,
		"binascii": true, "hashlib": true, "os": true, "gc": true, "micropython": true, "select": true,
		"sys": true, "app": true, "appboot": true, "mqtt": true, "mqttio": true,
	}
	imp := regexp.MustCompile(`(?m)^\s*(?:import\s+([\w, ]+)|from\s+(\w+)\s+import)`)
	for name, src := range firmware.Files() {
		for _, c := range src {
			assert.Less(t, c, byte(0x80), "%s: keep the firmware ASCII", name)
			if c >= 0x80 {
				break
			}
		}
		for _, m := range imp.FindAllSubmatch(src, -1) {
			mods := string(m[1]) + string(m[2])
			for _, mod := range strings.Split(mods, ",") {
				mod = strings.TrimSpace(mod)
				assert.True(t, allowed[mod], "%s imports %q, which the board does not have", name, mod)
			}
		}
	}
}
