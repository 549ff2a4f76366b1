package broker

// Issue 15: each defect found by attacking the broker on loopback,
// reproduced here and bounded. Every test prints its figures (RSS, live
// heap and goroutines before and after; the latency of another tenant
// during the abuse) with t.Logf; run with -v to see them.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/internal/testutil"
)

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// connectAndVanish logs id in over a raw socket and goes away at once with
// a reset (SO_LINGER 0), not waiting for the CONNACK.
func connectAndVanish(addr, id, pid, pass string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	if _, err := c.Write(rawConnect("MQTT", 4, 0xC2, id, pid, pass)); err != nil {
		c.Close()
		return err
	}
	_ = c.(*net.TCPConn).SetLinger(0)
	return c.Close()
}

// Item 1: a login whose CONNACK cannot be written (Mochi then skips
// OnDisconnect) used to leave the client, its 8,192-packet queue and the
// device's "online" state behind for ever (70 KB each: 60,000 logins took
// RSS from 13 to 377 MB; a qos=0 command then answered errno 0 and stayed
// at status 1). Now every such connection is released like any other.
func TestAbuseFailedConnackLeaksNothing(t *testing.T) {
	b := startBroker(t, nil)
	by := newBystander(t, b)
	tn := startTenant(t, b)
	fig := measure(t, "failed CONNACK")
	mark := b.Events().Mark()

	// Deterministic: the connection is closed between OnSessionEstablish
	// and the CONNACK, so the CONNACK write fails every time.
	closeIt := func(cl *mqtt.Client) {
		if cl.ID == DemoDeviceID {
			_ = cl.Net.Conn.Close()
		}
	}
	b.beforeConnack.Store(&closeIt)
	const n = 1000
	start := time.Now()
	for range n {
		c, err := net.Dial("tcp", b.MQTTAddr())
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(waitBound)))
		_, err = c.Write(rawConnect("MQTT", 4, 0xC2, DemoDeviceID, DemoProductID, DemoAuthInfo))
		require.NoError(t, err)
		_, _ = io.ReadAll(c) // the broker closes it without a CONNACK
		c.Close()
	}
	// Mochi ends each connection after its failed CONNACK; the listener
	// then releases it. Wait (bounded) for the last release. Each failed
	// login ends the device's session: kicked by the next login, or
	// disconnected if none came first.
	ended := func() int {
		return countEvents(b, mark, func(e Event) bool {
			return e.DeviceID == DemoDeviceID && (e.Kind == Disconnected || e.Kind == Kicked)
		})
	}
	require.Eventually(t, func() bool { return !b.Online(DemoDeviceID) && b.connCount() == 2 && ended() == n },
		waitBound, 10*time.Millisecond, "connections left: %d, ended: %d of %d", b.connCount(), ended(), n)
	failedIn := time.Since(start)
	b.beforeConnack.Store(nil)

	// Real resets, two clients fighting over one id.
	const storm = 1000
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	start = time.Now()
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range storm / 2 {
				if err := connectAndVanish(b.MQTTAddr(), DemoDeviceID, DemoProductID, DemoAuthInfo); err != nil {
					errs <- fmt.Errorf("worker %d, login %d: %w", w, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
	stormIn := time.Since(start)

	// Whole logins, two clients taking the id from each other: each reads
	// its CONNACK (or the close that a takeover races it with).
	start = time.Now()
	errs = make(chan error, 2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range storm / 4 {
				c, err := net.Dial("tcp", b.MQTTAddr())
				if err != nil {
					errs <- fmt.Errorf("worker %d, login %d: %w", w, i, err)
					return
				}
				_ = c.SetDeadline(time.Now().Add(waitBound))
				_, _ = c.Write(rawConnect("MQTT", 4, 0xC2, DemoDeviceID, DemoProductID, DemoAuthInfo))
				ack := make([]byte, 4)
				_, _ = io.ReadFull(c, ack)
				c.Close()
			}
		}()
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
	fightIn := time.Since(start)
	// Bounded wait until every connection of the storm is gone.
	require.Eventually(t, func() bool { return !b.Online(DemoDeviceID) && b.connCount() == 2 },
		waitBound, 10*time.Millisecond, "connections left: %d", b.connCount())

	_, ok := b.srv.Clients.Get(DemoDeviceID)
	assert.False(t, ok, "Mochi's client of a clean session is gone too")
	errno, _, _ := apiPost(t, b, "/cmds?device_id="+DemoDeviceID, []byte("on"))
	assert.Equal(t, ErrnoNotOnline, errno, "a qos=0 command to the device is refused, not kept for ever")
	growth := fig.done(fmt.Sprintf("%d failed CONNACKs in %v, %d reset logins (two clients, one id) in %v, %d whole logins (two clients taking one id) in %v; %s",
		n, failedIn.Round(time.Millisecond), storm, stormIn.Round(time.Millisecond), storm/2, fightIn.Round(time.Millisecond), tn.report()))
	assert.Less(t, growth, int64(8<<20), "live heap grew by %d bytes", growth)
	by.check(t, b)

	t0 := time.Now()
	require.NoError(t, b.Close())
	t.Logf("Close took %v", time.Since(t0).Round(time.Millisecond))
	assert.Less(t, time.Since(t0), 3*time.Second)
}

// connCount is the number of connections the broker holds.
func (b *Broker) connCount() int {
	n := 0
	b.clients.Range(func(_, _ any) bool { n++; return true })
	return n
}

// Item 2: each kept command used to walk every pending command (and for
// each its device's whole list) under the broker's one lock: after
// 100,000 qos=1 commands to one offline device each POST took 3.5 s and
// another product's login waited 10 s. Now a command costs O(1) under its
// device's lock, and the queues are bounded.
func TestAbusePendingCommandsBounded(t *testing.T) {
	const perDevice = 100_000 // the figure; the default bound is 1,000
	b := startBrokerOpts(t, Options{Limits: Limits{PendingPerDevice: perDevice, PendingBytesPerDevice: 64 << 20, PendingTotal: 2 * perDevice}})
	tn := startTenant(t, b)
	fig := measure(t, "kept commands")
	const batch = 2000
	timeBatch := func() time.Duration {
		t0 := time.Now()
		for range batch {
			_, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{QoS: 1, Timeout: time.Hour})
			require.NoError(t, err)
		}
		return time.Since(t0)
	}
	first := timeBatch()
	for b.pendN.Load() < perDevice-batch {
		timeBatch()
	}
	last := timeBatch()
	require.EqualValues(t, perDevice, b.pendN.Load())
	// The bound: the next one is refused, over the API with errno 14.
	errno, msg, _ := apiPost(t, b, "/cmds?device_id="+DemoDeviceID+"&qos=1&timeout=3600", []byte("on"))
	assert.Equal(t, ErrnoQueueFull, errno)
	assert.Contains(t, msg, fmt.Sprintf("limit is %d commands", perDevice))
	_, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{QoS: 1, Timeout: time.Hour})
	assert.ErrorIs(t, err, ErrQueueFull)
	// Another device of the same product is not refused, and over the API
	// a kept command costs what it cost on an empty broker.
	t0 := time.Now()
	errno, _, _ = apiPost(t, b, "/cmds?device_id="+siblingID+"&qos=1&timeout=3600", []byte("on"))
	post := time.Since(t0)
	require.Equal(t, ErrnoOK, errno)
	worst := tn.maxLatency()
	fig.done(fmt.Sprintf("%d kept commands to one offline device: first %d took %v (%v each), last %d %v (%v each); POST /cmds qos=1 then %v; %s",
		perDevice, batch, first.Round(time.Millisecond), (first / batch).Round(time.Microsecond),
		batch, last.Round(time.Millisecond), (last / batch).Round(time.Microsecond), post.Round(time.Microsecond), tn.report()))
	assert.Less(t, last, 4*first+200*time.Millisecond, "the cost of a command does not grow with the queue")
	assert.Less(t, worst, 2*time.Second, "the other tenant waited %v", worst)
}

// Pending bounds by bytes and broker-wide: a command past a bound is
// refused and nothing kept is dropped; an expired command makes room.
func TestPendingBoundsBytesAndTotal(t *testing.T) {
	b := startBrokerOpts(t, Options{Limits: Limits{PendingBytesPerDevice: 4 * 60000, PendingTotal: 6, PendingBytesTotal: 1 << 20}})
	big := make([]byte, 60000)
	for range 4 {
		_, err := b.SendCommand(DemoDeviceID, big, CommandOptions{QoS: 1, Timeout: time.Hour})
		require.NoError(t, err)
	}
	_, err := b.SendCommand(DemoDeviceID, big, CommandOptions{QoS: 1, Timeout: time.Hour})
	require.ErrorIs(t, err, ErrQueueFull)
	assert.Contains(t, err.Error(), "limit is 1000 commands or 240000 bytes")
	_, err = b.SendCommand(DemoDeviceID, []byte("small"), CommandOptions{QoS: 1, Timeout: time.Hour})
	require.ErrorIs(t, err, ErrQueueFull, "the byte bound holds for small commands too")

	_, err = b.SendCommand(siblingID, []byte("a"), CommandOptions{QoS: 1, Timeout: time.Hour})
	require.NoError(t, err)
	short, err := b.SendCommand(siblingID, []byte("b"), CommandOptions{Timeout: time.Millisecond})
	require.NoError(t, err)
	_, err = b.SendCommand(siblingID, []byte("c"), CommandOptions{QoS: 1, Timeout: time.Hour})
	require.ErrorIs(t, err, ErrQueueFull, "6 kept in the broker")
	assert.Contains(t, err.Error(), "the broker holds 6 kept commands, limit is 6")

	// Once the short one's timeout has passed, a sweep frees its place.
	require.Eventually(t, func() bool {
		info, _ := b.Command(short)
		return info.Status == CmdTimedOut
	}, waitBound, 5*time.Millisecond)
	b.sweepAt.Store(0)
	mark := b.Events().Mark()
	_, err = b.SendCommand(siblingID, []byte("c"), CommandOptions{QoS: 1, Timeout: time.Hour})
	require.NoError(t, err)
	waitEvent(t, b, mark, ForCommand(CommandExpired, short))
	assert.EqualValues(t, 6, b.pendN.Load())
}

// Item 3: a published event used to keep the payload and, through the
// topic string, the whole packet buffer Mochi read it into (4,500 large
// studio messages left 2.18 GB live). Now an event holds at most its
// bounded copies.
func TestAbuseEventsHoldNoPacketBuffers(t *testing.T) {
	b := startBroker(t, nil)
	tn := startTenant(t, b)
	fig := measure(t, "event ring")
	c := rawLogin(t, b, DemoDeviceID)
	mark := b.Events().Mark()
	payload := []byte(strings.Repeat("x", 60000))
	const n = 3000
	var buf []byte
	for i := range n {
		buf = append(buf[:0], rawPublish(fmt.Sprintf("big/%d", i), payload)...)
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(waitBound)))
		_, err := c.Write(buf)
		require.NoError(t, err)
	}
	e := waitEvent(t, b, mark, func(e Event) bool { return e.Kind == Published && e.Topic == fmt.Sprintf("big/%d", n-1) })
	assert.Len(t, e.Payload, eventPayloadMax)
	assert.Equal(t, len(payload), e.PayloadLen)
	c.Close()
	waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	growth := fig.done(fmt.Sprintf("%d publishes of %d bytes (%d MB) through the feed (keeps %d events); %s",
		n, len(payload), n*len(payload)>>20, feedKeep, tn.report()))
	assert.Less(t, growth, int64(16<<20), "the feed holds bounded copies only")
}

// Item 4: a device that stopped reading (umqtt's keepalive 0: nothing
// ever times it out) got commands answered errno 0 that were never read,
// then every POST /cmds hung for ever with a goroutine each while the
// device showed online. Now every write has a deadline: the device is
// disconnected and shown offline, and the answers say what happened.
func TestAbuseStalledReaderGetsWriteDeadline(t *testing.T) {
	b := startBrokerOpts(t, Options{Limits: Limits{WriteTimeout: time.Second}})
	tn := startTenant(t, b)
	fig := measure(t, "stalled reader")
	c := dialSmallBuffer(t, b.MQTTAddr())
	mark := b.Events().Mark()
	require.NoError(t, c.SetDeadline(time.Now().Add(waitBound)))
	_, err := c.Write(rawConnectKA("MQTT", 4, 0xC2, DemoDeviceID, DemoProductID, DemoAuthInfo, 0))
	require.NoError(t, err)
	ack := make([]byte, 4)
	_, err = io.ReadFull(c, ack)
	require.NoError(t, err)
	waitEvent(t, b, mark, Is(Connected, DemoDeviceID))
	// The device never reads again.
	body := make([]byte, 60000)
	written, refusedAfter := 0, time.Duration(0)
	for range 400 {
		t0 := time.Now()
		errno, msg, _ := apiPost(t, b, "/cmds?device_id="+DemoDeviceID, body)
		if errno != ErrnoOK {
			refusedAfter = time.Since(t0)
			assert.Equal(t, ErrnoNotOnline, errno, msg)
			break
		}
		written++
	}
	require.NotZero(t, refusedAfter, "a command was refused once the device took no more data")
	e := waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	assert.Contains(t, e.Reason, "write timeout")
	assert.False(t, b.Online(DemoDeviceID))
	dev := apiGet(t, b, "/devices/"+DemoDeviceID)["data"].(map[string]any)
	assert.Equal(t, false, dev["online"])

	t0 := time.Now()
	errno, _, _ := apiPost(t, b, "/cmds?device_id="+DemoDeviceID, []byte("on"))
	assert.Equal(t, ErrnoNotOnline, errno)
	offlineAnswer := time.Since(t0)
	assert.Less(t, offlineAnswer, time.Second, "no more waiting once the device is offline")
	errno, _, data := apiPost(t, b, "/cmds?device_id="+DemoDeviceID+"&qos=1&timeout=3600", []byte("on"))
	require.Equal(t, ErrnoOK, errno, "qos=1: kept")
	info, _ := b.Command(data["cmd_uuid"].(string))
	assert.Equal(t, CmdCreated, info.Status)
	c.Close()
	fig.done(fmt.Sprintf("%d commands of %d bytes written before the pipe was full, the next refused after %v, then %v; %s",
		written, len(body), refusedAfter.Round(time.Millisecond), offlineAnswer.Round(time.Millisecond), tn.report()))
}

// Item 5: datastreams per device were unbounded (600,000 in 6.5 s took
// 90 MB and made GET /devices 37 MB). Now a $dp that would pass the bound
// is rejected whole, and the API answer stays small.
func TestAbuseDatastreamsBounded(t *testing.T) {
	b := startBroker(t, nil)
	tn := startTenant(t, b)
	fig := measure(t, "datastreams")
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	mark := b.Events().Mark()
	const perMsg, msgs = 200, 8
	for m := range msgs {
		var sb strings.Builder
		sb.WriteString("{")
		for i := range perMsg {
			if i > 0 {
				sb.WriteString(",")
			}
			fmt.Fprintf(&sb, `"s%d_%d":%d`, m, i, i)
		}
		sb.WriteString("}")
		if m < b.limits.StreamsPerDevice/perMsg {
			d.publish(t, "$dp", 1, dpPayload(3, sb.String()))
			continue
		}
		// Past the bound: refused, so not acknowledged; the device is
		// dropped and logs in again.
		dis := b.Events().Mark()
		d.c.Publish("$dp", 1, false, dpPayload(3, sb.String()))
		d.waitLost(t, b)
		waitEvent(t, b, dis, Is(Disconnected, DemoDeviceID))
		d = login(t, b, DemoDeviceID, DemoAuthInfo)
	}
	limit := b.limits.StreamsPerDevice
	assert.Len(t, b.Datapoints(DemoDeviceID), limit)
	r := waitEvent(t, b, mark, Is(DatapointRejected, DemoDeviceID))
	assert.Contains(t, r.Reason, "datastream limit")
	assert.Equal(t, (msgs - limit/perMsg), countEvents(b, mark, Is(DatapointRejected, DemoDeviceID)))

	t0 := time.Now()
	req, err := http.NewRequest("GET", "http://"+b.HTTPAddr()+"/devices/"+DemoDeviceID, nil)
	require.NoError(t, err)
	req.Header.Set("api-key", DemoMasterKey)
	resp, err := plainHTTP.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	took := time.Since(t0)
	assert.Less(t, len(body), 100<<10)
	mark = b.Events().Mark()
	d.c.Disconnect(0)
	waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	fig.done(fmt.Sprintf("%d datastreams offered, %d kept; GET /devices/{id}: %d bytes in %v; %s",
		perMsg*msgs, limit, len(body), took.Round(time.Microsecond), tn.report()))
}

// Points per stream and bytes per device: the oldest points go.
func TestDatapointBoundsDropOldest(t *testing.T) {
	b := startBrokerOpts(t, Options{Limits: Limits{PointsPerStream: 5, PointBytesPerDevice: 3000}})
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	for i := range 8 {
		d.publish(t, "$dp", 1, dpPayload(3, fmt.Sprintf(`{"n":%d}`, i)))
	}
	pts := b.Datapoints(DemoDeviceID)["n"]
	require.Len(t, pts, 5)
	assert.Equal(t, 3.0, pts[0].Value, "the oldest went")
	long := strings.Repeat("y", 1000)
	for i := range 3 {
		d.publish(t, "$dp", 1, dpPayload(3, fmt.Sprintf(`{"t%d":%q}`, i, long)))
	}
	all := b.Datapoints(DemoDeviceID)
	d0 := b.lookupDev(DemoDeviceID)
	d0.mu.Lock()
	bytes := d0.ptBytes
	d0.mu.Unlock()
	assert.LessOrEqual(t, bytes, int64(3000))
	assert.NotContains(t, all, "n", "the device's oldest points went first")
	assert.Contains(t, all, "t2")
}

// Item 6: one subscriber that never reads used to pin 8,192 × its payload
// size (986 MB live from one legacy device). Now the bytes queued to one
// client are bounded: past Limits.ClientQueueBytes it is disconnected.
func TestAbuseSlowSubscriberIsDropped(t *testing.T) {
	b := startBroker(t, nil)
	by := newBystander(t, b)
	tn := startTenant(t, b)
	fig := measure(t, "slow subscriber")
	c := rawLogin(t, b, DemoDeviceID)
	mark := b.Events().Mark()
	_, err := c.Write(rawSubscribe("stuck"))
	require.NoError(t, err)
	waitEvent(t, b, mark, Is(Subscribed, DemoDeviceID))
	// The device never reads again.
	payload := make([]byte, 60000)
	sent := 0
	for ; sent < 2000 && b.Online(DemoDeviceID); sent++ {
		require.NoError(t, b.PublishCustom(DemoProductID, "stuck", payload))
	}
	e := waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	assert.Contains(t, e.Reason, "slow reader")
	c.Close()
	growth := fig.done(fmt.Sprintf("%d messages of %d bytes (%d MB) published before the reader was dropped (limit %d MB): %q; %s",
		sent, len(payload), sent*len(payload)>>20, b.limits.ClientQueueBytes>>20, e.Reason, tn.report()))
	assert.Less(t, sent*len(payload), int(b.limits.ClientQueueBytes)+32<<20, "dropped near the bound")
	assert.Less(t, growth, int64(16<<20))
	by.check(t, b)
}

// Item 7, in memory (the rig's broker restart): commands answered with no
// error while the broker restarts under a connected device all arrive.
func TestRestartLosesNoAcceptedCommand(t *testing.T) {
	b := startBroker(t, nil)
	accepted := map[string]bool{}
	got := map[string]bool{}
	var d *device
	connect := func() {
		d = login(t, b, DemoDeviceID, DemoAuthInfo)
	}
	drain := func() {
		for {
			select {
			case m := <-d.msgs:
				got[strings.TrimPrefix(m.Topic(), "$creq/")] = true
			default:
				return
			}
		}
	}
	connect()
	for round := range 3 {
		stop := make(chan struct{})
		done := make(chan struct{})
		var mu sync.Mutex
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := b.SendCommand(DemoDeviceID, []byte(fmt.Sprintf("r%d-%d", round, i)), CommandOptions{QoS: 1, Timeout: time.Hour})
				if err == nil {
					mu.Lock()
					accepted[id] = true
					mu.Unlock()
				} else if !errors.Is(err, ErrQueueFull) {
					t.Errorf("qos=1 command refused: %v", err)
					return
				}
			}
		}()
		waitEvent(t, b, b.Events().Mark(), Is(CommandSent, DemoDeviceID))
		require.NoError(t, b.Restart(ctxBound(t)))
		close(stop)
		<-done
		d.waitLost(t, b)
		drain()
		connect()
	}
	// Everything accepted arrives: before a restart, or kept for the next login.
	deadline := time.After(waitBound)
	for len(got) < len(accepted) {
		select {
		case m := <-d.msgs:
			got[strings.TrimPrefix(m.Topic(), "$creq/")] = true
		case <-deadline:
			missing := 0
			for id := range accepted {
				if !got[id] {
					missing++
				}
			}
			t.Fatalf("%d of %d accepted commands never arrived", missing, len(accepted))
		}
	}
	for id := range accepted {
		assert.True(t, got[id], "command %s", id)
	}
	t.Logf("%d qos=1 commands accepted across 3 restarts, all delivered", len(accepted))
}

// Item 8: before authentication, every refusal of the sync command API
// is the same text, whatever the product, the device or the signature.
func TestUniformErrorsBeforeAuthentication(t *testing.T) {
	b := startBrokerOpts(t, Options{StudioAddr: "127.0.0.1:0"})
	et := time.Now().Add(time.Hour)
	good, err := MakeToken("products/"+DemoProductID, DemoAccessKey, "sha256", et)
	require.NoError(t, err)
	expired, err := MakeToken("products/"+DemoProductID, DemoAccessKey, "sha256", time.Now().Add(-time.Hour))
	require.NoError(t, err)
	wrongKey, err := MakeToken("products/"+DemoProductID, "d3Jvbmcta2V5", "sha256", et)
	require.NoError(t, err)
	devTok, err := MakeToken("products/"+DemoProductID+"/devices/nobody", DemoDeviceKey, "sha256", et)
	require.NoError(t, err)
	cases := []struct{ name, pid, dev, tok string }{
		{"no token", DemoProductID, DemoDeviceID, ""},
		{"garbage token", DemoProductID, DemoDeviceID, "x"},
		{"unknown product", "123456", DemoDeviceID, good},
		{"another product", otherProductID, otherDeviceID, good},
		{"unknown device, device token", DemoProductID, "nobody", devTok},
		{"wrong signature", DemoProductID, DemoDeviceID, wrongKey},
		{"expired", DemoProductID, DemoDeviceID, expired},
	}
	var first string
	for _, c := range cases {
		req, err := http.NewRequest("POST", "http://"+b.HTTPAddr()+"/datapoint/synccmds?product_id="+c.pid+"&device_name="+c.dev, strings.NewReader("on"))
		require.NoError(t, err)
		if c.tok != "" {
			req.Header.Set("authorization", c.tok)
		}
		resp, err := plainHTTP.Do(req)
		require.NoError(t, err)
		var env studioEnvelope
		require.NoError(t, jsonDecode(resp, &env))
		resp.Body.Close()
		assert.Equal(t, StudioAuthFailed, env.Code, c.name)
		got := fmt.Sprintf("%d %s %v", env.Code, env.Msg, env.Data)
		if first == "" {
			first = got
		}
		assert.Equal(t, first, got, "%s: the answer tells it apart", c.name)
	}
	t.Logf("every unauthenticated refusal: %q", first)
}

// Item 8: a secret typed into the wrong CONNECT field (the master key as
// user name, the auth_info as client id) reaches neither the feed nor the
// log; nor does one in a topic or a payload.
func TestSecretsMaskedInEveryEventField(t *testing.T) {
	var log testutil.Buffer
	b := startBrokerOpts(t, Options{Logger: slog.New(slog.NewTextHandler(&log, nil))})
	mark := b.Events().Mark()
	got := rawReply(t, b.MQTTAddr(), rawConnect("MQTT", 4, 0xC2, DemoAuthInfo, DemoMasterKey, "whatever"))
	assert.NotEmpty(t, got)
	waitEvent(t, b, mark, Is(Refused, ""))
	got = rawReply(t, b.MQTTAddr(), rawConnect("MQTT", 4, 0xC2, DemoDeviceID, DemoProductID, otherMasterKey+"x"))
	assert.NotEmpty(t, got)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	d.publish(t, "chat", 1, []byte("my keys are "+DemoMasterKey+" and "+DemoAuthInfo))
	d.publish(t, "$dp", 1, dpPayload(3, `{"leak":"`+otherAuthInfo+`"}`))
	waitEvent(t, b, mark, Is(DatapointReceived, DemoDeviceID))
	for _, e := range b.Events().Since(mark) {
		s := fmt.Sprintf("%#v %s", e, e.Payload)
		for _, sec := range []string{DemoMasterKey, DemoAuthInfo, otherMasterKey, otherAuthInfo} {
			assert.NotContains(t, s, sec, "event %s", e)
		}
	}
	for _, sec := range []string{DemoMasterKey, DemoAuthInfo, otherMasterKey, otherAuthInfo} {
		assert.NotContains(t, log.String(), sec)
	}
	assert.Contains(t, log.String(), "kind=refused")
	assert.Contains(t, log.String(), "****")
}

// A qos=0 command sent while its device is between CONNECT and CONNACK
// waits for the CONNACK: it is answered once written, or "not online" if
// the login fails; it never stays at status 1.
func TestCommandDuringLoginWaitsForConnack(t *testing.T) {
	b := startBroker(t, nil)
	type answer struct {
		id  string
		err error
	}
	answers := make(chan answer, 1)
	var fail atomic.Bool
	hook := func(cl *mqtt.Client) {
		go func() {
			id, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{})
			answers <- answer{id, err}
		}()
		d := b.lookupDev(DemoDeviceID)
		assert.Eventually(t, func() bool { // the command is queued before the CONNACK goes out
			d.mu.Lock()
			defer d.mu.Unlock()
			return len(d.queue) == 1
		}, waitBound, time.Millisecond)
		if fail.Load() {
			_ = cl.Net.Conn.Close()
		}
	}
	b.beforeConnack.Store(&hook)
	d := login(t, b, DemoDeviceID, DemoAuthInfo)
	next := func() answer {
		select {
		case a := <-answers:
			return a
		case <-time.After(waitBound):
			t.Fatalf("no answer to the command within %s", waitBound)
			return answer{}
		}
	}
	a := next()
	require.NoError(t, a.err)
	m := d.recv(t, b)
	assert.Equal(t, "$creq/"+a.id, m.Topic())
	info, _ := b.Command(a.id)
	assert.Equal(t, CmdSent, info.Status)
	d.c.Disconnect(0)

	fail.Store(true)
	mark := b.Events().Mark()
	_, err := dial(t, b.MQTTAddr(), DemoDeviceID, DemoProductID, DemoAuthInfo)
	require.Error(t, err)
	a = next()
	require.ErrorIs(t, a.err, ErrOffline)
	waitEvent(t, b, mark, Is(Disconnected, DemoDeviceID))
	assert.Zero(t, b.pendN.Load(), "nothing left in the queue")
}
