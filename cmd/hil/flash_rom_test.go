package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/esprom"
	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/internal/esp8266"
	"github.com/onenet-hil/hil/sim"
)

// startDownloadSim is a virtual board in its ROM bootloader.
func startDownloadSim(t *testing.T) *sim.Board {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := sim.Start(ctx, sim.Options{Download: true})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b
}

// writeImage writes a generated MicroPython image to a file.
func writeImage(t *testing.T, img []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "esp8266-v1.27.0.bin")
	require.NoError(t, os.WriteFile(p, img, 0o600))
	return p
}

func TestFlashMicroPythonThenTheApplication(t *testing.T) {
	t.Setenv(rig.EnvPort, "")
	t.Setenv(rig.EnvWiFiPassword, "")
	t.Setenv(rig.EnvDeviceKey, "")
	b := startDownloadSim(t)
	img := writeImage(t, esp8266.SampleImage("v1.27.0", 200<<10))
	var out, errOut bytes.Buffer
	code := runMain([]string{"flash", "--port", b.Port(), "--micropython", img, "--timeout", "45s"}, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	o := out.String()
	assert.Contains(t, o, "segments, MicroPython v1.27.0")
	assert.Contains(t, o, "flash: rom: chip ESP8266, MAC "+sim.ROMMAC+", flash id 0x1640EF (4 MB)")
	assert.Contains(t, o, "flash: writing: 100% (204800 of 204800 bytes)", "plain progress lines off a terminal")
	assert.Regexp(t, `flash: MicroPython v1\.27\.0 written \(204800 bytes in \S+, [\d.]+ kB/s at \d+ baud\); the board says: MicroPython v1\.27\.0 on`, o)
	assert.Regexp(t, `flash: done: \d+ uploaded`, o, "then the application, as without --micropython")
	assert.False(t, b.InDownloadMode())
}

func TestFlashMicroPythonRefusesACorruptedImageBeforeTheBoard(t *testing.T) {
	t.Setenv(rig.EnvPort, "")
	b := startDownloadSim(t)
	bad := esp8266.SampleImage("v1.27.0", 64<<10)
	bad[40] ^= 0xFF
	var out, errOut bytes.Buffer
	code := runMain([]string{"flash", "--port", b.Port(), "--micropython", writeImage(t, bad)}, &out, &errOut)
	require.NotEqual(t, 0, code)
	assert.Regexp(t, `refusing the image \(nothing was erased\): not a bootable ESP8266 image: at offset 0x91F: checksum 0x[0-9A-F]{2}, the segments give`, errOut.String())
	assert.True(t, b.InDownloadMode(), "the board was not touched")
	assert.Nil(t, b.FlashImage(16), "nothing erased or written")
}

// hil sim --download: the option puts the virtual board in its bootloader.
func TestSimDownloadOption(t *testing.T) {
	sc := startSimCommand(t, "--download")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := esprom.Flash(ctx, sc.path, esp8266.SampleImage("v1.27.0", 64<<10), esprom.FlashOptions{BannerTimeout: 20 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, "ESP8266", res.Info.Chip)
	assert.Equal(t, "v1.27.0", res.Version)
}

func TestRunMicroPythonFlashesFirstAndNamesTheVersion(t *testing.T) {
	t.Setenv(rig.EnvPlatform, "legacy")
	t.Setenv(rig.EnvPort, "")
	dir := runDir(t, map[string]string{"a_pass.yaml": runPass})
	junit := filepath.Join(t.TempDir(), "j.xml")
	img := writeImage(t, esp8266.SampleImage("v1.27.0", 64<<10))
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--scenarios", dir, "--micropython", img, "--junit", junit}, &stdout, &stderr)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.Contains(t, stdout.String(), "run: MicroPython v1.27.0 written: 65536 bytes in")
	assert.Contains(t, stdout.String(), "2 passed, 0 failed, 0 skipped of 2")
	x, err := os.ReadFile(junit)
	require.NoError(t, err)
	assert.Contains(t, string(x), `name="flash MicroPython v1.27.0 (esp8266-v1.27.0.bin)"`)
}

func TestROMProgressBarOnATerminalLinesElsewhere(t *testing.T) {
	m, tty, err := pty.Open()
	require.NoError(t, err)
	defer m.Close()
	defer tty.Close()
	p := newROMProgress(tty, 8192)
	require.NotNil(t, p.bar, "a terminal gets a bar")
	for done := 1024; done <= 8192; done += 1024 {
		p.update(done, 8192)
	}
	p.finish(nil)
	tty.Close()
	var seen bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), "|") {
		require.NoError(t, m.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, err := m.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			break
		}
	}
	assert.Regexp(t, `\rflash: writing +\d+% \|█+ *\|`, seen.String(), "a bar drawn in place")

	var plain bytes.Buffer
	p = newROMProgress(&plain, 8192)
	assert.Nil(t, p.bar, "a pipe or file gets lines")
	for done := 1024; done <= 8192; done += 1024 {
		p.update(done, 8192)
	}
	p.finish(nil)
	lines := strings.Split(strings.TrimSpace(plain.String()), "\n")
	assert.Len(t, lines, 10, "a line each tenth: %q", plain.String())
	assert.Equal(t, "flash: writing:  10% (1024 of 8192 bytes)", lines[0])
	assert.Equal(t, "flash: writing: 100% (8192 of 8192 bytes)", lines[9])
}

func TestRunMicroPythonRefusesACorruptedImageAndReportsIt(t *testing.T) {
	t.Setenv(rig.EnvPlatform, "legacy")
	t.Setenv(rig.EnvPort, "")
	dir := runDir(t, map[string]string{"a_pass.yaml": runPass})
	junit := filepath.Join(t.TempDir(), "j.xml")
	bad := esp8266.SampleImage("v1.27.0", 64<<10)
	bad[0] = 0xFF
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--scenarios", dir, "--micropython", writeImage(t, bad), "--junit", junit}, &stdout, &stderr)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	assert.Contains(t, stderr.String(), "refusing the image (nothing was erased): not a bootable ESP8266 image: at offset 0x0: magic byte 0xFF, want 0xE9 (0xFF: erased flash)")
	x, err := os.ReadFile(junit)
	require.NoError(t, err)
	assert.Regexp(t, `<testcase name="flash MicroPython \(esp8266-v1\.27\.0\.bin\)"[^>]*>\s*<failure message="--micropython`, string(x))
	assert.NotContains(t, string(x), `name="on and off"`, "no scenario ran")
}
