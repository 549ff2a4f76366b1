package broker

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// thingTestModel adds a read-only int property, an event and a service to
// the demo's led.
const thingTestModel = `
properties:
  - identifier: led
    accessMode: rw
    dataType: {type: bool}
  - identifier: temp
    name: temperature
    accessMode: r
    dataType: {type: int32, specs: {min: "-40", max: "85"}}
events:
  - identifier: alarm
    outputData:
      - identifier: level
        dataType: {type: enum, specs: {"1": low, "2": high}}
services:
  - identifier: blink
    inputData:
      - identifier: times
        dataType: {type: int32, specs: {min: "1", max: "10"}}
    outputData:
      - identifier: done
        dataType: {type: bool}
`

func startThingBroker(t *testing.T) *Broker {
	t.Helper()
	reg := testRegistry(t)
	m, err := ParseThingModel([]byte(thingTestModel))
	require.NoError(t, err)
	reg.products[DemoProductID].ThingModel = m
	b, err := New(Options{Registry: reg, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", StudioAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { _ = b.Close() })
	return b
}

const sysDemo = "$sys/" + DemoProductID + "/" + DemoDeviceID + "/"

// studioCall posts (body != "") or gets path and decodes the envelope.
func studioCall(t *testing.T, b *Broker, tok, path, body string) map[string]any {
	t.Helper()
	method := http.MethodGet
	if body != "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, "http://"+b.HTTPAddr()+path, strings.NewReader(body))
	require.NoError(t, err)
	if tok != "" {
		req.Header.Set("authorization", tok)
	}
	resp, err := testHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.IsType(t, "", out["request_id"], "every studio answer has a request_id: %v", out)
	return out
}

func productToken(t *testing.T) string {
	tok, err := MakeToken("products/"+DemoProductID, DemoAccessKey, "sha1", time.Now().Add(time.Hour))
	require.NoError(t, err)
	return tok
}

// answer makes the device reply to every request on topics ending in
// suffix with reply(request) on the request's topic + "_reply".
func answer(d *device, reply func(topic string, req map[string]any) string) {
	go func() {
		for m := range d.msgs {
			var req map[string]any
			if json.Unmarshal(m.Payload(), &req) != nil {
				continue
			}
			if out := reply(m.Topic(), req); out != "" {
				d.c.Publish(m.Topic()+"_reply", 0, false, []byte(out))
			}
		}
	}()
}

func TestStudioThingPropertyPost(t *testing.T) {
	b := startThingBroker(t)
	d := studioLogin(t, b)
	d.subscribe(t, sysDemo+"thing/property/post/reply")
	post := func(payload string) string {
		d.publish(t, sysDemo+"thing/property/post", 1, []byte(payload))
		m := d.recv(t, b)
		require.Equal(t, sysDemo+"thing/property/post/reply", m.Topic())
		return string(m.Payload())
	}
	// The example, answered exactly as OneJSON documents.
	assert.Equal(t, `{"id":"123","code":200,"msg":"success"}`, post(`{"id":"123","version":"1.0","params":{"led":{"value":true}}}`))
	assert.Equal(t, `{"id":"124","code":200,"msg":"success"}`, post(`{"id":"124","params":{"temp":{"value":21,"time":1700000000123}}}`))
	for _, tc := range []struct{ payload, want string }{
		{`{"id":"125","params":{"fan":{"value":true}}}`, `{"id":"125","code":404,"msg":"property fan is not in the thing model"}`},
		{`{"id":"126","params":{"led":{"value":1}}}`, `{"id":"126","code":400,"msg":"property led: want a bool, got a number"}`},
		{`{"id":"127","params":{"temp":{"value":90}}}`, `{"id":"127","code":400,"msg":"property temp: 90 is outside -40..85"}`},
		{`{"id":"128","params":{"temp":{"value":2.5}}}`, `{"id":"128","code":400,"msg":"property temp: want an integer (int32), got 2.5"}`},
		{`{"id":"129","params":{"led":true}}`, `{"id":"129","code":400,"msg":"property led: want {\"value\":...,\"time\":...}, got a bool"}`},
		{`{"id":123,"params":{"led":{"value":true}}}`, `{"id":"","code":400,"msg":"id must be a string of 1 to 13 digits"}`},
	} {
		assert.Equal(t, tc.want, post(tc.payload), tc.payload)
	}
	assert.True(t, b.Online(DemoDeviceID), "a refused post keeps the connection")

	// The latest values, as the application API lists them.
	out := studioCall(t, b, productToken(t), "/thingmodel/query-device-property?product_id="+DemoProductID+"&device_name="+DemoDeviceID, "")
	require.Equal(t, float64(StudioOK), out["code"], "%v", out)
	assert.Equal(t, "succ", out["msg"])
	list := out["data"].([]any)
	require.Len(t, list, 2)
	led, temp := list[0].(map[string]any), list[1].(map[string]any)
	assert.Equal(t, "led", led["identifier"])
	assert.Equal(t, "true", led["value"])
	assert.Equal(t, "bool", led["data_type"])
	assert.Equal(t, "rw", led["access_mode"])
	assert.InDelta(t, float64(time.Now().UnixMilli()), led["time"], 60e3)
	assert.Equal(t, "temp", temp["identifier"])
	assert.Equal(t, "21", temp["value"])
	assert.Equal(t, float64(1700000000123), temp["time"])
}

func TestStudioThingEventPost(t *testing.T) {
	b := startThingBroker(t)
	d := studioLogin(t, b)
	d.subscribe(t, sysDemo+"thing/event/post/reply")
	for _, tc := range []struct{ payload, want string }{
		{`{"id":"1","version":"1.0","params":{"alarm":{"value":{"level":2},"time":1700000000000}}}`, `{"id":"1","code":200,"msg":"success"}`},
		{`{"id":"2","params":{"alarm":{"value":{"level":3}}}}`, `{"id":"2","code":400,"msg":"event alarm: level: 3 is not one of the enum's values"}`},
		{`{"id":"3","params":{"fire":{"value":{}}}}`, `{"id":"3","code":404,"msg":"event fire is not in the thing model"}`},
	} {
		d.publish(t, sysDemo+"thing/event/post", 1, []byte(tc.payload))
		m := d.recv(t, b)
		require.Equal(t, sysDemo+"thing/event/post/reply", m.Topic())
		assert.Equal(t, tc.want, string(m.Payload()))
	}
}

func TestStudioThingTopicsOfOtherDevicesDisconnect(t *testing.T) {
	b := startThingBroker(t)
	for _, topic := range []string{
		"$sys/" + DemoProductID + "/" + siblingID + "/thing/property/post",
		sysDemo + "thing/property/set", // the platform's direction
		sysDemo + "thing/service/a/b/invoke_reply",
	} {
		d := studioLogin(t, b)
		mark := b.Events().Mark()
		d.c.Publish(topic, 0, false, []byte(`{"id":"1","params":{}}`))
		d.waitLost(t, b)
		e := waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
		assert.Contains(t, e.Reason, "illegal topic", topic)
	}
}

func TestStudioThingSetProperty(t *testing.T) {
	b := startThingBroker(t)
	d := studioLogin(t, b)
	d.subscribe(t, sysDemo+"thing/property/set")
	got := make(chan string, 16)
	answer(d, func(topic string, req map[string]any) string {
		raw, _ := json.Marshal(req)
		got <- topic + " " + string(raw)
		return `{"id":"` + req["id"].(string) + `","code":200}`
	})
	body := `{"product_id":"` + DemoProductID + `","device_name":"` + DemoDeviceID + `","params":{"led":false}}`
	user, err := MakeUserToken(DemoUserID, DemoUserKey, "sha256", time.Now().Add(time.Hour))
	require.NoError(t, err)
	assert.Contains(t, user, "version=2022-05-01&res=userid%2F"+DemoUserID+"&")
	v2Prod, err := tokenWithVersion("products/"+DemoProductID, DemoAccessKey, APITokenVersion)
	require.NoError(t, err)
	for name, tok := range map[string]string{"product token": productToken(t), "userid token": user, "2022-05-01 product token": v2Prod} {
		out := studioCall(t, b, tok, "/thingmodel/set-device-property", body)
		require.Equal(t, float64(StudioOK), out["code"], "%s: %v", name, out)
		data := out["data"].(map[string]any)
		assert.Equal(t, float64(200), data["code"], name)
		select {
		case req := <-got:
			topic, payload, _ := strings.Cut(req, " ")
			assert.Equal(t, sysDemo+"thing/property/set", topic)
			assert.JSONEq(t, `{"id":"`+data["id"].(string)+`","version":"1.0","params":{"led":false}}`, payload)
		case <-time.After(waitBound):
			t.Fatal("the device got no thing/property/set")
		}
	}

	call := func(tok, body string) (float64, string) {
		out := studioCall(t, b, tok, "/thingmodel/set-device-property", body)
		return out["code"].(float64), out["msg"].(string)
	}
	set := func(params string) string {
		return `{"product_id":"` + DemoProductID + `","device_name":"` + DemoDeviceID + `","params":` + params + `}`
	}
	tok := productToken(t)
	for _, tc := range []struct {
		body string
		code float64
		msg  string
	}{
		{set(`{"led":"off"}`), StudioBadRequest, "invalid params: property led: want a bool, got a string"},
		{set(`{"temp":20}`), StudioBadRequest, "invalid params: property temp is read-only (accessMode r)"},
		{set(`{"fan":true}`), StudioBadRequest, "invalid params: property fan is not in the thing model"},
		{set(`[]`), StudioBadRequest, "params must be an object"},
		{`{"product_id":"` + DemoProductID + `"}`, StudioBadRequest, "product_id and device_name required"},
		{`{"product_id":"` + DemoProductID + `","device_name":"` + siblingID + `","params":{"led":true}}`, StudioNotOnline, "device not online: " + siblingID},
		{`{"product_id":"` + DemoProductID + `","device_name":"nobody","params":{"led":true}}`, StudioNotFound, "device not found: nobody"},
	} {
		code, msg := call(tok, tc.body)
		assert.Equal(t, tc.code, code, tc.body)
		assert.Equal(t, tc.msg, msg, tc.body)
	}
	badUser, _ := MakeUserToken(DemoUserID, DemoAccessKey, "sha256", time.Now().Add(time.Hour))
	otherUser, _ := MakeUserToken("42", DemoUserKey, "sha256", time.Now().Add(time.Hour))
	expired, _ := MakeUserToken(DemoUserID, DemoUserKey, "sha256", time.Now().Add(-time.Minute))
	for _, bad := range []string{"", badUser, otherUser, expired, "version=2022-05-01&res=userid%2F1"} {
		code, msg := call(bad, body)
		assert.Equal(t, float64(StudioAuthFailed), code)
		assert.Equal(t, "auth failed", msg)
	}
}

// tokenWithVersion signs a token with another version than MakeToken's.
func tokenWithVersion(res, key, version string) (string, error) {
	et := time.Now().Add(time.Hour).Unix()
	sign, err := tokenSign(key, "sha1", res, version, et)
	if err != nil {
		return "", err
	}
	return "version=" + version + "&res=" + tokenEscape.Replace(res) + "&et=" + itoa(et) + "&method=sha1&sign=" + tokenEscape.Replace(sign), nil
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestStudioThingNoReplyTimesOut(t *testing.T) {
	old := thingWait
	thingWait = 300 * time.Millisecond
	t.Cleanup(func() { thingWait = old })
	b := startThingBroker(t)
	d := studioLogin(t, b)
	d.subscribe(t, sysDemo+"thing/property/set")
	out := studioCall(t, b, productToken(t), "/thingmodel/set-device-property",
		`{"product_id":"`+DemoProductID+`","device_name":"`+DemoDeviceID+`","params":{"led":true}}`)
	assert.Equal(t, float64(StudioTimeout), out["code"], "%v", out)
	assert.Equal(t, "device response timeout", out["msg"])
	m := d.recv(t, b) // it did reach the device
	assert.Equal(t, sysDemo+"thing/property/set", m.Topic())
	// A late reply is dropped, and the connection stays.
	d.publish(t, sysDemo+"thing/property/set_reply", 1, []byte(`{"id":"1","code":200}`))
	assert.True(t, b.Online(DemoDeviceID))
}

func TestStudioThingServiceAndGet(t *testing.T) {
	b := startThingBroker(t)
	d := studioLogin(t, b)
	d.subscribe(t, sysDemo+"thing/service/+/invoke", sysDemo+"thing/property/get")
	answer(d, func(topic string, req map[string]any) string {
		id := req["id"].(string)
		switch topic {
		case sysDemo + "thing/service/blink/invoke":
			p, _ := json.Marshal(req["params"])
			if string(p) != `{"times":3}` {
				return `{"id":"` + id + `","code":400,"msg":"bad times"}`
			}
			return `{"id":"` + id + `","code":200,"msg":"ok","data":{"done":true}}`
		case sysDemo + "thing/property/get":
			return `{"id":"` + id + `","code":200,"msg":"success","data":{"led":true,"temp":-5}}`
		}
		return ""
	})
	// thing/service/{identifier}/invoke_reply is published on the invoke
	// topic + "_reply"; thing/property/get_reply likewise.
	tok := productToken(t)
	svc := func(params string) map[string]any {
		return studioCall(t, b, tok, "/thingmodel/call-service",
			`{"product_id":"`+DemoProductID+`","device_name":"`+DemoDeviceID+`","identifier":"blink","params":`+params+`}`)
	}
	out := svc(`{"times":3}`)
	require.Equal(t, float64(StudioOK), out["code"], "%v", out)
	assert.Equal(t, map[string]any{"done": true}, out["data"])
	out = svc(`{"times":11}`)
	assert.Equal(t, float64(StudioBadRequest), out["code"])
	assert.Equal(t, "invalid params: service blink: times: 11 is outside 1..10", out["msg"])
	out = svc(`{"times":2}`)
	assert.Equal(t, float64(StudioDeviceError), out["code"])
	assert.Equal(t, "device answered code 400: bad times", out["msg"])
	out = studioCall(t, b, tok, "/thingmodel/call-service",
		`{"product_id":"`+DemoProductID+`","device_name":"`+DemoDeviceID+`","identifier":"reboot","params":{}}`)
	assert.Equal(t, "invalid params: service reboot is not in the thing model", out["msg"])

	out = studioCall(t, b, tok, "/thingmodel/get-device-property",
		`{"product_id":"`+DemoProductID+`","device_name":"`+DemoDeviceID+`","params":["led","temp"]}`)
	require.Equal(t, float64(StudioOK), out["code"], "%v", out)
	assert.Equal(t, map[string]any{"led": true, "temp": float64(-5)}, out["data"])
	vals := b.Properties(DemoDeviceID)
	assert.Equal(t, "true", string(vals["led"].Value))
	assert.Equal(t, "-5", string(vals["temp"].Value))
	out = studioCall(t, b, tok, "/thingmodel/get-device-property",
		`{"product_id":"`+DemoProductID+`","device_name":"`+DemoDeviceID+`","params":["fan"]}`)
	assert.Equal(t, "invalid params: property fan is not in the thing model", out["msg"])
}

func TestStudioV1SyncCmds(t *testing.T) {
	b := startThingBroker(t)
	d := studioLogin(t, b)
	d.subscribe(t, sysDemo+"cmd/request/+")
	go func() {
		for m := range d.msgs {
			if id, ok := strings.CutPrefix(m.Topic(), sysDemo+"cmd/request/"); ok && string(m.Payload()) != "mute" {
				d.c.Publish(sysDemo+"cmd/response/"+id, 0, false, append([]byte("done:"), m.Payload()...))
			}
		}
	}()
	post := func(hdr, val, query, body string) map[string]any {
		req, err := http.NewRequest("POST", "http://"+b.HTTPAddr()+"/v1/synccmds?"+query, strings.NewReader(body))
		require.NoError(t, err)
		if hdr != "" {
			req.Header.Set(hdr, val)
		}
		resp, err := testHTTP.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return out
	}
	user, _ := MakeUserToken(DemoUserID, DemoUserKey, "md5", time.Now().Add(time.Hour))
	for _, auth := range [][2]string{{"authorization", productToken(t)}, {"authorization", user}, {"api-key", DemoMasterKey}} {
		out := post(auth[0], auth[1], "device_id="+DemoDeviceID+"&timeout=5", "on")
		require.Equal(t, float64(0), out["errno"], "%s: %v", auth[0], out)
		assert.Equal(t, "success", out["error"])
		data := out["data"].(map[string]any)
		resp, _ := base64.StdEncoding.DecodeString(data["cmd_resp"].(string))
		assert.Equal(t, "done:on", string(resp))
		assert.NotEmpty(t, data["cmd_uuid"])
	}
	for _, tc := range []struct {
		hdr, val, query, body string
		errno                 float64
		msg                   string
	}{
		{"api-key", DemoMasterKey, "device_id=nobody&timeout=5", "on", SyncErrnoNotFound, "device not found"},
		{"api-key", DemoMasterKey, "device_id=" + siblingID + "&timeout=5", "on", SyncErrnoNotOnline, "device not online"},
		{"api-key", DemoMasterKey, "device_id=" + DemoDeviceID + "&timeout=5", "mute", SyncErrnoTimeout, "cmd response timeout"},
		{"api-key", DemoMasterKey, "device_id=" + DemoDeviceID + "&timeout=4", "on", ErrnoInvalid, "invalid parameter timeout: 5..30 seconds"},
		{"api-key", DemoMasterKey, "device_id=" + DemoDeviceID + "&timeout=5", strings.Repeat("x", 1024), ErrnoInvalid, "command body must be under 1 KB"},
		{"api-key", otherMasterKey, "device_id=" + DemoDeviceID + "&timeout=5", "on", ErrnoAuthFailed, "auth failed"},
		{"", "", "device_id=" + DemoDeviceID + "&timeout=5", "on", ErrnoNoAPIKey, "authorization or api-key required"},
	} {
		out := post(tc.hdr, tc.val, tc.query, tc.body)
		assert.Equal(t, tc.errno, out["errno"], tc.query)
		assert.Equal(t, tc.msg, out["error"], tc.query)
	}
}

func TestRegistryThingModel(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "led.json"), []byte(
		`{"version":"1.0","profile":{"productId":"1"},"properties":[{"identifier":"led","name":"LED","functionType":"u","accessMode":"rw","desc":"","dataType":{"type":"bool","specs":{"0":"off","1":"on"}}}],"events":[],"services":[]}`), 0o600))
	reg := filepath.Join(dir, "reg.yaml")
	require.NoError(t, os.WriteFile(reg, []byte("products:\n  - id: \"1\"\n    thing_model: led.json\n  - id: \"2\"\n    thing_model:\n      properties:\n        - {identifier: n, dataType: {type: float, specs: {min: \"0\"}}}\n"), 0o600))
	r, err := LoadRegistry(reg)
	require.NoError(t, err)
	p1, _ := r.Product("1")
	p, ok := p1.ThingModel.Property("led")
	require.True(t, ok)
	assert.Equal(t, "bool", p.DataType.Type)
	p2, _ := r.Product("2")
	require.NoError(t, p2.ThingModel.checkSet(map[string]any{"n": json.Number("1.5")}))
	assert.EqualError(t, p2.ThingModel.checkSet(map[string]any{"n": json.Number("-1")}), "property n: -1 is outside 0..")

	for body, want := range map[string]string{
		"products:\n  - id: \"1\"\n    thing_model: missing.json\n":                                                                         "reg.yaml:2: thing_model: open",
		"products:\n  - id: \"1\"\n    thing_model:\n      properties:\n        - {identifier: x, dataType: {type: int8}}\n":                `data type "int8"`,
		"products:\n  - id: \"1\"\n    thing_model:\n      properties:\n        - {identifier: x, accessMode: w, dataType: {type: bool}}\n": `accessMode "w"`,
	} {
		require.NoError(t, os.WriteFile(reg, []byte(body), 0o600))
		_, err := LoadRegistry(reg)
		require.Error(t, err)
		assert.Contains(t, err.Error(), want)
	}
	// The demo product's model: led, a read-write bool.
	demo, _ := DemoRegistry().Product(DemoProductID)
	led, ok := demo.ThingModel.Property("led")
	require.True(t, ok)
	assert.Equal(t, "rw", led.AccessMode)
	assert.Equal(t, "bool", led.DataType.Type)
}
