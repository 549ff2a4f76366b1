package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/harness/onenet"
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
	// In memory, the stop says what it dropped (here: one sent command).
	assert.Regexp(t, `msg="broker stopped" .*kept=nothing dropped_commands=0 dropped_history=1 dropped_datapoints=0`, log)
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

// crashRegistry: one device that gets commands, one that uploads data
// points.
const crashRegistry = `products:
  - id: "386427"
    name: TurnipRobot
    master_key: "crash-master-key"
    devices:
      - id: "503367129"
        title: led-board
        auth_info: "crash-auth-1"
      - id: "503367130"
        title: sensor
        auth_info: "crash-auth-2"
`

// brokerProc is a `hil broker` child process.
type brokerProc struct {
	cmd              *exec.Cmd
	mqttAddr, httpAd string
	stderr           *testutil.Buffer
	exited           chan struct{} // closed when the process has exited
	err              error         // its Wait error, once exited
}

func startBrokerProc(t *testing.T, bin string, args ...string) *brokerProc {
	t.Helper()
	p := &brokerProc{stderr: &testutil.Buffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"broker", "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--studio", ""}, args...)...)
	out, err := p.cmd.StdoutPipe()
	require.NoError(t, err)
	p.cmd.Stderr = p.stderr
	require.NoError(t, p.cmd.Start())
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
		}
	})
	deadline := time.After(20 * time.Second)
	for p.httpAd == "" || p.mqttAddr == "" {
		select {
		case l, ok := <-lines:
			require.True(t, ok, "hil broker ended early: %s", p.stderr.String())
			if m := serverLine.FindStringSubmatch(l); m != nil {
				p.mqttAddr = m[1]
			}
			if m := httpLine.FindStringSubmatch(l); m != nil {
				p.httpAd = m[1]
			}
		case <-deadline:
			t.Fatalf("hil broker printed no addresses within 20s: %s", p.stderr.String())
		}
	}
	go func() {
		for range lines { // keep draining
		}
	}()
	return p
}

func (p *brokerProc) post(path, body string) (errno int, uuid string, err error) {
	req, err := http.NewRequest("POST", "http://"+p.httpAd+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("api-key", "crash-master-key")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	var env struct {
		Errno int               `json:"errno"`
		Data  map[string]string `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return 0, "", err
	}
	return env.Errno, env.Data["cmd_uuid"], nil
}

// awaitOffline waits (bounded) until the broker's API reports the device offline.
func (p *brokerProc) awaitOffline(t *testing.T, id string) {
	t.Helper()
	api := onenet.Client{BaseURL: "http://" + p.httpAd, APIKey: "crash-master-key"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		online, err := api.DeviceOnline(ctx, id)
		if err == nil && !online {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("device %s still online (last error %v) after 10 s", id, err)
		case <-tick.C:
		}
	}
}

// points reads back the values of datastream n of the sensor.
func (p *brokerProc) points(t *testing.T) map[int]bool {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+p.httpAd+"/devices/503367130/datapoints?datastream_id=n&limit=6000", nil)
	require.NoError(t, err)
	req.Header.Set("api-key", "crash-master-key")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var env struct {
		Errno int `json:"errno"`
		Data  struct {
			Datastreams []struct {
				Datapoints []struct {
					Value float64 `json:"value"`
				} `json:"datapoints"`
			} `json:"datastreams"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&env))
	require.Equal(t, 0, env.Errno)
	got := map[int]bool{}
	for _, ds := range env.Data.Datastreams {
		for _, dp := range ds.Datapoints {
			got[int(dp.Value)] = true
		}
	}
	return got
}

// receive logs the command device in and collects $creq payloads until
// every uuid in want has arrived (bounded).
func receiveCommands(t *testing.T, addr string, want map[string]bool) (got map[string]bool) {
	t.Helper()
	got = map[string]bool{}
	msgs := make(chan paho.Message, 1<<14)
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("503367129").
		SetUsername("386427").SetPassword("crash-auth-1").SetProtocolVersion(4).
		SetAutoReconnect(false).SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { msgs <- m })
	c := paho.NewClient(o)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	defer c.Disconnect(0)
	missing := func() int {
		n := 0
		for id := range want {
			if !got[id] {
				n++
			}
		}
		return n
	}
	deadline := time.After(20 * time.Second)
	for missing() > 0 {
		select {
		case m := <-msgs:
			got[strings.TrimPrefix(m.Topic(), "$creq/")] = true
		case <-deadline:
			t.Fatalf("%d of %d acknowledged commands never arrived", missing(), len(want))
		}
	}
	return got
}

// TestBrokerCrashKeepsAcknowledged is issue 15's crash test: kill -9 of a
// `hil broker --data DIR` during a stream of kept commands (timeout=3600, to an
// offline device) and of $dp uploads (QoS 1), then a restart with the same
// --data: every command answered errno 0 reaches the device at its next
// login and every acknowledged data point reads back. Then the same after
// a SIGTERM, whose log says what was kept.
func TestBrokerCrashKeepsAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("builds hil and runs it three times")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "hil")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	t.Logf("go build -o %s: %v", bin, time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	reg := filepath.Join(dir, "registry.yaml")
	require.NoError(t, os.WriteFile(reg, []byte(crashRegistry), 0o600))
	data := filepath.Join(dir, "data")
	args := []string{"--registry", reg, "--data", data}

	p1 := startBrokerProc(t, bin, args...)
	var mu sync.Mutex
	acked := map[string]bool{}
	points := map[int]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // kept commands (a timeout) to the offline device, over the API
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			errno, id, err := p1.post("/cmds?device_id=503367129&timeout=3600", fmt.Sprintf("c-%d", i))
			if err != nil {
				return // the broker is gone
			}
			if errno == 0 {
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		}
	}()
	go func() { // data points at QoS 1: acknowledged by the PUBACK
		defer wg.Done()
		o := paho.NewClientOptions().AddBroker("tcp://" + p1.mqttAddr).SetClientID("503367130").
			SetUsername("386427").SetPassword("crash-auth-2").SetProtocolVersion(4).SetAutoReconnect(false)
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Errorf("sensor login failed: %v", tok.Error())
			return
		}
		defer c.Disconnect(0)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			body := fmt.Sprintf(`{"n":%d}`, i)
			tok := c.Publish("$dp", 1, false, append([]byte{3, 0, byte(len(body))}, body...))
			if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				return // the broker is gone
			}
			mu.Lock()
			points[i] = true
			mu.Unlock()
		}
	}()
	// Let both streams run, then kill the broker in the middle of them.
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 150 && len(points) >= 150
	}, 30*time.Second, 10*time.Millisecond, "the streams did not get going: %s", p1.stderr.String())
	require.NoError(t, p1.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-p1.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the killed broker did not exit")
	}
	close(stop)
	wg.Wait()
	mu.Lock()
	nCmds, nPoints := len(acked), len(points)
	mu.Unlock()

	p2 := startBrokerProc(t, bin, args...)
	restored := lineOf(p2.stderr.String(), "store loaded")
	got := p2.points(t)
	lostPoints := 0
	for i := range points {
		if !got[i] {
			lostPoints++
		}
	}
	assert.Zero(t, lostPoints, "acknowledged data points lost")
	recv := receiveCommands(t, p2.mqttAddr, acked)
	t.Logf("kill -9 during the streams: %d kept commands answered errno 0, all %d delivered after the restart; %d data points acknowledged, %d stored, %d lost; restart: %s",
		nCmds, nCmds, nPoints, len(got), lostPoints, restored)

	// SIGTERM: kept commands survive it too, and its log says so. The receiver above has
	// disconnected; until the broker has seen it go, a command would be written to it.
	p2.awaitOffline(t, "503367129")
	var kept []string
	for i := range 20 {
		errno, id, err := p2.post("/cmds?device_id=503367129&timeout=3600", fmt.Sprintf("t-%d", i))
		require.NoError(t, err)
		require.Equal(t, 0, errno)
		kept = append(kept, id)
	}
	require.NoError(t, p2.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p2.exited:
		require.NoError(t, p2.err)
	case <-time.After(15 * time.Second):
		t.Fatal("hil broker did not stop on SIGTERM")
	}
	stopped := lineOf(p2.stderr.String(), "broker stopped")
	assert.Contains(t, stopped, "kept_commands=20")
	p3 := startBrokerProc(t, bin, args...)
	want := map[string]bool{}
	for _, id := range kept {
		want[id] = true
	}
	recv = receiveCommands(t, p3.mqttAddr, want)
	t.Logf("SIGTERM: %q; %d of %d kept commands delivered after the restart; the three runs took %v",
		stopped, len(recv), len(kept), time.Since(t0).Round(time.Millisecond))

	// Every file that holds state or secrets is its owner's only.
	st, err := os.Stat(data)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), st.Mode().Perm())
	entries, err := os.ReadDir(data)
	require.NoError(t, err)
	for _, e := range entries {
		info, err := e.Info()
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), info.Mode().Perm(), e.Name())
	}
}

func lineOf(log, substr string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

// Issue 15, item 9: hil run's report files are 0600 like hil flash --log,
// also when the file existed with a wider mode. (Here beside the broker's
// own file-mode checks; run.go's serial log is opened the same way.)
func TestRunReportFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	junit, jsonOut, html := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "report.json"), filepath.Join(dir, "report.html")
	require.NoError(t, os.WriteFile(html, []byte("old"), 0o644))
	r, err := openReports(io.Discard, junit, jsonOut, html)
	require.NoError(t, err)
	r.close()
	for _, p := range []string{junit, jsonOut, html} {
		st, err := os.Stat(p)
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), p)
	}
}
