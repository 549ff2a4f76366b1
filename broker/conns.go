package broker

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// devState is everything the broker holds for one device, under the
// device's own lock: its current connection, its kept commands and its
// data points. Operations on one device never wait for another's.
type devState struct {
	id, pid string

	mu    sync.Mutex
	conn  *conn      // the current connection (nil = offline)
	queue []*command // commands waiting for the next CONNACK, in order
	// unacked: qos=1 commands with a timeout that were sent and not yet
	// answered, in order: sent again at the next login (counted in pendN).
	unacked []*command
	// pendN/pendB count the queue's commands (kept or waiting) against
	// Limits.PendingPerDevice and PendingBytesPerDevice.
	pendN int
	pendB int64

	streams  map[string]*stream
	nPoints  int
	ptBytes  int64
	pointSeq uint64 // arrival order of the device's points (also their store keys)
}

// lookupDev returns the device's state, or nil if it never had any.
func (b *Broker) lookupDev(id string) *devState {
	if v, ok := b.devs.Load(id); ok {
		return v.(*devState)
	}
	return nil
}

// device returns the state of a registered device (pid is its product),
// creating it on first use. The id is copied: it may be a view into a
// packet buffer.
func (b *Broker) device(id, pid string) *devState {
	if d := b.lookupDev(id); d != nil {
		return d
	}
	d := &devState{id: strings.Clone(id), pid: strings.Clone(pid), streams: map[string]*stream{}}
	v, _ := b.devs.LoadOrStore(d.id, d)
	return v.(*devState)
}

// conn is one MQTT connection of a device, from OnSessionEstablish until it
// is released (exactly once, whichever way it ends).
type conn struct {
	cl     *mqtt.Client
	dev    *devState
	studio bool
	done   chan struct{} // closed once released
	// queued: bytes of messages of queueAccountMin bytes or more queued
	// to this client and not yet written (Limits.ClientQueueBytes).
	queued atomic.Int64

	// guarded by dev.mu
	ready    bool   // CONNACK sent: PUBLISHes may go out
	reason   string // why the server closed it, if it did
	kicked   bool   // replaced by a newer login: its end is not "offline"
	released bool
}

// connOf is the live connection of a Mochi client (nil for the inline
// client, a session loaded from the store, or a connection already
// released).
func (b *Broker) connOf(cl *mqtt.Client) *conn {
	if v, ok := b.clients.Load(cl); ok {
		return v.(*conn)
	}
	return nil
}

func (b *Broker) productOf(cl *mqtt.Client) string {
	if c := b.connOf(cl); c != nil {
		return c.dev.pid
	}
	return ""
}

// setReason records why the server ends c (the first reason wins).
func (c *conn) setReason(reason string) {
	c.dev.mu.Lock()
	if c.reason == "" {
		c.reason = reason
	}
	c.dev.mu.Unlock()
}

// sessionEstablish runs before Mochi takes over an older session with the
// same client id and before the CONNACK. The older connection is closed
// here, by a plain TCP close as OneNET does (Mochi would send a DISCONNECT,
// which 3.1.1 clients do not expect), and marked so its end neither reports
// the device offline nor does anything on its behalf.
func (b *Broker) sessionEstablish(cl *mqtt.Client) {
	_, pid, _ := b.reg.Device(cl.ID)
	d := b.device(cl.ID, pid)
	c := &conn{cl: cl, dev: d, studio: isStudio(cl), done: make(chan struct{})}
	if rc, ok := cl.Net.Conn.(*rawConn); ok {
		rc.conn.Store(c) // the listener releases c if Mochi never reports its end
	}
	b.clients.Store(cl, c)
	d.mu.Lock()
	old := d.conn
	d.conn = c
	if old != nil {
		old.kicked = true
		old.reason = "duplicate login from " + cl.Net.Remote
	}
	d.mu.Unlock()
	if old != nil {
		b.emit(Event{Kind: Kicked, DeviceID: d.id, ProductID: d.pid, Reason: "duplicate login from " + cl.Net.Remote})
		old.cl.Stop(errors.New("duplicate login from " + cl.Net.Remote))
	}
	if f := b.beforeConnack.Load(); f != nil {
		(*f)(cl)
	}
}

// sessionEstablished runs after the CONNACK: the device is online, and
// gets what was kept for it.
func (b *Broker) sessionEstablished(cl *mqtt.Client) {
	c := b.connOf(cl)
	if c == nil {
		return
	}
	d := c.dev
	d.mu.Lock()
	if d.conn != c || c.released {
		d.mu.Unlock()
		return
	}
	c.ready = true
	batch := d.takeForLoginLocked()
	d.mu.Unlock()
	b.emit(Event{Kind: Connected, DeviceID: d.id, ProductID: d.pid, Reason: "from " + cl.Net.Remote})
	b.deliverQueued(c, batch)
}

// disconnected is Mochi's OnDisconnect.
func (b *Broker) disconnected(cl *mqtt.Client, err error) {
	if c := b.connOf(cl); c != nil {
		b.release(c, err, false)
	}
}

// release forgets a connection: every path a connection can end by comes
// here once (OnDisconnect; or, when Mochi skips OnDisconnect because the
// CONNACK could not be written, the listener after Mochi gave the
// connection up: mochiSkipped). A device whose current connection this
// was is offline afterwards: event disconnected, and commands that were
// waiting for its CONNACK without being kept are answered "not online".
func (b *Broker) release(c *conn, err error, mochiSkipped bool) {
	d := c.dev
	d.mu.Lock()
	if c.released {
		d.mu.Unlock()
		return
	}
	c.released = true
	offline := d.conn == c
	var waiting []*command
	if offline {
		d.conn = nil
		waiting = d.dropWaitingLocked(b)
		b.forgetDeadSession(d.id)
	}
	reason, ready := c.reason, c.ready
	d.mu.Unlock()
	b.clients.Delete(c.cl)
	defer close(c.done) // after the event, so waiters see it logged
	for _, cmd := range waiting {
		cmd.resolve(ErrOffline)
	}
	if !offline {
		return // kicked by a newer login: the device stays online
	}
	if reason == "" {
		switch {
		case mochiSkipped && !ready:
			reason = "connection ended before its CONNACK was written"
			if err != nil {
				reason += ": " + err.Error()
			}
		case err == nil || errors.Is(err, io.EOF) && c.cl.StopCause() == nil:
			reason = "connection closed by device"
		default:
			reason = err.Error()
		}
		if cause := c.cl.StopCause(); cause != nil && !mochiSkipped {
			reason = cause.Error()
		}
	}
	b.emit(Event{Kind: Disconnected, DeviceID: d.id, ProductID: d.pid, Reason: reason})
}

// forgetDeadSession removes from Mochi's client table a clean session
// whose client is dead, as Mochi does after OnDisconnect: Mochi skips that
// for a client whose CONNACK could not be written, and a takeover that
// lost a race (an older login's takeover running after a newer one's) can
// leave the older, stopped client there; either would keep its queue and
// subscriptions until the id logs in again. A persistent session stays, as
// after any disconnect. The caller holds the device's lock and the device
// is offline: no newer login of the device is between its
// OnSessionEstablish and its takeover, so the entry cannot be replaced
// under us by a live client.
func (b *Broker) forgetDeadSession(id string) {
	cl, ok := b.srv.Clients.Get(id)
	if !ok || cl.Net.Inline || !cl.Properties.Clean || !cl.Closed() {
		return
	}
	cl.ClearInflights()
	b.srv.UnsubscribeClient(cl)
	b.srv.Clients.Delete(id)
}

// stalled: a write to the client did not finish within the write timeout.
// The client cannot take data: it is disconnected (and so shown offline).
func (b *Broker) stalled(c *conn) {
	reason := fmt.Sprintf("write timeout: the device took no data for %v", b.limits.WriteTimeout)
	c.setReason(reason)
	c.cl.Stop(errors.New(reason))
}

// accountFanout counts a message of n bytes toward the queued bytes of
// every client subscribed to topic (Mochi's internal topic name), as Mochi
// is about to queue it to each; a client past Limits.ClientQueueBytes is
// disconnected as a slow reader. Mochi's publishToClient then finds it
// closed and queues nothing more to it.
func (b *Broker) accountFanout(topic string, n int) {
	if n < queueAccountMin {
		return
	}
	subs := b.srv.Topics.Subscribers(topic)
	for id := range subs.Subscriptions {
		cl, ok := b.srv.Clients.Get(id)
		if !ok {
			continue
		}
		if c := b.connOf(cl); c != nil {
			b.queue(c, n)
		}
	}
}

// queue adds n bytes to c's queued bytes (n >= queueAccountMin).
func (b *Broker) queue(c *conn, n int) {
	if q := c.queued.Add(int64(n)); q > b.limits.ClientQueueBytes && !c.cl.Closed() {
		reason := fmt.Sprintf("slow reader: %d bytes queued to the device, limit is %d", q, b.limits.ClientQueueBytes)
		c.setReason(reason)
		c.cl.Stop(errors.New(reason))
	}
}

// unqueue takes a written or dropped message of n bytes off c's count.
func (b *Broker) unqueue(cl *mqtt.Client, n int) {
	if n < queueAccountMin {
		return
	}
	if c := b.connOf(cl); c != nil {
		c.queued.Add(-int64(n))
	}
}
