package broker

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 14, legacy MQTT service: topic names and server-side closes.

func TestTopicNamesFollowOneNETsRule(t *testing.T) {
	b := startBroker(t, nil)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	got := d.subscribe(t, "/topic_test", "a-b/c_d", "a.b", "a b", "a/+", "ü")
	assert.Equal(t, map[string]byte{
		"/topic_test": 0x00, "a-b/c_d": 0x00,
		"a.b": 0x80, "a b": 0x80, "a/+": 0x80, "ü": 0x80,
	}, got)

	s := login(t, b, siblingID, siblingAuth)
	s.publish(t, "/topic_test", 1, []byte("from sibling"))
	m := d.recv(t, b)
	assert.Equal(t, "/topic_test", m.Topic())
	assert.Equal(t, "from sibling", string(m.Payload()))

	r, _ := call(t, b, "POST", "/mqtt?topic=a-b/c_d", DemoMasterKey, "from the API")
	require.Equal(t, ErrnoOK, r.Errno, r.Error)
	m = d.recv(t, b)
	assert.Equal(t, "a-b/c_d", m.Topic())
	assert.Equal(t, "from the API", string(m.Payload()))

	r, _ = call(t, b, "POST", "/mqtt?topic=a.b", DemoMasterKey, "x")
	assert.Equal(t, ErrnoInvalid, r.Errno)
	assert.Equal(t, `invalid parameter topic: "a.b" (letters, digits, '/', '_' and '-' only)`, r.Error)
}

// rawPublishQoS1 builds a PUBLISH at QoS 1 with packet id 1.
func rawPublishQoS1(topic string, payload []byte) []byte {
	pkt := rawPublish(topic, append([]byte{0, 1}, payload...))
	pkt[0] = 0x32
	return pkt
}

// readToClose reads what the broker writes until it closes c.
func readToClose(t *testing.T, c net.Conn) []byte {
	t.Helper()
	got, err := io.ReadAll(c)
	require.NoError(t, err, "the broker must close the connection (got % x so far)", got)
	return got
}

func TestServerClosesWithoutDisconnectPacket(t *testing.T) {
	b := startBroker(t, nil)
	cases := []struct {
		name string
		end  func(t *testing.T, c net.Conn)
	}{
		{"refused QoS 1 publish", func(t *testing.T, c net.Conn) {
			_, err := c.Write(rawPublishQoS1("bad.topic", []byte("x")))
			require.NoError(t, err)
		}},
		{"QoS 1 publish to $SYS", func(t *testing.T, c net.Conn) {
			_, err := c.Write(rawPublishQoS1("$SYS/x", []byte("x")))
			require.NoError(t, err)
		}},
		{"payload over the limit", func(t *testing.T, c net.Conn) {
			_, err := c.Write(rawPublish("big", make([]byte, maxPayload)))
			require.NoError(t, err)
		}},
		{"Kick", func(t *testing.T, c net.Conn) { require.NoError(t, b.Kick(DemoDeviceID)) }},
		{"DropConnection", func(t *testing.T, c net.Conn) { require.NoError(t, b.DropConnection(DemoDeviceID)) }},
		{"a second login takes over", func(t *testing.T, c net.Conn) { rawLogin(t, b, DemoDeviceID) }},
		{"Restart", func(t *testing.T, c net.Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), waitBound)
			defer cancel()
			require.NoError(t, b.Restart(ctx))
		}},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			c := rawLogin(t, b, DemoDeviceID)
			tc.end(t, c)
			got := readToClose(t, c)
			assert.Empty(t, got, "a plain TCP close: no DISCONNECT (e0 00) or anything else")
		})
	}
}
