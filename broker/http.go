package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// OneNET legacy API errno values.
const (
	ErrnoOK         = 0
	ErrnoInternal   = 1 // ours: the durable store failed (the command is not kept)
	ErrnoNoAPIKey   = 2
	ErrnoAuthFailed = 3
	ErrnoBadJSON    = 4 // "invalid JSON"
	ErrnoTooLarge   = 5 // "request entity too large"
	ErrnoInvalid    = 6
	ErrnoRequired   = 7
	ErrnoNotFound   = 8
	ErrnoNoBody     = 9 // "entity data required"
	ErrnoNotOnline  = 10
	// ErrnoQueueFull is OneNET's 13 "system limit": a command to be kept
	// would pass a bound of Limits; nothing is kept.
	ErrnoQueueFull   = 13
	apiTimeParseForm = "2006-01-02T15:04:05"
)

type envelope struct {
	Errno int    `json:"errno"`
	Error string `json:"error"`
	Data  any    `json:"data,omitempty"`
}

// apiError is an errno with its message.
type apiError struct {
	errno int
	msg   string
}

func (e apiError) Error() string { return e.msg }

func fail(errno int, format string, a ...any) error {
	return apiError{errno, fmt.Sprintf(format, a...)}
}

func (b *Broker) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cmds", b.api(b.postCmd))
	mux.HandleFunc("GET /cmds/{uuid}", b.api(b.getCmd))
	mux.HandleFunc("GET /cmds/{a}/{b}", b.getCmdSub) // history/{device_id}, {uuid}/resp
	mux.HandleFunc("GET /devices/status", b.api(b.getStatus))
	mux.HandleFunc("GET /devices/{id}", b.api(b.getDevice))
	mux.HandleFunc("GET /devices/{id}/datapoints", b.api(b.getDatapoints))
	mux.HandleFunc("POST /mqtt", b.api(b.postMQTT))
	b.registerLegacyAPI(mux) // api_legacy.go
	b.registerStudioAPI(mux) // studio_api.go
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeEnvelope(w, envelope{Errno: ErrnoNotFound, Error: "not found: " + r.Method + " " + r.URL.Path})
	})
	// ServeMux would answer a path like //cmds or /a/../cmds with a
	// redirect; OneNET's API answers with an envelope.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !cleanPath(r.URL.Path) {
			writeEnvelope(w, envelope{Errno: ErrnoNotFound, Error: "not found: " + r.Method + " " + r.URL.Path})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func cleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if c != "/" && strings.HasSuffix(p, "/") {
		c += "/"
	}
	return c == p
}

// OneNET answers HTTP 200 with the outcome in errno; so do we.
func writeEnvelope(w http.ResponseWriter, e envelope) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(e)
}

// api wraps a handler: api-key check, envelope, errno.
func (b *Broker) api(h func(r *http.Request, p apiKey) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := b.authKey(r)
		var data any
		if err == nil {
			data, err = h(r, p)
		}
		var ae apiError
		switch {
		case err == nil:
			writeEnvelope(w, envelope{Errno: ErrnoOK, Error: "succ", Data: data})
		case errors.As(err, &ae):
			writeEnvelope(w, envelope{Errno: ae.errno, Error: ae.msg})
		default:
			writeEnvelope(w, envelope{Errno: ErrnoInvalid, Error: err.Error()})
		}
	}
}

// authKey: the product's master key, or a device-level APIKey that
// reaches its device only.
func (b *Broker) authKey(r *http.Request) (apiKey, error) {
	key := r.Header.Get("api-key")
	if key == "" {
		return apiKey{}, fail(ErrnoNoAPIKey, "api-key required")
	}
	p, ok := b.reg.keyScope(key)
	if !ok {
		return apiKey{}, fail(ErrnoAuthFailed, "auth failed")
	}
	return p, nil
}

// masterOnly: product-wide operations need the product's master key.
func masterOnly(p apiKey) error {
	if p.DeviceID != "" {
		return fail(ErrnoAuthFailed, "auth failed")
	}
	return nil
}

// deviceOf finds a device of the key's product; another product's device,
// or another device than a device key's, is "auth failed", as OneNET
// answers a key without access.
func (b *Broker) deviceOf(p apiKey, id string) (Device, error) {
	if id == "" {
		return Device{}, fail(ErrnoRequired, "device_id required")
	}
	d, pid, ok := b.reg.Device(id)
	if !ok {
		return Device{}, fail(ErrnoNotFound, "device not found: %s", id)
	}
	if pid != p.ID || !p.reaches(d.ID) {
		return Device{}, fail(ErrnoAuthFailed, "auth failed")
	}
	return d, nil
}

func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload))
	if err != nil {
		return nil, fail(ErrnoInvalid, "reading body: %v", err)
	}
	if len(body) >= maxPayload {
		return nil, fail(ErrnoTooLarge, "request entity too large")
	}
	return body, nil
}

func (b *Broker) postCmd(r *http.Request, p apiKey) (any, error) {
	q := r.URL.Query()
	d, err := b.deviceOf(p, q.Get("device_id"))
	if err != nil {
		return nil, err
	}
	opts := CommandOptions{}
	if s := q.Get("qos"); s != "" {
		if s != "0" && s != "1" {
			return nil, fail(ErrnoInvalid, "invalid parameter qos: %q (0 or 1)", s)
		}
		opts.QoS = int(s[0] - '0')
	}
	if s := q.Get("timeout"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 2678400 {
			return nil, fail(ErrnoInvalid, "invalid parameter timeout: %q (0..2678400 seconds)", s)
		}
		opts.Timeout = time.Duration(n) * time.Second
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, fail(ErrnoNoBody, "entity data required")
	}
	id, err := b.SendCommand(d.ID, body, opts)
	switch {
	case errors.Is(err, ErrOffline):
		return nil, fail(ErrnoNotOnline, "device not online: %s", d.ID)
	case errors.Is(err, ErrQueueFull):
		return nil, fail(ErrnoQueueFull, "system limit: %v", err)
	case errors.Is(err, ErrStore):
		return nil, fail(ErrnoInternal, "internal server error: the command could not be kept")
	}
	if err != nil {
		return nil, fail(ErrnoInvalid, "%v", err)
	}
	return map[string]string{"cmd_uuid": id}, nil
}

func (b *Broker) cmdOf(p apiKey, id string) (CommandInfo, error) {
	info, ok := b.Command(id)
	if !ok {
		return info, fail(ErrnoNotFound, "cmd not found: %s", id)
	}
	if info.ProductID != p.ID || !p.reaches(info.DeviceID) {
		return info, fail(ErrnoAuthFailed, "auth failed")
	}
	return info, nil
}

func (b *Broker) getCmd(r *http.Request, p apiKey) (any, error) {
	info, err := b.cmdOf(p, r.PathValue("uuid"))
	if err != nil {
		return nil, err
	}
	return map[string]any{"status": info.Status, "desc": info.Desc}, nil
}

// getCmdResp answers the raw reply (not an envelope), like OneNET.
func (b *Broker) getCmdResp(w http.ResponseWriter, r *http.Request, uuid string) {
	p, err := b.authKey(r)
	var info CommandInfo
	if err == nil {
		info, err = b.cmdOf(p, uuid)
	}
	if err == nil && info.Status != CmdReplied {
		err = fail(ErrnoNotFound, "cmd response not found: status %d (%s)", info.Status, info.Desc)
	}
	if err != nil {
		ae := err.(apiError)
		writeEnvelope(w, envelope{Errno: ae.errno, Error: ae.msg})
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(info.Response)
}

func (b *Broker) getDevice(r *http.Request, p apiKey) (any, error) {
	d, err := b.deviceOf(p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	streams := []map[string]any{}
	for _, st := range b.streamInfos(d.ID) {
		streams = append(streams, map[string]any{"id": st.ID, "value": pointValue(d.ID, st.ID, st.Last), "update_at": cstTime(st.Last.At)})
	}
	return map[string]any{
		"id": d.ID, "title": d.Title, "protocol": "MQTT", "online": b.Online(d.ID),
		"auth_info": d.AuthInfo, "private": true, "disabled": d.Disabled,
		"create_time": d.CreateTime.In(cst).Format(dpTimeLayout), "datastreams": streams,
	}, nil
}

// getStatus: the devices of devIds (at most 1000), or without devIds
// every device the key reaches, by id.
func (b *Broker) getStatus(r *http.Request, p apiKey) (any, error) {
	var ids []string
	if s := r.URL.Query().Get("devIds"); s != "" {
		ids = strings.Split(s, ",")
		if len(ids) > 1000 {
			return nil, fail(ErrnoInvalid, "invalid parameter devIds: %d ids, at most 1000", len(ids))
		}
	} else {
		for _, d := range b.productDevices(p) {
			ids = append(ids, d.ID)
		}
	}
	devs := []map[string]any{}
	for _, id := range ids {
		d, pid, ok := b.reg.Device(strings.TrimSpace(id))
		if !ok || pid != p.ID || !p.reaches(d.ID) {
			continue // devices out of the key's reach are invisible to it
		}
		devs = append(devs, map[string]any{"id": d.ID, "title": d.Title, "online": b.Online(d.ID)})
	}
	return map[string]any{"devices": devs, "total_count": len(devs)}, nil
}

func (b *Broker) postMQTT(r *http.Request, p apiKey) (any, error) {
	if err := masterOnly(p); err != nil {
		return nil, err
	}
	topic := r.URL.Query().Get("topic")
	if topic == "" {
		return nil, fail(ErrnoRequired, "topic required")
	}
	if err := checkTopic(topic); err != nil {
		return nil, err
	}
	body, err := readBody(r)
	if err != nil {
		return nil, err
	}
	if err := b.PublishCustom(p.ID, topic, body); err != nil {
		return nil, fail(ErrnoInvalid, "%v", err)
	}
	return nil, nil
}
