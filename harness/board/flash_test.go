package board

import (
	"bytes"
	"context"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testWiFiPassword = "wifi-secret-9f2a"

// flashRig is a broker (demo registry) and a config pointing the firmware at it.
func flashRig(t testing.TB) (*broker.Broker, []byte, func() func(context.Context) error) {
	b, err := broker.New(broker.Options{Registry: broker.DemoRegistry(), MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { b.Close() })
	host, p, err := net.SplitHostPort(b.MQTTAddr())
	require.NoError(t, err)
	port, err := strconv.Atoi(p)
	require.NoError(t, err)
	cfg := firmware.Config{
		WiFiSSID: "lab", WiFiPassword: testWiFiPassword, BrokerHost: host, BrokerPort: port,
		DeviceID: broker.DemoDeviceID, ProductID: broker.DemoProductID, Key: broker.DemoAuthInfo, Topic: "TurnipRobot",
	}
	cj, err := cfg.JSON()
	require.NoError(t, err)
	arm := func() func(ctx context.Context) error {
		m := b.Events().Mark()
		return func(ctx context.Context) error {
			_, err := b.Events().WaitAfter(ctx, m, broker.Is(broker.Connected, broker.DemoDeviceID))
			return err
		}
	}
	return b, cj, arm
}

func TestFlashFirmwareAndReflash(t *testing.T) {
	_, cfg, arm := flashRig(t)
	b, l, r := startBoard(t, sim.Options{BootGarbage: true}, map[string]string{
		"main.py":  "while True:\n    pass\n", // stuck old firmware
		"stale.py": "# left over\n",
	})
	var log bytes.Buffer
	files := firmware.Files()
	res, boot := flash(t, r, files, cfg, arm, SyncOptions{Prune: true, Keep: []string{"keep.txt"}, Progress: &log})
	assert.ElementsMatch(t, append(keys(files), "config.json"), res.Uploaded)
	assert.Equal(t, []string{"stale.py"}, res.Removed)
	assert.Equal(t, ResetSoft, boot.Reset, "a pty has no reset lines: soft reset")
	assert.Regexp(t, `^HIL mqtt up`, boot.Ready)
	assert.True(t, res.RawPaste)
	for name, data := range files {
		onFlash, err := os.ReadFile(filepath.Join(b.FlashDir(), name))
		require.NoError(t, err)
		assert.Equal(t, data, onFlash, name)
	}
	assert.Contains(t, log.String(), "config.json")
	assert.NotContains(t, log.String(), testWiFiPassword)
	assert.NotContains(t, log.String(), broker.DemoAuthInfo)
	for _, ln := range l.Lines() {
		assert.NotContains(t, ln.Text, testWiFiPassword, "the serial log must not show the Wi-Fi password")
	}

	// Unchanged firmware: nothing uploaded.
	res, _ = flash(t, r, files, cfg, arm, SyncOptions{})
	assert.Empty(t, res.Uploaded)
	assert.Len(t, res.Skipped, len(files)+1)
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// flash is what a flasher does: sync, mark the broker, boot, and wait for
// the broker's login too (the serial echo alone is not proof).
func flash(t testing.TB, r *REPL, files map[string][]byte, cfg []byte, arm func() func(context.Context) error, opts SyncOptions) (FlashResult, BootResult) {
	t.Helper()
	ctx := testCtx(t)
	want := maps.Clone(files)
	want[ConfigPath] = cfg
	res, err := Sync(ctx, r, want, opts)
	require.NoError(t, err, "serial log:\n%s", r.Link().Tail(30))
	wait := arm()
	boot, err := Boot(ctx, r, BootOptions{Timeout: 45 * time.Second, Progress: opts.Progress})
	require.NoError(t, err, "serial log:\n%s", r.Link().Tail(30))
	require.NoError(t, wait(ctx), "the broker saw the login")
	return res, boot
}

func TestSyncRefusesABadFileName(t *testing.T) {
	ctx := testCtx(t)
	_, _, r := startBoard(t, sim.Options{}, nil)
	_, err := Sync(ctx, r, map[string][]byte{"/": []byte("x")}, SyncOptions{})
	assert.ErrorContains(t, err, `flash: bad file name "/"`)
}

func TestBootReportsBoardThatNeverComesUp(t *testing.T) {
	ctx := testCtx(t)
	_, cfg, _ := flashRig(t)
	_, _, r := startBoard(t, sim.Options{WiFi: sim.WiFiBehaviour{Mode: sim.WiFiNever}}, nil)
	files := firmware.Files()
	files[ConfigPath] = cfg
	_, err := Sync(ctx, r, files, SyncOptions{})
	require.NoError(t, err)
	_, err = Boot(ctx, r, BootOptions{Timeout: 3 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not come up")
	assert.Contains(t, err.Error(), "HIL mqtt up")
	assert.Contains(t, err.Error(), "last lines seen")
	assert.NotContains(t, err.Error(), testWiFiPassword)
}

// A custom ready test: the first line of a program that prints no echo.
func TestBootWaitsForACustomReadyLine(t *testing.T) {
	ctx := testCtx(t)
	_, _, r := startBoard(t, sim.Options{}, map[string]string{"main.py": "print('app started')\n"})
	boot, err := Boot(ctx, r, BootOptions{Reset: ResetSoft, Timeout: 20 * time.Second, What: "app started",
		Ready: func(line string) bool { return line == "app started" }})
	require.NoError(t, err)
	assert.Equal(t, "app started", boot.Ready)
	assert.Equal(t, ResetSoft, boot.Reset)
}

func TestMachineResetRestartsBoard(t *testing.T) {
	ctx := testCtx(t)
	_, l, r := startBoard(t, sim.Options{}, map[string]string{"main.py": "print('app started')\n"})
	_, err := l.Expect("app started", 20*time.Second)
	require.NoError(t, err)
	used, err := r.Reset(ctx, ResetMachine)
	require.NoError(t, err)
	assert.Equal(t, ResetMachine, used)
	_, err = l.Expect("app started", 20*time.Second)
	require.NoError(t, err, "main.py runs again after machine.reset()")

	_, err = r.Reset(ctx, ResetHard)
	require.Error(t, err, "a pty has no RTS line")
	used, err = r.Reset(ctx, ResetAuto)
	require.NoError(t, err)
	assert.Equal(t, ResetSoft, used)
	_, err = l.Expect("app started", 20*time.Second)
	require.NoError(t, err, "main.py runs again after the soft reset")
}
