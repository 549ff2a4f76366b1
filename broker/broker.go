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
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/listeners"
	"go.etcd.io/bbolt"
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
	// Limits bound what clients can make the broker hold (zero fields:
	// DefaultLimits).
	Limits Limits
	// DataDir, when set, keeps the broker's state there across restarts of
	// the process: Mochi's sessions and inflight messages (its bolt storage
	// hook, sessions.db) and the kept commands, the command history and the
	// data points (onenet.db). Empty = in memory only.
	DataDir string
}

// ServeGOGC is the GOGC hil broker and hil bench run with: Go's default.
// Measured with 10,000 devices at 5,000 commands/s over 60 s (README.md,
// "Performance"): GOGC 400 kept cycles out of most windows but let the
// resident memory grow to 4.9 times the steady figure (1.3 GB) before its
// first cycle; 25 and 50 held it at 2.6 and 2.8 times, but their 33 and 17
// cycles a minute cost 10 to 18% of a core and a p99 of 80 to 120 ms; 100
// runs 8 cycles (3.6% of a core) and holds 3.1 times. The rest of the
// peak is Mochi's goroutine stacks, which grow on a client's first
// message and count in every cycle's work and goal. GOMEMLIMIT bounds it
// where the fleet's size is known.
const ServeGOGC = 100

// FleetClientWritesPending is the queue for a broker serving thousands of
// devices that each get one command at a time (hil bench; hil broker
// --client-queue): the heap goes from 700 to 175 MB at 10,000 devices.
const FleetClientWritesPending = 128

// clientReadBuffer is each client's read buffer, in bytes.
const clientReadBuffer = 512

// DefaultConnectTimeout: a connection that has not sent a whole CONNECT
// by then is closed (Mochi itself sets no deadline before the CONNECT).
const DefaultConnectTimeout = 10 * time.Second

// Broker is a running (or ready to run) OneNET stand-in.
//
// Locking: b.mu guards the listeners, the broker's state and the set of
// accepted TCP connections (taken once per connection, never per message).
// Each device's connection, kept commands and data points have the
// device's own lock (devState.mu); the command history is sharded
// (cmdBook); events are ordered by the feed's lock. Order: devState.mu,
// then a cmdBook shard, then the store's lock.
type Broker struct {
	reg    *Registry
	log    *slog.Logger
	srv    *mqtt.Server
	feed   *Feed
	limits Limits

	devs    sync.Map // device id -> *devState
	clients sync.Map // *mqtt.Client -> *conn, every connection past OnSessionEstablish not yet released
	cmds    *cmdBook
	cmdSeq  atomic.Uint64 // orders commands (creation), also across restarts of a durable broker
	pendN   atomic.Int64  // kept commands in the whole broker
	pendB   atomic.Int64  // and their payload bytes
	sweepAt atomic.Int64  // unix nanos of the last broker-wide sweep of expired kept commands

	store   *store // nil = in memory
	dataDir string

	mask   atomic.Pointer[maskerAt]
	maskMu sync.Mutex

	mu        sync.Mutex
	lsts      []*mqttListener // legacy first, then studio if enabled
	httpAddr  string
	listenerN int
	httpSrv   *http.Server
	state     int // 0 new, 1 started, 2 closed

	connectTimeout  time.Duration
	httpReadTimeout time.Duration
	raw             map[*rawConn]struct{} // every accepted TCP connection still being served
	rawWG           sync.WaitGroup        // one per entry of raw; Add only while state != 2

	// beforeConnack, when set (tests), runs in OnSessionEstablish: a test
	// closes the connection there to make the CONNACK write fail.
	beforeConnack atomic.Pointer[func(cl *mqtt.Client)]
}

// mqttListener is one Mochi TCP listener; its id says which protocol it
// speaks ("legacy-N" or "studio-N").
type mqttListener struct {
	kind string
	addr string
	id   string
}

// Errors returned by the device operations.
var (
	ErrUnknownDevice = errors.New("unknown device")
	ErrOffline       = errors.New("device not online")
	ErrClosed        = errors.New("broker closed")
	// ErrQueueFull: a command to be kept would pass a bound of Limits.
	ErrQueueFull = errors.New("too many kept commands")
	// ErrStore: the durable store could not keep what was asked.
	ErrStore = errors.New("store failed")
)

// New builds a broker; Start brings its listeners up. With Options.DataDir
// it opens (or creates) the store there and loads what it kept.
func New(opts Options) (*Broker, error) {
	if opts.Registry == nil {
		opts.Registry = DemoRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler) // disabled: emit builds no attributes for it
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
		limits:   opts.Limits.withDefaults(),
		lsts:     []*mqttListener{{kind: kindLegacy, addr: opts.MQTTAddr}},
		httpAddr: opts.HTTPAddr,
		raw:      map[*rawConn]struct{}{},
		dataDir:  opts.DataDir,

		connectTimeout:  opts.ConnectTimeout,
		httpReadTimeout: 45 * time.Second, // over the sync API's 30 s wait: net/http cancels a request whose conn read times out
	}
	b.cmds = newCmdBook(b.limits.History, b.limits.HistoryBytes)
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
		// Each client's read buffer (Mochi's default 2 KiB): OneNET
		// traffic is small packets, and a larger one is read straight
		// into its own buffer anyway.
		ClientNetReadBufferSize: clientReadBuffer,
		// Mochi's own log is about its internals; the event feed says what a
		// OneNET user needs, so Mochi only reports errors.
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := b.srv.AddHook(&onenetHook{b: b}, nil); err != nil {
		return nil, err
	}
	if opts.DataDir != "" {
		if err := b.openStore(opts.DataDir); err != nil {
			return nil, err
		}
		// Mochi's own storage hook keeps its sessions and inflight messages
		// (persistent sessions' subscriptions) beside our store.
		err := b.srv.AddHook(new(bolt.Hook), &bolt.Options{
			Path: filepath.Join(opts.DataDir, sessionsFile), Bucket: "mochi",
			Options: &bbolt.Options{Timeout: storeOpenTimeout},
		})
		if err != nil {
			_ = b.store.close()
			return nil, fmt.Errorf("broker: sessions store %s: %w", filepath.Join(opts.DataDir, sessionsFile), err)
		}
	}
	return b, nil
}

// Registry returns the broker's registry (add devices to it at run time).
func (b *Broker) Registry() *Registry { return b.reg }

// Events returns the event feed.
func (b *Broker) Events() *Feed { return b.feed }

// Limits returns the bounds the broker runs with.
func (b *Broker) Limits() Limits { return b.limits }

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
	b.log.Info("broker started", "mqtt", b.lsts[0].addr, "http", b.httpAddr, "studio", b.studioAddrLocked(), "data", b.dataDirOrMemory())
	return nil
}

func (b *Broker) dataDirOrMemory() string {
	if b.dataDir == "" {
		return "(in memory)"
	}
	return b.dataDir
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

// Close drops every connection, stops both listeners and, for a durable
// broker, writes what is left to the store. Its last log line says what
// was kept and what was dropped.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.state != 1 {
		neverStarted := b.state == 0
		b.state = 2
		b.mu.Unlock()
		if neverStarted && b.store != nil { // New opened the stores; Start never ran
			_ = b.srv.Close() // stops Mochi's storage hook
			return b.store.close()
		}
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
	_ = b.srv.Close() // also stops Mochi's storage hook
	err := b.httpSrv.Shutdown(ctx)
	if err != nil {
		_ = b.httpSrv.Close() // a request still running after the bound
	}
	_ = waitAll(ctx, waits)
	sum := b.summary()
	var serr error
	if b.store != nil {
		serr = b.store.close()
	}
	attrs := []any{"connections_closed", len(waits), "data", b.dataDirOrMemory()}
	if b.store != nil && serr == nil {
		attrs = append(attrs, "kept_commands", sum.pending, "kept_history", sum.history, "kept_datapoints", sum.points,
			"dropped", "nothing (sessions and inflight messages are in "+sessionsFile+")")
	} else {
		if serr != nil {
			attrs = append(attrs, "store_error", serr.Error())
		}
		attrs = append(attrs, "kept", "nothing", "dropped_commands", sum.pending, "dropped_history", sum.history,
			"dropped_datapoints", sum.points)
	}
	b.log.Info("broker stopped", attrs...)
	if err == nil {
		err = serr
	}
	return err
}

// stopAll closes every device connection (plain TCP close) and returns
// channels closed when each connection has been released.
func (b *Broker) stopAll(reason string) []chan struct{} {
	var cs []*conn
	b.clients.Range(func(_, v any) bool {
		cs = append(cs, v.(*conn))
		return true
	})
	waits := make([]chan struct{}, 0, len(cs))
	for _, c := range cs {
		c.dev.mu.Lock()
		if c.reason == "" {
			c.reason = reason
		}
		c.dev.mu.Unlock()
		waits = append(waits, c.done)
	}
	for _, c := range cs {
		c.cl.Stop(errors.New(reason))
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
// kept commands, command history, data points and persistent sessions stay
// in memory; the HTTP API stays up.
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
	b.emit(Event{Kind: Kicked, DeviceID: deviceID, ProductID: c.dev.pid, Reason: "kicked by server"})
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
	d := b.lookupDev(deviceID)
	if d == nil {
		return nil, fmt.Errorf("%w: %s", ErrOffline, deviceID)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.conn
	if c == nil {
		return nil, fmt.Errorf("%w: %s", ErrOffline, deviceID)
	}
	c.reason = reason
	return c, nil
}

// Online reports whether the device has a connection right now. A closed
// connection counts as offline even before Mochi reports its end.
func (b *Broker) Online(deviceID string) bool {
	d := b.lookupDev(deviceID)
	if d == nil {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.conn != nil && !d.conn.cl.Closed()
}

// emit masks every secret the registry knows in every field of e, then
// adds it to the feed and the log.
func (b *Broker) emit(e Event) {
	e = b.maskEvent(e)
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
		if e.PayloadLen > len(e.Payload) {
			attrs = append(attrs, "payload_bytes", e.PayloadLen)
		}
	}
	if e.Reason != "" {
		attrs = append(attrs, "reason", e.Reason)
	}
	b.log.Log(context.Background(), lvl, "event", attrs...)
}

// logWarn logs a line about something a client sent, masked like events.
func (b *Broker) logWarn(msg string, kv ...string) {
	m := b.masker()
	attrs := make([]any, 0, len(kv))
	for i, s := range kv {
		if i%2 == 1 {
			s = clip(m.Mask(s), eventTextMax)
		}
		attrs = append(attrs, s)
	}
	b.log.Warn(msg, attrs...)
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
	b.emit(Event{Kind: Published, ProductID: productID, Topic: topic, Payload: payload}) // the feed copies it
	return b.srv.Publish(productTopic(productID, topic), payload, false, 0)
}

// maxPayload bounds HTTP bodies and a legacy PUBLISH's payload: under 64 KB.
const maxPayload = 64 * 1024

// maxPacketSize is Mochi's limit for any packet read (fixed header
// included): a studio payload of 256 KB with the longest topic fits.
const maxPacketSize = studioMaxPayload + 64*1024 + 16
