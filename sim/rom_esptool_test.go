package sim

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/internal/esp8266"
)

// Espressif's own tools against the virtual board's ROM: what they read
// and write must be what an ESP8266 gives them.

// esptoolJSModules is a node_modules folder holding esptool-js (Espressif's
// esptool in JavaScript), or "" with the reason it is not there.
func esptoolJSModules() (string, string) {
	if _, err := exec.LookPath("node"); err != nil {
		return "", "node is not installed"
	}
	dirs := []string{os.Getenv("HIL_ESPTOOL_JS")}
	if _, file, _, ok := runtime.Caller(0); ok {
		dirs = append(dirs, filepath.Join(filepath.Dir(file), "..", "node_modules"))
	}
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "esptool-js", "lib", "index.js")); err == nil {
			return d, ""
		}
	}
	return "", "esptool-js is not installed: `npm install esptool-js@0.7.0` in a folder and set HIL_ESPTOOL_JS=<folder>/node_modules"
}

func TestEsptoolJSTalksToTheROM(t *testing.T) {
	mods, why := esptoolJSModules()
	if mods == "" {
		t.Skip(why)
	}
	for _, tc := range []struct{ mode, baud string }{{"nostub", "115200"}, {"stub", "115200"}, {"stub", "460800"}} {
		mode := tc.mode
		t.Run(mode+"@"+tc.baud, func(t *testing.T) {
			b := startDownload(t)
			img := esp8266.SampleImage("v1.27.0", 96<<10)
			imgPath := filepath.Join(t.TempDir(), "mp.bin")
			require.NoError(t, os.WriteFile(imgPath, img, 0o600))
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, "node", filepath.Join("testdata", "esptool", "esptool_js.mjs"), mods, b.Port(), mode, imgPath, tc.baud)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			require.NoError(t, err, "esptool-js:\nstdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			o := stdout.String()
			assert.Contains(t, o, "chip: ESP8266EX\n")
			assert.Contains(t, o, "mac: "+ROMMAC+"\n")
			assert.Contains(t, o, "flash id: 1640ef\n")
			assert.Contains(t, o, map[string]string{"stub": "stub: true\n", "nostub": "stub: false\n"}[mode])
			assert.Contains(t, o, "written: 98304\n")
			assert.Contains(t, o, "baud: "+tc.baud+"\n", "the stub took CHANGE_BAUDRATE")
			assert.Equal(t, img, b.FlashImage(len(img)), "the flash holds the image esptool-js wrote")
			if mode == "stub" {
				assert.Contains(t, stderr.String(), "Hash of data verified", "esptool-js checked the stub's MD5")
			}
			t.Logf("esptool-js (%s):\n%s", mode, stderr.String())

			// A reset boots it.
			require.NoError(t, b.PowerCycle())
			c := openPort(t, b.Port())
			c.write("\r\n")
			c.expect(">>> ")
		})
	}
}

// esptoolCommand is Espressif's esptool: $HIL_ESPTOOL (an executable),
// else esptool (Debian's package) or esptool.py (pip's) on the PATH, or "".
func esptoolCommand() string {
	for _, name := range []string{os.Getenv("HIL_ESPTOOL"), "esptool", "esptool.py"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func TestEsptoolTalksToTheROM(t *testing.T) {
	tool := esptoolCommand()
	if tool == "" {
		t.Skip("Espressif's esptool is not installed (apt-get install esptool, where the distribution has it; pip install esptool; or HIL_ESPTOOL=an executable)")
	}
	for _, stub := range []bool{false, true} {
		name := map[bool]string{false: "no-stub", true: "stub"}[stub]
		t.Run(name, func(t *testing.T) {
			b := startDownload(t)
			img := esp8266.SampleImage("v1.27.0", 96<<10)
			imgPath := filepath.Join(t.TempDir(), "mp.bin")
			require.NoError(t, os.WriteFile(imgPath, img, 0o600))
			run := func(args ...string) string {
				t.Helper()
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
				defer cancel()
				full := []string{"--chip", "esp8266", "--port", b.Port(), "--before", "no_reset", "--after", "no_reset"}
				if !stub {
					full = append(full, "--no-stub")
				}
				out, err := exec.CommandContext(ctx, tool, append(full, args...)...).CombinedOutput()
				require.NoError(t, err, "esptool %v:\n%s", args, out)
				return string(out)
			}
			assert.Contains(t, run("chip_id"), "Chip is ESP8266EX")
			assert.Contains(t, run("read_mac"), "MAC: "+ROMMAC)
			fid := run("flash_id")
			assert.Contains(t, fid, "Manufacturer: ef")
			assert.Contains(t, fid, "Device: 4016")
			assert.Contains(t, fid, "Detected flash size: 4MB")
			w := run("write_flash", "0x0", imgPath)
			assert.Contains(t, w, "Wrote 98304 bytes")
			if stub {
				assert.Contains(t, w, "Hash of data verified")
			}
			assert.Equal(t, img, b.FlashImage(len(img)))
		})
	}
}
