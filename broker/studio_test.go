package broker

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const demoRes = "products/" + DemoProductID + "/devices/" + DemoDeviceID

var farFuture = time.Unix(4102444800, 0) // 2100-01-01

// Vectors computed independently with Python's hmac/hashlib/base64.
func TestMakeTokenVectors(t *testing.T) {
	for method, sign := range map[string]string{
		"md5":    "Kx8w0pXQE4QkzMrUiEWNaQ==",
		"sha1":   "dQZvvzxv0Q06bVvVeCkURtjvgOg=",
		"sha256": "1M8VKaep9rwG+BclXqV2LxYt/eHI2FtrSAK9aK6c4iY=",
	} {
		tok, err := MakeToken(demoRes, DemoDeviceKey, method, farFuture)
		require.NoError(t, err)
		enc := strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(sign)
		assert.Equal(t, "version=2018-10-31&res=products%2F386427%2Fdevices%2F503367129&et=4102444800&method="+method+"&sign="+enc, tok)
		parsed, err := ParseToken(tok)
		require.NoError(t, err)
		assert.Equal(t, Token{Version: TokenVersion, Res: demoRes, ET: 4102444800, Method: method, Sign: sign}, parsed)
	}
	tok, err := MakeToken("products/"+DemoProductID, DemoAccessKey, "sha1", farFuture)
	require.NoError(t, err)
	assert.Contains(t, tok, "sign=aD%2B6xrufKFQOZh6ihPwAF5mmVIw%3D")
	_, err = MakeToken(demoRes, DemoDeviceKey, "sha512", farFuture)
	assert.Error(t, err)
	_, err = MakeToken(demoRes, "not base64!", "md5", farFuture)
	assert.Error(t, err)
}

func TestVerifyToken(t *testing.T) {
	r := DemoRegistry()
	now := time.Now()
	good, _ := MakeToken(demoRes, DemoDeviceKey, "sha256", now.Add(time.Hour))
	assert.NoError(t, r.verifyToken(good, DemoProductID, DemoDeviceID, now))
	prod, _ := MakeToken("products/"+DemoProductID, DemoAccessKey, "md5", now.Add(time.Hour))
	assert.NoError(t, r.verifyToken(prod, DemoProductID, DemoDeviceID, now))
	expired, _ := MakeToken(demoRes, DemoDeviceKey, "sha256", now.Add(-time.Second))
	assert.ErrorContains(t, r.verifyToken(expired, DemoProductID, DemoDeviceID, now), "expired")
	wrongKey, _ := MakeToken(demoRes, DemoAccessKey, "sha256", now.Add(time.Hour))
	assert.ErrorContains(t, r.verifyToken(wrongKey, DemoProductID, DemoDeviceID, now), "sign")
	assert.ErrorContains(t, r.verifyToken(good, DemoProductID, "other", now), "res")
	// a sign whose '+' was not url-encoded decodes to a space and fails
	raw := strings.Replace(good, "%2B", "+", 1)
	if raw != good {
		assert.Error(t, r.verifyToken(raw, DemoProductID, DemoDeviceID, now))
	}
	assert.Error(t, r.verifyToken(strings.Replace(good, "2018-10-31", "2020-01-01", 1), DemoProductID, DemoDeviceID, now))
	assert.Error(t, r.verifyToken("garbage", DemoProductID, DemoDeviceID, now))
}

func startStudio(t testing.TB) *Broker {
	t.Helper()
	b, err := New(Options{Registry: testRegistry(t), MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", StudioAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func deviceToken(t testing.TB) string {
	tok, err := MakeToken(demoRes, DemoDeviceKey, "sha256", time.Now().Add(time.Hour))
	require.NoError(t, err)
	return tok
}

func studioLogin(t testing.TB, b *Broker) *device {
	t.Helper()
	mark := b.Events().Mark()
	o, d := deviceOptions(b.StudioAddr(), DemoDeviceID, DemoProductID, deviceToken(t))
	d.c = paho.NewClient(o)
	tok := d.c.Connect()
	require.True(t, tok.WaitTimeout(waitBound))
	require.NoError(t, tok.Error())
	t.Cleanup(func() { d.c.Disconnect(0) })
	waitEvent(t, b, mark, Is(Connected, DemoDeviceID))
	return d
}

func TestStudioConnackCodes(t *testing.T) {
	b := startStudio(t)
	now := time.Now()
	expired, _ := MakeToken(demoRes, DemoDeviceKey, "sha1", now.Add(-time.Minute))
	other, _ := MakeToken("products/"+otherProductID+"/devices/"+otherDeviceID, DemoDeviceKey, "sha1", now.Add(time.Hour))
	const flags = 0xC0 | 0x02
	for _, tc := range []struct {
		name     string
		level    byte
		flags    byte
		id, u, p string
		want     []byte
	}{
		{"expired token", 4, flags, DemoDeviceID, DemoProductID, expired, []byte{0x20, 2, 0, 5}},
		{"bad token", 4, flags, DemoDeviceID, DemoProductID, "version=2018-10-31&res=x", []byte{0x20, 2, 0, 5}},
		{"unknown product", 4, flags, DemoDeviceID, "999", deviceToken(t), []byte{0x20, 2, 0, 4}},
		{"unknown device", 4, flags, "nobody", DemoProductID, deviceToken(t), []byte{0x20, 2, 0, 2}},
		{"other product's device", 4, flags, otherDeviceID, DemoProductID, other, []byte{0x20, 2, 0, 2}},
		{"level 5", 5, flags, DemoDeviceID, DemoProductID, deviceToken(t), []byte{0x20, 2, 0, 1}},
		{"clean session 0", 4, 0xC0, DemoDeviceID, DemoProductID, deviceToken(t), []byte{}},
		{"will", 4, flags | 0x04, DemoDeviceID, DemoProductID, deviceToken(t), []byte{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := rawReply(t, b.StudioAddr(), rawConnect("MQTT", tc.level, tc.flags, tc.id, tc.u, tc.p))
			assert.Equal(t, tc.want, got)
		})
	}
	t.Run("keepalive out of range", func(t *testing.T) {
		pkt := rawConnectKA("MQTT", 4, flags, DemoDeviceID, DemoProductID, deviceToken(t), 5)
		assert.Equal(t, []byte{}, rawReply(t, b.StudioAddr(), pkt))
	})
	// the legacy listener still speaks the legacy login
	login(t, b, siblingID, siblingAuth)
}

// TestStudioKeepaliveDrop: silent for 1.5 x keepalive (10 s) -> dropped.
func TestStudioKeepaliveDrop(t *testing.T) {
	t.Parallel()
	b := startStudio(t)
	pkt := rawConnectKA("MQTT", 4, 0xC2, DemoDeviceID, DemoProductID, deviceToken(t), 10)
	c, err := net.Dial("tcp", b.StudioAddr())
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(40*time.Second)))
	_, err = c.Write(pkt)
	require.NoError(t, err)
	start := time.Now()
	got, err := io.ReadAll(c)
	require.NoError(t, err, "no drop within 40 s")
	assert.Equal(t, []byte{0x20, 2, 0, 0}, got)
	assert.GreaterOrEqual(t, time.Since(start), 14*time.Second)
	waitEvent(t, b, 0, Is(Disconnected, DemoDeviceID))
}

func TestStudioCommandsAndDatapoints(t *testing.T) {
	b := startStudio(t)
	d := studioLogin(t, b)
	sys := "$sys/" + DemoProductID + "/" + DemoDeviceID + "/"
	got := d.subscribe(t, sys+"cmd/request/+", sys+"cmd/response/+/+", sys+"dp/post/json/+",
		"$sys/"+DemoProductID+"/"+siblingID+"/cmd/request/+", "ok_topic-1", "bad.topic")
	assert.Equal(t, map[string]byte{sys + "cmd/request/+": 0, sys + "cmd/response/+/+": 0, sys + "dp/post/json/+": 0,
		"$sys/" + DemoProductID + "/" + siblingID + "/cmd/request/+": 0x80, "ok_topic-1": 0, "bad.topic": 0x80}, got)

	mark := b.Events().Mark()
	uuid, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{})
	require.NoError(t, err)
	m := d.recv(t, b)
	assert.Equal(t, sys+"cmd/request/"+uuid, m.Topic())
	assert.Equal(t, "on", string(m.Payload()))
	d.publish(t, sys+"cmd/response/"+uuid, 1, []byte("ok"))
	m = d.recv(t, b)
	assert.Equal(t, sys+"cmd/response/"+uuid+"/accepted", m.Topic())
	waitEvent(t, b, mark, ForCommand(CommandReplied, uuid))
	info, _ := b.Command(uuid)
	assert.Equal(t, CmdReplied, info.Status)
	assert.Equal(t, "ok", string(info.Response))

	d.publish(t, sys+"cmd/response/unknown", 0, []byte("?"))
	m = d.recv(t, b)
	assert.Equal(t, sys+"cmd/response/unknown/rejected", m.Topic())

	d.publish(t, sys+"dp/post/json", 1, []byte(`{"id":123,"dp":{"temp":[{"v":30,"t":1552289676}]}}`))
	m = d.recv(t, b)
	assert.Equal(t, sys+"dp/post/json/accepted", m.Topic())
	assert.JSONEq(t, `{"id":123}`, string(m.Payload()))
	pts := b.Datapoints(DemoDeviceID)["temp"]
	require.Len(t, pts, 1)
	assert.Equal(t, int64(1552289676), pts[0].At.Unix())
	assert.Equal(t, 30.0, pts[0].Value)

	d.publish(t, sys+"dp/post/json", 1, []byte(`{"id":124,"dp":{"temp":[{"t":1}]}}`))
	m = d.recv(t, b)
	assert.Equal(t, sys+"dp/post/json/rejected", m.Topic())
	assert.JSONEq(t, `{"id":124,"err_code":98,"err_msg":"Illegal Data"}`, string(m.Payload()))
}

func TestStudioIllegalTopicDisconnects(t *testing.T) {
	b := startStudio(t)
	for _, topic := range []string{"bad.topic", "$sys/" + DemoProductID + "/" + siblingID + "/dp/post/json", "$dp"} {
		d := studioLogin(t, b)
		mark := b.Events().Mark()
		d.c.Publish(topic, 0, false, []byte("x"))
		d.waitLost(t, b)
		e := waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
		assert.Contains(t, e.Reason, "illegal topic", topic)
	}
}

func TestStudioSyncCommandAPI(t *testing.T) {
	b := startStudio(t)
	d := studioLogin(t, b)
	sys := "$sys/" + DemoProductID + "/" + DemoDeviceID + "/"
	d.subscribe(t, sys+"cmd/request/+")
	go func() { // the device answers every command
		for m := range d.msgs {
			if id, ok := strings.CutPrefix(m.Topic(), sys+"cmd/request/"); ok {
				d.c.Publish(sys+"cmd/response/"+id, 0, false, append([]byte("done:"), m.Payload()...))
			}
		}
	}()
	prodTok, err := MakeToken("products/"+DemoProductID, DemoAccessKey, "sha1", time.Now().Add(time.Hour))
	require.NoError(t, err)
	post := func(tok, query, body string) map[string]any {
		req, _ := http.NewRequest("POST", "http://"+b.HTTPAddr()+"/datapoint/synccmds?"+query, strings.NewReader(body))
		if tok != "" {
			req.Header.Set("authorization", tok)
		}
		resp, err := testHTTP.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		return out
	}
	q := "product_id=" + DemoProductID + "&device_name=" + DemoDeviceID + "&timeout=10"
	out := post(prodTok, q, "toggle")
	require.Equal(t, float64(StudioOK), out["code"], "%v", out)
	data := out["data"].(map[string]any)
	resp, _ := base64.StdEncoding.DecodeString(data["cmd_resp"].(string))
	assert.Equal(t, "done:toggle", string(resp))

	assert.Equal(t, float64(StudioAuthFailed), post("", q, "x")["code"])
	assert.Equal(t, float64(StudioAuthFailed), post("version=2018-10-31", q, "x")["code"])
	assert.Equal(t, float64(StudioBadRequest), post(prodTok, "product_id="+DemoProductID, "x")["code"])
	assert.Equal(t, float64(StudioNotOnline), post(prodTok, "product_id="+DemoProductID+"&device_name="+siblingID, "x")["code"])
}

func TestParseStudioDP(t *testing.T) {
	id, recs, err := ParseStudioDP([]byte(`{"id":"7","dp":{"a":[{"v":{"x":1},"t":1552289676000}],"b":[{"v":true}]}}`))
	require.NoError(t, err)
	assert.JSONEq(t, `"7"`, string(id))
	require.Len(t, recs, 2)
	assert.Equal(t, int64(1552289676), recs[0].At.Unix())
	assert.Equal(t, map[string]any{"x": 1.0}, recs[0].Value)
	assert.Equal(t, true, recs[1].Value)
	for _, bad := range []string{`{"dp":{"a":[{"v":1}]}}`, `{"id":1,"dp":{}}`, `{"id":1,"dp":{"a":[{"v":null}]}}`, `{"id":1,"dp":{"a":[{"v":1,"t":"x"}]}}`, `{"id":1`} {
		_, _, err := ParseStudioDP([]byte(bad))
		assert.Error(t, err, bad)
	}
}
