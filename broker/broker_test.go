package broker

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/onenet-hil/hil/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoginWithAuthInfoAndMasterKey(t *testing.T) {
	b := startBroker(t, nil)
	require.False(t, b.Online(DemoDeviceID))
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	assert.True(t, b.Online(DemoDeviceID))
	d.c.Disconnect(100)
	// a clean DISCONNECT takes the device offline
	waitEvent(t, b, 0, Is(Disconnected, DemoDeviceID))
	assert.False(t, b.Online(DemoDeviceID))

	login(t, b, siblingID, DemoMasterKey) // the product's APIKey works too (the tutorial's way)
	assert.True(t, b.Online(siblingID))
}

// rawConnect builds a CONNECT packet byte by byte so every flag can be set.
func rawConnect(name string, level, flags byte, id, user, pass string) []byte {
	return rawConnectKA(name, level, flags, id, user, pass, 60)
}

func rawConnectKA(name string, level, flags byte, id, user, pass string, keepalive uint16) []byte {
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	var v []byte
	v = append(v, str(name)...)
	v = append(v, level, flags, byte(keepalive>>8), byte(keepalive))
	if level == 5 {
		v = append(v, 0) // no properties
	}
	v = append(v, str(id)...)
	if flags&0x04 != 0 {
		if level == 5 {
			v = append(v, 0)
		}
		v = append(v, str("will/topic")...)
		v = append(v, str("bye")...)
	}
	if flags&0x80 != 0 {
		v = append(v, str(user)...)
	}
	if flags&0x40 != 0 {
		v = append(v, str(pass)...)
	}
	pkt := []byte{0x10}
	for n := len(v); ; { // remaining length, variable-length encoded
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		pkt = append(pkt, d)
		if n == 0 {
			break
		}
	}
	return append(pkt, v...)
}

// rawReply sends pkt and returns everything the broker writes before it
// closes the connection.
func rawReply(t *testing.T, addr string, pkt []byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(waitBound)))
	_, err = c.Write(pkt)
	require.NoError(t, err)
	got, err := io.ReadAll(c)
	require.NoError(t, err, "the broker must close the connection (got %x so far)", got)
	return got
}

func TestConnackCodesByteExact(t *testing.T) {
	b := startBroker(t, nil)
	const userPass = 0xC0 | 0x02 // user name + password flags, clean session
	cases := []struct {
		name        string
		proto       string
		level       byte
		flags       byte
		id, u, p    string
		want        []byte
		refusedCode byte
	}{
		{"MQTT 3.1 (level 3)", "MQIsdp", 3, userPass, DemoDeviceID, DemoProductID, DemoAuthInfo, []byte{0x20, 2, 0, 1}, 1},
		{"MQTT 5", "MQTT", 5, userPass, DemoDeviceID, DemoProductID, DemoAuthInfo, []byte{0x20, 2, 0, 1}, 1},
		{"level 6", "MQTT", 6, userPass, DemoDeviceID, DemoProductID, DemoAuthInfo, []byte{0x20, 2, 0, 1}, 1},
		{"unknown device", "MQTT", 4, userPass, "111", DemoProductID, DemoAuthInfo, []byte{0x20, 2, 0, 2}, 2},
		{"device of another product", "MQTT", 4, userPass, otherDeviceID, DemoProductID, DemoMasterKey, []byte{0x20, 2, 0, 2}, 2},
		{"unknown product", "MQTT", 4, userPass, DemoDeviceID, "999", DemoAuthInfo, []byte{0x20, 2, 0, 4}, 4},
		{"wrong password", "MQTT", 4, userPass, DemoDeviceID, DemoProductID, "nope", []byte{0x20, 2, 0, 4}, 4},
		{"other product's key", "MQTT", 4, userPass, DemoDeviceID, DemoProductID, otherMasterKey, []byte{0x20, 2, 0, 4}, 4},
		{"disabled device", "MQTT", 4, userPass, disabledID, DemoProductID, "x-1", []byte{0x20, 2, 0, 5}, 5},
		{"accepted", "MQTT", 4, userPass, DemoDeviceID, DemoProductID, DemoAuthInfo, nil, 0},
		{"no user name flag", "MQTT", 4, 0x40 | 0x02, DemoDeviceID, DemoProductID, DemoAuthInfo, []byte{}, NoConnack},
		{"no password flag", "MQTT", 4, 0x80 | 0x02, DemoDeviceID, DemoProductID, DemoAuthInfo, []byte{}, NoConnack},
		{"will flag", "MQTT", 4, userPass | 0x04, DemoDeviceID, DemoProductID, DemoAuthInfo, []byte{}, NoConnack},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mark := b.Events().Mark()
			pkt := rawConnect(tc.proto, tc.level, tc.flags, tc.id, tc.u, tc.p)
			if tc.want == nil { // accepted: CONNACK 0, then the connection stays
				c, err := net.Dial("tcp", b.MQTTAddr())
				require.NoError(t, err)
				defer c.Close()
				require.NoError(t, c.SetDeadline(time.Now().Add(waitBound)))
				_, err = c.Write(pkt)
				require.NoError(t, err)
				ack := make([]byte, 4)
				_, err = io.ReadFull(c, ack)
				require.NoError(t, err)
				assert.Equal(t, []byte{0x20, 2, 0, 0}, ack)
				waitEvent(t, b, mark, Is(Connected, tc.id))
				return
			}
			got := rawReply(t, b.MQTTAddr(), pkt)
			assert.Equal(t, tc.want, got, "bytes before close")
			e := waitEvent(t, b, mark, Is(Refused, ""))
			assert.Equal(t, tc.refusedCode, e.Code, e.String())
			assert.NotContains(t, e.String(), tc.p, "the password must not appear in events")
		})
	}
}

func TestConnackCodesWithPaho(t *testing.T) {
	b := startBroker(t, nil)
	for _, tc := range []struct {
		id, user, pass string
		code           byte
	}{
		{"42", DemoProductID, DemoAuthInfo, 2},
		{DemoDeviceID, DemoProductID, "bad", 4},
		{disabledID, DemoProductID, "x-1", 5},
	} {
		o, _ := deviceOptions(b.MQTTAddr(), tc.id, tc.user, tc.pass)
		c := paho.NewClient(o)
		tok := c.Connect()
		require.True(t, tok.WaitTimeout(waitBound))
		assert.Error(t, tok.Error())
		assert.Equal(t, tc.code, tok.(*paho.ConnectToken).ReturnCode(), "device %s", tc.id)
	}
}

func TestDuplicateLoginKicksOlderConnection(t *testing.T) {
	b := startBroker(t, nil)
	old := login(t, b, DemoDeviceID, DemoAuthInfo)
	mark := b.Events().Mark()
	newer := login(t, b, DemoDeviceID, DemoMasterKey)
	old.waitLost(t, b)
	k := waitEvent(t, b, mark, Is(Kicked, DemoDeviceID))
	assert.Contains(t, k.Reason, "duplicate login")

	// The old connection's end must not take the device offline: prove the
	// broker has processed it by kicking a third time and checking that no
	// Disconnected event appeared in between.
	assert.True(t, b.Online(DemoDeviceID))
	uuid, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{})
	require.NoError(t, err)
	m := newer.recv(t, b)
	assert.Equal(t, "$creq/"+uuid, m.Topic())
	for _, e := range b.Events().Last(50) {
		if e.Seq > uint64(mark) {
			assert.NotEqual(t, Disconnected, e.Kind, "kicked connection reported the device offline: %s", e)
		}
	}
	// and the newer connection is the one that counts
	mark = b.Events().Mark()
	newer.c.Disconnect(100)
	waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	assert.False(t, b.Online(DemoDeviceID))
}

func TestKickAndDropConnection(t *testing.T) {
	b := startBroker(t, nil)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	mark := b.Events().Mark()
	require.NoError(t, b.Kick(DemoDeviceID))
	d.waitLost(t, b)
	waitEvent(t, b, mark, Is(Kicked, DemoDeviceID))
	e := waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	assert.Equal(t, "kicked by server", e.Reason)
	assert.False(t, b.Online(DemoDeviceID))
	assert.ErrorIs(t, b.Kick(DemoDeviceID), ErrOffline)

	d = login(t, b, DemoDeviceID, DemoAuthInfo)
	mark = b.Events().Mark()
	require.NoError(t, b.DropConnection(DemoDeviceID))
	d.waitLost(t, b)
	e = waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	assert.Equal(t, "connection dropped", e.Reason)
	assert.ErrorIs(t, b.DropConnection(DemoDeviceID), ErrOffline)
}

func TestSubscribeACL(t *testing.T) {
	b := startBroker(t, nil)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	got := d.subscribe(t, "led/cmd", "$creq/x", "$dp", "a/+", "a/#", "bad.name", "ok2")
	assert.Equal(t, map[string]byte{
		"led/cmd": 0x00, "ok2": 0x00,
		"$creq/x": 0x80, "$dp": 0x80, "a/+": 0x80, "a/#": 0x80, "bad.name": 0x80,
	}, got)

	// at most 100 subscriptions per client (2 taken above)
	var filters []string
	for i := 0; i < 98; i++ {
		filters = append(filters, fmt.Sprintf("t/%d", i))
	}
	for _, code := range d.subscribe(t, filters...) {
		assert.Equal(t, byte(0), code)
	}
	got = d.subscribe(t, "one/more", "led/cmd")
	assert.Equal(t, byte(0x80), got["one/more"], "101st subscription")
	assert.Equal(t, byte(0x00), got["led/cmd"], "re-subscribing an existing filter is not a new subscription")
}

func TestCustomTopicsStayInTheProduct(t *testing.T) {
	b := startBroker(t, nil)
	pub := login(t, b, DemoDeviceID, DemoAuthInfo)
	sib := login(t, b, siblingID, siblingAuth)
	other := login(t, b, otherDeviceID, otherAuthInfo)
	sib.subscribe(t, "led/state")
	other.subscribe(t, "led/state")

	pub.publish(t, "led/state", 1, []byte("on"))
	m := sib.recv(t, b)
	assert.Equal(t, "led/state", m.Topic())
	assert.Equal(t, "on", string(m.Payload()))
	assert.Equal(t, byte(0), m.Qos(), "server to device is QoS 0")

	// The harness publishes to the other product afterwards: if the device
	// message had leaked across products, it would arrive first.
	require.NoError(t, b.PublishCustom(otherProductID, "led/state", []byte("marker")))
	m = other.recv(t, b)
	assert.Equal(t, "marker", string(m.Payload()))

	// harness -> product subscribers through the inline client
	require.NoError(t, b.PublishCustom(DemoProductID, "led/state", []byte("toggle")))
	m = sib.recv(t, b)
	assert.Equal(t, "toggle", string(m.Payload()))

	assert.Error(t, b.PublishCustom(DemoProductID, "bad+topic", nil))
	assert.Error(t, b.PublishCustom("nope", "t", nil))
}

func TestRetainIsNotHonoured(t *testing.T) {
	b := startBroker(t, nil)
	pub := login(t, b, DemoDeviceID, DemoAuthInfo)
	pub.subscribe(t, "keep")
	tok := pub.c.Publish("keep", 1, true, []byte("retained?"))
	require.True(t, tok.WaitTimeout(waitBound))
	require.NoError(t, tok.Error())
	// Mochi sends PUBACK before it delivers: wait for the delivery to the
	// publisher itself so the message is surely done with before sub arrives.
	require.Equal(t, "retained?", string(pub.recv(t, b).Payload()))

	sub := login(t, b, siblingID, siblingAuth)
	sub.subscribe(t, "keep")
	require.NoError(t, b.PublishCustom(DemoProductID, "keep", []byte("marker")))
	m := sub.recv(t, b)
	assert.Equal(t, "marker", string(m.Payload()), "a retained message was delivered")
	assert.False(t, m.Retained())
}

func TestCommandToOnlineDevice(t *testing.T) {
	b := startBroker(t, nil)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	sib := login(t, b, siblingID, siblingAuth)

	mark := b.Events().Mark()
	uuid, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{})
	require.NoError(t, err)
	m := d.recv(t, b) // no SUBSCRIBE was ever sent
	assert.Equal(t, "$creq/"+uuid, m.Topic())
	assert.Equal(t, "on", string(m.Payload()))
	assert.Equal(t, byte(0), m.Qos())
	waitEvent(t, b, mark, ForCommand(CommandSent, uuid))
	info, ok := b.Command(uuid)
	require.True(t, ok)
	assert.Equal(t, CmdSent, info.Status)

	d.publish(t, "$crsp/"+uuid, 1, []byte("led on"))
	e := waitEvent(t, b, mark, ForCommand(CommandReplied, uuid))
	assert.Equal(t, "led on", string(e.Payload))
	info, _ = b.Command(uuid)
	assert.Equal(t, CmdReplied, info.Status)
	assert.Equal(t, "led on", string(info.Response))

	// the command went to that device alone: the sibling's first message is its own
	uuid2, err := b.SendCommand(siblingID, []byte("off"), CommandOptions{})
	require.NoError(t, err)
	assert.Equal(t, "$creq/"+uuid2, sib.recv(t, b).Topic())

	// a reply from the wrong device is ignored
	sib.publish(t, "$crsp/"+uuid, 1, []byte("not mine"))
	sib.publish(t, "$crsp/"+uuid2, 1, []byte("mine"))
	waitEvent(t, b, mark, ForCommand(CommandReplied, uuid2))
	info, _ = b.Command(uuid)
	assert.Equal(t, "led on", string(info.Response))
}

func TestCommandToOfflineDevice(t *testing.T) {
	b := startBroker(t, nil)
	_, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{})
	assert.ErrorIs(t, err, ErrOffline)
	_, err = b.SendCommand("nope", []byte("on"), CommandOptions{})
	assert.ErrorIs(t, err, ErrUnknownDevice)

	_, err = b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{QoS: 1})
	assert.ErrorIs(t, err, ErrOffline, "qos=1 with timeout=0 is an online command")
	kept1, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{QoS: 1, Timeout: time.Hour})
	require.NoError(t, err)
	kept2, err := b.SendCommand(DemoDeviceID, []byte("toggle"), CommandOptions{Timeout: time.Hour})
	require.NoError(t, err)
	expired, err := b.SendCommand(DemoDeviceID, []byte("off"), CommandOptions{Timeout: time.Nanosecond})
	require.NoError(t, err)
	info, _ := b.Command(kept1)
	assert.Equal(t, CmdCreated, info.Status)

	mark := b.Events().Mark()
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	assert.Equal(t, "$creq/"+kept1, d.recv(t, b).Topic())
	m := d.recv(t, b)
	assert.Equal(t, "$creq/"+kept2, m.Topic())
	assert.Equal(t, "toggle", string(m.Payload()))
	waitEvent(t, b, mark, ForCommand(CommandExpired, expired))
	info, _ = b.Command(expired)
	assert.Equal(t, CmdTimedOut, info.Status)
	info, _ = b.Command(kept2)
	assert.Equal(t, CmdSent, info.Status)
}

func TestDatapointsOverMQTT(t *testing.T) {
	b := startBroker(t, nil)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	sib := login(t, b, siblingID, siblingAuth)
	sib.subscribe(t, "dp")

	mark := b.Events().Mark()
	d.publish(t, "$dp", 1, dpPayload(3, `{"temperature":22.5}`))
	e := waitEvent(t, b, mark, Is(DatapointReceived, DemoDeviceID))
	assert.Equal(t, "temperature", e.Topic)

	// a malformed payload is refused: no PUBACK, the device is dropped
	tok := d.c.Publish("$dp", 1, false, []byte{3, 0, 50, '{'})
	d.waitLost(t, b)
	r := waitEvent(t, b, mark, Is(DatapointRejected, DemoDeviceID))
	assert.Contains(t, r.Reason, "length field")
	e = waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	assert.Contains(t, e.Reason, "$dp refused: ")
	assert.True(t, tok.WaitTimeout(waitBound))
	assert.Error(t, tok.Error(), "no PUBACK for a refused $dp")
	d = login(t, b, DemoDeviceID, DemoAuthInfo)
	d.publish(t, "$dp", 0, dpPayload(1, `{"datastreams":[{"id":"led","datapoints":[{"at":"2026-01-02 03:04:05","value":1}]}]}`))
	waitEvent(t, b, mark, func(e Event) bool { return e.Kind == DatapointReceived && e.Topic == "led" })
	assert.True(t, b.Online(DemoDeviceID))

	dps := b.Datapoints(DemoDeviceID)
	require.Len(t, dps["temperature"], 1)
	assert.Equal(t, 22.5, dps["temperature"][0].Value)
	require.Len(t, dps["led"], 1)
	assert.Equal(t, "2026-01-02 03:04:05", dps["led"][0].At.In(cst).Format(dpTimeLayout))

	// $dp is never forwarded to subscribers
	d.publish(t, "dp", 0, []byte("marker"))
	assert.Equal(t, "marker", string(sib.recv(t, b).Payload()))
}

func dpPayload(typ byte, body string) []byte {
	return append([]byte{typ, byte(len(body) >> 8), byte(len(body))}, body...)
}

func TestRestartKeepsStateAndAddress(t *testing.T) {
	b := startBroker(t, nil)
	addr := b.MQTTAddr()
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	d.publish(t, "$dp", 1, dpPayload(3, `{"t":1}`))
	waitEvent(t, b, 0, Is(DatapointReceived, DemoDeviceID))

	mark := b.Events().Mark()
	require.NoError(t, b.Restart(ctxBound(t)))
	d.waitLost(t, b)
	e := waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	assert.Equal(t, "broker restart", e.Reason)
	assert.False(t, b.Online(DemoDeviceID))
	assert.Equal(t, addr, b.MQTTAddr())

	uuid, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{QoS: 1, Timeout: time.Hour})
	require.NoError(t, err)
	d = login(t, b, DemoDeviceID, DemoAuthInfo)
	assert.Equal(t, "$creq/"+uuid, d.recv(t, b).Topic())
	assert.Len(t, b.Datapoints(DemoDeviceID)["t"], 1)
}

func TestRuntimeRegistryAdd(t *testing.T) {
	b := startBroker(t, nil)
	_, err := dial(t, b.MQTTAddr(), "777", DemoProductID, "k-777")
	require.Error(t, err)
	require.NoError(t, b.Registry().AddDevice(DemoProductID, Device{ID: "777", AuthInfo: "k-777"}))
	login(t, b, "777", "k-777")
	require.NoError(t, b.Registry().AddProduct(Product{ID: "555", MasterKey: "mk-555", Devices: []Device{{ID: "5551"}}}))
	login(t, b, "5551", "mk-555")
	assert.Error(t, b.Registry().AddDevice("nope", Device{ID: "1"}))
	assert.Error(t, b.Registry().AddDevice(DemoProductID, Device{ID: "777"}))
	assert.Error(t, b.Registry().AddDevice(DemoProductID, Device{ID: "$x"}))
}

func TestFeedWaitFailsWithLastEvents(t *testing.T) {
	b := startBroker(t, nil)
	login(t, b, DemoDeviceID, DemoAuthInfo)
	ctx, cancel := contextWithTimeout(50 * time.Millisecond)
	defer cancel()
	_, err := b.Events().WaitFor(ctx, Is(Kicked, "nobody"))
	require.Error(t, err)
	assert.True(t, errors.Is(err, errDeadline()))
	assert.Contains(t, err.Error(), "connected device="+DemoDeviceID)

	// WaitAfter sees an event that happened before the call
	mark := b.Events().Mark()
	require.NoError(t, b.Kick(DemoDeviceID))
	e := waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	assert.Equal(t, DemoDeviceID, e.DeviceID)
	last := b.Events().Last(2)
	require.Len(t, last, 2)
	assert.Less(t, last[0].Seq, last[1].Seq)
}

func TestFeedSubscribe(t *testing.T) {
	b := startBroker(t, nil)
	ch, cancel := b.Events().Subscribe()
	defer cancel()
	login(t, b, DemoDeviceID, DemoAuthInfo)
	for {
		select {
		case e := <-ch:
			if e.Kind == Connected {
				assert.True(t, strings.HasPrefix(e.Reason, "from 127.0.0.1:"))
				return
			}
		case <-time.After(waitBound):
			t.Fatalf("no connected event; last:\n%s", lastEvents(b))
		}
	}
}

func TestEventStringHasNoSecrets(t *testing.T) {
	var logBuf testutil.Buffer // the broker's goroutines log while the test reads
	b, err := New(Options{Registry: testRegistry(t), MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(&logBuf, nil))})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	mark := b.Events().Mark()
	_, err = dial(t, b.MQTTAddr(), DemoDeviceID, DemoProductID, "secret-guess")
	require.Error(t, err)
	waitEvent(t, b, mark, Is(Refused, DemoDeviceID))
	login(t, b, DemoDeviceID, DemoAuthInfo)
	require.NoError(t, b.Close())
	out := logBuf.String()
	assert.Contains(t, out, "kind=refused")
	assert.Contains(t, out, "kind=connected")
	for _, s := range []string{"secret-guess", DemoAuthInfo, DemoMasterKey} {
		assert.NotContains(t, out, s)
	}
}

func TestPersistentSessionKeepsSubscriptions(t *testing.T) {
	b := startBroker(t, nil)
	o, d := deviceOptions(b.MQTTAddr(), DemoDeviceID, DemoProductID, DemoAuthInfo)
	o.SetCleanSession(false)
	d.c = paho.NewClient(o)
	tok := d.c.Connect()
	require.True(t, tok.WaitTimeout(waitBound))
	require.NoError(t, tok.Error())
	d.subscribe(t, "led/cmd")
	mark := b.Events().Mark()
	d.c.Disconnect(100)
	waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))

	o2, d2 := deviceOptions(b.MQTTAddr(), DemoDeviceID, DemoProductID, DemoAuthInfo)
	o2.SetCleanSession(false)
	d2.c = paho.NewClient(o2)
	mark = b.Events().Mark()
	tok = d2.c.Connect()
	require.True(t, tok.WaitTimeout(waitBound))
	require.NoError(t, tok.Error())
	defer d2.c.Disconnect(0)
	assert.True(t, tok.(*paho.ConnectToken).SessionPresent())
	waitEvent(t, b, mark, Is(Connected, DemoDeviceID))
	require.NoError(t, b.PublishCustom(DemoProductID, "led/cmd", []byte("on")))
	assert.Equal(t, "on", string(d2.recv(t, b).Payload()))
}

// The command history is bounded: the oldest finished commands are
// forgotten past Limits.History (per shard: 1/cmdShards of it), the newest
// stay.
func TestCommandHistoryIsBounded(t *testing.T) {
	const limit = 64 * cmdShards
	b := startBrokerOpts(t, Options{Limits: Limits{History: limit}})
	c := rawLogin(t, b, DemoDeviceID)
	go func() { _, _ = io.Copy(io.Discard, c) }() // the device reads everything
	var first, last string
	for i := range 4 * limit { // enough that every shard passes its part
		id, err := b.SendCommand(DemoDeviceID, []byte(fmt.Sprint(i)), CommandOptions{})
		require.NoError(t, err)
		if i == 0 {
			first = id
		}
		last = id
	}
	n := b.cmds.count()
	assert.LessOrEqual(t, n, limit, "history within its bound")
	assert.Greater(t, n, limit-cmdShards*8, "history close to its bound")
	_, ok := b.Command(first)
	assert.False(t, ok, "the oldest is forgotten")
	_, ok = b.Command(last)
	assert.True(t, ok, "the newest is kept")
}

// A command still waiting for its device does not stop the forgetting,
// and is not forgotten itself.
func TestCommandHistoryKeepsPendingButStaysBounded(t *testing.T) {
	const limit = 16 * cmdShards
	b := startBrokerOpts(t, Options{Limits: Limits{History: limit}})
	waiting, err := b.SendCommand(DemoDeviceID, []byte("later"), CommandOptions{QoS: 1, Timeout: time.Hour})
	require.NoError(t, err)
	login(t, b, siblingID, siblingAuth)
	for i := range limit + 100 {
		_, err := b.SendCommand(siblingID, []byte(fmt.Sprint(i)), CommandOptions{})
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, b.cmds.count(), limit+1)
	info, ok := b.Command(waiting)
	require.True(t, ok, "the pending command is kept")
	assert.Equal(t, CmdCreated, info.Status)
}
