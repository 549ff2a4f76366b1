package broker

// OneNET Studio's application API for the thing model
// (iot-api.heclouds.com/thingmodel/...) and the MQTT suite's synchronous
// command API (/v1/synccmds): README.md, "Studio mode".

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// More studio API codes (ours, like those in studio_http.go).
const (
	StudioDeviceError = 10406 // the device answered a service call with a code other than 200
)

// registerStudioAPI adds the studio routes to the HTTP API's mux.
func (b *Broker) registerStudioAPI(mux *http.ServeMux) {
	mux.HandleFunc("POST /datapoint/synccmds", b.postSyncCmd)
	mux.HandleFunc("POST /v1/synccmds", b.postV1SyncCmd)
	mux.HandleFunc("POST /thingmodel/set-device-property", b.studioAPI(b.setDeviceProperty))
	mux.HandleFunc("GET /thingmodel/query-device-property", b.studioAPI(b.queryDeviceProperty))
	mux.HandleFunc("POST /thingmodel/call-service", b.studioAPI(b.callService))
	mux.HandleFunc("POST /thingmodel/get-device-property", b.studioAPI(b.getDeviceProperty))
}

// thingCall is a thingmodel API request: the body of a POST, or the query
// of a GET.
type thingCall struct {
	ProductID  string          `json:"product_id"`
	DeviceName string          `json:"device_name"`
	Identifier string          `json:"identifier"`
	Params     json.RawMessage `json:"params"`
	model      *ThingModel
}

type studioErr struct {
	code int
	msg  string
	data any
}

func (e *studioErr) Error() string { return e.msg }

func studioFail(code int, msg string) error { return &studioErr{code: code, msg: msg} }

// studioAPI wraps a thingmodel handler: request decoding, authorization
// (the same 10403 for every refusal before it), the device's product, the
// envelope.
func (b *Broker) studioAPI(h func(ctx context.Context, c *thingCall) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var c thingCall
		if r.Method == http.MethodGet {
			q := r.URL.Query()
			c.ProductID, c.DeviceName = q.Get("product_id"), q.Get("device_name")
		} else {
			body, err := readBody(r)
			if err == nil {
				err = decodeJSON(body, &c)
			}
			if err != nil {
				writeStudio(w, StudioBadRequest, "invalid body: "+err.Error(), nil)
				return
			}
		}
		if c.ProductID == "" || c.DeviceName == "" {
			writeStudio(w, StudioBadRequest, "product_id and device_name required", nil)
			return
		}
		if err := b.reg.verifyAPIToken(r.Header.Get("authorization"), c.ProductID, c.DeviceName, time.Now()); err != nil {
			writeStudio(w, StudioAuthFailed, "auth failed", nil)
			return
		}
		if _, pid, ok := b.reg.Device(c.DeviceName); !ok || pid != c.ProductID {
			writeStudio(w, StudioNotFound, "device not found: "+c.DeviceName, nil)
			return
		}
		if c.model = b.thingModel(c.ProductID); c.model == nil {
			writeStudio(w, StudioBadRequest, "product "+c.ProductID+" has no thing model", nil)
			return
		}
		data, err := h(r.Context(), &c)
		var se *studioErr
		switch {
		case err == nil:
			writeStudio(w, StudioOK, "succ", data)
		case errors.As(err, &se):
			writeStudio(w, se.code, se.msg, se.data)
		case errors.Is(err, ErrOffline):
			writeStudio(w, StudioNotOnline, "device not online: "+c.DeviceName, nil)
		case errors.Is(err, errThingTimeout):
			writeStudio(w, StudioTimeout, "device response timeout", nil)
		default:
			writeStudio(w, StudioBadRequest, err.Error(), nil)
		}
	}
}

// paramsObject decodes params as an object; a model violation is 10400
// with the reason.
func (c *thingCall) paramsObject() (map[string]any, error) {
	var p map[string]any
	if len(c.Params) == 0 || decodeJSON(c.Params, &p) != nil || p == nil {
		return nil, studioFail(StudioBadRequest, "params must be an object")
	}
	return p, nil
}

func modelFail(err error) error {
	if err == nil {
		return nil
	}
	return studioFail(StudioBadRequest, "invalid params: "+err.Error())
}

// setDeviceProperty: POST /thingmodel/set-device-property
// {"product_id","device_name","params":{"led":false}}; the device gets
// thing/property/set and the answer carries its set_reply
// {"id","code","msg"}.
func (b *Broker) setDeviceProperty(ctx context.Context, c *thingCall) (any, error) {
	p, err := c.paramsObject()
	if err != nil {
		return nil, err
	}
	if err := modelFail(c.model.checkSet(p)); err != nil {
		return nil, err
	}
	r, err := b.thingRequest(ctx, c.DeviceName, c.ProductID, "thing/property/set", p)
	if err != nil {
		return nil, err
	}
	return map[string]any{"id": r.ID, "code": r.Code, "msg": r.Msg}, nil
}

// getDeviceProperty (ours; README.md "Studio mode"): POST
// /thingmodel/get-device-property {"product_id","device_name","params":["led"]};
// the device gets thing/property/get and the answer is its get_reply's
// data. Values the model allows are kept for query-device-property.
func (b *Broker) getDeviceProperty(ctx context.Context, c *thingCall) (any, error) {
	var ids []string
	if len(c.Params) == 0 || decodeJSON(c.Params, &ids) != nil {
		return nil, studioFail(StudioBadRequest, "params must be an array of identifiers")
	}
	if err := modelFail(c.model.checkGet(ids)); err != nil {
		return nil, err
	}
	r, err := b.thingRequest(ctx, c.DeviceName, c.ProductID, "thing/property/get", ids)
	if err != nil {
		return nil, err
	}
	if r.Code != ThingOK {
		return nil, &studioErr{code: StudioDeviceError, msg: "device answered code " + strconv.Itoa(r.Code) + ": " + r.Msg}
	}
	b.storeProps(c.DeviceName, c.model, r.Data)
	return rawOrEmpty(r.Data), nil
}

// callService: POST /thingmodel/call-service {"product_id","device_name",
// "identifier","params"}; the device gets thing/service/{identifier}/invoke
// and the answer is its invoke_reply's data.
func (b *Broker) callService(ctx context.Context, c *thingCall) (any, error) {
	if c.Identifier == "" {
		return nil, studioFail(StudioBadRequest, "identifier required")
	}
	p, err := c.paramsObject()
	if err != nil {
		return nil, err
	}
	if err := modelFail(c.model.checkCall(c.Identifier, p)); err != nil {
		return nil, err
	}
	r, err := b.thingRequest(ctx, c.DeviceName, c.ProductID, "thing/service/"+c.Identifier+"/invoke", p)
	if err != nil {
		return nil, err
	}
	if r.Code != ThingOK {
		return nil, &studioErr{code: StudioDeviceError, msg: "device answered code " + strconv.Itoa(r.Code) + ": " + r.Msg}
	}
	return rawOrEmpty(r.Data), nil
}

func rawOrEmpty(d json.RawMessage) json.RawMessage {
	if len(d) == 0 {
		return json.RawMessage(`{}`)
	}
	return d
}

// propertyInfo is one entry of query-device-property's list.
type propertyInfo struct {
	Identifier string `json:"identifier"`
	Name       string `json:"name"`
	DataType   string `json:"data_type"`
	AccessMode string `json:"access_mode"`
	Time       int64  `json:"time,omitempty"`
	Value      string `json:"value,omitempty"`
}

// queryDeviceProperty: GET /thingmodel/query-device-property?product_id=&device_name=
// lists every property of the model, in the model's order, with the latest
// reported value (a JSON text, as OneNET gives it) and its time.
func (b *Broker) queryDeviceProperty(_ context.Context, c *thingCall) (any, error) {
	vals := b.Properties(c.DeviceName)
	out := make([]propertyInfo, 0, len(c.model.Properties))
	for _, p := range c.model.Properties {
		e := propertyInfo{Identifier: p.Identifier, Name: p.Name, DataType: p.DataType.Type, AccessMode: p.AccessMode}
		if v, ok := vals[p.Identifier]; ok {
			e.Time, e.Value = v.Time, string(v.Value)
		}
		out = append(out, e)
	}
	return out, nil
}

// Errnos of the MQTT suite's synchronous command API (/v1/synccmds).
const (
	SyncErrnoNotFound  = 12 // device not found
	SyncErrnoNotOnline = 13 // device not online
	SyncErrnoTimeout   = 14 // cmd response timeout
	syncMaxBody        = 1024
)

// postV1SyncCmd is the MQTT suite's synchronous command API: POST
// /v1/synccmds?device_id=D&timeout=S (5..30), header authorization = a
// token of the device's product, of the device or of the account, or
// api-key = the product's master key; body = the command (under 1 KB).
// Answers {"errno":0,"error":"success","data":{"cmd_uuid","cmd_resp"}}
// once the device replies; errno 12, 13, 14 as documented.
func (b *Broker) postV1SyncCmd(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("device_id")
	if name == "" {
		writeEnvelope(w, envelope{Errno: ErrnoRequired, Error: "device_id required"})
		return
	}
	_, pid, known := b.reg.Device(name)
	tok, key := r.Header.Get("authorization"), r.Header.Get("api-key")
	authed := false
	switch {
	case tok != "":
		authed = known && b.reg.verifyAPIToken(tok, pid, name, time.Now()) == nil
	case key != "":
		p, ok := b.reg.productByKey(key)
		authed = ok && (!known || p.ID == pid)
		if ok && !known {
			writeEnvelope(w, envelope{Errno: SyncErrnoNotFound, Error: "device not found"})
			return
		}
	default:
		writeEnvelope(w, envelope{Errno: ErrnoNoAPIKey, Error: "authorization or api-key required"})
		return
	}
	if !authed {
		writeEnvelope(w, envelope{Errno: ErrnoAuthFailed, Error: "auth failed"})
		return
	}
	n, err := strconv.Atoi(q.Get("timeout"))
	if err != nil || n < 5 || n > 30 {
		writeEnvelope(w, envelope{Errno: ErrnoInvalid, Error: "invalid parameter timeout: 5..30 seconds"})
		return
	}
	body, err := readBody(r)
	switch {
	case err != nil:
		writeEnvelope(w, envelope{Errno: ErrnoInvalid, Error: err.Error()})
		return
	case len(body) == 0:
		writeEnvelope(w, envelope{Errno: ErrnoRequired, Error: "command body required"})
		return
	case len(body) >= syncMaxBody:
		writeEnvelope(w, envelope{Errno: ErrnoInvalid, Error: "command body must be under 1 KB"})
		return
	}
	mark := b.feed.Mark()
	id, err := b.SendCommand(name, body, CommandOptions{})
	switch {
	case errors.Is(err, ErrOffline):
		writeEnvelope(w, envelope{Errno: SyncErrnoNotOnline, Error: "device not online"})
		return
	case err != nil:
		writeEnvelope(w, envelope{Errno: ErrnoInvalid, Error: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(n)*time.Second)
	defer cancel()
	if !b.awaitReply(ctx, mark, id) {
		writeEnvelope(w, envelope{Errno: SyncErrnoTimeout, Error: "cmd response timeout"})
		return
	}
	info, _ := b.Command(id)
	writeEnvelope(w, envelope{Errno: ErrnoOK, Error: "success", Data: map[string]string{
		"cmd_uuid": id, "cmd_resp": base64.StdEncoding.EncodeToString(info.Response)}})
}

// awaitReply waits, within ctx, for command id's reply after mark. A reply
// whose event the feed's ring dropped under load before the waiter read it
// is still in the command's record: a reply that came is never a timeout.
func (b *Broker) awaitReply(ctx context.Context, mark Mark, id string) bool {
	if _, err := b.feed.WaitAfter(ctx, mark, ForCommand(CommandReplied, id)); err == nil {
		return true
	}
	info, ok := b.Command(id)
	return ok && info.Status == CmdReplied
}
