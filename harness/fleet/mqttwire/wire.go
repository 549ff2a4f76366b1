// Package mqttwire is the small MQTT 3.1.1 codec of the simulated fleet and
// the bench's controller: just the packets a OneNET device and a command
// sender need, encoded into caller-owned buffers so that ten thousand
// connections cost no per-message allocations.
package mqttwire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Packet types (the high nibble of the fixed header).
const (
	CONNECT     = 1
	CONNACK     = 2
	PUBLISH     = 3
	PUBACK      = 4
	SUBSCRIBE   = 8
	SUBACK      = 9
	UNSUBSCRIBE = 10
	UNSUBACK    = 11
	PINGREQ     = 12
	PINGRESP    = 13
	DISCONNECT  = 14
)

// MaxRemaining is the largest remaining length MQTT can express.
const MaxRemaining = 268435455

// Fixed two-byte packets.
var (
	PingReq    = []byte{PINGREQ << 4, 0}
	Disconnect = []byte{DISCONNECT << 4, 0}
)

// ErrMalformed is returned for a packet that breaks the MQTT framing rules.
var ErrMalformed = errors.New("mqttwire: malformed packet")

func appendLength(dst []byte, n int) []byte {
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		dst = append(dst, b)
		if n == 0 {
			return dst
		}
	}
}

func appendString(dst []byte, s string) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// AppendConnect appends a CONNECT (protocol level 4) with user name and
// password, no will, and the clean-session flag as given.
func AppendConnect(dst []byte, clientID, user, password string, keepalive uint16, clean bool) []byte {
	flags := byte(0xC0) // user name + password
	if clean {
		flags |= 0x02
	}
	rem := 10 + 2 + len(clientID) + 2 + len(user) + 2 + len(password)
	dst = append(dst, CONNECT<<4)
	dst = appendLength(dst, rem)
	dst = appendString(dst, "MQTT")
	dst = append(dst, 4, flags)
	dst = binary.BigEndian.AppendUint16(dst, keepalive)
	dst = appendString(dst, clientID)
	dst = appendString(dst, user)
	return appendString(dst, password)
}

// AppendSubscribe appends a SUBSCRIBE for one filter.
func AppendSubscribe(dst []byte, packetID uint16, filter string, qos byte) []byte {
	dst = append(dst, SUBSCRIBE<<4|0x02)
	dst = appendLength(dst, 2+2+len(filter)+1)
	dst = binary.BigEndian.AppendUint16(dst, packetID)
	dst = appendString(dst, filter)
	return append(dst, qos)
}

// AppendPublish appends a QoS 0 PUBLISH of payload to topic.
func AppendPublish(dst []byte, topic string, payload []byte) []byte {
	dst = append(dst, PUBLISH<<4)
	dst = appendLength(dst, 2+len(topic)+len(payload))
	dst = appendString(dst, topic)
	return append(dst, payload...)
}

// AppendPublishParts appends a QoS 0 PUBLISH whose topic is prefix+suffix,
// so a reply topic can be built from a request topic without a string.
func AppendPublishParts(dst []byte, prefix string, suffix, payload []byte) []byte {
	tl := len(prefix) + len(suffix)
	dst = append(dst, PUBLISH<<4)
	dst = appendLength(dst, 2+tl+len(payload))
	dst = binary.BigEndian.AppendUint16(dst, uint16(tl))
	dst = append(dst, prefix...)
	dst = append(dst, suffix...)
	return append(dst, payload...)
}

// AppendPuback appends a PUBACK for packetID.
func AppendPuback(dst []byte, packetID uint16) []byte {
	return append(dst, PUBACK<<4, 2, byte(packetID>>8), byte(packetID))
}

// Next splits the first whole packet off buf. It returns the packet type,
// the fixed header's flags, the body (aliasing buf) and the number of bytes
// the packet occupies; n == 0 means buf holds no whole packet yet.
func Next(buf []byte) (typ, flags byte, body []byte, n int, err error) {
	if len(buf) < 2 {
		return 0, 0, nil, 0, nil
	}
	rem, mult, i := 0, 1, 1
	for {
		if i >= len(buf) {
			return 0, 0, nil, 0, nil
		}
		if i > 4 {
			return 0, 0, nil, 0, ErrMalformed
		}
		b := buf[i]
		rem += int(b&0x7F) * mult
		mult *= 128
		i++
		if b&0x80 == 0 {
			break
		}
	}
	if len(buf) < i+rem {
		return 0, 0, nil, 0, nil
	}
	return buf[0] >> 4, buf[0] & 0x0F, buf[i : i+rem], i + rem, nil
}

// NeedBytes reports how many bytes the packet starting buf occupies, or 0
// when the header itself is not complete yet.
func NeedBytes(buf []byte) int {
	rem, mult := 0, 1
	for i := 1; i < len(buf) && i <= 4; i++ {
		rem += int(buf[i]&0x7F) * mult
		mult *= 128
		if buf[i]&0x80 == 0 {
			return i + 1 + rem
		}
	}
	return 0
}

// ParsePublish splits a PUBLISH body into topic, packet id (0 for QoS 0)
// and payload, all aliasing body.
func ParsePublish(flags byte, body []byte) (topic []byte, packetID uint16, payload []byte, err error) {
	if len(body) < 2 {
		return nil, 0, nil, ErrMalformed
	}
	tl := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+tl {
		return nil, 0, nil, ErrMalformed
	}
	topic, rest := body[2:2+tl], body[2+tl:]
	if qos := (flags >> 1) & 3; qos > 0 {
		if len(rest) < 2 {
			return nil, 0, nil, ErrMalformed
		}
		packetID, rest = binary.BigEndian.Uint16(rest), rest[2:]
	}
	return topic, packetID, rest, nil
}

// ConnackError is a refused login: the CONNACK return code.
type ConnackError struct{ Code byte }

func (e ConnackError) Error() string {
	return fmt.Sprintf("connection refused: CONNACK return code %d (%s)", e.Code, connackText(e.Code))
}

func connackText(c byte) string {
	switch c {
	case 1:
		return "unacceptable protocol version"
	case 2:
		return "identifier rejected"
	case 3:
		return "server unavailable"
	case 4:
		return "bad user name or password"
	case 5:
		return "not authorized"
	}
	return "unknown"
}

// CheckConnack returns nil for an accepted CONNACK body, a ConnackError for
// a refused one.
func CheckConnack(body []byte) error {
	if len(body) != 2 {
		return ErrMalformed
	}
	if body[1] != 0 {
		return ConnackError{Code: body[1]}
	}
	return nil
}
