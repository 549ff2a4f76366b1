package broker

// OneNET Studio's thing-model topics (OneJSON, README.md "Thing model"):
// the device posts properties and events under $sys/{pid}/{name}/thing/...
// and is answered on .../reply; the platform sets and gets properties and
// invokes services, and waits for the device's *_reply with the same id.

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"
)

// thingWait is how long a property set or get, or a service call, waits
// for the device's reply (OneNET's synchronous service calls: 5 s).
// Tests shorten it.
var thingWait = 5 * time.Second

// thingID: OneJSON message ids are strings of at most 13 digits.
var thingID = regexp.MustCompile(`^[0-9]{1,13}$`)

// thingUp reports whether rest (a topic below the device's own $sys root)
// is a thing-model topic the device may publish to.
func thingUp(rest string) bool {
	switch rest {
	case "thing/property/post", "thing/event/post", "thing/property/set_reply", "thing/property/get_reply":
		return true
	}
	id, ok := strings.CutPrefix(rest, "thing/service/")
	if !ok {
		return false
	}
	id, ok = strings.CutSuffix(id, "/invoke_reply")
	return ok && id != "" && studioTopic.MatchString(id) && !strings.Contains(id, "/")
}

// thingState is the broker's thing-model state: the platform's requests
// waiting for a reply and the latest reported property values.
type thingState struct {
	mu      sync.Mutex
	seq     uint64
	pending map[string]chan thingReply          // device + "/" + id
	props   map[string]map[string]PropertyValue // device -> identifier -> latest value
}

// PropertyValue is a property's latest reported value (JSON) and its time.
type PropertyValue struct {
	Value json.RawMessage
	Time  int64 // unix milliseconds
}

// thingReply is a device's *_reply.
type thingReply struct {
	ID   string          `json:"id"`
	Code int             `json:"code"`
	Msg  string          `json:"msg,omitempty"`
	Data json.RawMessage `json:"data,omitempty"`
}

// thingStates holds each broker's thingState without a field in Broker;
// the entry goes when its broker is collected.
var thingStates sync.Map // weak.Pointer[Broker] -> *thingState

func (b *Broker) things() *thingState {
	k := weak.Make(b)
	if v, ok := thingStates.Load(k); ok {
		return v.(*thingState)
	}
	s := &thingState{pending: map[string]chan thingReply{}, props: map[string]map[string]PropertyValue{}}
	v, loaded := thingStates.LoadOrStore(k, s)
	if !loaded {
		runtime.AddCleanup(b, func(k weak.Pointer[Broker]) { thingStates.Delete(k) }, k)
	}
	return v.(*thingState)
}

func (b *Broker) thingModel(pid string) *ThingModel {
	p, _ := b.reg.Product(pid)
	return p.ThingModel
}

// studioThing handles a device's message on a thing-model topic; rest is
// the topic below its $sys root.
func (b *Broker) studioThing(c *conn, deviceID, pid, topic, rest string, payload []byte) {
	switch rest {
	case "thing/property/post", "thing/event/post":
		id, err := b.thingPost(c, deviceID, pid, rest, payload)
		out := thingReply{ID: id, Code: ThingOK, Msg: "success"}
		if err != nil {
			out.Code, out.Msg = ThingBadRequest, err.Error()
			if me, ok := err.(*modelError); ok {
				out.Code = me.Code
			}
			b.log.Warn("studio thing post refused", "device", deviceID, "topic", rest, "code", out.Code, "reason", out.Msg)
		}
		p, _ := json.Marshal(out)
		b.reply(topic+"/reply", p)
	default: // a *_reply to one of our requests
		var r thingReply
		if err := decodeJSON(payload, &r); err != nil || r.ID == "" {
			b.log.Warn("studio thing reply ignored", "device", deviceID, "topic", rest, "reason", "not a OneJSON reply")
			return
		}
		s := b.things()
		s.mu.Lock()
		ch := s.pending[deviceID+"/"+r.ID]
		delete(s.pending, deviceID+"/"+r.ID)
		s.mu.Unlock()
		if ch == nil {
			b.log.Warn("studio thing reply ignored", "device", deviceID, "topic", rest, "reason", "no request with id "+r.ID)
			return
		}
		ch <- r // buffered 1, one sender
	}
}

// thingPost checks a property or event post against the model and keeps
// the property values, also as data points of the datastream named after
// the property (OneNET keeps them as the device's data); it returns the
// message id for the reply.
func (b *Broker) thingPost(c *conn, deviceID, pid, rest string, payload []byte) (string, error) {
	var msg struct {
		ID     any            `json:"id"`
		Params map[string]any `json:"params"`
	}
	if err := decodeJSON(payload, &msg); err != nil {
		return "", badModel(ThingBadRequest, "%v", err)
	}
	id, _ := msg.ID.(string)
	if !thingID.MatchString(id) {
		return id, badModel(ThingBadRequest, "id must be a string of 1 to 13 digits")
	}
	m := b.thingModel(pid)
	if m == nil {
		return id, badModel(ThingNotFound, "product %s has no thing model", pid)
	}
	if rest == "thing/event/post" {
		return id, m.checkEvent(msg.Params)
	}
	if err := m.checkPost(msg.Params); err != nil {
		return id, err
	}
	now := time.Now().UnixMilli()
	vals := map[string]PropertyValue{}
	recs := make([]DPRecord, 0, len(msg.Params))
	for k, raw := range msg.Params {
		obj := raw.(map[string]any) // checkPost made sure
		v, _ := json.Marshal(obj["value"])
		t := now
		if n, ok := obj["time"].(json.Number); ok {
			t, _ = n.Int64()
		}
		vals[k] = PropertyValue{Value: v, Time: t}
		recs = append(recs, DPRecord{Stream: k, Value: jsonValue(obj["value"]), At: time.UnixMilli(t)})
	}
	sortRecords(recs)
	if err := b.storeRecords(c, deviceID, pid, recs); err != nil {
		return id, badModel(ThingBadRequest, "%v", err)
	}
	s := b.things()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.props[deviceID] == nil {
		s.props[deviceID] = map[string]PropertyValue{}
	}
	for k, v := range vals {
		s.props[deviceID][k] = v
	}
	return id, nil
}

// storeProps keeps values a device answered a property get with; values
// the model does not allow are left out.
func (b *Broker) storeProps(deviceID string, m *ThingModel, data json.RawMessage) {
	var vals map[string]any
	if decodeJSON(data, &vals) != nil {
		return
	}
	now := time.Now().UnixMilli()
	s := b.things()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range vals {
		p, ok := m.Property(k)
		if !ok || p.DataType.check(v) != nil {
			continue
		}
		if s.props[deviceID] == nil {
			s.props[deviceID] = map[string]PropertyValue{}
		}
		raw, _ := json.Marshal(v)
		s.props[deviceID][k] = PropertyValue{Value: raw, Time: now}
	}
}

// Properties returns the latest value the device reported for each
// property (JSON) with its time.
func (b *Broker) Properties(deviceID string) map[string]PropertyValue {
	s := b.things()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]PropertyValue{}
	for k, v := range s.props[deviceID] {
		out[k] = v
	}
	return out
}

// studioOnline reports whether the device is logged in on the studio
// listener (only there can it receive thing-model requests).
func (b *Broker) studioOnline(deviceID string) bool {
	d := b.lookupDev(deviceID)
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conn != nil && d.conn.studio && !d.conn.cl.Closed()
}

// thingRequest publishes a platform request on the device's own topic
// (rest below its $sys root) and waits for the *_reply with its id.
func (b *Broker) thingRequest(ctx context.Context, deviceID, pid, rest string, params any) (thingReply, error) {
	if !b.studioOnline(deviceID) {
		return thingReply{}, fmt.Errorf("%w: %s", ErrOffline, deviceID)
	}
	s := b.things()
	ch := make(chan thingReply, 1)
	s.mu.Lock()
	s.seq++
	id := strconv.FormatUint(s.seq%1e13, 10)
	key := deviceID + "/" + id
	s.pending[key] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, key)
		s.mu.Unlock()
	}()
	p, err := json.Marshal(map[string]any{"id": id, "version": "1.0", "params": params})
	if err != nil {
		return thingReply{}, err
	}
	b.reply(sysPrefix(pid, deviceID)+rest, p)
	t := time.NewTimer(thingWait)
	defer t.Stop()
	select {
	case r := <-ch:
		return r, nil
	case <-t.C:
		return thingReply{ID: id}, errThingTimeout
	case <-ctx.Done():
		return thingReply{ID: id}, ctx.Err()
	}
}

var errThingTimeout = fmt.Errorf("device response timeout")
