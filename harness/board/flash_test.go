package board

import (
	"bytes"
	"context"
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
func flashRig(t testing.TB) (*broker.Broker, []byte, ArmFunc) {
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
	ctx := testCtx(t)
	_, cfg, arm := flashRig(t)
	b, l, r := startBoard(t, sim.Options{BootGarbage: true}, map[string]string{
		"main.py":  "while True:\n    pass\n", // stuck old firmware
		"stale.py": "# left over\n",
	})
	var log bytes.Buffer
	files := firmware.Files()
	res, err := Flash(ctx, r, files, cfg, FlashOptions{ArmConnected: arm, Prune: true, Keep: []string{"keep.txt"}, Progress: &log, BootTimeout: 45 * time.Second})
	require.NoError(t, err, "serial log:\n%s", l.Tail(30))
	assert.ElementsMatch(t, append(keys(files), "config.json"), res.Uploaded)
	assert.Equal(t, []string{"stale.py"}, res.Removed)
	assert.Equal(t, ResetSoft, res.Reset, "a pty has no reset lines: soft reset")
	assert.Regexp(t, `^HIL mqtt up`, res.Ready)
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
	res, err = Flash(ctx, r, files, cfg, FlashOptions{ArmConnected: arm, BootTimeout: 45 * time.Second})
	require.NoError(t, err, "serial log:\n%s", l.Tail(30))
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

func TestFlashNeedsBothSignals(t *testing.T) {
	ctx := testCtx(t)
	_, cfg, _ := flashRig(t)
	_, l, r := startBoard(t, sim.Options{}, nil)

	_, err := Flash(ctx, r, firmware.Files(), cfg, FlashOptions{})
	require.ErrorContains(t, err, "no broker wait")

	// A broker that never sees the login: the serial echo alone must not pass.
	never := func() func(ctx context.Context) error {
		return func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	}
	_, err = Flash(ctx, r, firmware.Files(), cfg, FlashOptions{ArmConnected: never, BootTimeout: 5 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "broker saw no login", "serial log:\n%s", l.Tail(30))
}

func TestFlashReportsBoardThatNeverComesUp(t *testing.T) {
	ctx := testCtx(t)
	_, cfg, arm := flashRig(t)
	_, _, r := startBoard(t, sim.Options{WiFi: sim.WiFiBehaviour{Mode: sim.WiFiNever}}, nil)
	_, err := Flash(ctx, r, firmware.Files(), cfg, FlashOptions{ArmConnected: arm, BootTimeout: 3 * time.Second})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "did not come up")
	assert.Contains(t, err.Error(), "last lines seen")
	assert.NotContains(t, err.Error(), testWiFiPassword)
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
