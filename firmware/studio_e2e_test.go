package firmware_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/harness/echo"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const (
	studioDeviceKey = "c3R1ZGlvLWRldmljZS1rZXktZm9yLWhpbC10ZXN0cw==" // "studio-device-key-for-hil-tests"
	studioAccessKey = "cHJvZHVjdC1hY2Nlc3Mta2V5"                     // "product-access-key"
	studioSys       = "$sys/" + e2eProduct + "/" + e2eDevice + "/"
	studioUserKey   = "dXNlci1hY2Nlc3Mta2V5LTc3" // "user-access-key-77"
)

// startStudioBroker runs the broker with its studio listener; the device
// has a legacy auth_info too, which the studio login must not need.
func startStudioBroker(t *testing.T) *broker.Broker {
	reg := broker.NewRegistry()
	require.NoError(t, reg.AddProduct(broker.Product{ID: e2eProduct, Name: e2eTopic, MasterKey: "master-key-secret", AccessKey: studioAccessKey,
		UserID: "77", UserKey: studioUserKey, ThingModel: broker.DemoThingModel()}))
	require.NoError(t, reg.AddDevice(e2eProduct, broker.Device{ID: e2eDevice, Title: "led-board", AuthInfo: e2eAuth, Key: studioDeviceKey}))
	b, err := broker.New(broker.Options{Registry: reg, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", StudioAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { b.Close() })
	return b
}

func studioConfig(t *testing.T, b *broker.Broker, device, token string) firmware.Config {
	host, port := splitAddr(t, b.StudioAddr())
	return firmware.Config{
		WiFiSSID: "lab", WiFiPassword: e2eWiFiPW, BrokerHost: host, BrokerPort: port,
		DeviceID: device, ProductID: e2eProduct, Topic: e2eTopic, LEDPin: e2eLED, Keepalive: 30,
		Platform: firmware.Studio, Token: token,
	}
}

func token(t *testing.T, res, key string, expires time.Time) string {
	tok, err := broker.MakeToken(res, key, "sha256", expires)
	require.NoError(t, err)
	return tok
}

// studioCommand sends cmd through the broker's Go API and checks the echo,
// the pin, the accepted response (the broker stores a reply only when it
// answers .../accepted) and the LED's property post.
func (e *e2e) studioCommand(cmd string, state int) {
	e.t.Helper()
	mark := e.b.Events().Mark()
	uuid, err := e.b.SendCommand(e2eDevice, []byte(cmd), broker.CommandOptions{})
	require.NoError(e.t, err)
	e.expect(`^HIL led state=` + strconv.Itoa(state) + ` cmd=` + cmd + ` via=` + regexp.QuoteMeta(studioSys+"cmd/request/"+uuid) + `$`)
	e.pin(state)
	rep := e.event(mark, "the accepted cmd/response", broker.ForCommand(broker.CommandReplied, uuid))
	assert.JSONEq(e.t, `{"led":`+strconv.Itoa(state)+`}`, string(rep.Payload))
	info, ok := e.b.Command(uuid)
	require.True(e.t, ok)
	assert.Equal(e.t, broker.CmdReplied, info.Status)
	e.property(mark, state)
}

// property waits for the board's thing/property/post of the LED (kept as
// a data point of the datastream "led").
func (e *e2e) property(mark broker.Mark, state int) {
	e.t.Helper()
	dp := e.event(mark, "the led property post", func(ev broker.Event) bool {
		return ev.Kind == broker.DatapointReceived && ev.DeviceID == e2eDevice && ev.Topic == "led"
	})
	assert.Equal(e.t, []string{"false", "true"}[state], string(dp.Payload))
}

// propertySet sets the LED through the thingmodel API with an account
// token (version 2022-05-01, res=userid/77), as a cloud application does.
func (e *e2e) propertySet(on bool) {
	e.t.Helper()
	mark := e.b.Events().Mark()
	tok, err := broker.MakeUserToken("77", studioUserKey, "sha1", time.Now().Add(time.Hour))
	require.NoError(e.t, err)
	body := `{"product_id":"` + e2eProduct + `","device_name":"` + e2eDevice + `","params":{"led":` + strconv.FormatBool(on) + `}}`
	req, err := http.NewRequest(http.MethodPost, "http://"+e.b.HTTPAddr()+"/thingmodel/set-device-property", strings.NewReader(body))
	require.NoError(e.t, err)
	req.Header.Set("authorization", tok)
	resp, err := (&http.Client{Timeout: e2eWait}).Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var out struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
		Data struct {
			ID   string `json:"id"`
			Code int    `json:"code"`
		} `json:"data"`
	}
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(e.t, broker.StudioOK, out.Code, "set-device-property: %s; last serial lines:\n%s", out.Msg, tail(e.port))
	assert.Equal(e.t, 200, out.Data.Code)
	state := map[bool]int{false: 0, true: 1}[on]
	e.expect(`^HIL led state=` + strconv.Itoa(state) + ` cmd=` + map[bool]string{false: "off", true: "on"}[on] + ` via=` + regexp.QuoteMeta(studioSys+"thing/property/set") + `$`)
	e.pin(state)
	e.property(mark, state)
}

// syncCommand uses OneNET Studio's synchronous command HTTP API with a
// product-level token, as a cloud application would.
func (e *e2e) syncCommand(cmd string, state int) {
	e.t.Helper()
	mark := e.b.Events().Mark()
	q := url.Values{"product_id": {e2eProduct}, "device_name": {e2eDevice}, "timeout": {"20"}}
	req, err := http.NewRequest(http.MethodPost, "http://"+e.b.HTTPAddr()+"/datapoint/synccmds?"+q.Encode(), strings.NewReader(cmd))
	require.NoError(e.t, err)
	req.Header.Set("authorization", token(e.t, "products/"+e2eProduct, studioAccessKey, time.Now().Add(time.Hour)))
	resp, err := (&http.Client{Timeout: e2eWait}).Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var out struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
		Data struct {
			UUID string `json:"cmd_uuid"`
			Resp string `json:"cmd_resp"`
		} `json:"data"`
	}
	require.NoError(e.t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(e.t, broker.StudioOK, out.Code, "sync command: %s; last serial lines:\n%s", out.Msg, tail(e.port))
	got, err := base64.StdEncoding.DecodeString(out.Data.Resp)
	require.NoError(e.t, err)
	assert.JSONEq(e.t, `{"led":`+strconv.Itoa(state)+`}`, string(got))
	e.expect(`^HIL led state=` + strconv.Itoa(state) + ` cmd=` + cmd + ` via=` + regexp.QuoteMeta(studioSys+"cmd/request/"+out.Data.UUID) + `$`)
	e.pin(state)
	e.property(mark, state)
}

func TestFirmwareStudioOnVirtualBoard(t *testing.T) {
	b := startStudioBroker(t)
	tok := token(t, "products/"+e2eProduct+"/devices/"+e2eDevice, studioDeviceKey, time.Now().Add(time.Hour))
	sign, err := url.ParseQuery(tok)
	require.NoError(t, err)
	e := bootBoard(t, b, studioConfig(t, b, e2eDevice, tok))

	e.expect(`^HIL boot fw=` + regexp.QuoteMeta(firmware.Version) + ` id=` + e2eDevice + `$`)
	e.expect(`^HIL wifi up ip=\S+$`)
	e.up(0)
	subs := map[string]byte{}
	for m := broker.Mark(0); len(subs) < 4; {
		ev := e.event(m, "the four subscriptions", broker.Is(broker.Subscribed, e2eDevice))
		subs[ev.Topic], m = ev.Code, broker.Mark(ev.Seq)
	}
	assert.Equal(t, map[string]byte{
		studioSys + "cmd/request/+": 0, studioSys + "cmd/response/+/rejected": 0,
		studioSys + "thing/property/set": 0, e2eTopic: 0,
	}, subs)

	// on/off/toggle through the Go API, the sync HTTP API, the custom topic
	// and the thing model's property set.
	e.studioCommand("on", 1)
	e.studioCommand("toggle", 0)
	e.syncCommand("toggle", 1)
	e.publish("off", 0)
	e.syncCommand("on", 1)
	e.studioCommand("off", 0)
	e.propertySet(true)
	e.propertySet(false)
	e.publish("blink", -1)
	pts := b.Datapoints(e2eDevice)["led"]
	require.Len(t, pts, 8, "one property post per change")
	assert.Equal(t, false, pts[len(pts)-1].Value)
	assert.Equal(t, "false", string(b.Properties(e2eDevice)["led"].Value))

	// Kicked: the board logs in again with the same token.
	mark := b.Events().Mark()
	require.NoError(t, b.Kick(e2eDevice))
	e.expect(`^HIL mqtt down reason=\w+$`)
	e.up(mark)
	e.studioCommand("toggle", 1)

	// Nothing was rejected (a rejection would be echoed as "ignored ...
	// via=.../rejected"), every echo line keeps to the grammar, and neither
	// the token nor the Wi-Fi password reached the serial port.
	for _, ln := range e.port.Lines() {
		assert.NotContains(t, ln.Text, "rejected")
		assert.NotContains(t, ln.Text, sign.Get("sign"))
		assert.NotContains(t, ln.Text, e2eWiFiPW)
		if strings.HasPrefix(ln.Text, "HIL ") {
			_, err := echo.ParseHIL(ln.Text)
			assert.NoError(t, err, "echo line %q", ln.Text)
		}
	}
}

// A token the platform refuses is echoed with the CONNACK code, and the
// board keeps retrying (with backoff) rather than giving up.
func TestFirmwareStudioRefusedTokens(t *testing.T) {
	b := startStudioBroker(t)
	res := "products/" + e2eProduct + "/devices/"
	for _, tc := range []struct {
		name, device, token string
		rc                  byte
	}{
		{"expired", e2eDevice, token(t, res+e2eDevice, studioDeviceKey, time.Now().Add(-time.Minute)), broker.CodeNotAuthorized},
		{"signed with another key", e2eDevice, token(t, res+e2eDevice, studioAccessKey, time.Now().Add(time.Hour)), broker.CodeNotAuthorized},
		{"unknown device", "ghost-1", token(t, res+"ghost-1", studioDeviceKey, time.Now().Add(time.Hour)), broker.CodeBadClientID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := b.Events().Mark()
			e := bootBoard(t, b, studioConfig(t, b, tc.device, tc.token))
			want := `^HIL mqtt refused rc=` + strconv.Itoa(int(tc.rc)) + `$`
			e.expect(want)
			ev := e.event(mark, "the refusal", broker.Is(broker.Refused, tc.device))
			assert.Equal(t, tc.rc, ev.Code, ev.Reason)
			e.expect(want) // tried again after its backoff
			assert.False(t, b.Online(tc.device))
			require.NoError(t, e.board.Close())
			for _, ln := range e.port.Lines() {
				assert.NotContains(t, ln.Text, "sign=")
				assert.NotContains(t, ln.Text, "mqtt up")
			}
		})
	}
}
