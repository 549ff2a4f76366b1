package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var serverLine = regexp.MustCompile(`MQTT server:\s+(\S+)`)
var httpLine = regexp.MustCompile(`HTTP API:\s+http://(\S+)`)

// TestBrokerCommand runs `hil broker` as a newcomer would: log a device in
// with the demo credentials, send it "on" over the HTTP API, stop with a
// cancel (what Ctrl-C does through main's signal context).
func TestBrokerCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outR, outW := io.Pipe()
	var stderr testutil.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runMain2(ctx, []string{"--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--studio", "127.0.0.1:0"}, outW, &stderr)
		outW.Close()
	}()

	var console strings.Builder
	var mqttAddr, httpAddr string
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(10 * time.Second)
	for httpAddr == "" || !strings.Contains(console.String(), "Ctrl-C") {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "hil broker ended early: %s %s", console.String(), stderr.String())
			console.WriteString(l + "\n")
			if m := serverLine.FindStringSubmatch(l); m != nil {
				mqttAddr = m[1]
			}
			if m := httpLine.FindStringSubmatch(l); m != nil {
				httpAddr = m[1]
			}
		case <-deadline:
			t.Fatalf("no console within 10s: %s\nstderr: %s", console.String(), stderr.String())
		}
	}
	go func() {
		for range lines { // keep draining
		}
	}()
	out := console.String()
	assert.Contains(t, out, broker.DemoDeviceID)
	assert.Contains(t, out, broker.DemoProductID)
	assert.Contains(t, out, "led-board")
	assert.NotContains(t, out, broker.DemoMasterKey)
	assert.NotContains(t, out, broker.DemoAuthInfo)
	assert.NotContains(t, out, broker.DemoAccessKey)
	assert.NotContains(t, out, broker.DemoDeviceKey)
	assert.Contains(t, out, "Studio MQTT:  127.0.0.1:")

	got := make(chan paho.Message, 1)
	o := paho.NewClientOptions().AddBroker("tcp://" + mqttAddr).SetClientID(broker.DemoDeviceID).
		SetUsername(broker.DemoProductID).SetPassword(broker.DemoMasterKey).SetProtocolVersion(4).
		SetAutoReconnect(false).SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m })
	c := paho.NewClient(o)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer c.Disconnect(0)

	req, err := http.NewRequest("POST", "http://"+httpAddr+"/cmds?device_id="+broker.DemoDeviceID, strings.NewReader("on"))
	require.NoError(t, err)
	req.Header.Set("api-key", broker.DemoMasterKey)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Contains(t, string(body), `"errno":0`)
	select {
	case m := <-got:
		assert.True(t, strings.HasPrefix(m.Topic(), "$creq/"))
		assert.Equal(t, "on", string(m.Payload()))
	case <-time.After(10 * time.Second):
		t.Fatalf("no $creq; log:\n%s", stderr.String())
	}

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("hil broker did not stop after cancel")
	}
	log := stderr.String()
	assert.Contains(t, log, "kind=connected")
	assert.Contains(t, log, "kind=command-sent")
	assert.NotContains(t, log, broker.DemoMasterKey)
}

func runMain2(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return commands["broker"].run(ctx, args, stdout, stderr)
}

func TestBrokerCommandBadRegistry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.yaml")
	require.NoError(t, os.WriteFile(path, []byte("products:\n  - id: \"1\"\n    colour: red\n"), 0o600))
	var out, errOut testutil.Buffer
	err := runMain2(context.Background(), []string{"--registry", path}, &out, &errOut)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+":3: field colour not found")

	code := runMain([]string{"broker", "--registry", path}, &out, &errOut)
	assert.Equal(t, 1, code)
	code = runMain([]string{"broker", "--nope"}, &out, &errOut)
	assert.Equal(t, 2, code)
}

// A taken port (say, a system mosquitto on 1883) gets a hint, not a bare
// "address already in use".
func TestBrokerCommandPortInUseHint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"broker", "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--studio", ln.Addr().String()}, &stdout, &stderr)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr.String(), "address already in use")
	assert.Contains(t, stderr.String(), `--studio ""`)
}
