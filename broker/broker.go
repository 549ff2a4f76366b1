// Package broker is the OneNET stand-in: an embedded Mochi MQTT broker with
// hooks that reproduce OneNET's legacy MQTT service (login and CONNACK codes,
// one connection per device, ACL, $creq/$crsp commands, $dp data points,
// product-scoped custom topics), OneNET's legacy HTTP API and a typed event
// feed that tests wait on.
package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// Default addresses of `hil broker`: OneNET's MQTT port, loopback only.
const (
	DefaultMQTTAddr   = "127.0.0.1:6002"
	DefaultHTTPAddr   = "127.0.0.1:8080"
	DefaultStudioAddr = "127.0.0.1:1883" // mqtts.heclouds.com's plain port
)

// Options configure a Broker. Empty addresses take the defaults; tests pass
// "127.0.0.1:0".
type Options struct {
	Registry *Registry // nil = DemoRegistry()
	MQTTAddr string
	HTTPAddr string
	// StudioAddr, when set, adds a listener speaking the current OneNET
	// platform's MQTT (token login, $sys topics): see studio.go.
	StudioAddr string
	Logger     *slog.Logger // every event is logged here; nil = discard
	// ConnectTimeout bounds the time from TCP accept to a complete CONNECT
	// (0 = DefaultConnectTimeout).
	ConnectTimeout time.Duration
	// ClientWritesPending is each client's outbound queue, in packets
	// (0 = Mochi's 8,192). A full queue drops that client's message, so the
	// default is deep; but it is 64 KiB of live heap per client, and with
	// thousands of devices every GC cycle walks it (0.5 to 1.2 s pauses at
	// 10,000 devices). A fleet-sized broker whose clients each get one
	// command at a time can use FleetClientWritesPending.
	ClientWritesPending int
}

// ServeGOGC is the GOGC a process that serves a fleet should run with (hil
// broker, hil bench): the heap is mostly long-lived per-client state, so a
// collection finds little garbage and costs a pause on every goroutine
// stack; collecting a quarter as often keeps pauses out of most seconds.
const ServeGOGC = 400

// FleetClientWritesPending is the queue for a broker serving thousands of
// devices that each get one command at a time (hil bench; hil broker
// --client-queue): the heap goes from 700 to 175 MB at 10,000 devices.
const FleetClientWritesPending = 1024

// DefaultConnectTimeout: a connection that has not sent a whole CONNECT
// by then is closed (Mochi itself sets no deadline before the CONNECT).
const DefaultConnectTimeout = 10 * time.Second

// Broker is a running (or ready to run) OneNET stand-in.
type Broker struct {
	reg  *Registry
	log  *slog.Logger
	srv  *mqtt.Server
	feed *Feed

	mu       sync.Mutex
	conns    map[string]*conn       // device id -> its current connection
	byClient map[*mqtt.Client]*conn // every live connection
	cmds     map[string]*command
	cmdOrder []string              // UUIDs in the order they were created (remember)
	pending  map[string][]*command // device id -> commands kept for its next login
	dps      map[string]map[string][]Datapoint

	lsts      []*mqttListener // legacy first, then studio if enabled
	httpAddr  string
	listenerN int
	httpSrv   *http.Server
	state     int // 0 new, 1 started, 2 closed

	connectTimeout  time.Duration
	httpReadTimeout time.Duration
	raw             map[*rawConn]struct{} // every accepted TCP connection still being served
	rawWG           sync.WaitGroup        // one per entry of raw; Add only while state != 2
}

// mqttListener is one Mochi TCP listener; its id says which protocol it
// speaks ("legacy-N" or "studio-N").
type mqttListener struct {
	kind string
	addr string
	id   string
}

type conn struct {
	cl        *mqtt.Client
	deviceID  string
	productID string
	studio    bool          // logged in on the studio listener
	ready     bool          // CONNACK sent: PUBLISHes may go out
	reason    string        // why the server closed it, if it did
	kicked    bool          // replaced by a newer login: its end is not "offline"
	done      chan struct{} // closed once Mochi reported its disconnect
}

// Errors returned by the device operations.
var (
	ErrUnknownDevice = errors.New("unknown device")
	ErrOffline       = errors.New("device not online")
	ErrClosed        = errors.New("broker closed")
)

// New builds a broker; Start brings its listeners up.
func New(opts Options) (*Broker, error) {
	if opts.Registry == nil {
		opts.Registry = DemoRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.MQTTAddr == "" {
		opts.MQTTAddr = DefaultMQTTAddr
	}
	if opts.HTTPAddr == "" {
		opts.HTTPAddr = DefaultHTTPAddr
	}
	b := &Broker{
		reg:      opts.Registry,
		log:      opts.Logger,
		feed:     newFeed(),
		conns:    map[string]*conn{},
		byClient: map[*mqtt.Client]*conn{},
		cmds:     map[string]*command{},
		pending:  map[string][]*command{},
		dps:      map[string]map[string][]Datapoint{},
		lsts:     []*mqttListener{{kind: kindLegacy, addr: opts.MQTTAddr}},
		httpAddr: opts.HTTPAddr,
		raw:      map[*rawConn]struct{}{},

		connectTimeout:  opts.ConnectTimeout,
		httpReadTimeout: 45 * time.Second, // over the sync API's 30 s wait: net/http cancels a request whose conn read times out
	}
	if b.connectTimeout <= 0 {
		b.connectTimeout = DefaultConnectTimeout
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = maxPacketSize // Mochi would allocate whatever a length field claims
	if opts.ClientWritesPending > 0 {
		caps.MaximumClientWritesPending = int32(opts.ClientWritesPending)
	}
	if opts.StudioAddr != "" {
		b.lsts = append(b.lsts, &mqttListener{kind: kindStudio, addr: opts.StudioAddr})
	}
	b.srv = mqtt.New(&mqtt.Options{
		InlineClient: true,
		Capabilities: caps,
		// Mochi's own log is about its internals; the event feed says what a
		// OneNET user needs, so Mochi only reports errors.
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := b.srv.AddHook(&onenetHook{b: b}, nil); err != nil {
		return nil, err
	}
	return b, nil
}

// Registry returns the broker's registry (add devices to it at run time).
func (b *Broker) Registry() *Registry { return b.reg }

// Events returns the event feed.
func (b *Broker) Events() *Feed { return b.feed }

// Start binds the MQTT and HTTP listeners; they accept connections when it
// returns.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != 0 {
		return errors.New("broker: Start called twice")
	}
	for _, l := range b.lsts {
		if err := b.listenLocked(l); err != nil {
			return err
		}
	}
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("broker: mqtt: %w", err)
	}
	ln, err := net.Listen("tcp", b.httpAddr)
	if err != nil {
		_ = b.srv.Close()
		return fmt.Errorf("broker: http listen %s: %w", b.httpAddr, err)
	}
	b.httpAddr = ln.Addr().String()
	// A request must arrive whole within httpReadTimeout: a client that
	// stalls inside its body would otherwise hold a goroutine, and Close.
	b.httpSrv = &http.Server{Handler: b.httpHandler(), ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout: b.httpReadTimeout, IdleTimeout: 2 * time.Minute}
	go func() { _ = b.httpSrv.Serve(ln) }()
	b.state = 1
	b.log.Info("broker started", "mqtt", b.lsts[0].addr, "http", b.httpAddr, "studio", b.studioAddrLocked())
	return nil
}

const (
	kindLegacy = "legacy"
	kindStudio = "studio"
)

// listenLocked binds a fresh Mochi TCP listener on l.addr.
func (b *Broker) listenLocked(l *mqttListener) error {
	b.listenerN++
	id := fmt.Sprintf("%s-%d", l.kind, b.listenerN)
	tcp := &tcpListener{TCP: listeners.NewTCP(listeners.Config{ID: id, Address: l.addr}), b: b}
	if err := b.srv.AddListener(tcp); err != nil {
		return fmt.Errorf("broker: %s mqtt listen %s: %w", l.kind, l.addr, err)
	}
	l.id = id
	l.addr = tcp.Address()
	return nil
}

// MQTTAddr is the bound address (host:port) of the legacy MQTT listener.
func (b *Broker) MQTTAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lsts[0].addr
}

// StudioAddr is the bound address of the studio listener ("" if disabled).
func (b *Broker) StudioAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.studioAddrLocked()
}

func (b *Broker) studioAddrLocked() string {
	if len(b.lsts) > 1 {
		return b.lsts[1].addr
	}
	return ""
}

// HTTPAddr is the bound HTTP API address (host:port).
func (b *Broker) HTTPAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.httpAddr
}

// Close drops every connection and stops both listeners.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.state != 1 {
		b.state = 2
		b.mu.Unlock()
		return nil
	}
	b.state = 2
	lsts := append([]*mqttListener(nil), b.lsts...)
	b.mu.Unlock()
	// Close the listeners ourselves with a no-op closer, so Server.Close
	// does not run Mochi's closeListenerClients: its Clients.GetByListener
	// takes the read lock twice and deadlocks against a disconnecting
	// client's Clients.Delete (mochi-mqtt/server PR #489). Our stopAll also
	// closes without the DISCONNECT packet 3.1.1 clients do not expect.
	for _, l := range lsts {
		b.srv.Listeners.Close(l.id, func(string) {})
	}
	waits := b.stopAll("broker closed")
	b.closeRaw() // Server.Close waits for every connection, even one that never sent a CONNECT
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Every connection has stopped being served before Server.Close waits
	// for them: Mochi Adds to its WaitGroup inside each connection's
	// goroutine, which must not race its Wait.
	rawDone := make(chan struct{})
	go func() { b.rawWG.Wait(); close(rawDone) }()
	select {
	case <-rawDone:
	case <-ctx.Done():
	}
	_ = b.srv.Close()
	err := b.httpSrv.Shutdown(ctx)
	if err != nil {
		_ = b.httpSrv.Close() // a request still running after the bound
	}
	waitAll(ctx, waits)
	b.log.Info("broker stopped")
	return err
}

// stopAll closes every device connection (plain TCP close) and returns
// channels closed when Mochi has reported each disconnect.
func (b *Broker) stopAll(reason string) []chan struct{} {
	b.mu.Lock()
	var cls []*mqtt.Client
	var waits []chan struct{}
	for cl, c := range b.byClient {
		if c.reason == "" {
			c.reason = reason
		}
		cls = append(cls, cl)
		waits = append(waits, c.done)
	}
	b.mu.Unlock()
	for _, cl := range cls {
		cl.Stop(errors.New(reason))
	}
	return waits
}

func waitAll(ctx context.Context, waits []chan struct{}) error {
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Restart simulates OneNET's service restarting: every connection drops,
// the MQTT listeners close and serve again on the same addresses. Registry,
// kept commands and data points survive; the HTTP API stays up.
func (b *Broker) Restart(ctx context.Context) error {
	b.mu.Lock()
	if b.state != 1 {
		b.mu.Unlock()
		return ErrClosed
	}
	lsts := append([]*mqttListener(nil), b.lsts...)
	b.mu.Unlock()
	for _, l := range lsts {
		b.srv.Listeners.Close(l.id, func(string) {}) // stop accepting first
		b.srv.Listeners.Delete(l.id)
	}
	waits := b.stopAll("broker restart")
	b.closeRaw()
	if err := waitAll(ctx, waits); err != nil {
		return fmt.Errorf("broker: restart: connections did not close: %w", err)
	}
	b.log.Info("broker restarting", "mqtt", b.MQTTAddr())
	for _, l := range lsts {
		for {
			b.mu.Lock()
			err := b.listenLocked(l)
			b.mu.Unlock()
			if err == nil {
				b.srv.Listeners.Serve(l.id, b.srv.EstablishConnection)
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w (%v)", err, ctx.Err())
			case <-time.After(20 * time.Millisecond): // pacing: the port may still be held
			}
		}
	}
	return nil
}

// Kick closes a device's connection from the server side, as a duplicate
// login does (plain TCP close, no DISCONNECT packet).
func (b *Broker) Kick(deviceID string) error {
	c, err := b.closeConn(deviceID, "kicked by server")
	if err != nil {
		return err
	}
	b.emit(Event{Kind: Kicked, DeviceID: deviceID, ProductID: c.productID, Reason: "kicked by server"})
	c.cl.Stop(errors.New("kicked by server"))
	return nil
}

// DropConnection closes the device's TCP connection abruptly, as a network
// fault would.
func (b *Broker) DropConnection(deviceID string) error {
	c, err := b.closeConn(deviceID, "connection dropped")
	if err != nil {
		return err
	}
	c.cl.Stop(errors.New("connection dropped"))
	return nil
}

func (b *Broker) closeConn(deviceID, reason string) (*conn, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.conns[deviceID]
	if c == nil {
		return nil, fmt.Errorf("%w: %s", ErrOffline, deviceID)
	}
	c.reason = reason
	return c, nil
}

// Online reports whether the device has a connection right now. A closed
// connection counts as offline even before Mochi reports its end (and if
// its CONNACK could not be written, Mochi never reports it).
func (b *Broker) Online(deviceID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.conns[deviceID]
	return c != nil && !c.cl.Closed()
}

func (b *Broker) productOf(cl *mqtt.Client) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.byClient[cl]; c != nil {
		return c.productID
	}
	return ""
}

func (b *Broker) sessionEstablish(cl *mqtt.Client) {
	_, pid, _ := b.reg.Device(cl.ID)
	c := &conn{cl: cl, deviceID: cl.ID, productID: pid, studio: isStudio(cl), done: make(chan struct{})}
	b.mu.Lock()
	old := b.conns[cl.ID]
	b.conns[cl.ID] = c
	b.byClient[cl] = c
	if old != nil {
		old.kicked = true
		old.reason = "duplicate login from " + cl.Net.Remote
	}
	b.mu.Unlock()
	if old != nil {
		b.emit(Event{Kind: Kicked, DeviceID: cl.ID, ProductID: pid, Reason: old.reason})
		old.cl.Stop(errors.New(old.reason))
	}
}

func (b *Broker) sessionEstablished(cl *mqtt.Client) {
	b.mu.Lock()
	c := b.byClient[cl]
	if c == nil {
		b.mu.Unlock()
		return
	}
	c.ready = true
	kept := b.pending[cl.ID]
	delete(b.pending, cl.ID)
	b.mu.Unlock()
	b.emit(Event{Kind: Connected, DeviceID: cl.ID, ProductID: c.productID, Reason: "from " + cl.Net.Remote})
	for _, cmd := range kept {
		b.deliverKept(c, cmd)
	}
}

func (b *Broker) disconnected(cl *mqtt.Client, err error) {
	b.mu.Lock()
	c := b.byClient[cl]
	if c == nil {
		b.mu.Unlock()
		return
	}
	delete(b.byClient, cl)
	offline := b.conns[c.deviceID] == c
	if offline {
		delete(b.conns, c.deviceID)
	}
	reason := c.reason
	b.mu.Unlock()
	defer close(c.done) // after the event, so waiters see it logged
	if !offline {
		return // kicked by a newer login: the device stays online
	}
	if reason == "" {
		switch {
		case err == nil || errors.Is(err, io.EOF) && cl.StopCause() == nil:
			reason = "connection closed by device"
		default:
			reason = err.Error()
		}
		if cause := cl.StopCause(); cause != nil {
			reason = cause.Error()
		}
	}
	b.emit(Event{Kind: Disconnected, DeviceID: c.deviceID, ProductID: c.productID, Reason: reason})
}

func (b *Broker) emit(e Event) {
	e = b.feed.emit(e)
	lvl := slog.LevelInfo
	if e.Kind == Refused || e.Kind == DatapointRejected || e.Kind == PublishDropped {
		lvl = slog.LevelWarn
	}
	if !b.log.Enabled(context.Background(), lvl) {
		return // building the attributes is most of an event's cost
	}
	attrs := []any{"kind", e.Kind.String(), "seq", e.Seq}
	if e.DeviceID != "" {
		attrs = append(attrs, "device", e.DeviceID)
	}
	if e.ProductID != "" {
		attrs = append(attrs, "product", e.ProductID)
	}
	if e.Topic != "" {
		attrs = append(attrs, "topic", e.Topic)
	}
	if e.CmdUUID != "" {
		attrs = append(attrs, "cmd", e.CmdUUID)
	}
	if e.Kind == Refused || e.Kind == Subscribed {
		attrs = append(attrs, "code", fmt.Sprintf("0x%02x", e.Code))
	}
	if e.Payload != nil {
		attrs = append(attrs, "payload", shorten(e.Payload, 128))
	}
	if e.Reason != "" {
		attrs = append(attrs, "reason", e.Reason)
	}
	b.log.Log(context.Background(), lvl, "event", attrs...)
}

// PublishCustom publishes payload on a custom topic through Mochi's inline
// client; only subscribers among the product's devices receive it (QoS 0).
func (b *Broker) PublishCustom(productID, topic string, payload []byte) error {
	if _, ok := b.reg.Product(productID); !ok {
		return fmt.Errorf("publish: unknown product %s", productID)
	}
	if !validTopic(topic) {
		return fmt.Errorf("publish: topic %q: only letters, digits and '/' are allowed", topic)
	}
	if len(payload) >= maxPayload {
		return fmt.Errorf("publish: payload of %d bytes, limit is %d", len(payload), maxPayload-1)
	}
	b.emit(Event{Kind: Published, ProductID: productID, Topic: topic, Payload: clone(payload)})
	return b.srv.Publish(productTopic(productID, topic), payload, false, 0)
}

// maxPayload bounds HTTP bodies and a legacy PUBLISH's payload: under 64 KB.
const maxPayload = 64 * 1024

// maxPacketSize is Mochi's limit for any packet read (fixed header
// included): a studio payload of 256 KB with the longest topic fits.
const maxPacketSize = studioMaxPayload + 64*1024 + 16

const maxPointsPerStream = 10000

func (b *Broker) storeDatapoints(deviceID, productID string, payload []byte) {
	recs, err := ParseDP(payload)
	if err != nil {
		b.emit(Event{Kind: DatapointRejected, DeviceID: deviceID, ProductID: productID, Topic: "$dp", Payload: clone(payload), Reason: err.Error()})
		return
	}
	b.storeRecords(deviceID, productID, recs)
}

func (b *Broker) storeRecords(deviceID, productID string, recs []DPRecord) {
	now := time.Now()
	b.mu.Lock()
	m := b.dps[deviceID]
	if m == nil {
		m = map[string][]Datapoint{}
		b.dps[deviceID] = m
	}
	for i, r := range recs {
		if r.At.IsZero() {
			recs[i].At = now
		}
		pts := append(m[r.Stream], Datapoint{At: recs[i].At, Value: r.Value})
		if len(pts) > maxPointsPerStream {
			pts = pts[len(pts)-maxPointsPerStream:]
		}
		m[r.Stream] = pts
	}
	b.mu.Unlock()
	for _, r := range recs {
		v := fmt.Sprint(r.Value)
		if p, ok := r.Value.([]byte); ok {
			v = fmt.Sprintf("(%d bytes of binary)", len(p))
		}
		b.emit(Event{Kind: DatapointReceived, DeviceID: deviceID, ProductID: productID, Topic: r.Stream, Payload: []byte(v), Time: now})
	}
}

// Datapoints returns a copy of every datastream of a device.
func (b *Broker) Datapoints(deviceID string) map[string][]Datapoint {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string][]Datapoint{}
	for k, v := range b.dps[deviceID] {
		out[k] = append([]Datapoint(nil), v...)
	}
	return out
}
