package broker

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The legacy HTTP API's device, datastream, data point, command history
// and topic calls (broker/README.md, "What OneNET does" has each shape and
// its source).

func (b *Broker) registerLegacyAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /devices", b.api(b.getDevices))
	mux.HandleFunc("GET /devices/{id}/datastreams", b.api(b.getDatastreams))
	mux.HandleFunc("POST /devices/{id}/datapoints", b.api(b.postDatapoints))
	mux.HandleFunc("GET /bindata/{index}", b.getBindata)
	mux.HandleFunc("GET /mqtt/topic", b.api(b.getTopics))
	mux.HandleFunc("POST /mqtt/topic", b.api(b.postTopic))
	mux.HandleFunc("GET /mqtt/device_topic/{id}", b.api(b.getDeviceTopics))
	mux.HandleFunc("GET /mqtt/topic_device", b.api(b.getTopicDevices))
}

// productDevices lists the devices a key reaches, by id.
func (b *Broker) productDevices(p apiKey) []Device {
	for _, prod := range b.reg.Products() {
		if prod.ID != p.ID {
			continue
		}
		var out []Device
		for _, d := range prod.Devices {
			if p.reaches(d.ID) {
				out = append(out, d)
			}
		}
		return out
	}
	return nil
}

// intParam reads an optional integer query parameter within [lo, hi].
func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fail(ErrnoInvalid, "invalid parameter %s: %q (%d..%d)", name, s, lo, hi)
	}
	return n, nil
}

// page cuts a list for page (from 1) of perPage.
func page[T any](all []T, page, perPage int) []T {
	from := (page - 1) * perPage
	if from >= len(all) {
		return []T{}
	}
	return all[from:min(len(all), from+perPage)]
}

func cstTime(t time.Time) string { return t.In(cst).Format(dpTimeLayout) }

func (b *Broker) deviceJSON(d Device) map[string]any {
	return map[string]any{
		"id": d.ID, "title": d.Title, "protocol": "MQTT", "online": b.Online(d.ID),
		"auth_info": d.AuthInfo, "private": true, "create_time": cstTime(d.CreateTime),
	}
}

// getDevices is GET /devices: the key's devices by id, page (1..10000)
// of per_page (1..100, default 30); key_words matches the start of id or
// title, device_id lists ids, online filters.
func (b *Broker) getDevices(r *http.Request, p apiKey) (any, error) {
	pg, err := intParam(r, "page", 1, 1, 10000)
	if err != nil {
		return nil, err
	}
	per, err := intParam(r, "per_page", 30, 1, 100)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var ids map[string]bool
	if s := q.Get("device_id"); s != "" {
		ids = map[string]bool{}
		for _, id := range strings.Split(s, ",") {
			ids[strings.TrimSpace(id)] = true
		}
	}
	var online *bool
	if s := q.Get("online"); s != "" {
		v, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fail(ErrnoInvalid, "invalid parameter online: %q (true or false)", s)
		}
		online = &v
	}
	kw := q.Get("key_words")
	var match []Device
	for _, d := range b.productDevices(p) {
		switch {
		case ids != nil && !ids[d.ID],
			kw != "" && !strings.HasPrefix(d.ID, kw) && !strings.HasPrefix(d.Title, kw),
			online != nil && b.Online(d.ID) != *online:
			continue
		}
		match = append(match, d)
	}
	devs := []map[string]any{}
	for _, d := range page(match, pg, per) {
		devs = append(devs, b.deviceJSON(d))
	}
	return map[string]any{"total_count": len(match), "page": pg, "per_page": per, "devices": devs}, nil
}

// pointValue is a stored value as the API shows it: a binary value is its
// index for GET /bindata/{index}.
func pointValue(deviceID, streamID string, p storedPoint) any {
	if _, ok := p.Value.([]byte); ok {
		return binIndex(deviceID, p.Seq, streamID)
	}
	return p.Value
}

// binIndex names a binary value as OneNET does, {device}_{number}_{stream};
// the number is the point's arrival number on the device.
func binIndex(deviceID string, seq uint64, streamID string) string {
	return deviceID + "_" + strconv.FormatUint(seq, 10) + "_" + streamID
}

// getDatastreams is GET /devices/{id}/datastreams[?datastream_ids=a,b].
func (b *Broker) getDatastreams(r *http.Request, p apiKey) (any, error) {
	d, err := b.deviceOf(p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	var want map[string]bool
	if s := r.URL.Query().Get("datastream_ids"); s != "" {
		want = map[string]bool{}
		for _, id := range strings.Split(s, ",") {
			want[id] = true
		}
	}
	out := []map[string]any{}
	for _, st := range b.streamInfos(d.ID) {
		if want != nil && !want[st.ID] {
			continue
		}
		out = append(out, map[string]any{
			"id": st.ID, "create_time": cstTime(st.Created), "update_at": cstTime(st.Last.At),
			"current_value": pointValue(d.ID, st.ID, st.Last),
		})
	}
	return out, nil
}

// postDatapoints is POST /devices/{id}/datapoints with the type 1 JSON
// body; "at" is 2006-01-02T15:04:05 (China Standard Time), or absent.
func (b *Broker) postDatapoints(r *http.Request, p apiKey) (any, error) {
	d, err := b.deviceOf(p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	if typ := r.URL.Query().Get("type"); typ != "" && typ != "1" {
		return nil, fail(ErrnoInvalid, "invalid parameter type: %q (1, the full JSON, is supported)", typ)
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, fail(ErrnoNoBody, "entity data required")
	}
	var doc type1Doc
	if err := decodeJSON(body, &doc); err != nil {
		return nil, fail(ErrnoBadJSON, "invalid JSON")
	}
	if len(doc.Datastreams) == 0 {
		return nil, fail(ErrnoRequired, "parameter required: datastreams")
	}
	var recs []DPRecord
	for _, ds := range doc.Datastreams {
		if ds.ID == "" || len(ds.ID) > maxDPStreamID {
			return nil, fail(ErrnoInvalid, "invalid parameter id: %q (1..%d bytes)", shorten([]byte(ds.ID), 32), maxDPStreamID)
		}
		if len(ds.Datapoints) == 0 {
			return nil, fail(ErrnoRequired, "parameter required: datapoints of %s", ds.ID)
		}
		for _, dp := range ds.Datapoints {
			if dp.Value == nil {
				return nil, fail(ErrnoRequired, "parameter required: value of %s", ds.ID)
			}
			rec := DPRecord{Stream: ds.ID, Value: jsonValue(dp.Value)}
			if dp.At != "" {
				t, err := apiTime("at", dp.At)
				if err != nil {
					return nil, err
				}
				rec.At = t
			}
			recs = append(recs, rec)
		}
	}
	err = b.storeRecords(nil, d.ID, p.ID, recs)
	switch {
	case errors.Is(err, errTooManyStreams):
		return nil, fail(ErrnoQueueFull, "system limit: %v", err)
	case err != nil:
		return nil, fail(ErrnoInternal, "internal server error")
	}
	return nil, nil
}

// getBindata is GET /bindata/{index}: the raw bytes of a binary value.
func (b *Broker) getBindata(w http.ResponseWriter, r *http.Request) {
	p, err := b.authKey(r)
	var v []byte
	if err == nil {
		v, err = b.bindata(p, r.PathValue("index"))
	}
	if err != nil {
		ae := err.(apiError)
		writeEnvelope(w, envelope{Errno: ae.errno, Error: ae.msg})
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(v)
}

func (b *Broker) bindata(p apiKey, index string) ([]byte, error) {
	notFound := fail(ErrnoNotFound, "not found: bindata %s", index)
	dev, rest, ok := strings.Cut(index, "_")
	if !ok {
		return nil, notFound
	}
	num, streamID, ok := strings.Cut(rest, "_")
	seq, err := strconv.ParseUint(num, 10, 64)
	if !ok || err != nil {
		return nil, notFound
	}
	d, err := b.deviceOf(p, dev)
	if err != nil {
		return nil, err
	}
	v, ok := b.binaryPoint(d.ID, streamID, seq)
	if !ok {
		return nil, notFound
	}
	return v, nil
}

// getDatapoints is GET /devices/{id}/datapoints. With none of start, end,
// duration, limit and cursor: the newest point of each datastream.
// Otherwise the points in the window (start/end, or duration before end
// or now, or after start), sorted ASC (oldest first, the default) or DESC,
// at most limit (1..6000, default 100) in all; a cursor comes back when
// more remain, and continues the same query.
func (b *Broker) getDatapoints(r *http.Request, p apiKey) (any, error) {
	d, err := b.deviceOf(p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	var start, end time.Time
	for _, f := range []struct {
		name string
		t    *time.Time
	}{{"start", &start}, {"end", &end}} {
		if s := q.Get(f.name); s != "" {
			t, err := apiTime(f.name, s)
			if err != nil {
				return nil, err
			}
			*f.t = t
		}
	}
	limit, err := intParam(r, "limit", 100, 1, 6000)
	if err != nil {
		return nil, err
	}
	if s := q.Get("duration"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fail(ErrnoInvalid, "invalid parameter duration: %q (seconds, at least 1)", s)
		}
		dur := time.Duration(n) * time.Second
		switch {
		case !start.IsZero() && end.IsZero():
			end = start.Add(dur)
		case start.IsZero():
			if end.IsZero() {
				end = time.Now()
			}
			start = end.Add(-dur)
		}
	}
	desc := false
	switch s := q.Get("sort"); strings.ToUpper(s) {
	case "", "ASC":
	case "DESC":
		desc = true
	default:
		return nil, fail(ErrnoInvalid, "invalid parameter sort: %q (ASC or DESC)", s)
	}
	offset := 0
	if s := q.Get("cursor"); s != "" {
		n, dev, ok := strings.Cut(s, "_")
		off, err := strconv.Atoi(n)
		if !ok || err != nil || off < 0 || dev != d.ID {
			return nil, fail(ErrnoInvalid, "invalid parameter cursor: %q", s)
		}
		offset = off
	}
	var want map[string]bool
	if s := q.Get("datastream_id"); s != "" {
		want = map[string]bool{}
		for _, id := range strings.Split(s, ",") {
			want[id] = true
		}
	}
	newestOnly := true
	for _, k := range []string{"start", "end", "duration", "limit", "cursor"} {
		if q.Has(k) {
			newestOnly = false
		}
	}

	type pt struct {
		stream string
		storedPoint
	}
	var all []pt
	for name, pts := range b.streamPoints(d.ID, want) {
		if newestOnly {
			all = append(all, pt{name, pts[len(pts)-1]})
			continue
		}
		for _, sp := range pts {
			if !start.IsZero() && sp.At.Before(start) || !end.IsZero() && sp.At.After(end) {
				continue
			}
			all = append(all, pt{name, sp})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		a, c := all[i], all[j]
		if !a.At.Equal(c.At) {
			return a.At.Before(c.At) != desc
		}
		if a.Seq != c.Seq {
			return a.Seq < c.Seq != desc
		}
		return a.stream < c.stream
	})
	out := map[string]any{}
	if !newestOnly {
		if offset > len(all) {
			offset = len(all)
		}
		if next := offset + limit; next < len(all) {
			out["cursor"] = fmt.Sprintf("%d_%s", next, d.ID)
			all = all[:next]
		}
		all = all[offset:]
	}
	type pointJSON struct {
		At    string `json:"at"`
		Value any    `json:"value"`
	}
	type dsJSON struct {
		ID         string      `json:"id"`
		Datapoints []pointJSON `json:"datapoints"`
	}
	var streams []*dsJSON
	byID := map[string]*dsJSON{}
	for _, sp := range all {
		ds := byID[sp.stream]
		if ds == nil {
			ds = &dsJSON{ID: sp.stream}
			byID[sp.stream] = ds
			streams = append(streams, ds)
		}
		ds.Datapoints = append(ds.Datapoints, pointJSON{At: sp.At.In(cst).Format(apiTimeLayout), Value: pointValue(d.ID, sp.stream, sp.storedPoint)})
	}
	sort.SliceStable(streams, func(i, j int) bool { return streams[i].ID < streams[j].ID })
	if streams == nil {
		streams = []*dsJSON{}
	}
	out["count"] = len(all)
	out["datastreams"] = streams
	return out, nil
}

// getCmdSub serves GET /cmds/history/{device_id} and GET /cmds/{uuid}/resp
// (one pattern: Go's ServeMux refuses the two as overlapping).
func (b *Broker) getCmdSub(w http.ResponseWriter, r *http.Request) {
	first, second := r.PathValue("a"), r.PathValue("b")
	switch {
	case first == "history":
		b.api(func(r *http.Request, p apiKey) (any, error) { return b.cmdHistory(r, p, second) })(w, r)
	case second == "resp":
		b.getCmdResp(w, r, first)
	default:
		writeEnvelope(w, envelope{Errno: ErrnoNotFound, Error: "not found: " + r.Method + " " + r.URL.Path})
	}
}

// cmdHistory is GET /cmds/history/{device_id}?start=..[&end=..][&page=
// &per_page=]: the device's commands created in the window, oldest first.
func (b *Broker) cmdHistory(r *http.Request, p apiKey, deviceID string) (any, error) {
	d, err := b.deviceOf(p, deviceID)
	if err != nil {
		return nil, err
	}
	q := r.URL.Query()
	if q.Get("start") == "" {
		return nil, fail(ErrnoRequired, "parameter required: start")
	}
	start, err := apiTime("start", q.Get("start"))
	if err != nil {
		return nil, err
	}
	end := time.Now()
	if s := q.Get("end"); s != "" {
		if end, err = apiTime("end", s); err != nil {
			return nil, err
		}
	}
	pg, err := intParam(r, "page", 1, 1, 1<<20)
	if err != nil {
		return nil, err
	}
	per, err := intParam(r, "per_page", 30, 1, 100)
	if err != nil {
		return nil, err
	}
	cmds := b.cmds.ofDevice(d.ID, start, end)
	items := []map[string]any{}
	for _, c := range page(cmds, pg, per) {
		item := map[string]any{
			"cmd_uuid": c.UUID, "device_id": c.DeviceID, "status": c.Status, "qos": c.QoS,
			"create_time": cstTime(c.Created), "body": hex.EncodeToString(c.Payload),
		}
		if !c.Expires.IsZero() {
			item["expire_time"] = cstTime(c.Expires)
		}
		if !c.Sent.IsZero() {
			item["send_time"] = cstTime(c.Sent)
		}
		if c.Status == CmdReplied {
			item["confirm_time"] = cstTime(c.Replied)
			item["confirm_body"] = hex.EncodeToString(c.Response)
		}
		items = append(items, item)
	}
	return map[string]any{"page": pg, "per_page": per, "total_count": len(cmds), "items": items}, nil
}

// getTopics is GET /mqtt/topic: the product's topics.
func (b *Broker) getTopics(r *http.Request, p apiKey) (any, error) {
	if err := masterOnly(p); err != nil {
		return nil, err
	}
	return b.reg.productTopics(p.ID), nil
}

// postTopic is POST /mqtt/topic with {"name":"topic"}: creates a topic of
// the product.
func (b *Broker) postTopic(r *http.Request, p apiKey) (any, error) {
	if err := masterOnly(p); err != nil {
		return nil, err
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, fail(ErrnoNoBody, "entity data required")
	}
	var doc struct {
		Name *string `json:"name"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fail(ErrnoBadJSON, "invalid JSON")
	}
	if doc.Name == nil || *doc.Name == "" {
		return nil, fail(ErrnoRequired, "parameter required: name")
	}
	if !validTopic(*doc.Name) {
		return nil, fail(ErrnoInvalid, "invalid parameter name: %q (letters, digits, '/', '_' and '-' only)", *doc.Name)
	}
	if err := b.reg.useTopic(p.ID, *doc.Name); err != nil {
		return nil, fail(ErrnoQueueFull, "%v", err)
	}
	return nil, nil
}

// getDeviceTopics is GET /mqtt/device_topic/{id}: the device's
// subscriptions (a persistent session keeps them while it is offline).
func (b *Broker) getDeviceTopics(r *http.Request, p apiKey) (any, error) {
	d, err := b.deviceOf(p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	out := []string{}
	if cl, ok := b.srv.Clients.Get(d.ID); ok && !isStudio(cl) {
		prefix := "@" + p.ID + "/"
		for f := range cl.State.Subscriptions.GetAll() {
			if strings.HasPrefix(f, prefix) {
				out = append(out, f[len(prefix):])
			}
		}
	}
	sort.Strings(out)
	return out, nil
}

// getTopicDevices is GET /mqtt/topic_device?topic=T[&page=&per_page=]:
// the devices subscribed to a topic of the product (ids as numbers, as
// OneNET's are; a non-numeric test id stays text).
func (b *Broker) getTopicDevices(r *http.Request, p apiKey) (any, error) {
	if err := masterOnly(p); err != nil {
		return nil, err
	}
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		return nil, fail(ErrnoRequired, "parameter required: topic")
	}
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	pg, err := intParam(r, "page", 1, 1, 1<<20)
	if err != nil {
		return nil, err
	}
	per, err := intParam(r, "per_page", 30, 1, 1000)
	if err != nil {
		return nil, err
	}
	var ids []string
	for id := range b.srv.Topics.Subscribers(productTopic(p.ID, topic)).Subscriptions {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	devs := []any{}
	for _, id := range page(ids, pg, per) {
		if _, err := strconv.ParseUint(id, 10, 64); err == nil {
			devs = append(devs, json.Number(id))
		} else {
			devs = append(devs, id)
		}
	}
	return map[string]any{"total_count": len(ids), "page": pg, "per_page": per, "devices": devs}, nil
}

// apiTime reads parameter name, a time in the API's form (China Standard
// Time), or says what it wants.
func apiTime(name, s string) (time.Time, error) {
	t, err := time.ParseInLocation(apiTimeParseForm, s, cst)
	if err != nil {
		return t, fail(ErrnoInvalid, "invalid parameter %s: %q (want 2006-01-02T15:04:05)", name, shorten([]byte(s), 40))
	}
	return t, nil
}

// checkTopic refuses a topic name OneNET would not take.
func checkTopic(topic string) error {
	if !validTopic(topic) {
		return fail(ErrnoInvalid, "invalid parameter topic: %q (letters, digits, '/', '_' and '-' only)", topic)
	}
	return nil
}
