package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/internal/testutil"
)

// Distinctive secrets: if any of them (or its middle, in case a mask
// shows a prefix) turns up in an artifact, it leaked.
var (
	secWiFi     = "zqWIFI-pw-5ec7e7-a91f"
	secAuthInfo = "zqAUTH-info-3b8c2e-d4"
	secAPIKey   = "zqAPIKEY-master-77e1f0"
	secWrongKey = "zqWRONG-api-key-c0ffee"
	secDevKey   = base64.StdEncoding.EncodeToString([]byte("zqDEVKEY-studio-device-key!"))
	secAccess   = base64.StdEncoding.EncodeToString([]byte("zqACCESS-studio-product-key"))
)

// leaks lists where in artifacts (name -> content) a secret, or the
// middle part of it, appears.
func leaks(artifacts map[string]string, secrets ...string) []string {
	var out []string
	for name, body := range artifacts {
		for _, s := range secrets {
			core := s[3 : len(s)-3] // a mask keeping a prefix or a suffix still hides this
			if strings.Contains(body, core) {
				i := strings.Index(body, core)
				out = append(out, fmt.Sprintf("%s: %q at byte %d: …%s…", name, s, i, body[max(0, i-60):min(len(body), i+len(core)+60)]))
			}
		}
	}
	return out
}

const secretsRegistry = `products:
  - id: "386427"
    name: TurnipRobot
    master_key: "%s"
    access_key: "%s"
    devices:
      - id: "503367129"
        title: led-board
        auth_info: "%s"
        key: "%s"
`

// A whole simulated session with distinctive secrets: hil broker (its
// console and its slog event log, with logins, a refused login, a
// studio token login, HTTP calls with right and wrong api-keys), hil
// flash against it (console and serial log), and hil run of every
// scenario on the virtual board plus one failing on purpose with the
// secrets in its pattern (console, JUnit, JSON, HTML, serial log). No
// artifact holds any secret.
func TestNoSecretInAnyArtifact(t *testing.T) {
	dir := t.TempDir()
	art := map[string]string{}
	token, err := broker.MakeToken("products/386427/devices/503367129", secDevKey, "sha256", time.Now().Add(time.Hour))
	require.NoError(t, err)
	secrets := []string{secWiFi, secAuthInfo, secAPIKey, secWrongKey, secDevKey, secAccess, token}

	// 1. hil broker with a registry of distinctive keys.
	reg := filepath.Join(dir, "registry.yaml")
	require.NoError(t, os.WriteFile(reg, []byte(fmt.Sprintf(secretsRegistry, secAPIKey, secAccess, secAuthInfo, secDevKey)), 0o600))
	bout, berr := &testutil.Buffer{}, &testutil.Buffer{}
	ctx, stop := context.WithCancel(context.Background())
	brokerDone := make(chan error, 1)
	go func() {
		brokerDone <- runBroker(ctx, []string{"--registry", reg, "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--studio", "127.0.0.1:0"}, bout, berr)
	}()
	stopped := false
	defer func() {
		if !stopped {
			stop()
			<-brokerDone
		}
	}()
	// The console prints each line in one write, the studio address last.
	bout.WaitFor(t, "Studio MQTT:", 30*time.Second)
	addr := func(re string) string {
		m := regexp.MustCompile(re).FindStringSubmatch(bout.String())
		require.NotNil(t, m, "/%s/ in:\n%s", re, bout.String())
		return m[1]
	}
	mqttAddr := addr(`MQTT server:\s+(\S+)`)
	httpAddr := addr(`HTTP API:\s+http://(\S+)`)
	studioAddr := addr(`Studio MQTT:\s+(\S+)`)

	login := func(addr, id, user, pass string) error {
		o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(user).SetPassword(pass).
			SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(10 * time.Second)
		c := paho.NewClient(o)
		tok := c.Connect()
		require.True(t, tok.WaitTimeout(15*time.Second), "no CONNACK from %s", addr)
		if tok.Error() == nil {
			c.Disconnect(100)
		}
		return tok.Error()
	}
	assert.NoError(t, login(mqttAddr, "503367129", "386427", secAuthInfo))
	assert.Error(t, login(mqttAddr, "503367129", "386427", secWrongKey), "a wrong key is refused")
	assert.Error(t, login(mqttAddr, "503367129", "386427", secAPIKey+"x"), "a near miss is refused")
	assert.NoError(t, login(studioAddr, "503367129", "386427", token))
	assert.Error(t, login(studioAddr, "503367129", "386427", token+"0"), "a damaged token is refused")
	for _, key := range []string{secAPIKey, secWrongKey} {
		for _, u := range []string{"/devices/503367129", "/cmds?device_id=503367129"} {
			method := http.MethodGet
			if strings.HasPrefix(u, "/cmds") {
				method = http.MethodPost
			}
			req, err := http.NewRequest(method, "http://"+httpAddr+u, strings.NewReader("on"))
			require.NoError(t, err)
			req.Header.Set("api-key", key)
			c := &http.Client{Timeout: 10 * time.Second}
			resp, err := c.Do(req)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			art["HTTP answer "+method+" "+u] = string(body)
		}
	}

	// 2. hil flash against that broker: the board logs in with the
	// registry's auth_info.
	b := startSim(t)
	t.Setenv(rig.EnvWiFiPassword, secWiFi)
	t.Setenv(rig.EnvDeviceKey, secAuthInfo)
	t.Setenv(rig.EnvAPIKey, secAPIKey)
	t.Setenv(rig.EnvPort, "")
	flashLog := filepath.Join(dir, "flash-serial.log")
	var fout, ferr bytes.Buffer
	code := runMain([]string{"flash", "--port", b.Port(), "--broker", mqttAddr, "--api", "http://" + httpAddr,
		"--wifi-ssid", "lab", "--device-id", "503367129", "--product-id", "386427", "--topic", "TurnipRobot",
		"--log", flashLog, "--timeout", "45s"}, &fout, &ferr)
	require.Equal(t, 0, code, "hil flash: stdout:\n%s\nstderr:\n%s", fout.String(), ferr.String())
	art["hil flash stdout"], art["hil flash stderr"] = fout.String(), ferr.String()
	art["hil flash serial log"] = readFile(t, flashLog)
	// A bad flash: the error must not echo the key either.
	var bout2, berr2 bytes.Buffer
	runMain([]string{"flash", "--port", filepath.Join(dir, "no-such-port"), "--broker", mqttAddr, "--api", "http://" + httpAddr,
		"--wifi-ssid", "lab", "--device-id", "503367129", "--product-id", "386427"}, &bout2, &berr2)
	art["hil flash (bad port) output"] = bout2.String() + berr2.String()

	// 3. hil run of every scenario, plus one failing with the secrets in
	// its pattern, on the virtual board.
	scen := filepath.Join(dir, "scenarios")
	require.NoError(t, os.Mkdir(scen, 0o755))
	files, err := filepath.Glob("../../scenarios/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		require.NoError(t, os.WriteFile(filepath.Join(scen, filepath.Base(f)), []byte(readFile(t, f)), 0o644))
	}
	require.NoError(t, os.WriteFile(filepath.Join(scen, "zz_fail.yaml"), []byte(fmt.Sprintf(`name: leaky failure
timeouts: {expect: 1s}
steps:
  - send: %q
  - expect: {echo: '%s %s %s'}
`, secAuthInfo, secWiFi, secAuthInfo, secAPIKey)), 0o644))
	out := filepath.Join(dir, "out")
	require.NoError(t, os.Mkdir(out, 0o755))
	junit, js, html, slog := filepath.Join(out, "j.xml"), filepath.Join(out, "r.json"), filepath.Join(out, "r.html"), filepath.Join(out, "serial.log")
	var rout, rerr bytes.Buffer
	code = runMain([]string{"run", "--scenarios", scen, "--junit", junit, "--json", js, "--html", html, "--log", slog}, &rout, &rerr)
	assert.Equal(t, 1, code, "the leaky scenario fails; stdout:\n%s\nstderr:\n%s", rout.String(), rerr.String())
	assert.Contains(t, rout.String(), "FAIL leaky failure")
	assert.Contains(t, rout.String(), "**** **** ****", "the failure shows the pattern, masked")
	// Both platforms (hil run's default on the virtual board): the leaky
	// scenario fails once on each, everything else passes or is skipped
	// with its reason (a scenario one platform lacks, such as studio's
	// tutorial and offline qos 1, or legacy's thing-model property).
	m := regexp.MustCompile(`(\d+) passed, 2 failed, (\d+) skipped of (\d+)`).FindStringSubmatch(rout.String())
	if assert.NotNil(t, m, "the run's totals line") {
		passed, skipped, all := atoiOr(m[1], -1), atoiOr(m[2], -1), atoiOr(m[3], -1)
		assert.Equal(t, 2*(len(files)+1), all, "every scenario and the leaky one, on both platforms")
		assert.Equal(t, all-2, passed+skipped, "every other scenario passed or was skipped")
		assert.LessOrEqual(t, skipped, len(files)/2, "most scenarios run on both platforms")
	}
	art["hil run stdout"], art["hil run stderr"] = rout.String(), rerr.String()
	for _, p := range []string{junit, js, html, slog} {
		art["hil run "+filepath.Base(p)] = readFile(t, p)
	}
	assert.Contains(t, art["hil run serial.log"], "HIL led state=1", "the serial log has the run in it")

	stop()
	select {
	case err := <-brokerDone:
		stopped = true
		assert.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("hil broker did not stop")
	}
	art["hil broker stdout"], art["hil broker stderr (slog)"] = bout.String(), berr.String()
	assert.Contains(t, art["hil broker stderr (slog)"], "connected", "the event log saw the logins")
	assert.Contains(t, art["hil broker stderr (slog)"], "refused")

	for name, body := range art {
		if !strings.HasSuffix(name, "stderr") { // a quiet stderr is fine
			require.NotEmpty(t, body, "artifact %s is empty: the search would prove nothing", name)
		}
	}
	assert.Empty(t, leaks(art, secrets...), "secrets leaked")
	// The check itself finds a secret where there is one.
	assert.NotEmpty(t, leaks(map[string]string{"x": "a " + secWiFi[1:len(secWiFi)-1] + " b"}, secWiFi))
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	return string(b)
}
