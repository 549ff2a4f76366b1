package mqttwire

import (
	"bytes"
	"strings"
	"testing"

	pahopk "github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Our encoder's packets, decoded by paho's independent codec.
func TestEncodingReadsBackWithPaho(t *testing.T) {
	cp, err := pahopk.ReadPacket(bytes.NewReader(AppendConnect(nil, "503367129", "386427", "tpy-001", 120, true)))
	require.NoError(t, err)
	c := cp.(*pahopk.ConnectPacket)
	assert.Equal(t, "MQTT", c.ProtocolName)
	assert.Equal(t, byte(4), c.ProtocolVersion)
	assert.True(t, c.CleanSession)
	assert.False(t, c.WillFlag)
	assert.True(t, c.UsernameFlag && c.PasswordFlag)
	assert.Equal(t, uint16(120), c.Keepalive)
	assert.Equal(t, "503367129", c.ClientIdentifier)
	assert.Equal(t, "386427", c.Username)
	assert.Equal(t, []byte("tpy-001"), c.Password)

	sp, err := pahopk.ReadPacket(bytes.NewReader(AppendSubscribe(nil, 7, "cmd/503367129", 0)))
	require.NoError(t, err)
	s := sp.(*pahopk.SubscribePacket)
	assert.Equal(t, uint16(7), s.MessageID)
	assert.Equal(t, []string{"cmd/503367129"}, s.Topics)
	assert.Equal(t, []byte{0}, s.Qoss)
	assert.Equal(t, byte(1), s.Qos, "SUBSCRIBE's fixed header flags must be 0010")

	// A payload long enough for a two-byte remaining length.
	long := []byte(strings.Repeat("x", 300))
	pp, err := pahopk.ReadPacket(bytes.NewReader(AppendPublishParts(nil, "$crsp/", []byte("abc-123"), long)))
	require.NoError(t, err)
	p := pp.(*pahopk.PublishPacket)
	assert.Equal(t, "$crsp/abc-123", p.TopicName)
	assert.Equal(t, byte(0), p.Qos)
	assert.Equal(t, long, p.Payload)
}

// Packets paho encodes, split by ours, including across reads.
func TestNextSplitsPahoPackets(t *testing.T) {
	pub := pahopk.NewControlPacket(pahopk.Publish).(*pahopk.PublishPacket)
	pub.TopicName, pub.Qos, pub.MessageID, pub.Payload = "$creq/u-1", 1, 42, []byte(strings.Repeat("t", 200))
	ack := pahopk.NewControlPacket(pahopk.Connack).(*pahopk.ConnackPacket)
	ack.ReturnCode = 4
	var stream bytes.Buffer
	require.NoError(t, pub.Write(&stream))
	require.NoError(t, ack.Write(&stream))
	all := stream.Bytes()

	// Every prefix shorter than the first packet is "not yet".
	first := len(all) - 4
	for i := range first {
		_, _, _, n, err := Next(all[:i])
		require.NoError(t, err)
		require.Zero(t, n, "prefix of %d bytes", i)
	}
	assert.Equal(t, first, NeedBytes(all[:3]))

	typ, flags, body, n, err := Next(all)
	require.NoError(t, err)
	require.Equal(t, first, n)
	assert.Equal(t, byte(PUBLISH), typ)
	topic, id, payload, err := ParsePublish(flags, body)
	require.NoError(t, err)
	assert.Equal(t, "$creq/u-1", string(topic))
	assert.Equal(t, uint16(42), id)
	assert.Equal(t, pub.Payload, payload)

	typ, _, body, n, err = Next(all[first:])
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	assert.Equal(t, byte(CONNACK), typ)
	assert.Equal(t, ConnackError{Code: 4}, CheckConnack(body))
	assert.Contains(t, CheckConnack(body).Error(), "bad user name or password")
}

func TestMalformedInputIsAnError(t *testing.T) {
	_, _, _, _, err := Next([]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})
	assert.ErrorIs(t, err, ErrMalformed, "a remaining length of five bytes")
	_, _, _, err = ParsePublish(0, []byte{0, 9, 'a'})
	assert.ErrorIs(t, err, ErrMalformed, "topic longer than the body")
	_, _, _, err = ParsePublish(2, []byte{0, 1, 'a', 0})
	assert.ErrorIs(t, err, ErrMalformed, "QoS 1 without a packet id")
	assert.ErrorIs(t, CheckConnack([]byte{0}), ErrMalformed)
}
