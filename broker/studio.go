package broker

// The current OneNET platform (OneNET Studio / MQTTS suite; README.md, "What
// OneNET does" and "Studio mode") on its own listener: token login,
// $sys/{pid}/{name}/... topics.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

const (
	studioMinKeepalive = 10
	studioMaxKeepalive = 1800
	studioMaxPayload   = 256 * 1024
)

var studioTopic = regexp.MustCompile(`^[a-zA-Z0-9/_-]+$`)

func isStudio(cl *mqtt.Client) bool { return strings.HasPrefix(cl.Net.Listener, kindStudio+"-") }

// sysPrefix is the device's own system topic root.
func sysPrefix(pid, name string) string { return "$sys/" + pid + "/" + name + "/" }

// Inside Mochi, $sys topics live under "@$sys/": Mochi drops client
// PUBLISHes to any topic starting "$SYS" (case-insensitive) before the hooks
// see them. OnPacketEncode turns them back.
func internalSys(topic string) string { return "@" + topic }

// studioConnect checks the CONNECT rules of the studio listener that Mochi
// would otherwise answer itself (called from OnPacketRead).
func studioConnectCheck(pk packets.Packet) (byte, string) {
	c := pk.Connect
	switch {
	case pk.ProtocolVersion != 4 || string(c.ProtocolName) != "MQTT":
		return CodeBadProtocol, fmt.Sprintf("protocol %q level %d, want MQTT level 4", c.ProtocolName, pk.ProtocolVersion)
	case !c.UsernameFlag || !c.PasswordFlag:
		return NoConnack, "user name and password flags must both be set"
	case c.WillFlag || c.WillQos != 0 || c.WillRetain:
		return NoConnack, "studio: no will"
	case !c.Clean:
		return NoConnack, "studio: clean session must be 1"
	case c.Keepalive < studioMinKeepalive || c.Keepalive > studioMaxKeepalive:
		return NoConnack, fmt.Sprintf("studio: keepalive %d s outside %d..%d", c.Keepalive, studioMinKeepalive, studioMaxKeepalive)
	case pk.ReservedBit != 0:
		return NoConnack, "reserved flag bit set"
	case c.ClientIdentifier == "":
		return CodeBadClientID, "empty client id"
	case len(c.Password) == 0:
		return CodeNotAuthorized, "empty token"
	}
	return CodeAccepted, ""
}

// checkStudioLogin: unknown product 4, unknown device or one of another
// product 2, bad or expired token 5, disabled device 5.
func (b *Broker) checkStudioLogin(name, pid, token string) (byte, string) {
	if _, ok := b.reg.Product(pid); !ok {
		return CodeBadCredentials, "unknown product " + pid
	}
	_, devPID, ok := b.reg.Device(name)
	if !ok {
		return CodeBadClientID, "unknown device " + name
	}
	if devPID != pid {
		return CodeBadClientID, fmt.Sprintf("device %s is not in product %s", name, pid)
	}
	if err := b.reg.verifyToken(token, pid, name, time.Now()); err != nil {
		return CodeNotAuthorized, err.Error()
	}
	if d, _, _ := b.reg.Device(name); d.Disabled {
		return CodeNotAuthorized, "device disabled"
	}
	return CodeAccepted, ""
}

// studioPublishRead vets a studio device's PUBLISH before Mochi does: an
// illegal topic, QoS 2 or an oversized payload closes the connection, as
// OneNET does. Own $sys topics are moved to the internal "@$sys/" space.
func (b *Broker) studioPublishRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	pid := b.productOf(cl)
	sys := sysPrefix(pid, cl.ID)
	reason := ""
	switch {
	case pk.FixedHeader.Qos > 1:
		reason = "studio: QoS 2 is not supported"
	case len(pk.Payload) > studioMaxPayload:
		reason = fmt.Sprintf("studio: payload of %d bytes over %d", len(pk.Payload), studioMaxPayload)
	case strings.HasPrefix(pk.TopicName, "$"):
		rest, own := strings.CutPrefix(pk.TopicName, sys)
		id, isResp := strings.CutPrefix(rest, "cmd/response/")
		if own && (rest == "dp/post/json" || isResp && id != "" && studioTopic.MatchString(id) && !strings.Contains(id, "/") || thingUp(rest)) {
			pk.TopicName = internalSys(pk.TopicName)
			return pk, nil
		}
		reason = "studio: publishing to illegal topic " + pk.TopicName
	case !studioTopic.MatchString(pk.TopicName):
		reason = "studio: publishing to illegal topic " + pk.TopicName
	default:
		return pk, nil
	}
	if c := b.connOf(cl); c != nil {
		c.setReason(reason)
	}
	return pk, fmt.Errorf("%s: %w", reason, packets.ErrRejectPacket)
}

// studioFilter maps a studio SUBSCRIBE filter to its internal form, or ""
// when refused. Wildcards are allowed under the device's own $sys root.
func studioFilter(pid, name, f string) string {
	if rest, ok := strings.CutPrefix(f, sysPrefix(pid, name)); ok {
		if rest != "" && validWildcardFilter(rest) {
			return internalSys(f)
		}
		return ""
	}
	if studioTopic.MatchString(f) {
		return productTopic(pid, f)
	}
	return ""
}

func validWildcardFilter(f string) bool {
	levels := strings.Split(f, "/")
	for i, l := range levels {
		switch {
		case l == "#":
			if i != len(levels)-1 {
				return false
			}
		case l == "+":
		case l == "" || !studioTopic.MatchString(l):
			return false
		}
	}
	return true
}

// studioPublish handles a studio device's message on its own $sys topics.
func (b *Broker) studioPublish(c *conn, cl *mqtt.Client, pid string, pk packets.Packet) {
	topic := pk.TopicName[1:] // drop the internal '@'
	rest := strings.TrimPrefix(topic, sysPrefix(pid, cl.ID))
	if rest == "dp/post/json" {
		b.studioDatapoints(c, cl.ID, pid, topic, pk.Payload)
		return
	}
	if strings.HasPrefix(rest, "thing/") {
		b.studioThing(c, cl.ID, pid, topic, rest, pk.Payload)
		return
	}
	id := strings.TrimPrefix(rest, "cmd/response/")
	if b.storeReply(cl.ID, pid, id, pk.Payload) {
		b.reply(topic+"/accepted", []byte(`{}`))
	} else {
		b.reply(topic+"/rejected", []byte(`{"err_code":404,"err_msg":"cmd not found"}`))
	}
}

// reply publishes a platform answer; only a subscribed device receives it.
func (b *Broker) reply(topic string, payload []byte) {
	_ = b.srv.Publish(internalSys(topic), payload, false, 0)
}

// studioDatapoints parses {"id":123,"dp":{"temp":[{"v":30,"t":1552289676}]}}
// and answers on .../accepted or .../rejected.
func (b *Broker) studioDatapoints(c *conn, deviceID, pid, topic string, payload []byte) {
	id, recs, err := ParseStudioDP(payload)
	if err == nil {
		err = b.storeRecords(c, deviceID, pid, recs)
	}
	if err != nil {
		b.emit(Event{Kind: DatapointRejected, DeviceID: deviceID, ProductID: pid, Topic: topic, Payload: payload, Reason: err.Error()})
		out, _ := json.Marshal(map[string]any{"id": id, "err_code": 98, "err_msg": "Illegal Data"})
		b.reply(topic+"/rejected", out)
		return
	}
	out, _ := json.Marshal(map[string]any{"id": id})
	b.reply(topic+"/accepted", out)
}

// ParseStudioDP parses a studio dp/post/json payload. The id is returned
// even when the rest is malformed, for the rejected answer. Times "t" are
// unix seconds, or milliseconds when 13 digits or more.
func ParseStudioDP(p []byte) (json.RawMessage, []DPRecord, error) {
	var doc struct {
		ID json.RawMessage                         `json:"id"`
		DP map[string][]map[string]json.RawMessage `json:"dp"`
	}
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		var idOnly struct {
			ID json.RawMessage `json:"id"`
		}
		_ = json.Unmarshal(p, &idOnly)
		return idOnly.ID, nil, fmt.Errorf("dp/post/json: bad JSON: %v", err)
	}
	if len(doc.ID) == 0 {
		return nil, nil, fmt.Errorf("dp/post/json: id required")
	}
	var out []DPRecord
	for stream, pts := range doc.DP {
		if stream == "" || len(stream) > maxDPStreamID {
			return doc.ID, nil, fmt.Errorf("dp/post/json: datastream id %q", shorten([]byte(stream), 32))
		}
		for _, pt := range pts {
			raw, ok := pt["v"]
			if !ok || string(raw) == "null" {
				return doc.ID, nil, fmt.Errorf("dp/post/json: %s: point without v", stream)
			}
			var v any
			d := json.NewDecoder(bytes.NewReader(raw))
			d.UseNumber()
			if err := d.Decode(&v); err != nil {
				return doc.ID, nil, fmt.Errorf("dp/post/json: %s: %v", stream, err)
			}
			r := DPRecord{Stream: stream, Value: jsonValue(v)}
			if traw, ok := pt["t"]; ok {
				var t json.Number
				if err := json.Unmarshal(traw, &t); err != nil {
					return doc.ID, nil, fmt.Errorf("dp/post/json: %s: t must be a unix time", stream)
				}
				n, err := t.Int64()
				if err != nil || n <= 0 {
					return doc.ID, nil, fmt.Errorf("dp/post/json: %s: t %s must be a positive integer", stream, t)
				}
				if n >= 1e12 {
					r.At = time.UnixMilli(n)
				} else {
					r.At = time.Unix(n, 0)
				}
			}
			out = append(out, r)
		}
	}
	if len(out) == 0 {
		return doc.ID, nil, fmt.Errorf("dp/post/json: no data points")
	}
	sortRecords(out)
	return doc.ID, out, nil
}
