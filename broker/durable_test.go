package broker

// Issue 15, item 7: the state a broker with Options.DataDir keeps across a
// restart of its process (here: Close and New on the same directory; the
// kill -9 test is cmd/hil's TestBrokerCrashKeepsAcknowledged).

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/internal/testutil"
)

func startDurable(t *testing.T, dir string, log io.Writer) *Broker {
	t.Helper()
	opts := Options{Registry: testRegistry(t), MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir}
	if log != nil {
		opts.Logger = slog.New(slog.NewTextHandler(log, nil))
	}
	b, err := New(opts)
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func apiGet(t *testing.T, b *Broker, path string) map[string]any {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+b.HTTPAddr()+path, nil)
	require.NoError(t, err)
	req.Header.Set("api-key", DemoMasterKey)
	resp, err := plainHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

func TestDurableStateSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var log1 testutil.Buffer
	b := startDurable(t, dir, &log1)

	kept1, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{QoS: 1, Timeout: time.Hour})
	require.NoError(t, err)
	kept2, err := b.SendCommand(DemoDeviceID, []byte("toggle"), CommandOptions{Timeout: time.Hour})
	require.NoError(t, err)
	sib := login(t, b, siblingID, siblingAuth)
	mark := b.Events().Mark()
	answered, err := b.SendCommand(siblingID, []byte("off"), CommandOptions{})
	require.NoError(t, err)
	require.Equal(t, "$creq/"+answered, sib.recv(t, b).Topic())
	sib.publish(t, "$crsp/"+answered, 1, []byte("led off"))
	waitEvent(t, b, mark, ForCommand(CommandReplied, answered))
	for i := range 5 { // QoS 1: each acknowledged (PUBACK) only once stored
		sib.publish(t, "$dp", 1, dpPayload(3, `{"temp":`+string(rune('0'+i))+`}`))
	}
	sib.publish(t, "$dp", 1, dpPayload(3, `{"text":"hello"}`))
	require.NoError(t, b.Close())
	log1.WaitFor(t, "broker stopped", waitBound)
	stopLine := lineWith(log1.String(), "broker stopped")
	t.Logf("shutdown: %s", stopLine)
	assert.Contains(t, stopLine, "kept_commands=2")
	assert.Contains(t, stopLine, "kept_datapoints=6")

	// Every file holding state is its owner's only.
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	for _, f := range []string{storeFile, sessionsFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		require.NoError(t, err, f)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}

	var log2 testutil.Buffer
	b2 := startDurable(t, dir, &log2)
	t.Logf("restart: %s", lineWith(log2.String(), "store loaded"))
	info, ok := b2.Command(answered)
	require.True(t, ok, "the history survives")
	assert.Equal(t, CmdReplied, info.Status)
	assert.Equal(t, "led off", string(info.Response))
	info, ok = b2.Command(kept1)
	require.True(t, ok)
	assert.Equal(t, CmdCreated, info.Status)

	// The kept commands reach the device at its next login, in order.
	mark = b2.Events().Mark()
	d := login(t, b2, DemoDeviceID, DemoAuthInfo)
	assert.Equal(t, "$creq/"+kept1, d.recv(t, b2).Topic())
	m := d.recv(t, b2)
	assert.Equal(t, "$creq/"+kept2, m.Topic())
	assert.Equal(t, "toggle", string(m.Payload()))
	waitEvent(t, b2, mark, ForCommand(CommandSent, kept2))

	// The data points read back over the API.
	out := apiGet(t, b2, "/devices/"+siblingID+"/datapoints?datastream_id=temp&limit=100")
	data := out["data"].(map[string]any)
	assert.EqualValues(t, 5, data["count"])
	out = apiGet(t, b2, "/devices/"+siblingID)
	assert.Contains(t, mustJSON(t, out), `"value":"hello"`)
	// The new points continue the old ones (no key is reused).
	sib2 := login(t, b2, siblingID, siblingAuth)
	sib2.publish(t, "$dp", 1, dpPayload(3, `{"temp":9}`))
	assert.Len(t, b2.Datapoints(siblingID)["temp"], 6)
	require.NoError(t, b2.Close())

	b3 := startDurable(t, dir, nil)
	assert.Len(t, b3.Datapoints(siblingID)["temp"], 6)
	info, _ = b3.Command(kept2)
	assert.Equal(t, CmdSent, info.Status, "a delivered command is not delivered again")
}

// Mochi's own storage hook keeps a persistent session's subscriptions.
func TestDurableSessionKeepsSubscriptions(t *testing.T) {
	dir := t.TempDir()
	b := startDurable(t, dir, nil)
	o, d := deviceOptions(b.MQTTAddr(), DemoDeviceID, DemoProductID, DemoAuthInfo)
	o.SetCleanSession(false)
	d.c = paho.NewClient(o)
	tok := d.c.Connect()
	require.True(t, tok.WaitTimeout(waitBound))
	require.NoError(t, tok.Error())
	d.subscribe(t, "led/cmd")
	d.c.Disconnect(0)
	require.NoError(t, b.Close())

	b2 := startDurable(t, dir, nil)
	o, d2 := deviceOptions(b2.MQTTAddr(), DemoDeviceID, DemoProductID, DemoAuthInfo)
	o.SetCleanSession(false)
	d2.c = paho.NewClient(o)
	mark := b2.Events().Mark()
	tok = d2.c.Connect()
	require.True(t, tok.WaitTimeout(waitBound))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { d2.c.Disconnect(0) })
	assert.True(t, tok.(*paho.ConnectToken).SessionPresent(), "session present after the restart")
	waitEvent(t, b2, mark, Is(Connected, DemoDeviceID))
	require.NoError(t, b2.PublishCustom(DemoProductID, "led/cmd", []byte("on")))
	assert.Equal(t, "on", string(d2.recv(t, b2).Payload()))
}

// A second broker cannot open the same directory while one runs.
func TestDurableDirectoryIsExclusive(t *testing.T) {
	dir := t.TempDir()
	startDurable(t, dir, nil)
	_, err := New(Options{MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), storeFile)
}

func lineWith(log, substr string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	p, err := json.Marshal(v)
	require.NoError(t, err)
	return string(p)
}

// A broker that was never started still lets go of its directory.
func TestDurableCloseWithoutStart(t *testing.T) {
	dir := t.TempDir()
	b, err := New(Options{MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir})
	require.NoError(t, err)
	require.NoError(t, b.Close())
	b2, err := New(Options{MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DataDir: dir})
	require.NoError(t, err)
	require.NoError(t, b2.Close())
}
