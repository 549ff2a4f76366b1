package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
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
	key     string
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
		d[i] = fleet.Device{ID: deviceID(i), ProductID: BenchProductID, Password: t.auth[i]}
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
		s = &httpSender{&onenet.Client{BaseURL: "http://" + t.b.HTTPAddr(), APIKey: t.key, HTTP: &http.Client{
			Timeout:   10 * time.Second,
			Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64},
		}}}
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
	topics map[string]string // device id -> its command topic
}

func newTopicSender(b *broker.Broker, n int) topicSender {
	s := topicSender{b: b, topics: make(map[string]string, n)}
	for i := range n {
		s.topics[deviceID(i)] = CommandPrefix + deviceID(i)
	}
	return s
}

func (s topicSender) send(id string, payload []byte) (string, error) {
	topic, ok := s.topics[id]
	if !ok {
		topic = CommandPrefix + id
	}
	return id, s.b.PublishCustom(BenchProductID, topic, payload)
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

// httpSender posts OneNET's POST /cmds; several requests run at once, as
// an application server's would. Each is bounded by the client's timeout.
type httpSender struct{ c *onenet.Client }

func (s *httpSender) send(id string, payload []byte) (string, error) {
	return s.c.SendCommand(context.Background(), id, payload, 0)
}
func (s *httpSender) workers() int   { return 16 }
func (s *httpSender) byDevice() bool { return false }
func (s *httpSender) close()         { s.c.HTTP.CloseIdleConnections() }

// RunEmbedded starts the OneNET stand-in on loopback with a product of
// o.Devices devices (each with its own auth_info), measures it and stops
// it.
func RunEmbedded(ctx context.Context, o Options) (*Result, error) {
	reg := broker.NewRegistry()
	t := &embeddedTarget{key: randomSecret(), auth: make([]string, o.Devices)}
	if err := reg.AddProduct(broker.Product{ID: BenchProductID, Name: "bench", MasterKey: t.key}); err != nil {
		return nil, err
	}
	for i := range o.Devices {
		t.auth[i] = randomSecret()
		if err := reg.AddDevice(BenchProductID, broker.Device{ID: deviceID(i), Title: "bench", AuthInfo: t.auth[i]}); err != nil {
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
