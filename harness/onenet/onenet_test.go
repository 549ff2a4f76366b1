package onenet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/broker"
)

// Generous bounds: the machine is a loaded 2-core box.
const waitBound = 10 * time.Second

// startBroker runs the OneNET stand-in on loopback with the demo registry.
func startBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.New(broker.Options{Registry: broker.DemoRegistry(), MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		StudioAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	t.Cleanup(cancel)
	return ctx
}

// legacyClient talks to b's HTTP API with the demo product's master key.
func legacyClient(b *broker.Broker) *Client {
	return &Client{BaseURL: "http://" + b.HTTPAddr() + "/", APIKey: broker.DemoMasterKey, HTTP: &http.Client{Timeout: waitBound}}
}

// board logs the demo device in over MQTT (legacy, or studio with a
// device token) and returns the messages it receives.
func board(t *testing.T, b *broker.Broker, studio bool) (paho.Client, <-chan paho.Message) {
	t.Helper()
	addr, pass := b.MQTTAddr(), broker.DemoAuthInfo
	if studio {
		tok, err := broker.MakeToken("products/"+broker.DemoProductID+"/devices/"+broker.DemoDeviceID, broker.DemoDeviceKey, "sha256", time.Now().Add(time.Hour))
		require.NoError(t, err)
		addr, pass = b.StudioAddr(), tok
	}
	msgs := make(chan paho.Message, 64)
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(broker.DemoDeviceID).
		SetUsername(broker.DemoProductID).SetPassword(pass).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).SetConnectTimeout(waitBound).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { msgs <- m })
	c := paho.NewClient(o)
	mark := b.Events().Mark()
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(waitBound), "no CONNACK within %v", waitBound)
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(0) })
	_, err := b.Events().WaitAfter(bounded(t), mark, broker.Is(broker.Connected, broker.DemoDeviceID))
	require.NoError(t, err, "the broker saw no login")
	return c, msgs
}

func recv(t *testing.T, msgs <-chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(waitBound):
		t.Fatalf("the device got no message within %v", waitBound)
		return nil
	}
}

func TestSendCommandReachesTheDevice(t *testing.T) {
	b := startBroker(t)
	_, msgs := board(t, b, false)
	id, err := legacyClient(b).SendCommand(bounded(t), broker.DemoDeviceID, []byte("on"), 0)
	require.NoError(t, err)
	require.NotEmpty(t, id)
	m := recv(t, msgs)
	assert.Equal(t, "$creq/"+id, m.Topic())
	assert.Equal(t, "on", string(m.Payload()))
}

func TestSendCommandRefusals(t *testing.T) {
	b := startBroker(t)
	ctx := bounded(t)
	c := legacyClient(b)

	_, err := c.SendCommand(ctx, broker.DemoDeviceID, []byte("on"), 0)
	var ae *APIError
	require.ErrorAs(t, err, &ae, "qos 0 to an offline device")
	assert.Equal(t, broker.ErrnoNotOnline, ae.Code)
	assert.False(t, ae.Studio)
	assert.Equal(t, http.StatusOK, ae.HTTPStatus, "OneNET answers 200 with an errno")
	assert.Equal(t, "POST /cmds: errno 10: device not online: "+broker.DemoDeviceID, err.Error())
	assert.True(t, IsAPIError(err, broker.ErrnoNotOnline))

	id, err := c.SendCommand(ctx, broker.DemoDeviceID, []byte("on"), 1)
	require.NoError(t, err, "qos 1 keeps the command for the offline device")
	info, ok := b.Command(id)
	require.True(t, ok)
	assert.Equal(t, broker.CmdCreated, info.Status)

	_, err = c.SendCommand(ctx, "999999", []byte("on"), 0)
	assert.True(t, IsAPIError(err, broker.ErrnoNotFound), "%v", err)

	wrong := &Client{BaseURL: c.BaseURL, APIKey: "not-the-key-4711"}
	_, err = wrong.SendCommand(ctx, broker.DemoDeviceID, []byte("on"), 0)
	assert.True(t, IsAPIError(err, broker.ErrnoAuthFailed), "%v", err)
	assert.NotContains(t, err.Error(), "not-the-key-4711")

	_, err = (&Client{BaseURL: c.BaseURL}).SendCommand(ctx, broker.DemoDeviceID, []byte("on"), 0)
	assert.True(t, IsAPIError(err, broker.ErrnoNoAPIKey), "%v", err)
}

func TestDeviceOnline(t *testing.T) {
	b := startBroker(t)
	ctx := bounded(t)
	c := legacyClient(b)
	online, err := c.DeviceOnline(ctx, broker.DemoDeviceID)
	require.NoError(t, err)
	assert.False(t, online)

	board(t, b, false)
	online, err = c.DeviceOnline(ctx, broker.DemoDeviceID)
	require.NoError(t, err)
	assert.True(t, online)

	_, err = c.DeviceOnline(ctx, "999999")
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, broker.ErrnoNotFound, ae.Code)
}

func studioClient(t *testing.T, b *broker.Broker) *Client {
	tok, err := broker.MakeToken("products/"+broker.DemoProductID, broker.DemoAccessKey, "sha1", time.Now().Add(time.Hour))
	require.NoError(t, err)
	return &Client{BaseURL: "http://" + b.HTTPAddr(), Token: tok, HTTP: &http.Client{Timeout: waitBound}}
}

func TestSyncCommandAnswered(t *testing.T) {
	b := startBroker(t)
	dev, msgs := board(t, b, true)
	sys := "$sys/" + broker.DemoProductID + "/" + broker.DemoDeviceID + "/"
	sub := dev.Subscribe(sys+"cmd/request/+", 0, nil)
	require.True(t, sub.WaitTimeout(waitBound))
	require.NoError(t, sub.Error())
	answered := make(chan string, 1)
	go func() { // the device answers one command
		select {
		case m := <-msgs:
			id, _ := strings.CutPrefix(m.Topic(), sys+"cmd/request/")
			dev.Publish(sys+"cmd/response/"+id, 0, false, append([]byte("done:"), m.Payload()...))
			answered <- id
		case <-time.After(waitBound):
			answered <- ""
		}
	}()
	rep, err := studioClient(t, b).SyncCommand(bounded(t), broker.DemoProductID, broker.DemoDeviceID, []byte("toggle"), 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "done:toggle", string(rep.Response))
	assert.Equal(t, <-answered, rep.CmdUUID)
}

// A device that gets the command and does not answer: a timeout, with the
// command's uuid so the caller can see it was delivered.
func TestSyncCommandTimeoutKeepsTheUUID(t *testing.T) {
	b := startBroker(t)
	board(t, b, true)
	rep, err := studioClient(t, b).SyncCommand(bounded(t), broker.DemoProductID, broker.DemoDeviceID, []byte("junk"), 300*time.Millisecond)
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.True(t, ae.Studio)
	assert.Equal(t, broker.StudioTimeout, ae.Code)
	assert.Equal(t, "POST /datapoint/synccmds: code 10408: command timeout", err.Error())
	require.NotEmpty(t, rep.CmdUUID)
	info, ok := b.Command(rep.CmdUUID)
	require.True(t, ok)
	assert.GreaterOrEqual(t, info.Status, broker.CmdSent)
}

func TestSyncCommandRefusals(t *testing.T) {
	b := startBroker(t)
	ctx := bounded(t)
	c := studioClient(t, b)
	_, err := c.SyncCommand(ctx, broker.DemoProductID, broker.DemoDeviceID, []byte("on"), time.Second)
	assert.True(t, IsAPIError(err, broker.StudioNotOnline), "%v", err)

	bad := &Client{BaseURL: c.BaseURL, Token: "version=2018-10-31&res=products%2F1&et=1&method=md5&sign=Zm9v"}
	_, err = bad.SyncCommand(ctx, broker.DemoProductID, broker.DemoDeviceID, []byte("on"), time.Second)
	assert.True(t, IsAPIError(err, broker.StudioAuthFailed), "%v", err)
	assert.NotContains(t, err.Error(), bad.Token)

	_, err = c.SyncCommand(ctx, broker.DemoProductID, broker.DemoDeviceID, []byte("on"), time.Minute)
	assert.True(t, IsAPIError(err, broker.StudioBadRequest), "the stand-in allows 1..30 s: %v", err)
}

// An answer that is not OneNET's JSON says so, with the HTTP status and
// the start of the body; the client's own key never shows.
func TestAnswerNotOneNET(t *testing.T) {
	const key = "secret-master-key-99"
	cases := []struct {
		name   string
		status int
		body   string
		why    string
	}{
		{"html", http.StatusBadGateway, "<html>bad gateway</html>", "not JSON"},
		{"json without errno", http.StatusOK, `{"message":"hello"}`, "no errno"},
		{"errno 0 on an error status", http.StatusInternalServerError, `{"errno":0,"error":"succ","data":{"cmd_uuid":"x"}}`, "HTTP error status"},
		{"no uuid", http.StatusOK, `{"errno":0,"error":"succ","data":{}}`, "no data.cmd_uuid"},
		{"echoes the key", http.StatusForbidden, "who is " + key + "?", "not JSON"},
		{"too large", http.StatusOK, `{"errno":0,"error":"` + strings.Repeat("x", MaxAnswer) + `"}`, "larger than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			c := &Client{BaseURL: srv.URL, APIKey: key}
			_, err := c.SendCommand(bounded(t), "1", []byte("on"), 0)
			var ae *AnswerError
			require.ErrorAs(t, err, &ae)
			assert.Equal(t, tc.status, ae.HTTPStatus)
			assert.Contains(t, ae.Why, tc.why)
			assert.Contains(t, err.Error(), fmt.Sprintf("POST /cmds: HTTP %d, not a OneNET answer", tc.status))
			assert.LessOrEqual(t, len(ae.Body), quoteMax)
			assert.NotContains(t, err.Error(), key)
		})
	}
}

// A refusal's message that echoes the client's credential is masked.
func TestAPIErrorMasksTheClientsKey(t *testing.T) {
	const key = "secret-master-key-42"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"errno":3,"error":"auth failed: %s"}`, r.Header.Get("api-key"))
	}))
	defer srv.Close()
	_, err := (&Client{BaseURL: srv.URL, APIKey: key}).DeviceOnline(bounded(t), "1")
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "GET /devices/{id}: errno 3: auth failed: ****", err.Error())
}

// Every call ends with its context, even when the server never answers.
func TestCallBoundedByContext(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := (&Client{BaseURL: srv.URL, APIKey: "k"}).SendCommand(ctx, "1", []byte("on"), 0)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.DeadlineExceeded), "%v", err)
	assert.Less(t, time.Since(start), waitBound)
	assert.Contains(t, err.Error(), "POST /cmds: ")
}
