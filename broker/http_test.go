package broker

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testHTTP bounds every request: a hung handler fails the test.
var testHTTP = &http.Client{Timeout: waitBound}

type apiReply struct {
	Errno int             `json:"errno"`
	Error string          `json:"error"`
	Data  json.RawMessage `json:"data"`
}

func call(t *testing.T, b *Broker, method, path, key, body string) (apiReply, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+b.HTTPAddr()+path, strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("api-key", key)
	}
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "OneNET answers 200 with an errno: %s", raw)
	var r apiReply
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		require.NoError(t, json.Unmarshal(raw, &r), "body %s", raw)
	}
	return r, raw
}

func TestHTTPCommandRoundTrip(t *testing.T) {
	b := startBroker(t, nil)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)

	r, _ := call(t, b, "POST", "/cmds?device_id="+DemoDeviceID, DemoMasterKey, "on")
	require.Equal(t, 0, r.Errno, r.Error)
	assert.Equal(t, "succ", r.Error)
	var created struct {
		UUID string `json:"cmd_uuid"`
	}
	require.NoError(t, json.Unmarshal(r.Data, &created))
	m := d.recv(t, b)
	assert.Equal(t, "$creq/"+created.UUID, m.Topic())
	assert.Equal(t, "on", string(m.Payload()))

	r, _ = call(t, b, "GET", "/cmds/"+created.UUID, DemoMasterKey, "")
	assert.JSONEq(t, `{"status":2,"desc":"cmd sent"}`, string(r.Data))
	r, _ = call(t, b, "GET", "/cmds/"+created.UUID+"/resp", DemoMasterKey, "")
	assert.Equal(t, ErrnoNotFound, r.Errno, "no response yet")

	mark := b.Events().Mark()
	d.publish(t, "$crsp/"+created.UUID, 1, []byte("ok:on"))
	waitEvent(t, b, mark, ForCommand(CommandReplied, created.UUID))
	r, _ = call(t, b, "GET", "/cmds/"+created.UUID, DemoMasterKey, "")
	assert.JSONEq(t, `{"status":4,"desc":"cmd response received"}`, string(r.Data))
	_, raw := call(t, b, "GET", "/cmds/"+created.UUID+"/resp", DemoMasterKey, "")
	assert.Equal(t, "ok:on", string(raw))

	// another product's key sees nothing of this command
	r, _ = call(t, b, "GET", "/cmds/"+created.UUID, otherMasterKey, "")
	assert.Equal(t, ErrnoAuthFailed, r.Errno)
	r, _ = call(t, b, "GET", "/cmds/nope", DemoMasterKey, "")
	assert.Equal(t, ErrnoNotFound, r.Errno)
}

func TestHTTPErrnos(t *testing.T) {
	b := startBroker(t, nil)
	for _, tc := range []struct {
		method, path, key, body string
		errno                   int
	}{
		{"POST", "/cmds?device_id=" + DemoDeviceID, "", "on", ErrnoNoAPIKey},
		{"POST", "/cmds?device_id=" + DemoDeviceID, "wrong", "on", ErrnoAuthFailed},
		{"POST", "/cmds?device_id=" + DemoDeviceID, otherMasterKey, "on", ErrnoAuthFailed},
		{"POST", "/cmds?device_id=" + DemoDeviceID, DemoMasterKey, "on", ErrnoNotOnline},
		{"POST", "/cmds", DemoMasterKey, "on", ErrnoRequired},
		{"POST", "/cmds?device_id=42", DemoMasterKey, "on", ErrnoNotFound},
		{"POST", "/cmds?device_id=" + DemoDeviceID + "&qos=2", DemoMasterKey, "on", ErrnoInvalid},
		{"POST", "/cmds?device_id=" + DemoDeviceID + "&timeout=x", DemoMasterKey, "on", ErrnoInvalid},
		{"POST", "/cmds?device_id=" + DemoDeviceID, DemoMasterKey, strings.Repeat("x", 64*1024), ErrnoTooLarge},
		{"POST", "/cmds?device_id=" + DemoDeviceID, DemoMasterKey, "", ErrnoNoBody},
		{"GET", "/devices/" + otherDeviceID, DemoMasterKey, "", ErrnoAuthFailed},
		{"GET", "/devices/42", DemoMasterKey, "", ErrnoNotFound},
		{"GET", "/devices/" + DemoDeviceID + "/datapoints?limit=0", DemoMasterKey, "", ErrnoInvalid},
		{"GET", "/devices/" + DemoDeviceID + "/datapoints?start=yesterday", DemoMasterKey, "", ErrnoInvalid},
		{"POST", "/mqtt", DemoMasterKey, "x", ErrnoRequired},
		{"POST", "/mqtt?topic=a%2B", DemoMasterKey, "x", ErrnoInvalid},
		{"GET", "/nothing", DemoMasterKey, "", ErrnoNotFound},
	} {
		r, raw := call(t, b, tc.method, tc.path, tc.key, tc.body)
		assert.Equal(t, tc.errno, r.Errno, "%s %s: %s", tc.method, tc.path, raw)
		assert.NotEmpty(t, r.Error)
	}
}

func TestHTTPOfflineCommandKept(t *testing.T) {
	b := startBroker(t, nil)
	r, _ := call(t, b, "POST", "/cmds?device_id="+DemoDeviceID+"&timeout=300", DemoMasterKey, "off")
	require.Equal(t, 0, r.Errno, r.Error)
	var created struct {
		UUID string `json:"cmd_uuid"`
	}
	require.NoError(t, json.Unmarshal(r.Data, &created))
	r, _ = call(t, b, "GET", "/cmds/"+created.UUID, DemoMasterKey, "")
	assert.JSONEq(t, `{"status":1,"desc":"cmd created"}`, string(r.Data))
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	assert.Equal(t, "$creq/"+created.UUID, d.recv(t, b).Topic())
}

func TestHTTPDevicesAndDatapoints(t *testing.T) {
	b := startBroker(t, nil)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	mark := b.Events().Mark()
	d.publish(t, "$dp", 1, dpPayload(4, `{"temp":{"2026-01-01 10:00:00":20,"2026-01-01 11:00:00":21}}`))
	d.publish(t, "$dp", 1, dpPayload(3, `{"led":"on"}`))
	waitEvent(t, b, mark, func(e Event) bool { return e.Kind == DatapointReceived && e.Topic == "led" })

	r, _ := call(t, b, "GET", "/devices/"+DemoDeviceID, DemoMasterKey, "")
	require.Equal(t, 0, r.Errno, r.Error)
	var dev struct {
		ID, Title, Protocol, AuthInfo string
		Online                        bool
		CreateTime                    string `json:"create_time"`
		Datastreams                   []struct{ ID string }
	}
	require.NoError(t, json.Unmarshal(r.Data, &dev))
	assert.Equal(t, DemoDeviceID, dev.ID)
	assert.Equal(t, "led-board", dev.Title)
	assert.Equal(t, "MQTT", dev.Protocol)
	assert.True(t, dev.Online)
	assert.NotEmpty(t, dev.CreateTime)
	require.Len(t, dev.Datastreams, 2)

	r, _ = call(t, b, "GET", fmt.Sprintf("/devices/status?devIds=%s,%s,%s", DemoDeviceID, siblingID, otherDeviceID), DemoMasterKey, "")
	assert.JSONEq(t, `{"devices":[{"id":"503367129","title":"led-board","online":true},{"id":"503367130","title":"sibling","online":false}],"total_count":2}`, string(r.Data))

	r, _ = call(t, b, "GET", "/devices/"+DemoDeviceID+"/datapoints?datastream_id=temp", DemoMasterKey, "")
	assert.JSONEq(t, `{"count":1,"datastreams":[{"id":"temp","datapoints":[{"at":"2026-01-01 11:00:00.000","value":21}]}]}`, string(r.Data))
	r, _ = call(t, b, "GET", "/devices/"+DemoDeviceID+"/datapoints?datastream_id=temp&start=2026-01-01T00:00:00&limit=10", DemoMasterKey, "")
	assert.JSONEq(t, `{"count":2,"datastreams":[{"id":"temp","datapoints":[{"at":"2026-01-01 10:00:00.000","value":20},{"at":"2026-01-01 11:00:00.000","value":21}]}]}`, string(r.Data))
	r, _ = call(t, b, "GET", "/devices/"+DemoDeviceID+"/datapoints?start=2026-01-01T10:30:00&end=2026-01-01T12:00:00&datastream_id=temp", DemoMasterKey, "")
	assert.JSONEq(t, `{"count":1,"datastreams":[{"id":"temp","datapoints":[{"at":"2026-01-01 11:00:00.000","value":21}]}]}`, string(r.Data))
}

func TestHTTPPublishToTopic(t *testing.T) {
	b := startBroker(t, nil)
	sub := login(t, b, DemoDeviceID, DemoAuthInfo)
	other := login(t, b, otherDeviceID, otherAuthInfo)
	sub.subscribe(t, "led/cmd")
	other.subscribe(t, "led/cmd")
	r, _ := call(t, b, "POST", "/mqtt?topic=led/cmd", DemoMasterKey, "toggle")
	require.Equal(t, 0, r.Errno, r.Error)
	m := sub.recv(t, b)
	assert.Equal(t, "led/cmd", m.Topic())
	assert.Equal(t, "toggle", string(m.Payload()))
	r, _ = call(t, b, "POST", "/mqtt?topic=led/cmd", otherMasterKey, "other")
	require.Equal(t, 0, r.Errno, r.Error)
	assert.Equal(t, "other", string(other.recv(t, b).Payload()), "the first key's message must not reach another product")
}
