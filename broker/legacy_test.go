package broker

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	b := startBrokerOpts(t, Options{Limits: Limits{StreamsPerDevice: 1}})
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
		{"refused $dp (no PUBACK either)", func(t *testing.T, c net.Conn) {
			_, err := c.Write(rawPublishQoS1("$dp", []byte{3, 0, 50, '{'}))
			require.NoError(t, err)
		}},
		{"$dp past the datastream bound", func(t *testing.T, c net.Conn) {
			body := `{"a":1,"b":2}`
			_, err := c.Write(rawPublishQoS1("$dp", dpPayload(3, body)))
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
	t.Run("control: a stored $dp is acknowledged", func(t *testing.T) {
		c := rawLogin(t, b, DemoDeviceID)
		_, err := c.Write(rawPublishQoS1("$dp", dpPayload(3, `{"a":1}`)))
		require.NoError(t, err)
		ack := make([]byte, 4)
		_, err = io.ReadFull(c, ack)
		require.NoError(t, err)
		assert.Equal(t, []byte{0x40, 0x02, 0x00, 0x01}, ack, "PUBACK of packet 1")
	})
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			c := rawLogin(t, b, DemoDeviceID)
			tc.end(t, c)
			got := readToClose(t, c)
			assert.Empty(t, got, "a plain TCP close: no DISCONNECT (e0 00) or anything else")
		})
	}
}

// postCmd posts a command over the API and returns its errno, error text
// and uuid.
func postCmd(t *testing.T, b *Broker, query, body string) (int, string, string) {
	t.Helper()
	r, _ := call(t, b, "POST", "/cmds?"+query, DemoMasterKey, body)
	var data struct {
		UUID string `json:"cmd_uuid"`
	}
	if r.Errno == ErrnoOK {
		require.NoError(t, json.Unmarshal(r.Data, &data))
	}
	return r.Errno, r.Error, data.UUID
}

func cmdStatus(t *testing.T, b *Broker, uuid string) string {
	t.Helper()
	r, _ := call(t, b, "GET", "/cmds/"+uuid, DemoMasterKey, "")
	require.Equal(t, ErrnoOK, r.Errno, r.Error)
	return string(r.Data)
}

// relogin ends the device's connection from its side and logs it in again.
func relogin(t *testing.T, b *Broker, d *device) *device {
	t.Helper()
	mark := b.Events().Mark()
	d.c.Disconnect(0)
	waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	return login(t, b, DemoDeviceID, DemoAuthInfo)
}

// marker sends a qos=0 command and returns the first message the device
// gets after it: nothing else may come before the marker.
func nextBeforeMarker(t *testing.T, b *Broker, d *device) string {
	t.Helper()
	errno, msg, uuid := postCmd(t, b, "device_id="+DemoDeviceID, "marker")
	require.Equal(t, ErrnoOK, errno, msg)
	m := d.recv(t, b)
	if m.Topic() == "$creq/"+uuid {
		return "marker"
	}
	return m.Topic()
}

func TestQoS1CommandSentAgainUntilAnswered(t *testing.T) {
	b := startBroker(t, nil)

	// timeout=0 is an online command: an offline device is errno 10,
	// whatever the qos.
	errno, msg, _ := postCmd(t, b, "device_id="+DemoDeviceID+"&qos=1", "on")
	assert.Equal(t, ErrnoNotOnline, errno)
	assert.Equal(t, "device not online: "+DemoDeviceID, msg)

	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	errno, msg, uuid := postCmd(t, b, "device_id="+DemoDeviceID+"&qos=1&timeout=600", "on")
	require.Equal(t, ErrnoOK, errno, msg)
	assert.Equal(t, "$creq/"+uuid, d.recv(t, b).Topic())
	assert.JSONEq(t, `{"status":2,"desc":"cmd sent"}`, cmdStatus(t, b, uuid))

	// Not answered: sent again, same uuid, at each login.
	for range 2 {
		d = relogin(t, b, d)
		m := d.recv(t, b)
		assert.Equal(t, "$creq/"+uuid, m.Topic())
		assert.Equal(t, "on", string(m.Payload()))
		assert.JSONEq(t, `{"status":2,"desc":"cmd sent"}`, cmdStatus(t, b, uuid), "unanswered: still sent")
	}

	// The first $crsp wins.
	mark := b.Events().Mark()
	d.publish(t, "$crsp/"+uuid, 1, []byte("first"))
	waitEvent(t, b, mark, ForCommand(CommandReplied, uuid))
	d.publish(t, "$crsp/"+uuid, 1, []byte("second")) // its PUBACK: handled
	_, raw := call(t, b, "GET", "/cmds/"+uuid+"/resp", DemoMasterKey, "")
	assert.Equal(t, "first", string(raw))
	assert.Equal(t, 1, countEvents(b, mark, ForCommand(CommandReplied, uuid)))

	// Answered: not sent again.
	d = relogin(t, b, d)
	assert.Equal(t, "marker", nextBeforeMarker(t, b, d))
	assert.JSONEq(t, `{"status":4,"desc":"cmd response received"}`, cmdStatus(t, b, uuid))

	// qos=1 with timeout=0: sent once, never again.
	errno, msg, once := postCmd(t, b, "device_id="+DemoDeviceID+"&qos=1", "once")
	require.Equal(t, ErrnoOK, errno, msg)
	assert.Equal(t, "$creq/"+once, d.recv(t, b).Topic())
	d = relogin(t, b, d)
	assert.Equal(t, "marker", nextBeforeMarker(t, b, d))
	assert.JSONEq(t, `{"status":2,"desc":"cmd sent"}`, cmdStatus(t, b, once))
	// ... and its reply is still taken: a sent command waits for one.
	mark = b.Events().Mark()
	d.publish(t, "$crsp/"+once, 1, []byte("late"))
	waitEvent(t, b, mark, ForCommand(CommandReplied, once))
}

func TestQoS1CommandNotSentAfterItsTimeout(t *testing.T) {
	b := startBroker(t, nil)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	errno, msg, uuid := postCmd(t, b, "device_id="+DemoDeviceID+"&qos=1&timeout=1", "on")
	require.Equal(t, ErrnoOK, errno, msg)
	assert.Equal(t, "$creq/"+uuid, d.recv(t, b).Topic())
	info, ok := b.Command(uuid)
	require.True(t, ok)
	mark := b.Events().Mark()
	d.c.Disconnect(0)
	waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	// Wait for the command's validity to end (bounded: 1 s).
	require.Eventually(t, func() bool { return time.Now().After(info.Expires) }, waitBound, 10*time.Millisecond)

	mark = b.Events().Mark()
	d = login(t, b, DemoDeviceID, DemoAuthInfo)
	waitEvent(t, b, mark, ForCommand(CommandExpired, uuid))
	assert.Equal(t, "marker", nextBeforeMarker(t, b, d), "not sent again after its timeout")
	assert.JSONEq(t, `{"status":2,"desc":"cmd sent"}`, cmdStatus(t, b, uuid), "its documented status stays")
}

func TestQoS1CommandSentAgainAfterAProcessRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	b := startDurable(t, dir, nil)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	uuid, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{QoS: 1, Timeout: time.Hour})
	require.NoError(t, err)
	assert.Equal(t, "$creq/"+uuid, d.recv(t, b).Topic())
	require.NoError(t, b.Close())

	b = startDurable(t, dir, nil)
	d = login(t, b, DemoDeviceID, DemoAuthInfo)
	m := d.recv(t, b)
	assert.Equal(t, "$creq/"+uuid, m.Topic(), "an unanswered qos=1 command is sent again after a restart")
	mark := b.Events().Mark()
	d.publish(t, "$crsp/"+uuid, 1, []byte("done"))
	waitEvent(t, b, mark, ForCommand(CommandReplied, uuid))
	info, _ := b.Command(uuid)
	assert.Equal(t, CmdReplied, info.Status)
}
