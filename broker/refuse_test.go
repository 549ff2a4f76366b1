package broker

// What the broker and the HTTP API refuse (issue 8, item 5): each case over
// real TCP (paho or a raw socket) or real HTTP, answered as OneNET would,
// while a bystander device keeps its connection and its commands.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// bystander is a device of the demo product, online through a whole test,
// that must notice nothing.
type bystander struct {
	*device
	mark Mark
	n    int
}

func newBystander(t *testing.T, b *Broker) *bystander {
	t.Helper()
	mark := b.Events().Mark()
	return &bystander{device: login(t, b, siblingID, siblingAuth), mark: mark}
}

// check sends the bystander a command and expects it as its very next
// message (so nothing else reached it), its connection alive and no event
// saying it was kicked or went offline.
func (by *bystander) check(t *testing.T, b *Broker) {
	t.Helper()
	by.n++
	payload := fmt.Sprintf("still-here-%d", by.n)
	uuid, err := b.SendCommand(siblingID, []byte(payload), CommandOptions{})
	require.NoError(t, err, "bystander offline; last events:\n%s", lastEvents(b))
	m := by.recv(t, b)
	assert.Equal(t, "$creq/"+uuid, m.Topic(), "the bystander received something else first")
	assert.Equal(t, payload, string(m.Payload()))
	select {
	case err := <-by.lost:
		t.Fatalf("bystander lost its connection: %v", err)
	default:
	}
	for _, e := range b.Events().Last(4096) {
		if e.Seq > uint64(by.mark) && e.DeviceID == siblingID {
			assert.NotContains(t, []EventKind{Kicked, Disconnected, Refused}, e.Kind, "bystander event %s", e)
		}
	}
}

// waitGoroutines waits (bounded) until the goroutine count is back within
// slack of base, failing with the stacks if it is not.
func waitGoroutines(t *testing.T, base int) {
	t.Helper()
	const slack = 3
	deadline := time.Now().Add(waitBound)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		n := runtime.NumGoroutine()
		if n <= base+slack {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, baseline %d (+%d allowed):\n%s", n, base, slack, buf[:runtime.Stack(buf, true)])
		}
		<-tick.C
	}
}

func startBrokerOpts(t *testing.T, opts Options) *Broker {
	t.Helper()
	if opts.Registry == nil {
		opts.Registry = testRegistry(t)
	}
	opts.MQTTAddr, opts.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	b, err := New(opts)
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Every legacy route, as the key checks see them.
func legacyRoutes(deviceID string) [][2]string {
	return [][2]string{
		{"POST", "/cmds?device_id=" + deviceID},
		{"GET", "/cmds/00000000-0000-4000-8000-000000000000"},
		{"GET", "/cmds/00000000-0000-4000-8000-000000000000/resp"},
		{"GET", "/devices/status?devIds=" + deviceID},
		{"GET", "/devices/" + deviceID},
		{"GET", "/devices/" + deviceID + "/datapoints"},
		{"POST", "/mqtt?topic=led/cmd"},
	}
}

func TestRefuseMissingAndWrongAPIKey(t *testing.T) {
	b := startBroker(t, nil)
	by := newBystander(t, b)
	watch := login(t, b, DemoDeviceID, DemoAuthInfo)
	watch.subscribe(t, "led/cmd")
	for _, r := range legacyRoutes(DemoDeviceID) {
		rep, raw := call(t, b, r[0], r[1], "", "on")
		assert.Equal(t, ErrnoNoAPIKey, rep.Errno, "%s %s: %s", r[0], r[1], raw)
		assert.Equal(t, "api-key required", rep.Error)
		assert.Empty(t, rep.Data)
		for _, key := range []string{"wrong", DemoMasterKey + "x", strings.ToUpper(DemoMasterKey), DemoAuthInfo} {
			rep, raw = call(t, b, r[0], r[1], key, "on")
			assert.Equal(t, ErrnoAuthFailed, rep.Errno, "%s %s key %s: %s", r[0], r[1], Mask(key), raw)
			assert.Equal(t, "auth failed", rep.Error)
			assert.Empty(t, rep.Data)
		}
	}
	// nothing was sent or published: the next message of the watcher is the harness's marker
	require.NoError(t, b.PublishCustom(DemoProductID, "led/cmd", []byte("marker")))
	assert.Equal(t, "marker", string(watch.recv(t, b).Payload()))
	by.check(t, b)
}

func TestRefuseOtherProductsKey(t *testing.T) {
	b := startBroker(t, nil)
	by := newBystander(t, b) // siblingID of the demo product is the target
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	d.publish(t, "$dp", 1, dpPayload(3, `{"secret_stream":42}`))
	mark := b.Events().Mark()
	uuid, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{})
	require.NoError(t, err)
	require.Equal(t, "$creq/"+uuid, d.recv(t, b).Topic())
	d.publish(t, "$crsp/"+uuid, 1, []byte("reply-secret"))
	waitEvent(t, b, mark, ForCommand(CommandReplied, uuid))

	leaks := []string{siblingAuth, DemoAuthInfo, "sibling", "led-board", "secret_stream", "reply-secret", DemoMasterKey}
	for _, tc := range []struct{ method, path string }{
		{"POST", "/cmds?device_id=" + siblingID},
		{"POST", "/cmds?device_id=" + siblingID + "&qos=1&timeout=60"},
		{"GET", "/devices/" + siblingID},
		{"GET", "/devices/" + DemoDeviceID},
		{"GET", "/devices/" + DemoDeviceID + "/datapoints"},
		{"GET", "/devices/" + DemoDeviceID + "/datapoints?limit=10&start=2000-01-01T00:00:00"},
		{"GET", "/cmds/" + uuid},
		{"GET", "/cmds/" + uuid + "/resp"},
	} {
		rep, raw := call(t, b, tc.method, tc.path, otherMasterKey, "off")
		assert.Equal(t, ErrnoAuthFailed, rep.Errno, "%s %s: %s", tc.method, tc.path, raw)
		assert.Empty(t, rep.Data)
		for _, s := range append(leaks, siblingID, DemoDeviceID, uuid) {
			assert.NotContains(t, string(raw), s, "%s %s leaks %q", tc.method, tc.path, Mask(s))
		}
	}
	// status silently omits another product's devices
	rep, raw := call(t, b, "GET", "/devices/status?devIds="+siblingID+","+DemoDeviceID+","+otherDeviceID, otherMasterKey, "")
	require.Equal(t, ErrnoOK, rep.Errno, string(raw))
	assert.JSONEq(t, `{"devices":[{"id":"900001001","title":"other-board","online":false}],"total_count":1}`, string(rep.Data))
	info, ok := b.Command(uuid)
	require.True(t, ok)
	assert.Equal(t, "reply-secret", string(info.Response), "the reply is untouched")
	by.check(t, b) // the refused commands never reached it
	mark = b.Events().Mark()
	by.c.Disconnect(100)
	waitEvent(t, b, mark, Is(Disconnected, siblingID))
	d2 := login(t, b, siblingID, siblingAuth)
	uuid2, err := b.SendCommand(siblingID, []byte("first"), CommandOptions{})
	require.NoError(t, err)
	assert.Equal(t, "$creq/"+uuid2, d2.recv(t, b).Topic(), "a refused qos=1 command was kept for the device")
}

func TestRefuseCrossProductMQTT(t *testing.T) {
	b := startBroker(t, nil)
	by := newBystander(t, b)
	victim := login(t, b, DemoDeviceID, DemoAuthInfo)
	victim.subscribe(t, "led/state")
	intruder := login(t, b, otherDeviceID, otherAuthInfo)

	// Its subscriptions stay in its own product or are refused.
	got := intruder.subscribe(t, "led/state", "@"+DemoProductID+"/led/state", "$creq/+", "#", "+/state", "$dp")
	assert.Equal(t, map[string]byte{"led/state": 0, "@" + DemoProductID + "/led/state": 0x80, "$creq/+": 0x80, "#": 0x80, "+/state": 0x80, "$dp": 0x80}, got)

	// The demo product's traffic never reaches it: the harness's marker to
	// its own product is its first message.
	victim.publish(t, "led/state", 1, []byte("demo-only"))
	assert.Equal(t, "demo-only", string(victim.recv(t, b).Payload()))
	require.NoError(t, b.PublishCustom(DemoProductID, "led/state", []byte("demo-only-2")))
	assert.Equal(t, "demo-only-2", string(victim.recv(t, b).Payload()))
	uuid, err := b.SendCommand(DemoDeviceID, []byte("cmd-for-demo"), CommandOptions{})
	require.NoError(t, err)
	assert.Equal(t, "$creq/"+uuid, victim.recv(t, b).Topic())
	require.NoError(t, b.PublishCustom(otherProductID, "led/state", []byte("marker")))
	m := intruder.recv(t, b)
	assert.Equal(t, "marker", string(m.Payload()), "a demo-product message crossed over")

	// Its publishes stay in its product; a reply to another product's
	// command is ignored.
	mark := b.Events().Mark()
	intruder.publish(t, "led/state", 1, []byte("other-product"))
	intruder.publish(t, "$crsp/"+uuid, 1, []byte("forged"))
	intruder.publish(t, "@"+DemoProductID+"/led/state", 0, []byte("qos0-illegal")) // dropped silently
	assert.Equal(t, "other-product", string(intruder.recv(t, b).Payload()), "own subscription")
	require.NoError(t, b.PublishCustom(DemoProductID, "led/state", []byte("marker-2")))
	assert.Equal(t, "marker-2", string(victim.recv(t, b).Payload()), "another product's publish reached the victim")
	info, _ := b.Command(uuid)
	assert.Equal(t, CmdSent, info.Status, "a forged reply from another product was stored")
	for _, e := range b.Events().Last(4096) {
		if e.Seq > uint64(mark) && e.Kind == CommandReplied {
			t.Errorf("forged reply recorded: %s", e)
		}
	}

	// An illegal topic at QoS 1 closes the intruder's connection, nobody else's.
	tok := intruder.c.Publish("@"+DemoProductID+"/led/state", 1, false, []byte("qos1-illegal"))
	tok.WaitTimeout(waitBound)
	intruder.waitLost(t, b)
	e := waitEvent(t, b, mark, Is(Disconnected, otherDeviceID))
	assert.NotEmpty(t, e.Reason)
	require.NoError(t, b.PublishCustom(DemoProductID, "led/state", []byte("marker-3")))
	assert.Equal(t, "marker-3", string(victim.recv(t, b).Payload()))
	assert.True(t, b.Online(DemoDeviceID))
	by.check(t, b)
}

func TestRefuseOversizedHTTPBodies(t *testing.T) {
	b := startBroker(t, nil)
	by := newBystander(t, b)
	by.subscribe(t, "big")
	for _, path := range []string{"/cmds?device_id=" + siblingID, "/mqtt?topic=big"} {
		for _, n := range []int{maxPayload, maxPayload + 1, 200 * 1024} {
			rep, raw := call(t, b, "POST", path, DemoMasterKey, strings.Repeat("x", n))
			assert.Equal(t, ErrnoTooLarge, rep.Errno, "%s with %d bytes: %.200s", path, n, raw)
			assert.Equal(t, "request entity too large", rep.Error)
		}
	}
	by.check(t, b) // neither the command nor the publish went out
	// the largest allowed body passes both ways
	rep, raw := call(t, b, "POST", "/mqtt?topic=big", DemoMasterKey, strings.Repeat("y", maxPayload-1))
	require.Equal(t, ErrnoOK, rep.Errno, "%.200s", raw)
	assert.Len(t, by.recv(t, b).Payload(), maxPayload-1)
	rep, raw = call(t, b, "POST", "/cmds?device_id="+siblingID, DemoMasterKey, strings.Repeat("z", maxPayload-1))
	require.Equal(t, ErrnoOK, rep.Errno, "%.200s", raw)
	var created struct {
		UUID string `json:"cmd_uuid"`
	}
	require.NoError(t, json.Unmarshal(rep.Data, &created))
	m := by.recv(t, b)
	assert.Equal(t, "$creq/"+created.UUID, m.Topic())
	assert.Len(t, m.Payload(), maxPayload-1)
	by.check(t, b)
}

func TestRefuseOversizedMQTTPublish(t *testing.T) {
	b := startBroker(t, nil)
	by := newBystander(t, b)
	by.subscribe(t, "big")
	base := runtime.NumGoroutine()

	// The largest payload passes.
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	d.publish(t, "big", 1, []byte(strings.Repeat("a", maxPayload-1)))
	assert.Len(t, by.recv(t, b).Payload(), maxPayload-1)

	// One byte more closes the publisher's connection and goes nowhere.
	mark := b.Events().Mark()
	d.c.Publish("big", 1, false, []byte(strings.Repeat("b", maxPayload))).WaitTimeout(waitBound)
	d.waitLost(t, b)
	e := waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	assert.Equal(t, fmt.Sprintf("payload of %d bytes, limit is %d", maxPayload, maxPayload-1), e.Reason)
	by.check(t, b)
	d.c.Disconnect(0)

	// A length field beyond Mochi's packet limit is refused before any of
	// it is read (Mochi would otherwise allocate what it claims).
	c := rawLogin(t, b, DemoDeviceID)
	mark = b.Events().Mark()
	_, err := c.Write([]byte{0x30, 0xff, 0xff, 0xff, 0x7f}) // PUBLISH of 256 MB
	require.NoError(t, err)
	rest, err := io.ReadAll(c)
	require.NoError(t, err, "the broker must close the connection")
	assert.Empty(t, rest)
	e = waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	assert.Equal(t, "packet too large", e.Reason)
	c.Close()
	by.check(t, b)
	waitGoroutines(t, base)
}

// rawLogin logs a device in over a raw socket and reads its CONNACK.
func rawLogin(t *testing.T, b *Broker, id string) net.Conn {
	t.Helper()
	_, pid, _ := b.reg.Device(id)
	auth := DemoAuthInfo
	if id == siblingID {
		auth = siblingAuth
	}
	mark := b.Events().Mark()
	c, err := net.Dial("tcp", b.MQTTAddr())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(waitBound)))
	_, err = c.Write(rawConnect("MQTT", 4, 0xC2, id, pid, auth))
	require.NoError(t, err)
	ack := make([]byte, 4)
	_, err = io.ReadFull(c, ack)
	require.NoError(t, err)
	require.Equal(t, []byte{0x20, 2, 0, 0}, ack)
	waitEvent(t, b, mark, Is(Connected, id))
	return c
}

func TestRefuseBadPacketLengths(t *testing.T) {
	b := startBroker(t, nil)
	by := newBystander(t, b)
	base := runtime.NumGoroutine()
	good := rawConnect("MQTT", 4, 0xC2, DemoDeviceID, DemoProductID, DemoAuthInfo)
	longer := append([]byte{0x10, byte(len(good) - 2 + 10)}, good[2:]...) // claims 10 bytes more than sent
	truncated := rawConnect("MQTT", 4, 0xC2, DemoDeviceID, DemoProductID, DemoAuthInfo)
	truncated = append([]byte{0x10, byte(len(truncated) - 2 - 5)}, truncated[2:len(truncated)-5]...) // the password cut short

	for _, tc := range []struct {
		name   string
		send   []byte
		reason string
	}{
		{"remaining length of 5 bytes", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, "malformed packet: variable byte integer out of range"},
		{"length longer than the data, then close", longer, "connection closed inside a packet"},
		{"truncated CONNECT", truncated, "malformed packet"},
		{"garbage before CONNECT", append([]byte("GET / HTTP/1.1\r\n\r\n"), good...), "malformed packet: flags"},
		{"zero bytes before CONNECT", append([]byte{0, 0}, good...), "protocol violation: first packet must be connect"},
		{"CONNECT longer than the packet limit", []byte{0x10, 0xff, 0xff, 0xff, 0x7f}, "packet too large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mark := b.Events().Mark()
			c, err := net.Dial("tcp", b.MQTTAddr())
			require.NoError(t, err)
			defer c.Close()
			require.NoError(t, c.SetDeadline(time.Now().Add(waitBound)))
			_, err = c.Write(tc.send)
			require.NoError(t, err)
			if tc.name == "length longer than the data, then close" {
				require.NoError(t, c.(*net.TCPConn).CloseWrite())
			}
			got := readUntilClosed(t, c, "the broker must close the connection")
			assert.Empty(t, got, "no CONNACK for a packet that is not a CONNECT")
			e := waitEvent(t, b, mark, Is(Refused, ""))
			assert.Equal(t, NoConnack, e.Code)
			assert.Contains(t, e.Reason, tc.reason)
			assert.Contains(t, e.Reason, "no valid CONNECT from 127.0.0.1:")
			assert.NotContains(t, e.String(), DemoAuthInfo)
			assert.False(t, b.Online(DemoDeviceID))
		})
	}

	t.Run("second CONNECT on the same connection", func(t *testing.T) {
		c := rawLogin(t, b, DemoDeviceID)
		mark := b.Events().Mark()
		_, err := c.Write(good)
		require.NoError(t, err)
		got, err := io.ReadAll(c)
		require.NoError(t, err, "the broker must close the connection")
		assert.Empty(t, got)
		e := waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
		assert.Equal(t, "protocol violation: second connect packet", e.Reason)
		assert.False(t, b.Online(DemoDeviceID))
	})
	t.Run("bad length after login", func(t *testing.T) {
		c := rawLogin(t, b, DemoDeviceID)
		mark := b.Events().Mark()
		_, err := c.Write([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01})
		require.NoError(t, err)
		got, err := io.ReadAll(c)
		require.NoError(t, err, "the broker must close the connection")
		assert.Empty(t, got)
		e := waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
		assert.Equal(t, "malformed packet: variable byte integer out of range", e.Reason)
	})
	t.Run("PUBLISH longer than its data after login, then close", func(t *testing.T) {
		c := rawLogin(t, b, DemoDeviceID)
		mark := b.Events().Mark()
		_, err := c.Write([]byte{0x30, 100, 0, 3, 'a', '/', 'b', 'x'})
		require.NoError(t, err)
		require.NoError(t, c.(*net.TCPConn).CloseWrite())
		_, err = io.ReadAll(c)
		require.NoError(t, err)
		e := waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
		assert.Contains(t, e.Reason, "EOF")
	})

	by.check(t, b)
	login(t, b, DemoDeviceID, DemoAuthInfo).c.Disconnect(100) // still serving logins
	waitGoroutines(t, base)
}

// A CONNECT that never completes is closed after the connect timeout (Mochi
// sets no deadline before the CONNECT), and Close and Restart do not wait
// for such connections.
func TestRefuseStalledConnect(t *testing.T) {
	b := startBrokerOpts(t, Options{ConnectTimeout: time.Second})
	by := newBystander(t, b)
	base := runtime.NumGoroutine()
	good := rawConnect("MQTT", 4, 0xC2, DemoDeviceID, DemoProductID, DemoAuthInfo)
	for _, send := range [][]byte{good[:7], {0x10, 0xff}, append([]byte{0x10, byte(len(good) - 2 + 10)}, good[2:]...)} {
		mark := b.Events().Mark()
		c, err := net.Dial("tcp", b.MQTTAddr())
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(waitBound)))
		_, err = c.Write(send)
		require.NoError(t, err)
		readUntilClosed(t, c, "the broker must close a stalled CONNECT")
		c.Close()
		e := waitEvent(t, b, mark, Is(Refused, ""))
		assert.Contains(t, e.Reason, "CONNECT not complete within the connect timeout")
		by.check(t, b)
	}
	waitGoroutines(t, base)
}

func TestCloseAndRestartEndStalledConnections(t *testing.T) {
	b := startBroker(t, nil) // default connect timeout: 10 s, longer than this test waits
	silent, err := net.Dial("tcp", b.MQTTAddr())
	require.NoError(t, err)
	defer silent.Close()
	half, err := net.Dial("tcp", b.MQTTAddr())
	require.NoError(t, err)
	defer half.Close()
	_, err = half.Write([]byte{0x10, 50, 0, 4})
	require.NoError(t, err)
	waitRaw(t, b, 2) // accepted by Mochi, not only by the kernel

	require.NoError(t, b.Restart(ctxBound(t)))
	for _, c := range []net.Conn{silent, half} {
		readUntilClosed(t, c, "a restart must close connections that have not logged in")
	}
	login(t, b, DemoDeviceID, DemoAuthInfo)

	stalled, err := net.Dial("tcp", b.MQTTAddr())
	require.NoError(t, err)
	defer stalled.Close()
	_, err = stalled.Write([]byte{0x10, 50})
	require.NoError(t, err)
	// Mochi's Server.Close waits for every connection; make sure ours is
	// being served before closing.
	waitRaw(t, b, 1)
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(DefaultConnectTimeout / 2): // the connect deadline must not be what ends it
		t.Fatalf("Close hung on a connection that never sent its CONNECT; last events:\n%s", lastEvents(b))
	}
}

// waitRaw waits until n connections that have not logged in are served.
func waitRaw(t *testing.T, b *Broker, n int) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		b.mu.Lock()
		got := 0
		for c := range b.raw {
			if !c.hooked.Load() {
				got++
			}
		}
		b.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections waiting for a CONNECT, want %d", got, n)
		}
		<-tick.C
	}
}

// readUntilClosed reads until the broker closes c; a reset counts as a
// close (the broker may close with bytes of ours still unread).
func readUntilClosed(t *testing.T, c net.Conn, msg string) []byte {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(waitBound)))
	got, err := io.ReadAll(c)
	if errors.Is(err, syscall.ECONNRESET) {
		err = nil
	}
	require.NoError(t, err, "%s (got %x)", msg, got)
	return got
}

// The studio listener and its sync API refuse the same things, and a
// legacy bystander notices nothing.
func TestRefuseStudio(t *testing.T) {
	b := startStudio(t)
	by := newBystander(t, b)
	base := runtime.NumGoroutine()
	d := studioLogin(t, b)
	own := "$sys/" + DemoProductID + "/" + DemoDeviceID + "/"
	got := d.subscribe(t, own+"cmd/request/+",
		"$sys/"+otherProductID+"/"+otherDeviceID+"/cmd/request/+", "$sys/"+DemoProductID+"/"+siblingID+"/#", "$sys/#", "#")
	assert.Equal(t, map[string]byte{own + "cmd/request/+": 0,
		"$sys/" + otherProductID + "/" + otherDeviceID + "/cmd/request/+": 0x80,
		"$sys/" + DemoProductID + "/" + siblingID + "/#":                  0x80, "$sys/#": 0x80, "#": 0x80}, got)

	prodTok, err := MakeToken("products/"+DemoProductID, DemoAccessKey, "sha1", time.Now().Add(time.Hour))
	require.NoError(t, err)
	forged, err := MakeToken("products/"+otherProductID, DemoAccessKey, "sha1", time.Now().Add(time.Hour))
	require.NoError(t, err)
	post := func(tok, query, body string) (int, string) {
		req, err := http.NewRequest("POST", "http://"+b.HTTPAddr()+"/datapoint/synccmds?"+query, strings.NewReader(body))
		require.NoError(t, err)
		if tok != "" {
			req.Header.Set("authorization", tok)
		}
		resp, err := testHTTP.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		var out studioEnvelope
		require.NoError(t, json.Unmarshal(raw, &out), "%s", raw)
		return out.Code, string(raw)
	}
	q := func(pid, name string) string { return "product_id=" + pid + "&device_name=" + name + "&timeout=1" }
	for _, tc := range []struct {
		name, tok, query, body string
		code                   int
	}{
		{"no token", "", q(DemoProductID, DemoDeviceID), "x", StudioAuthFailed},
		{"wrong token", "version=2018-10-31&res=x&et=1&method=md5&sign=x", q(DemoProductID, DemoDeviceID), "x", StudioAuthFailed},
		{"token of another product", forged, q(otherProductID, otherDeviceID), "x", StudioAuthFailed},
		{"own token, other product", prodTok, q(otherProductID, otherDeviceID), "x", StudioAuthFailed},
		{"own product, other product's device", prodTok, q(DemoProductID, otherDeviceID), "x", StudioNotFound},
		{"body of 64 KB", prodTok, q(DemoProductID, DemoDeviceID), strings.Repeat("x", maxPayload), StudioBadRequest},
	} {
		code, raw := post(tc.tok, tc.query, tc.body)
		assert.Equal(t, tc.code, code, "%s: %.300s", tc.name, raw)
		for _, s := range []string{otherAuthInfo, "other-board", DemoAccessKey, DemoDeviceKey} {
			assert.NotContains(t, raw, s, tc.name)
		}
	}

	// garbage on the studio port: closed, recorded, nobody else touched
	mark := b.Events().Mark()
	c, err := net.Dial("tcp", b.StudioAddr())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x01})
	require.NoError(t, err)
	assert.Empty(t, readUntilClosed(t, c, "the studio listener must close the connection"))
	e := waitEvent(t, b, mark, Is(Refused, ""))
	assert.Contains(t, e.Reason, "variable byte integer out of range")
	assert.True(t, b.Online(DemoDeviceID), "the studio device stays online")
	select {
	case err := <-d.lost:
		t.Fatalf("studio device lost its connection: %v", err)
	default:
	}
	by.check(t, b)
	d.c.Disconnect(100)
	testHTTP.CloseIdleConnections() // keep-alive connections are not leaks
	waitGoroutines(t, base)
}

// A request whose body stalls is answered errno 6 after the read timeout
// and does not hold up Close.
func TestRefuseStalledHTTPBody(t *testing.T) {
	b, err := New(Options{Registry: testRegistry(t), MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	b.httpReadTimeout = time.Second
	require.NoError(t, b.Start())
	t.Cleanup(func() { _ = b.Close() })
	by := newBystander(t, b)

	c, err := net.Dial("tcp", b.HTTPAddr())
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "POST /cmds?device_id=%s HTTP/1.1\r\nHost: x\r\napi-key: %s\r\nContent-Length: 100\r\n\r\nonly-part", siblingID, DemoMasterKey)
	require.NoError(t, err)
	got := string(readUntilClosed(t, c, "the API must give up on a stalled body"))
	assert.Contains(t, got, "200 OK")
	assert.Contains(t, got, `"errno":6`)
	assert.Contains(t, got, "reading body")
	by.check(t, b) // the partial command was never sent

	// one more that stalls until Close
	c2, err := net.Dial("tcp", b.HTTPAddr())
	require.NoError(t, err)
	defer c2.Close()
	_, err = fmt.Fprintf(c2, "POST /mqtt?topic=a HTTP/1.1\r\nHost: x\r\napi-key: %s\r\nContent-Length: 100\r\n\r\nx", DemoMasterKey)
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- b.Close() }()
	select {
	case <-done:
	case <-time.After(waitBound):
		t.Fatal("Close hung on a stalled HTTP request")
	}
}

// A client that stops reading fills its outbound queue; what Mochi then
// drops is reported, not lost unseen.
func TestPublishDroppedIsReported(t *testing.T) {
	b, err := New(Options{Registry: testRegistry(t), MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", ClientWritesPending: 1})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { _ = b.Close() })
	c := rawLogin(t, b, DemoDeviceID)
	mark := b.Events().Mark()
	topic := "stuck"
	sub := []byte{0x82, byte(2 + 2 + len(topic) + 1), 0, 1, 0, byte(len(topic))}
	sub = append(append(sub, topic...), 0)
	_, err = c.Write(sub)
	require.NoError(t, err)
	waitEvent(t, b, mark, Is(Subscribed, DemoDeviceID))
	// The device never reads again: the socket buffers fill, then the queue.
	payload := make([]byte, 32<<10)
	for range 1000 {
		require.NoError(t, b.PublishCustom(DemoProductID, topic, payload))
	}
	e := waitEvent(t, b, mark, Is(PublishDropped, DemoDeviceID))
	assert.Equal(t, topic, e.Topic)
	assert.Equal(t, "client queue full", e.Reason)
}
