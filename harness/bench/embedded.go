package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/harness/fleet"
	"github.com/onenet-hil/hil/harness/onenet"
)

// embeddedTarget is our OneNET stand-in, in this process, with its OneNET
// hooks on. Devices log in with their own auth_info.
type embeddedTarget struct {
	b       *broker.Broker
	keys    []string // each product's master key, by product index
	auth    []string
	missed  atomic.Int64 // events the collector's feed subscription dropped
	stopped chan struct{}
	lastGC  float64 // wall ms of the last forced collection
}

func (t *embeddedTarget) name() string    { return "embedded" }
func (t *embeddedTarget) addr() string    { return t.b.MQTTAddr() }
func (t *embeddedTarget) inProcess() bool { return true }

func (t *embeddedTarget) devices(n int) []fleet.Device {
	d := make([]fleet.Device, n)
	for i := range d {
		d[i] = fleet.Device{ID: deviceID(i), ProductID: embeddedProduct(i), Password: t.auth[i]}
	}
	return d
}

// memory collects garbage and returns freed pages to the OS first, so RSS
// and the heap figure hold what is live, not what the collector has yet
// to find.
func (t *embeddedTarget) memory() (int64, int64) {
	st := readRuntime(true)
	t.lastGC = st.FullGCMs
	return st.RSSKB, st.HeapKB
}

// rss is read without a collection, which would disturb the load.
func (t *embeddedTarget) rss() int64 { return fleet.ProcRSSKB(osPid()) }

func (t *embeddedTarget) runtimeStats() (RuntimeStats, bool) { return readRuntime(false), true }

func (t *embeddedTarget) cpu() time.Duration { return fleet.SelfUsage().CPU }

func (t *embeddedTarget) close() error { return t.b.Close() }

func (t *embeddedTarget) connect(ctx context.Context, path Path, l *ledger) (sender, error) {
	events, cancel := t.b.Events().SubscribeN(1 << 16) // a GC pause must not overflow it
	t.stopped = make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(t.stopped)
		var last uint64
		for {
			var e broker.Event
			select {
			case e = <-events:
			case <-stop: // the feed never closes a subscription's channel
				return
			}
			if last != 0 && e.Seq != last+1 {
				t.missed.Add(int64(e.Seq - last - 1))
			}
			last = e.Seq
			switch {
			case e.Kind == broker.CommandReplied:
				l.reply(e.CmdUUID, e.Payload, time.Now(), false)
			case e.Kind == broker.Published && e.DeviceID != "" && strings.HasPrefix(e.Topic, ReplyPrefix):
				l.reply(e.Topic[len(ReplyPrefix):], e.Payload, time.Now(), true)
			case e.Kind == broker.PublishDropped:
				l.queueFull(e.DeviceID, e.Topic)
			}
		}
	}()
	var s sender
	switch path {
	case PathTopic:
		s = newTopicSender(t.b, len(t.auth))
	case PathCreq:
		s = creqSender{t.b}
	case PathHTTP:
		s = newHTTPSender(t.b.HTTPAddr(), t.keys)
	}
	return closeWith{s, func() {
		cancel()
		close(stop)
		<-t.stopped
	}}, nil
}

type closeWith struct {
	sender
	f func()
}

func (c closeWith) close() { c.sender.close(); c.f() }

// topicSender publishes on cmd/{id} through the broker's inline client.
// The topics are made once: the bench's own allocations count in the
// embedded broker's bytes per command (they share the process).
type topicSender struct {
	b      *broker.Broker
	topics map[string]productTopic // device id -> its product and command topic
}

type productTopic struct{ pid, topic string }

func newTopicSender(b *broker.Broker, n int) topicSender {
	s := topicSender{b: b, topics: make(map[string]productTopic, n)}
	for i := range n {
		s.topics[deviceID(i)] = productTopic{embeddedProduct(i), CommandPrefix + deviceID(i)}
	}
	return s
}

func (s topicSender) send(id string, payload []byte) (string, error) {
	t, ok := s.topics[id]
	if !ok {
		return id, fmt.Errorf("device %s is not in the fleet", id)
	}
	return id, s.b.PublishCustom(t.pid, t.topic, payload)
}
func (s topicSender) workers() int   { return 1 }
func (s topicSender) byDevice() bool { return true }
func (s topicSender) close()         {}

// creqSender pushes $creq/{uuid} with SendCommand.
type creqSender struct{ b *broker.Broker }

func (s creqSender) send(id string, payload []byte) (string, error) {
	return s.b.SendCommand(id, payload, broker.CommandOptions{})
}
func (s creqSender) workers() int   { return 1 }
func (s creqSender) byDevice() bool { return false }
func (s creqSender) close()         {}

// httpSender posts OneNET's POST /cmds with the device's product key;
// several requests run at once, as an application server's would. Each is
// bounded by the client's timeout.
type httpSender struct {
	hc      *http.Client
	clients map[string]*onenet.Client // device id -> a client with its product's key
}

func newHTTPSender(addr string, keys []string) *httpSender {
	s := &httpSender{hc: &http.Client{Timeout: 10 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}, clients: map[string]*onenet.Client{}}
	for p, key := range keys {
		c := &onenet.Client{BaseURL: "http://" + addr, APIKey: key, HTTP: s.hc}
		for i := p * embeddedProductSize; i < (p+1)*embeddedProductSize; i++ {
			s.clients[deviceID(i)] = c
		}
	}
	return s
}

func (s *httpSender) send(id string, payload []byte) (string, error) {
	c, ok := s.clients[id]
	if !ok {
		return "", fmt.Errorf("device %s is not in the fleet", id)
	}
	return c.SendCommand(context.Background(), id, payload, 0)
}
func (s *httpSender) workers() int   { return 16 }
func (s *httpSender) byDevice() bool { return false }
func (s *httpSender) close()         { s.hc.CloseIdleConnections() }

// embeddedProductSize: devices per product on our broker. A OneNET
// product holds at most 100 custom topics (the broker enforces it), and
// each device subscribes to its own command topic.
const embeddedProductSize = 100

// embeddedProduct is device i's product on our broker: BenchProductID for
// the first hundred, then the next ids.
func embeddedProduct(i int) string {
	return strconv.Itoa(100001 + i/embeddedProductSize)
}

// RunEmbedded starts the OneNET stand-in on loopback with o.Devices devices
// (each with its own auth_info) in products of a hundred, measures it and
// stops it.
func RunEmbedded(ctx context.Context, o Options) (*Result, error) {
	reg := broker.NewRegistry()
	t := &embeddedTarget{auth: make([]string, o.Devices)}
	for i := range o.Devices {
		if i%embeddedProductSize == 0 {
			t.keys = append(t.keys, randomSecret())
			if err := reg.AddProduct(broker.Product{ID: embeddedProduct(i), Name: "bench", MasterKey: t.keys[len(t.keys)-1]}); err != nil {
				return nil, err
			}
		}
		t.auth[i] = randomSecret()
		if err := reg.AddDevice(embeddedProduct(i), broker.Device{ID: deviceID(i), Title: "bench", AuthInfo: t.auth[i]}); err != nil {
			return nil, err
		}
	}
	b, err := broker.New(broker.Options{Registry: reg, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		ClientWritesPending: broker.FleetClientWritesPending, // a fleet, one command per device at a time
		Logger:              slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))})
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	t.b = b
	defer t.close()
	res, err := run(ctx, t, o)
	if res != nil {
		res.MemMethod = "this process after a forced GC and debug.FreeOSMemory: VmRSS after the fleet logged in minus before, per device (heap+stacks: runtime.MemStats HeapAlloc+StackInuse, same delta)"
		res.CPUMethod = "this process getrusage user+system during the load phase / wall time (includes the bench's command generator and collector)"
		if len(o.FleetWorker) == 0 {
			res.MemMethod += "; the fleet runs in the same process, so this includes its cost"
			res.CPUMethod += "; the fleet runs in the same process, so this includes its cost"
		}
		res.FullGCMs = t.lastGC
		if n := t.missed.Load(); n > 0 {
			res.Notes = append(res.Notes, fmt.Sprintf("the broker's event feed dropped %d events for the bench's subscriber: replies among them count as timeouts", n))
		}
	}
	return res, err
}
