// Package fleet simulates many OneNET LED boards at once. Each device is a
// real MQTT 3.1.1 TCP connection that logs in with OneNET credentials
// (client id = device ID, user = product ID, password = auth_info or the
// product's key) and follows the firmware's LED semantics: "on", "off" and
// "toggle" set the LED and the device answers with the new state, on
// $crsp/{uuid} for a $creq/{uuid} push and on ReplyPrefix+ID for a command
// on CommandPrefix+ID. Anything else is ignored, as the firmware does.
//
// A device costs one goroutine (its reader, which also writes its replies),
// a 128-byte read buffer and a reply buffer: no per-message allocation, so
// ten thousand devices fit beside the broker on a small machine.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/onenet-hil/hil/harness/fleet/mqttwire"
)

// Device is one simulated board's identity.
type Device struct {
	ID        string `json:"id"`
	ProductID string `json:"product_id"`
	// Password is the device's auth_info or its product's key. It is sent
	// in CONNECT only, never logged or reported.
	Password string `json:"password"`
}

// Options describe a fleet.
type Options struct {
	Addr    string   `json:"addr"` // broker host:port
	Devices []Device `json:"devices"`
	// CommandPrefix, when set, makes each device subscribe to
	// CommandPrefix+ID (a custom topic, e.g. "cmd/") and answer commands
	// on it at ReplyPrefix+ID. $creq pushes need no subscription.
	CommandPrefix string `json:"command_prefix,omitempty"`
	ReplyPrefix   string `json:"reply_prefix,omitempty"`
	// KeepAlive is sent in CONNECT; when non-zero the fleet pings every
	// device at half that interval.
	KeepAlive time.Duration `json:"keepalive,omitempty"`
	// Concurrency is how many logins are in flight at once (default 64).
	Concurrency int `json:"concurrency,omitempty"`
	// LoginTimeout bounds one device's TCP connect, CONNACK and SUBACK
	// (default 15 s).
	LoginTimeout time.Duration `json:"login_timeout,omitempty"`
	// OnEvent, when set, receives every drop. It is called from the
	// device's goroutine and must return quickly.
	OnEvent func(Event) `json:"-"`
}

// EventKind names what happened to a device.
type EventKind string

// Event kinds.
const (
	// Dropped: a connected device lost its connection.
	Dropped EventKind = "dropped"
)

// Event is something that happened to one device after its login.
type Event struct {
	Kind   EventKind `json:"kind"`
	Device string    `json:"device"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// LoginStats is the outcome of logging the whole fleet in.
type LoginStats struct {
	Connected int           `json:"connected"`
	Failed    []LoginError  `json:"failed,omitempty"`
	Elapsed   time.Duration `json:"elapsed"` // first dial to last CONNACK/SUBACK
}

// LoginError is one device that could not log in.
type LoginError struct {
	Device string `json:"device"`
	Reason string `json:"reason"`
}

// PerSecond is the login rate.
func (s LoginStats) PerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Connected) / s.Elapsed.Seconds()
}

// Counters are the fleet's running totals.
type Counters struct {
	Commands int64 `json:"commands"` // on/off/toggle received
	Replies  int64 `json:"replies"`  // replies written
	Ignored  int64 `json:"ignored"`  // other payloads
	Dropped  int64 `json:"dropped"`  // connections lost
}

// Reply payloads: the LED's new state, as the firmware answers.
var replyOn, replyOff = []byte("1"), []byte("0")

// ReplyFor returns the LED state a device answers after cmd, given its
// state before, and whether cmd is a command at all.
func ReplyFor(cmd string, before bool) (after bool, ok bool) {
	switch cmd {
	case "on":
		return true, true
	case "off":
		return false, true
	case "toggle":
		return !before, true
	}
	return before, false
}

// Fleet is a set of logged-in simulated devices.
type Fleet struct {
	opts    Options
	devs    []*device
	byID    map[string]*device
	logins  LoginStats
	closing atomic.Bool
	wg      sync.WaitGroup
	stop    chan struct{}

	commands, replies, ignored, dropped atomic.Int64
}

// Fault is a misbehaviour injected into one device.
type Fault int32

// Faults.
const (
	NoFault Fault = iota
	// DropOnCommand: at its next LED command the device closes its
	// connection instead of answering, as a board that resets would.
	DropOnCommand
	// Silent: the device stays connected but answers nothing more.
	Silent
)

type device struct {
	f        *Fleet
	idx      int32
	led      bool
	fault    atomic.Int32
	injected atomic.Bool // the fleet closed it on purpose: say so in the drop's reason
	conn     net.Conn
	out      []byte
}

// Start logs every device in and returns once each has either logged in
// or failed; failures are in Logins(), not an error. The error is for
// options that cannot work.
func Start(ctx context.Context, opts Options) (*Fleet, error) {
	if opts.Addr == "" {
		return nil, errors.New("fleet: no broker address")
	}
	if len(opts.Devices) == 0 {
		return nil, errors.New("fleet: no devices")
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 64
	}
	if opts.LoginTimeout <= 0 {
		opts.LoginTimeout = 15 * time.Second
	}
	if opts.KeepAlive < 0 || opts.KeepAlive > 65535*time.Second {
		return nil, fmt.Errorf("fleet: keepalive %v out of range", opts.KeepAlive)
	}
	f := &Fleet{opts: opts, byID: make(map[string]*device, len(opts.Devices)), stop: make(chan struct{})}
	f.devs = make([]*device, len(opts.Devices))
	for i, d := range opts.Devices {
		if d.ID == "" {
			return nil, fmt.Errorf("fleet: device %d has no ID", i)
		}
		if _, dup := f.byID[d.ID]; dup {
			return nil, fmt.Errorf("fleet: device %s listed twice", d.ID)
		}
		f.devs[i] = &device{f: f, idx: int32(i)}
		f.byID[d.ID] = f.devs[i]
	}

	var (
		next   atomic.Int64
		mu     sync.Mutex
		failed []LoginError
		wg     sync.WaitGroup
	)
	start := time.Now()
	workers := min(opts.Concurrency, len(f.devs))
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(f.devs) {
					return
				}
				if err := f.devs[i].login(ctx); err != nil {
					mu.Lock()
					failed = append(failed, LoginError{Device: opts.Devices[i].ID, Reason: err.Error()})
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	f.logins = LoginStats{Connected: len(f.devs) - len(failed), Failed: failed, Elapsed: time.Since(start)}
	if opts.KeepAlive > 0 {
		f.wg.Add(1)
		go f.pinger(opts.KeepAlive / 2)
	}
	return f, nil
}

func (d *device) login(ctx context.Context) error {
	o := &d.f.opts
	id := o.Devices[d.idx]
	dctx, cancel := context.WithTimeout(ctx, o.LoginTimeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(dctx, "tcp", o.Addr)
	if err != nil {
		return err
	}
	deadline, _ := dctx.Deadline()
	connect := mqttwire.AppendConnect(nil, id.ID, id.ProductID, id.Password, uint16(o.KeepAlive/time.Second), true)
	var filters []string
	if o.CommandPrefix != "" {
		filters = []string{o.CommandPrefix + id.ID}
	}
	pending, err := mqttwire.Handshake(conn, deadline, connect, filters)
	if err != nil {
		conn.Close()
		return err
	}
	d.conn = conn
	d.f.wg.Add(1)
	go d.run(pending)
	return nil
}

// run reads and answers the device's packets until its connection ends.
func (d *device) run(pending []byte) {
	defer d.f.wg.Done()
	buf := make([]byte, 0, max(128, len(pending)))
	buf = append(buf, pending...)
	for {
		for {
			typ, flags, body, n, err := mqttwire.Next(buf)
			if err != nil {
				d.lost(err)
				return
			}
			if n == 0 {
				break
			}
			if typ == mqttwire.PUBLISH {
				if err := d.handle(flags, body); err != nil {
					d.lost(err)
					return
				}
			}
			buf = buf[:copy(buf, buf[n:])]
		}
		if need := mqttwire.NeedBytes(buf); need > cap(buf) {
			if need > 1<<20 {
				d.lost(fmt.Errorf("packet of %d bytes is too large for a device", need))
				return
			}
			buf = append(make([]byte, 0, need), buf...)
		}
		n, err := d.conn.Read(buf[len(buf):cap(buf)])
		if err != nil {
			d.lost(err)
			return
		}
		buf = buf[:len(buf)+n]
	}
}

func (d *device) handle(flags byte, body []byte) error {
	topic, pid, payload, err := mqttwire.ParsePublish(flags, body)
	if err != nil {
		return err
	}
	d.out = d.out[:0]
	if pid != 0 {
		d.out = mqttwire.AppendPuback(d.out, pid)
	}
	after, ok := ReplyFor(string(payload), d.led) // no allocation: compared, not kept
	if ok {
		switch Fault(d.fault.Load()) {
		case DropOnCommand:
			d.injected.Store(true)
			return errors.New("fault injected")
		case Silent:
			return nil
		}
	}
	if !ok {
		d.f.ignored.Add(1)
	} else {
		d.f.commands.Add(1)
		d.led = after
		reply := replyOff
		if after {
			reply = replyOn
		}
		var prefix string
		var suffix []byte
		if cp := d.f.opts.CommandPrefix; cp != "" && len(topic) > len(cp) && string(topic[:len(cp)]) == cp {
			prefix, suffix = d.f.opts.ReplyPrefix, topic[len(cp):]
		} else if len(topic) > 6 && string(topic[:6]) == "$creq/" {
			prefix, suffix = "$crsp/", topic[6:]
		}
		if prefix != "" {
			d.out = mqttwire.AppendPublishParts(d.out, prefix, suffix, reply)
		}
	}
	if len(d.out) == 0 {
		return nil
	}
	if _, err := d.conn.Write(d.out); err != nil {
		return err
	}
	if ok && len(d.out) > 4 {
		d.f.replies.Add(1)
	}
	return nil
}

func (d *device) lost(err error) {
	d.conn.Close()
	if d.f.closing.Load() {
		return
	}
	d.f.dropped.Add(1)
	reason := err.Error()
	switch {
	case d.injected.Load():
		reason = "connection closed by the fleet (fault injection)"
	case errors.Is(err, io.EOF):
		reason = "connection closed by the broker"
	}
	if d.f.opts.OnEvent != nil {
		d.f.opts.OnEvent(Event{Kind: Dropped, Device: d.f.opts.Devices[d.idx].ID, Reason: reason, At: time.Now()})
	}
}

func (f *Fleet) pinger(every time.Duration) {
	defer f.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
			for _, d := range f.devs {
				if d.conn != nil {
					d.conn.Write(mqttwire.PingReq) // a failed write shows up as the reader's drop
				}
			}
		}
	}
}

// Logins reports how the fleet's login went.
func (f *Fleet) Logins() LoginStats { return f.logins }

// Counters reports the running totals.
func (f *Fleet) Counters() Counters {
	return Counters{Commands: f.commands.Load(), Replies: f.replies.Load(), Ignored: f.ignored.Load(), Dropped: f.dropped.Load()}
}

// Drop closes one device's connection without a DISCONNECT, as a board
// losing power would; its drop event follows.
func (f *Fleet) Drop(id string) error {
	d, ok := f.byID[id]
	if !ok {
		return fmt.Errorf("fleet: unknown device %s", id)
	}
	if d.conn == nil {
		return fmt.Errorf("fleet: device %s is not connected", id)
	}
	d.injected.Store(true)
	return d.conn.Close()
}

// Inject sets a fault on one device.
func (f *Fleet) Inject(id string, fault Fault) error {
	d, ok := f.byID[id]
	if !ok {
		return fmt.Errorf("fleet: unknown device %s", id)
	}
	d.fault.Store(int32(fault))
	return nil
}

// Close disconnects every device cleanly and waits for their goroutines.
func (f *Fleet) Close() error {
	if f.closing.Swap(true) {
		return nil
	}
	close(f.stop)
	for _, d := range f.devs {
		if d.conn != nil {
			d.conn.SetWriteDeadline(time.Now().Add(time.Second))
			d.conn.Write(mqttwire.Disconnect)
			d.conn.Close()
		}
	}
	f.wg.Wait()
	return nil
}
