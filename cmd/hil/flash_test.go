package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const flashTestPassword = "wifi-pw-flash-test-77"

func startSim(t *testing.T) *sim.Board {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := sim.Start(ctx, sim.Options{BootGarbage: true})
	require.NoError(t, err)
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { b.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Log("sim.Board.Close did not return within 10 s")
		}
	})
	return b
}

func TestFlashCommandWithEmbeddedBroker(t *testing.T) {
	b := startSim(t)
	t.Setenv(rig.EnvWiFiPassword, flashTestPassword)
	logPath := filepath.Join(t.TempDir(), "serial.log")
	var out, errOut bytes.Buffer
	code := runMain([]string{"flash", "--port", b.Port(), "--listen", "127.0.0.1:0", "--advertise", "127.0.0.1",
		"--wifi-ssid", "lab", "--log", logPath, "--timeout", "45s"}, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	assert.Contains(t, out.String(), "embedded broker on 127.0.0.1:")
	assert.Contains(t, out.String(), fmt.Sprintf("flash: done: %d uploaded", len(firmware.Files())+1), "the firmware and config.json")
	assert.Contains(t, out.String(), "board up in")
	assert.NotContains(t, out.String()+errOut.String(), flashTestPassword)

	cj, err := os.ReadFile(filepath.Join(b.FlashDir(), "config.json"))
	require.NoError(t, err)
	cfg, err := firmware.ParseConfig(cj)
	require.NoError(t, err)
	assert.Equal(t, flashTestPassword, cfg.WiFiPassword, "the password reaches the board")
	assert.Equal(t, "503367129", cfg.DeviceID)

	serial, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(serial), "HIL mqtt up")
	assert.NotContains(t, string(serial), flashTestPassword)
}

func TestFlashCommandFirmwareDirAndConfigFile(t *testing.T) {
	b := startSim(t)
	dir := t.TempDir()
	for name, data := range firmware.Files() {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "lib"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "lib", "extra.py"), []byte("X = 1\n"), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "__pycache__"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "__pycache__", "junk.pyc"), []byte("junk"), 0o644))
	conf := filepath.Join(t.TempDir(), "hil.yaml")
	require.NoError(t, os.WriteFile(conf, []byte("wifi_ssid: lab\nwifi_password: "+flashTestPassword+"\ntopic: TurnipRobot\n"), 0o600))

	var out, errOut bytes.Buffer
	code := runMain([]string{"flash", "--port", b.Port(), "--listen", "127.0.0.1:0", "--advertise", "127.0.0.1",
		"--firmware", dir, "--config", conf, "--timeout", "45s"}, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	assert.Contains(t, out.String(), fmt.Sprintf("flash: done: %d uploaded", len(firmware.Files())+2), "the firmware, lib/extra.py and config.json")
	got, err := os.ReadFile(filepath.Join(b.FlashDir(), "lib", "extra.py"))
	require.NoError(t, err)
	assert.Equal(t, "X = 1\n", string(got))
	_, err = os.Stat(filepath.Join(b.FlashDir(), "__pycache__"))
	assert.True(t, os.IsNotExist(err))
	assert.NotContains(t, out.String()+errOut.String(), flashTestPassword)

	// Again: only config.json changed (the embedded broker got a new port).
	out.Reset()
	code = runMain([]string{"flash", "--port", b.Port(), "--listen", "127.0.0.1:0", "--advertise", "127.0.0.1",
		"--firmware", dir, "--config", conf, "--timeout", "45s"}, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	assert.Contains(t, out.String(), "[1/1] config.json")
	assert.Contains(t, out.String(), "flash: done: 1 uploaded")
	assert.Contains(t, out.String(), fmt.Sprintf("%d unchanged", len(firmware.Files())+1))
}

func TestFlashCommandBadInput(t *testing.T) {
	empty := t.TempDir()
	badConf := filepath.Join(t.TempDir(), "bad.yaml")
	require.NoError(t, os.WriteFile(badConf, []byte("wifi_sid: typo\n"), 0o600))
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--reset", "bogus"}, "unknown reset mode"},
		{[]string{"--ready", "("}, "--ready"},
		{[]string{"--firmware", empty, "--wifi-ssid", "x"}, "no files"},
		{[]string{"--broker", "10.0.0.5:6002", "--wifi-ssid", "x"}, "--api"},
		{[]string{"--broker", "nonsense", "--wifi-ssid", "x"}, "--broker"},
		{[]string{"--config", badConf}, "wifi_sid"},
		{[]string{"--port", filepath.Join(empty, "ttyUSB7"), "--listen", "127.0.0.1:0", "--wifi-ssid", "x", "--wifi-password", flashTestPassword}, "ttyUSB7"},
		{[]string{"--device-id", "777001", "--wifi-ssid", "x", "--wifi-password", flashTestPassword}, "--product-id, --key ($HIL_DEVICE_KEY)"},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		code := runMain(append([]string{"flash"}, c.args...), &out, &errOut)
		assert.Equal(t, 1, code, "%v", c.args)
		assert.Contains(t, errOut.String(), c.want, "%v", c.args)
		assert.NotContains(t, out.String()+errOut.String(), flashTestPassword)
	}
}

const flashTestKey = "device-key-flash-test-31"

// leakFirmware is the firmware with a main.py that first prints the
// secrets it was given, as careless firmware might.
func leakFirmware(t *testing.T, withRest bool) string {
	dir := t.TempDir()
	leak := "import json\n_c = json.load(open('config.json'))\nprint('LEAK', _c['wifi']['password'], _c['key'])\ndel _c\n"
	files := map[string][]byte{"main.py": []byte(leak)}
	if withRest {
		files = firmware.Files()
		files["main.py"] = append([]byte(leak), files["main.py"]...)
	}
	for name, data := range files {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o644))
	}
	return dir
}

// Given credentials are registered in the embedded broker (the board logs
// in with them), and what the board prints of the secrets is masked on the
// console and in the serial log.
func TestFlashRegistersGivenDeviceAndMasksSecrets(t *testing.T) {
	b := startSim(t)
	t.Setenv(rig.EnvWiFiPassword, flashTestPassword)
	t.Setenv(rig.EnvDeviceKey, flashTestKey)
	logPath := filepath.Join(t.TempDir(), "serial.log")
	var out, errOut bytes.Buffer
	code := runMain([]string{"flash", "--port", b.Port(), "--listen", "127.0.0.1:0", "--advertise", "127.0.0.1",
		"--wifi-ssid", "lab", "--device-id", "777001", "--product-id", "555001", "--firmware", leakFirmware(t, true),
		"--log", logPath, "--timeout", "45s"}, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	assert.Contains(t, out.String(), "(product 555001, device 777001)")
	assert.Contains(t, out.String(), "board up in")

	cj, err := os.ReadFile(filepath.Join(b.FlashDir(), "config.json"))
	require.NoError(t, err)
	cfg, err := firmware.ParseConfig(cj)
	require.NoError(t, err)
	assert.Equal(t, flashTestKey, cfg.Key, "the key reaches the board")
	assert.Equal(t, "777001", cfg.DeviceID)

	serial, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(serial), "LEAK **** ****", "the board printed the secrets; the log has them masked")
	assert.Contains(t, string(serial), "HIL mqtt up")
	for _, secret := range []string{flashTestPassword, flashTestKey} {
		assert.NotContains(t, string(serial), secret)
		assert.NotContains(t, out.String()+errOut.String(), secret)
	}
}

// An error that carries the last serial lines (the board never said it was
// ready) has the secrets those lines hold masked, given as flags too.
func TestFlashErrorWithSerialLinesIsMasked(t *testing.T) {
	b := startSim(t)
	logPath := filepath.Join(t.TempDir(), "serial.log")
	var out, errOut bytes.Buffer
	code := runMain([]string{"flash", "--port", b.Port(), "--listen", "127.0.0.1:0", "--advertise", "127.0.0.1",
		"--wifi-ssid", "lab", "--wifi-password", flashTestPassword, "--device-id", "777001", "--product-id", "555001",
		"--key", flashTestKey, "--firmware", leakFirmware(t, false), "--ready", "^NEVER$", "--timeout", "10s",
		"--log", logPath}, &out, &errOut)
	require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	assert.Contains(t, errOut.String(), "last lines seen:")
	assert.Contains(t, errOut.String(), "LEAK **** ****", "the error shows the line, masked")
	serial, err := os.ReadFile(logPath)
	require.NoError(t, err)
	assert.Contains(t, string(serial), "LEAK **** ****")
	for _, secret := range []string{flashTestPassword, flashTestKey} {
		assert.NotContains(t, out.String()+errOut.String()+string(serial), secret)
	}
}

// The advertised address is picked from the interfaces; flash says which
// and how to change it. The secret flags' help points at the safer ways.
func TestFlashSaysWhichAddressAndHowToChangeIt(t *testing.T) {
	addr, note := lanAddress()
	require.NotNil(t, net.ParseIP(addr).To4(), "an IPv4 address: %q", addr)
	assert.Contains(t, note, addr)
	assert.Contains(t, note, "--advertise")

	var out, errOut bytes.Buffer
	runMain([]string{"flash", "-h"}, &out, &errOut)
	assert.Contains(t, errOut.String(), "prefer $"+rig.EnvWiFiPassword+" or wifi_password in --config")
	assert.Contains(t, errOut.String(), "prefer $"+rig.EnvDeviceKey+" or key in --config")
	assert.Contains(t, errOut.String(), "shows in ps and the shell history")
}

// hil flash to the port of hil sim, as a newcomer meets it (issue 17):
// --port is the only flag. The board says it is the virtual one, so the
// broker listens on loopback and the board is given a Wi-Fi network name.
// The port is hil sim's --link, the way Thonny users name it.
func TestFlashToHilSimWithOnlyPort(t *testing.T) {
	t.Setenv(rig.EnvPort, "")
	t.Setenv(rig.EnvWiFiPassword, "")
	t.Setenv(rig.EnvDeviceKey, "")
	flash := t.TempDir()
	link := filepath.Join(t.TempDir(), "ttyUSB-hil0")
	sc := startSimCommand(t, "--flash", flash, "--link", link)
	var out, errOut bytes.Buffer
	code := runMain([]string{"flash", "--port", sc.path}, &out, &errOut)
	require.Equal(t, 0, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	assert.Contains(t, out.String(), "flash: "+link+" is a virtual board (hil sim: it has the _hil module)")
	assert.Regexp(t, `embedded broker on 127\.0\.0\.1:\d+ \(demo registry\); the board will connect to 127\.0\.0\.1:\d+`, out.String())
	assert.NotContains(t, out.String(), "first non-loopback", "no LAN address is picked for a virtual board")
	assert.Contains(t, out.String(), fmt.Sprintf("flash: done: %d uploaded", len(firmware.Files())+1), "the firmware and config.json")

	cj, err := os.ReadFile(filepath.Join(flash, "config.json"))
	require.NoError(t, err)
	cfg, err := firmware.ParseConfig(cj)
	require.NoError(t, err)
	assert.Equal(t, virtualSSID, cfg.WiFiSSID)
	assert.Equal(t, "127.0.0.1", cfg.BrokerHost)
	assert.Equal(t, broker.DemoDeviceID, cfg.DeviceID)
}

// The probe's answers: the virtual board's, a real board's, and junk.
func TestParseProbe(t *testing.T) {
	v, p, err := parseProbe("esp8266 True\r\n")
	require.NoError(t, err)
	assert.True(t, v)
	assert.Equal(t, "esp8266", p)
	v, p, err = parseProbe("esp8266 False\r\n")
	require.NoError(t, err)
	assert.False(t, v)
	assert.Equal(t, "esp8266", p)
	_, _, err = parseProbe("Traceback ...")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "give --board real or --board virtual")
	assert.True(t, isLoopback("127.0.0.1"))
	assert.True(t, isLoopback("::1"))
	assert.True(t, isLoopback("localhost"))
	assert.False(t, isLoopback("10.255.255.1"))
}

// The stop fires within stopWithin of the board's report.
const stopWithin = 5 * time.Second

// reportAge is how long before end the serial log's last line holding
// report was received (the report that decided a stop: for "unreachable",
// the last of those in a row); it fails the test when there is none.
func reportAge(t *testing.T, logPath, report string, end time.Time) time.Duration {
	t.Helper()
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	lines := strings.Split(string(data), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		stamp, text, ok := strings.Cut(lines[i], " ")
		if ok && strings.Contains(text, report) {
			at, err := time.Parse(time.RFC3339Nano, stamp)
			require.NoError(t, err, "log line %q", lines[i])
			return end.Sub(at)
		}
	}
	t.Fatalf("no %q in the serial log:\n%s", report, data)
	return 0
}

// A failure waiting cannot mend stops the flash within 5 s of the board's
// report, naming the fix: no Wi-Fi network given (a board taken for a real
// one gets no network name), a refused Wi-Fi password, a broker address the board cannot reach (here
// one outside loopback, which the virtual board refuses before any packet
// leaves), and a refused login with what its CONNACK code means in OneNET's
// table (a wrong key against a running broker).
func TestFlashStopsFastWithTheFix(t *testing.T) {
	// The virtual board joins any network, so a refused password comes
	// from firmware that reports it as the real firmware does.
	refused := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(refused, "main.py"),
		[]byte("import time\nprint('HIL boot fw=test id=-')\nwhile True:\n    print('HIL wifi down reason=password')\n    time.sleep(2)\n"), 0o644))
	ext, err := broker.New(broker.Options{Registry: broker.DemoRegistry(), MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, ext.Start())
	t.Cleanup(func() { ext.Close() })
	for _, c := range []struct {
		name   string
		args   []string
		env    map[string]string
		report string
		want   []string
	}{
		{"no ssid", []string{"--board", "real", "--advertise", "127.0.0.1", "--listen", "127.0.0.1:0"}, nil,
			"HIL wifi down reason=config", []string{"wifi down reason=config", "give --wifi-ssid"}},
		{"wrong password", []string{"--advertise", "127.0.0.1", "--listen", "127.0.0.1:0", "--wifi-ssid", "lab", "--firmware", refused}, nil,
			"HIL wifi down reason=password", []string{"wifi down reason=password", "refused the password: check $HIL_WIFI_PASSWORD"}},
		{"unreachable", []string{"--advertise", "10.255.255.1", "--listen", "127.0.0.1:0", "--wifi-ssid", "lab"}, nil,
			"HIL mqtt down reason=unreachable", []string{"cannot reach the broker at 10.255.255.1:", "give --advertise", "127.0.0.1 for a virtual board"}},
		{"refused login", []string{"--broker", ext.MQTTAddr(), "--api", "http://" + ext.HTTPAddr(),
			"--device-id", broker.DemoDeviceID, "--product-id", broker.DemoProductID},
			map[string]string{rig.EnvDeviceKey: flashTestKey, rig.EnvAPIKey: broker.DemoMasterKey},
			"HIL mqtt refused rc=", []string{"refused the login with CONNACK code", "is wrong"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := startSim(t)
			t.Setenv(rig.EnvWiFiPassword, flashTestPassword)
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			logPath := filepath.Join(t.TempDir(), "serial.log")
			var out, errOut bytes.Buffer
			t0 := time.Now()
			code := runMain(append([]string{"flash", "--port", b.Port(), "--timeout", "60s", "--log", logPath},
				c.args...), &out, &errOut)
			end := time.Now()
			require.Equal(t, 1, code, "stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
			for _, w := range c.want {
				assert.Contains(t, errOut.String(), w)
			}
			assert.Less(t, end.Sub(t0), 30*time.Second, "stopped at the report, not at the 60 s timeout")
			age := reportAge(t, logPath, c.report, end)
			t.Logf("stopped %s after the report: %s", age.Round(time.Millisecond), strings.TrimSpace(errOut.String()))
			assert.Less(t, age, stopWithin, "the flash ended %s after the board's report", age)
			for _, secret := range []string{flashTestPassword, flashTestKey} {
				assert.NotContains(t, out.String()+errOut.String(), secret)
			}
		})
	}
}

// A secret too short to mask safely is refused before anything happens,
// without showing it.
func TestFlashRefusesTooShortSecrets(t *testing.T) {
	for _, c := range []struct{ env, want string }{
		{rig.EnvWiFiPassword, "the Wi-Fi password has 1 character(s)"},
		{rig.EnvDeviceKey, "the device key has 1 character(s)"},
	} {
		t.Setenv(rig.EnvWiFiPassword, "")
		t.Setenv(rig.EnvDeviceKey, "")
		t.Setenv(c.env, "x")
		var out, errOut bytes.Buffer
		code := runMain([]string{"flash", "--port", filepath.Join(t.TempDir(), "ttyUSB9"), "--wifi-ssid", "lab"}, &out, &errOut)
		assert.Equal(t, 1, code)
		assert.Contains(t, errOut.String(), c.want)
		assert.NotContains(t, errOut.String(), "ttyUSB9", "refused before the port is opened")
	}
}

func TestBootStopperNamesTheFix(t *testing.T) {
	s := &bootStopper{broker: "192.168.1.20:6002"}
	assert.True(t, s.fatal(echo.HIL.Parse("HIL mqtt refused rc=4")))
	assert.Contains(t, s.why, "CONNACK code 4: bad user name or password")
	s = &bootStopper{broker: "192.168.1.20:6002"}
	assert.True(t, s.fatal(echo.HIL.Parse("HIL wifi down reason=password")))
	assert.Contains(t, s.why, "refused the password")
	s = &bootStopper{broker: "192.168.1.20:6002"}
	for i := 1; i < unreachableLimit; i++ {
		assert.False(t, s.fatal(echo.HIL.Parse("HIL mqtt down reason=unreachable")), "report %d", i)
	}
	assert.False(t, s.fatal(echo.HIL.Parse("HIL mqtt down reason=closed")), "another failure starts the count again")
	for i := 1; i < unreachableLimit; i++ {
		assert.False(t, s.fatal(echo.HIL.Parse("HIL mqtt down reason=unreachable")), "report %d after the reset", i)
	}
	assert.True(t, s.fatal(echo.HIL.Parse("HIL mqtt down reason=unreachable")), "the last report in a row stops")
	assert.Contains(t, s.why, "cannot reach the broker at 192.168.1.20:6002")
	assert.False(t, s.fatal(echo.HIL.Parse("HIL wifi down reason=timeout")), "a timeout may mend")
}
