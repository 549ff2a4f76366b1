package broker

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// onenetHook makes Mochi behave like OneNET's legacy MQTT service.
type onenetHook struct {
	mqtt.HookBase
	b *Broker
}

func (h *onenetHook) ID() string { return "onenet" }

func (h *onenetHook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mqtt.OnPacketRead, mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck,
		mqtt.OnSessionEstablish, mqtt.OnSessionEstablished, mqtt.OnDisconnect,
		mqtt.OnSubscribe, mqtt.OnSubscribed, mqtt.OnUnsubscribe, mqtt.OnPublish,
		mqtt.OnPacketEncode, mqtt.OnPublishDropped, mqtt.OnPacketSent,
	}, []byte{b})
}

// OnPublishDropped: Mochi drops a message to a client whose outbound queue
// is full; say so, or a command would read "sent" and be lost unseen.
func (h *onenetHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.b.unqueue(cl, len(pk.Payload))
	h.b.emit(Event{Kind: PublishDropped, DeviceID: cl.ID, ProductID: h.b.productOf(cl),
		Topic: stripInternal(pk.TopicName), Reason: "client queue full"})
}

// OnPacketSent: a message written to the client leaves its queued bytes.
func (h *onenetHook) OnPacketSent(cl *mqtt.Client, pk packets.Packet, _ []byte) {
	if pk.FixedHeader.Type == packets.Publish {
		h.b.unqueue(cl, len(pk.Payload))
	}
}

// CONNACK return codes of the legacy OneNET document.
const (
	CodeAccepted       byte = 0
	CodeBadProtocol    byte = 1
	CodeBadClientID    byte = 2
	CodeUnavailable    byte = 3
	CodeBadCredentials byte = 4
	CodeNotAuthorized  byte = 5
)

// errRefused wraps ErrRejectPacket: Mochi only honours that error from OnPacketRead.
var errRefused = fmt.Errorf("onenet: login refused: %w", packets.ErrRejectPacket)

// OnPacketRead sees the CONNECT before Mochi validates it, so the cases
// Mochi would answer with its own (MQTT 5 style) codes are answered here:
// any protocol level but 4 gets code 1, and CONNECTs OneNET drops silently
// are closed without a CONNACK.
func (h *onenetHook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && isStudio(cl) {
		return h.b.studioPublishRead(cl, pk)
	}
	if pk.FixedHeader.Type == packets.Publish && len(pk.Payload) >= maxPayload {
		reason := fmt.Sprintf("payload of %d bytes, limit is %d", len(pk.Payload), maxPayload-1)
		if c := h.b.connOf(cl); c != nil {
			c.setReason(reason)
		}
		return pk, fmt.Errorf("%s: %w", reason, packets.ErrRejectPacket)
	}
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 0 && !mqtt.IsValidFilter(pk.TopicName, true) {
		// Mochi would drop it without an acknowledgement ($SYS, a
		// wildcard): a refused QoS 1 publish closes the connection.
		reason := fmt.Sprintf("publish to %q refused", pk.TopicName)
		if c := h.b.connOf(cl); c != nil {
			c.setReason(reason)
		}
		return pk, fmt.Errorf("%s: %w", reason, packets.ErrRejectPacket)
	}
	if pk.FixedHeader.Type != packets.Connect || cl.ID != "" { // only the first CONNECT
		return pk, nil
	}
	if rc, ok := cl.Net.Conn.(*rawConn); ok {
		rc.hooked.Store(true) // from here on the hooks report how it ends
	}
	c := pk.Connect
	ev := Event{Kind: Refused, DeviceID: c.ClientIdentifier, ProductID: string(c.Username)}
	if isStudio(cl) {
		ev.Code, ev.Reason = studioConnectCheck(pk)
		if ev.Code == CodeAccepted {
			return pk, nil
		}
		goto refuse
	}
	switch {
	case pk.ProtocolVersion != 4 || string(c.ProtocolName) != "MQTT":
		ev.Code, ev.Reason = CodeBadProtocol, fmt.Sprintf("protocol %q level %d, want MQTT level 4", c.ProtocolName, pk.ProtocolVersion)
	case !c.UsernameFlag || !c.PasswordFlag:
		ev.Code, ev.Reason = NoConnack, "user name and password flags must both be set"
	case c.WillFlag || c.WillQos != 0 || c.WillRetain:
		ev.Code, ev.Reason = NoConnack, "will flag, will QoS and will retain must be 0"
	case pk.ReservedBit != 0:
		ev.Code, ev.Reason = NoConnack, "reserved flag bit set"
	case len(c.Password) == 0:
		ev.Code, ev.Reason = CodeBadCredentials, "empty password"
	case c.ClientIdentifier == "":
		ev.Code, ev.Reason = CodeBadClientID, "empty client id"
	default:
		return pk, nil
	}
refuse:
	if ev.Code != NoConnack {
		// ParseConnect has not run: the client still has Mochi's default
		// protocol version (4), so this is a 3.1.1 CONNACK.
		_ = h.b.srv.SendConnack(cl, packets.Code{Code: ev.Code}, false, nil)
	}
	h.b.emit(ev)
	return pk, errRefused
}

// OnConnect checks the credentials against the registry and sends
// OneNET's CONNACK code itself (Mochi would send 0x05 for every failure).
func (h *onenetHook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	id, pid, pass := pk.Connect.ClientIdentifier, string(pk.Connect.Username), string(pk.Connect.Password)
	check := h.b.checkLogin
	if isStudio(cl) {
		check = h.b.checkStudioLogin
	}
	code, reason := check(id, pid, pass)
	if code == CodeAccepted {
		return nil
	}
	_ = h.b.srv.SendConnack(cl, packets.Code{Code: code}, false, nil)
	h.b.emit(Event{Kind: Refused, DeviceID: id, ProductID: pid, Code: code, Reason: reason})
	return errRefused
}

func (b *Broker) checkLogin(id, pid, pass string) (byte, string) {
	prod, ok := b.reg.Product(pid)
	if !ok {
		return CodeBadCredentials, "unknown product " + pid
	}
	dev, devPID, ok := b.reg.Device(id)
	if !ok {
		return CodeBadClientID, "unknown device " + id
	}
	if devPID != pid {
		return CodeBadClientID, fmt.Sprintf("device %s is not in product %s", id, pid)
	}
	if pass != dev.AuthInfo && pass != prod.MasterKey {
		return CodeBadCredentials, "password is neither the device's auth_info nor the product's master key"
	}
	if dev.Disabled {
		return CodeNotAuthorized, "device disabled"
	}
	return CodeAccepted, ""
}

// OnConnectAuthenticate: OnConnect has already refused every bad login.
func (h *onenetHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool { return true }

// OnSessionEstablish runs before Mochi takes over an older session with the
// same client id. The older connection is closed here, by a plain TCP close
// as OneNET does (Mochi would send a DISCONNECT, which 3.1.1 clients do not
// expect), and marked so its disconnect neither reports the device offline
// nor does anything on its behalf.
func (h *onenetHook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	h.b.sessionEstablish(cl)
}

func (h *onenetHook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	h.b.sessionEstablished(cl)
}

func (h *onenetHook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.b.disconnected(cl, err)
}

// validTopic: OneNET's topic rule, ^[a-zA-Z0-9/_-]+$ (see broker/README.md,
// "What OneNET does"); no wildcards, no '$'.
func validTopic(t string) bool {
	if t == "" || len(t) > 1024 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '/' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Topics of a product live under "@{pid}/" inside Mochi, so one product's
// messages cannot reach another's subscribers; devices never see the prefix.
func productTopic(pid, topic string) string { return "@" + pid + "/" + topic }

// refusedPrefix marks a filter OnSubscribe refused; '!' cannot start a
// device's own filter, so the ACL check can recognise it.
const refusedPrefix = "!refused/"

func stripInternal(topic string) string {
	if strings.HasPrefix(topic, "@$") {
		return topic[1:]
	}
	if strings.HasPrefix(topic, refusedPrefix) {
		return topic[len(refusedPrefix):]
	}
	if strings.HasPrefix(topic, "@") {
		if i := strings.IndexByte(topic, '/'); i > 0 {
			return topic[i+1:]
		}
	}
	return topic
}

const maxSubscriptions = 100

func (h *onenetHook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	pid := h.b.productOf(cl)
	filters := make(packets.Subscriptions, len(pk.Filters))
	studio := isStudio(cl)
	for i, f := range pk.Filters {
		switch {
		case pid == "":
			f.Filter = refusedPrefix + f.Filter
		case studio:
			if in := studioFilter(pid, cl.ID, f.Filter); in != "" {
				f.Filter = in
			} else {
				f.Filter = refusedPrefix + f.Filter
			}
		case validTopic(f.Filter) && h.b.reg.useTopic(pid, f.Filter) == nil:
			f.Filter = productTopic(pid, f.Filter)
		default:
			f.Filter = refusedPrefix + f.Filter
		}
		f.Qos = 0 // server to device is QoS 0 only
		filters[i] = f
	}
	pk.Filters = filters
	return pk
}

func (h *onenetHook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, codes []byte) {
	pid := h.b.productOf(cl)
	for i, f := range pk.Filters {
		code := byte(0x80)
		if i < len(codes) {
			code = codes[i]
		}
		h.b.emit(Event{Kind: Subscribed, DeviceID: cl.ID, ProductID: pid, Topic: stripInternal(f.Filter), Code: code})
	}
}

func (h *onenetHook) OnUnsubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	pid := h.b.productOf(cl)
	filters := make(packets.Subscriptions, len(pk.Filters))
	for i, f := range pk.Filters {
		if isStudio(cl) && pid != "" {
			if in := studioFilter(pid, cl.ID, f.Filter); in != "" {
				f.Filter = in
			}
		} else if validTopic(f.Filter) && pid != "" {
			f.Filter = productTopic(pid, f.Filter)
		}
		filters[i] = f
	}
	pk.Filters = filters
	return pk
}

func (h *onenetHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	if isStudio(cl) {
		// studioPublishRead has already vetted and rewritten the topic.
		if write {
			return true
		}
	} else if write {
		return topic == "$dp" || isCrsp(topic) || validTopic(topic)
	}
	pid := h.b.productOf(cl)
	if pid == "" || !strings.HasPrefix(topic, "@"+pid+"/") && !strings.HasPrefix(topic, internalSys(sysPrefix(pid, cl.ID))) {
		return false
	}
	if _, exists := cl.State.Subscriptions.Get(topic); !exists && cl.State.Subscriptions.Len() >= maxSubscriptions {
		return false
	}
	return true
}

func isCrsp(topic string) bool {
	return strings.HasPrefix(topic, "$crsp/") && len(topic) > len("$crsp/")
}

// errSuccessIgnore is packets.CodeSuccessIgnore made an error once: a
// Code struct converted at each return would be an allocation per message.
var errSuccessIgnore error = packets.CodeSuccessIgnore

func (h *onenetHook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		h.b.accountFanout(pk.TopicName, len(pk.Payload))
		return pk, nil
	}
	pk.FixedHeader.Retain = false // OneNET does not implement retain
	c := h.b.connOf(cl)
	pid := h.b.productOf(cl)
	switch {
	case isStudio(cl) && strings.HasPrefix(pk.TopicName, "@$"):
		h.b.studioPublish(c, cl, pid, pk)
		return pk, errSuccessIgnore
	case isStudio(cl):
	case pk.TopicName == "$dp":
		if err := h.b.storeDatapoints(c, cl.ID, pid, pk.Payload); err != nil {
			// Not stored, so not acknowledged: the device is dropped.
			reason := "$dp refused: " + err.Error()
			if c != nil {
				c.setReason(reason)
			}
			cl.Stop(errors.New(reason))
			return pk, packets.ErrRejectPacket
		}
		return pk, errSuccessIgnore // acknowledged, never forwarded
	case isCrsp(pk.TopicName):
		h.b.storeReply(cl.ID, pid, pk.TopicName[len("$crsp/"):], pk.Payload)
		return pk, errSuccessIgnore
	}
	h.b.emit(Event{Kind: Published, DeviceID: cl.ID, ProductID: pid, Topic: pk.TopicName, Payload: pk.Payload})
	pk.TopicName = productTopic(pid, pk.TopicName)
	h.b.accountFanout(pk.TopicName, len(pk.Payload))
	return pk, nil
}

// OnPacketEncode removes the internal product prefix from outgoing
// PUBLISHes, and turns every DISCONNECT Mochi would send (a refused QoS 1
// publish, a takeover, a shutdown) into a packet that does not encode:
// nothing is written and Mochi closes the connection as it would have, a
// plain TCP close as OneNET does (MQTT 3.1.1 has no server DISCONNECT).
func (h *onenetHook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch {
	case pk.FixedHeader.Type == packets.Publish && strings.HasPrefix(pk.TopicName, "@"):
		pk.TopicName = stripInternal(pk.TopicName)
	case pk.FixedHeader.Type == packets.Disconnect:
		pk.FixedHeader.Type = packets.Reserved
	}
	return pk
}

func clone(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return append([]byte(nil), p...)
}
