package broker

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 14, legacy HTTP API: each call over real HTTP, each answer as
// OneNET documents it.

func dataOf[T any](t *testing.T, r apiReply) T {
	t.Helper()
	var v T
	require.NoError(t, json.Unmarshal(r.Data, &v), "data %s", r.Data)
	return v
}

func TestAPIErrnosFollowOneNETsTable(t *testing.T) {
	b := startBroker(t, nil)
	dps := "/devices/" + DemoDeviceID + "/datapoints"
	for _, tc := range []struct {
		method, path, body string
		errno              int
		text               string
	}{
		{"POST", dps, `{"datastreams":[`, 4, "invalid JSON"},
		{"POST", dps, ``, 9, "entity data required"},
		{"POST", dps, strings.Repeat("x", maxPayload), 5, "request entity too large"},
		{"POST", "/cmds?device_id=" + DemoDeviceID, ``, 9, "entity data required"},
		{"POST", "/cmds?device_id=" + DemoDeviceID, strings.Repeat("x", maxPayload), 5, "request entity too large"},
		{"POST", "/mqtt?topic=t", strings.Repeat("x", maxPayload), 5, "request entity too large"},
		{"POST", "/mqtt/topic", `{"name":`, 4, "invalid JSON"},
		{"POST", "/mqtt/topic", ``, 9, "entity data required"},
		{"GET", "/devices", "", 0, "succ"},
	} {
		r, raw := call(t, b, tc.method, tc.path, DemoMasterKey, tc.body)
		assert.Equal(t, tc.errno, r.Errno, "%s %s: %.200s", tc.method, tc.path, raw)
		assert.Equal(t, tc.text, r.Error, "%s %s", tc.method, tc.path)
	}
}

type dsInfo struct {
	ID           string `json:"id"`
	CreateTime   string `json:"create_time"`
	UpdateAt     string `json:"update_at"`
	CurrentValue any    `json:"current_value"`
}

type dpQuery struct {
	Count       int    `json:"count"`
	Cursor      string `json:"cursor"`
	Datastreams []struct {
		ID         string `json:"id"`
		Datapoints []struct {
			At    string `json:"at"`
			Value any    `json:"value"`
		} `json:"datapoints"`
	} `json:"datastreams"`
}

// values lists "stream=value" of a query's answer, in answer order.
func (q dpQuery) values() []string {
	var out []string
	for _, ds := range q.Datastreams {
		for _, p := range ds.Datapoints {
			out = append(out, fmt.Sprintf("%s=%v", ds.ID, p.Value))
		}
	}
	return out
}

func TestAPIPostDatapointsReadBack(t *testing.T) {
	b := startBroker(t, nil)
	body := `{"datastreams":[
		{"id":"temperature","datapoints":[{"at":"2013-04-22T00:35:43","value":"bacd"},{"at":"2013-04-22T00:55:43","value":84}]},
		{"id":"key","datapoints":[{"at":"2013-04-22T00:35:43","value":{"x":123,"y":123.994}}]}]}`
	r, raw := call(t, b, "POST", "/devices/"+DemoDeviceID+"/datapoints", DemoMasterKey, body)
	require.Equal(t, ErrnoOK, r.Errno, "%s", raw)
	assert.JSONEq(t, `{"errno":0,"error":"succ"}`, string(raw))

	r, _ = call(t, b, "GET", "/devices/"+DemoDeviceID+"/datapoints?start=2013-04-22T00:00:00", DemoMasterKey, "")
	require.Equal(t, ErrnoOK, r.Errno, r.Error)
	assert.JSONEq(t, `{"count":3,"datastreams":[
		{"id":"key","datapoints":[{"at":"2013-04-22 00:35:43.000","value":{"x":123,"y":123.994}}]},
		{"id":"temperature","datapoints":[{"at":"2013-04-22 00:35:43.000","value":"bacd"},{"at":"2013-04-22 00:55:43.000","value":84}]}]}`, string(r.Data))

	r, _ = call(t, b, "GET", "/devices/"+DemoDeviceID+"/datastreams?datastream_ids=temperature", DemoMasterKey, "")
	require.Equal(t, ErrnoOK, r.Errno, r.Error)
	got := dataOf[[]dsInfo](t, r)
	require.Len(t, got, 1)
	assert.Equal(t, "temperature", got[0].ID)
	assert.Equal(t, 84.0, got[0].CurrentValue)
	assert.Equal(t, "2013-04-22 00:55:43", got[0].UpdateAt)
	_, err := time.ParseInLocation(dpTimeLayout, got[0].CreateTime, cst)
	assert.NoError(t, err, "create_time %q", got[0].CreateTime)

	r, _ = call(t, b, "GET", "/devices/"+DemoDeviceID+"/datastreams", DemoMasterKey, "")
	assert.Len(t, dataOf[[]dsInfo](t, r), 2, "every datastream without datastream_ids")

	for _, bad := range []string{
		`{"datastreams":[{"id":"t","datapoints":[{"at":"2013-04-22 00:35:43","value":1}]}]}`, // $dp's time form, not the API's
		`{"datastreams":[{"id":"t","datapoints":[{"at":"2013-04-22T00:35:43"}]}]}`,
		`{"datastreams":[]}`,
	} {
		r, _ = call(t, b, "POST", "/devices/"+DemoDeviceID+"/datapoints", DemoMasterKey, bad)
		assert.Contains(t, []int{ErrnoInvalid, ErrnoRequired}, r.Errno, "%s: %s", bad, r.Error)
	}
}

func TestAPIDatapointQueryParameters(t *testing.T) {
	b := startBroker(t, nil)
	// s1 and s2 take turns, one point a minute from 10:00:00 to 10:09:00.
	var pts []string
	for i := range 10 {
		pts = append(pts, fmt.Sprintf(`{"id":"s%d","datapoints":[{"at":"2024-05-01T10:%02d:00","value":%d}]}`, i%2+1, i, i))
	}
	r, _ := call(t, b, "POST", "/devices/"+DemoDeviceID+"/datapoints", DemoMasterKey, `{"datastreams":[`+strings.Join(pts, ",")+`]}`)
	require.Equal(t, ErrnoOK, r.Errno, r.Error)
	query := func(q string) dpQuery {
		t.Helper()
		r, raw := call(t, b, "GET", "/devices/"+DemoDeviceID+"/datapoints?"+q, DemoMasterKey, "")
		require.Equal(t, ErrnoOK, r.Errno, "%s: %s", q, raw)
		return dataOf[dpQuery](t, r)
	}

	assert.Equal(t, []string{"s1=8", "s2=9"}, query("").values(), "no window: the newest point of each stream")
	assert.Equal(t, []string{"s1=2", "s1=4", "s2=3"}, query("start=2024-05-01T10:02:00&end=2024-05-01T10:04:00").values())
	assert.Equal(t, []string{"s1=2", "s2=3"}, query("start=2024-05-01T10:02:00&duration=60").values(), "duration after start")
	assert.Equal(t, []string{"s1=6", "s2=5", "s2=7"}, query("end=2024-05-01T10:07:00&duration=120").values(), "duration before end")
	assert.Equal(t, []string{"s1=0", "s2=1"}, query("start=2024-05-01T10:00:00&limit=2").values(), "limit, oldest first")
	assert.Equal(t, []string{"s1=8", "s2=9"}, query("start=2024-05-01T10:00:00&limit=2&sort=DESC").values(), "DESC: the newest first")
	desc := query("start=2024-05-01T10:00:00&datastream_id=s1&sort=DESC")
	assert.Equal(t, []string{"s1=8", "s1=6", "s1=4", "s1=2", "s1=0"}, desc.values())
	assert.Empty(t, desc.Cursor, "no cursor when nothing remains")
	assert.Empty(t, query("duration=60").values(), "the last minute holds nothing")

	// cursor: pages of 3 walk all 10 points once, in order
	var seen []string
	q := query("start=2024-05-01T10:00:00&limit=3&sort=DESC")
	for pages := 1; ; pages++ {
		require.LessOrEqual(t, pages, 4, "pages of 3 over 10 points")
		assert.Equal(t, len(q.values()), q.Count)
		for _, ds := range q.Datastreams {
			for _, p := range ds.Datapoints {
				seen = append(seen, p.At)
			}
		}
		if q.Cursor == "" {
			break
		}
		q = query("start=2024-05-01T10:00:00&limit=3&sort=DESC&cursor=" + q.Cursor)
	}
	assert.Len(t, seen, 10)
	for i := range 10 {
		assert.Contains(t, seen, fmt.Sprintf("2024-05-01 10:%02d:00.000", i))
	}

	for _, bad := range []string{"sort=UP", "limit=6001", "duration=x", "cursor=junk", "cursor=3_" + siblingID} {
		r, _ := call(t, b, "GET", "/devices/"+DemoDeviceID+"/datapoints?"+bad, DemoMasterKey, "")
		assert.Equal(t, ErrnoInvalid, r.Errno, bad)
	}
}

func TestAPIReadsTypes2And6And7FromMQTT(t *testing.T) {
	b := startBroker(t, nil)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	img := dpPayload(2, `{"ds_id":"image","at":"2024-05-01 10:00:00","desc":"jpg"}`)
	img = binary.BigEndian.AppendUint32(img, 4)
	img = append(img, 0xFF, 0xD8, 0x00, 0x01)
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, cst)
	mark := b.Events().Mark()
	d.publish(t, "$dp", 1, img)
	d.publish(t, "$dp", 1, dpTimed(6, at, dpPayload(0, `,;led,on;temp,21.5`)[1:]))
	d.publish(t, "$dp", 1, dpTimed(7, at, type7Record(3, 2.5)))
	for _, s := range []string{"image", "led", "temp", "3"} {
		waitEvent(t, b, mark, func(e Event) bool { return e.Kind == DatapointReceived && e.Topic == s })
	}

	r, _ := call(t, b, "GET", "/devices/"+DemoDeviceID+"/datastreams", DemoMasterKey, "")
	got := map[string]dsInfo{}
	for _, ds := range dataOf[[]dsInfo](t, r) {
		got[ds.ID] = ds
	}
	assert.Equal(t, "on", got["led"].CurrentValue)
	assert.Equal(t, "2024-01-02 03:04:05", got["led"].UpdateAt, "type 6: the header's time")
	assert.Equal(t, 21.5, got["temp"].CurrentValue)
	assert.Equal(t, 2.5, got["3"].CurrentValue, "type 7: stream 3")
	assert.Equal(t, "2024-01-02 03:04:05", got["3"].UpdateAt)
	index, ok := got["image"].CurrentValue.(string)
	require.True(t, ok, "a binary value is its index: %v", got["image"].CurrentValue)
	assert.True(t, strings.HasPrefix(index, DemoDeviceID+"_") && strings.HasSuffix(index, "_image"), index)

	_, raw := call(t, b, "GET", "/bindata/"+index, DemoMasterKey, "")
	assert.Equal(t, []byte{0xFF, 0xD8, 0x00, 0x01}, raw, "the binary value, as uploaded")
	r, _ = call(t, b, "GET", "/bindata/"+index, otherMasterKey, "")
	assert.Equal(t, ErrnoAuthFailed, r.Errno)
	r, _ = call(t, b, "GET", "/bindata/"+DemoDeviceID+"_999_image", DemoMasterKey, "")
	assert.Equal(t, ErrnoNotFound, r.Errno)
}

func TestAPIDeviceListAndStatus(t *testing.T) {
	b := startBroker(t, nil)
	login(t, b, siblingID, siblingAuth)
	type list struct {
		Total   int `json:"total_count"`
		Page    int `json:"page"`
		PerPage int `json:"per_page"`
		Devices []struct {
			ID     string `json:"id"`
			Online bool   `json:"online"`
		} `json:"devices"`
	}
	r, _ := call(t, b, "GET", "/devices", DemoMasterKey, "")
	all := dataOf[list](t, r)
	assert.Equal(t, 3, all.Total)
	assert.Equal(t, 30, all.PerPage, "OneNET's default page")
	r, _ = call(t, b, "GET", "/devices?per_page=2&page=2", DemoMasterKey, "")
	p2 := dataOf[list](t, r)
	assert.Equal(t, 3, p2.Total)
	assert.Equal(t, 2, p2.Page)
	require.Len(t, p2.Devices, 1)
	assert.Equal(t, disabledID, p2.Devices[0].ID)
	r, _ = call(t, b, "GET", "/devices?online=true", DemoMasterKey, "")
	on := dataOf[list](t, r)
	require.Len(t, on.Devices, 1)
	assert.Equal(t, siblingID, on.Devices[0].ID)
	r, _ = call(t, b, "GET", "/devices?per_page=101", DemoMasterKey, "")
	assert.Equal(t, ErrnoInvalid, r.Errno)

	r, _ = call(t, b, "GET", "/devices/status", DemoMasterKey, "")
	require.Equal(t, ErrnoOK, r.Errno, r.Error)
	assert.JSONEq(t, `{"total_count":3,"devices":[
		{"id":"503367129","title":"led-board","online":false},
		{"id":"503367130","title":"sibling","online":true},
		{"id":"503367131","title":"off","online":false}]}`, string(r.Data), "without devIds: every device of the product")
}

func TestAPICommandHistory(t *testing.T) {
	b := startBroker(t, nil)
	start := time.Now().Add(-time.Minute).In(cst).Format(apiTimeParseForm)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	errno, msg, first := postCmd(t, b, "device_id="+DemoDeviceID, "on")
	require.Equal(t, ErrnoOK, errno, msg)
	d.recv(t, b)
	mark := b.Events().Mark()
	d.publish(t, "$crsp/"+first, 1, []byte("ok"))
	waitEvent(t, b, mark, ForCommand(CommandReplied, first))
	errno, msg, second := postCmd(t, b, "device_id="+DemoDeviceID+"&qos=1&timeout=60", "off")
	require.Equal(t, ErrnoOK, errno, msg)
	d.recv(t, b)

	r, _ := call(t, b, "GET", "/cmds/history/"+DemoDeviceID+"?start="+start, DemoMasterKey, "")
	require.Equal(t, ErrnoOK, r.Errno, r.Error)
	h := dataOf[struct {
		Total int              `json:"total_count"`
		Items []map[string]any `json:"items"`
	}](t, r)
	require.Equal(t, 2, h.Total)
	require.Len(t, h.Items, 2)
	assert.Equal(t, first, h.Items[0]["cmd_uuid"])
	assert.Equal(t, "6f6e", h.Items[0]["body"], "hex, as OneNET shows it")
	assert.Equal(t, "6f6b", h.Items[0]["confirm_body"])
	assert.Equal(t, 4.0, h.Items[0]["status"])
	assert.Equal(t, second, h.Items[1]["cmd_uuid"])
	assert.Equal(t, 2.0, h.Items[1]["status"])
	assert.NotEmpty(t, h.Items[1]["expire_time"])
	assert.NotContains(t, h.Items[1], "confirm_body")

	r, _ = call(t, b, "GET", "/cmds/history/"+DemoDeviceID, DemoMasterKey, "")
	assert.Equal(t, ErrnoRequired, r.Errno, "start is required")
	r, _ = call(t, b, "GET", "/cmds/history/"+DemoDeviceID+"?start="+start, otherMasterKey, "")
	assert.Equal(t, ErrnoAuthFailed, r.Errno)
	// the other two-segment call under /cmds still answers
	_, raw := call(t, b, "GET", "/cmds/"+first+"/resp", DemoMasterKey, "")
	assert.Equal(t, "ok", string(raw))
}

func TestAPITopics(t *testing.T) {
	b := startBroker(t, nil)
	r, _ := call(t, b, "POST", "/mqtt/topic", DemoMasterKey, `{"name":"made_by/api"}`)
	require.Equal(t, ErrnoOK, r.Errno, r.Error)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	d.subscribe(t, "led/state", "made_by/api")
	s := login(t, b, siblingID, siblingAuth)
	s.subscribe(t, "led/state")

	r, _ = call(t, b, "GET", "/mqtt/topic", DemoMasterKey, "")
	assert.JSONEq(t, `["led/state","made_by/api"]`, string(r.Data), "created by the API or by a subscription")
	r, _ = call(t, b, "GET", "/mqtt/topic", otherMasterKey, "")
	assert.JSONEq(t, `[]`, string(r.Data), "another product's topics are its own")
	r, _ = call(t, b, "GET", "/mqtt/device_topic/"+DemoDeviceID, DemoMasterKey, "")
	assert.JSONEq(t, `["led/state","made_by/api"]`, string(r.Data))
	r, _ = call(t, b, "GET", "/mqtt/topic_device?topic=led/state&page=1&per_page=100", DemoMasterKey, "")
	assert.JSONEq(t, `{"total_count":2,"page":1,"per_page":100,"devices":[503367129,503367130]}`, string(r.Data))
	r, _ = call(t, b, "GET", "/mqtt/topic_device?topic=led/state&page=2&per_page=1", DemoMasterKey, "")
	assert.JSONEq(t, `{"total_count":2,"page":2,"per_page":1,"devices":[503367130]}`, string(r.Data))
	r, _ = call(t, b, "GET", "/mqtt/topic_device", DemoMasterKey, "")
	assert.Equal(t, ErrnoRequired, r.Errno)

	// at most 100 topics in a product: then errno 13, and a subscription
	// to a new topic is refused
	for i := 0; len(b.reg.productTopics(DemoProductID)) < maxProductTopics; i++ {
		r, _ = call(t, b, "POST", "/mqtt/topic", DemoMasterKey, fmt.Sprintf(`{"name":"t%d"}`, i))
		require.Equal(t, ErrnoOK, r.Errno, r.Error)
	}
	r, _ = call(t, b, "POST", "/mqtt/topic", DemoMasterKey, `{"name":"one_more"}`)
	assert.Equal(t, ErrnoQueueFull, r.Errno)
	assert.Equal(t, byte(0x80), s.subscribe(t, "one_more")["one_more"])
	assert.Equal(t, byte(0x00), s.subscribe(t, "made_by/api")["made_by/api"], "an existing topic still takes subscribers")
}

func TestAPIDeviceLevelKey(t *testing.T) {
	reg, err := ParseRegistry("keys.yaml", []byte(`products:
  - id: "386427"
    master_key: "master-key-386427"
    devices:
      - id: "503367129"
        auth_info: "a-1"
        api_key: "device-key-503367129"
      - id: "503367130"
        auth_info: "a-2"
`))
	require.NoError(t, err)
	b := startBroker(t, reg)
	const key = "device-key-503367129"
	for _, tc := range []struct {
		method, path, body string
		errno              int
	}{
		{"GET", "/devices/503367129", "", ErrnoOK},
		{"GET", "/devices/503367130", "", ErrnoAuthFailed},
		{"GET", "/devices/503367129/datastreams", "", ErrnoOK},
		{"POST", "/devices/503367129/datapoints", `{"datastreams":[{"id":"t","datapoints":[{"value":1}]}]}`, ErrnoOK},
		{"POST", "/devices/503367130/datapoints", `{"datastreams":[{"id":"t","datapoints":[{"value":1}]}]}`, ErrnoAuthFailed},
		{"GET", "/devices/503367130/datapoints", "", ErrnoAuthFailed},
		{"POST", "/cmds?device_id=503367129&timeout=60", "on", ErrnoOK},
		{"POST", "/cmds?device_id=503367130&timeout=60", "on", ErrnoAuthFailed},
		{"GET", "/cmds/history/503367130?start=2024-01-01T00:00:00", "", ErrnoAuthFailed},
		{"POST", "/mqtt?topic=t", "x", ErrnoAuthFailed},
		{"GET", "/mqtt/topic", "", ErrnoAuthFailed},
		{"GET", "/mqtt/device_topic/503367129", "", ErrnoOK},
	} {
		r, raw := call(t, b, tc.method, tc.path, key, tc.body)
		assert.Equal(t, tc.errno, r.Errno, "%s %s: %.200s", tc.method, tc.path, raw)
		if tc.errno == ErrnoAuthFailed {
			assert.Equal(t, "auth failed", r.Error)
		}
	}
	r, _ := call(t, b, "GET", "/devices", key, "")
	assert.Contains(t, string(r.Data), `"total_count":1`, "a device key lists its device only")
	r, _ = call(t, b, "GET", "/devices/status", key, "")
	assert.JSONEq(t, `{"total_count":1,"devices":[{"id":"503367129","title":"","online":false}]}`, string(r.Data))
	r, _ = call(t, b, "GET", "/devices", "master-key-386427", "")
	assert.Contains(t, string(r.Data), `"total_count":2`, "the master key reaches every device")

	// a device key is one key of the registry: no other key may equal it
	_, err = ParseRegistry("dup.yaml", []byte(`products:
  - id: "1"
    master_key: "k-1111"
    devices:
      - id: "2"
        api_key: "k-1111"
`))
	assert.ErrorContains(t, err, "dup.yaml:5: device 2: api_key is already another key of the registry")
}
