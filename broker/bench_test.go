package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/fleet"
)

func benchRegistry(b *testing.B, n int) *Registry {
	r := DemoRegistry()
	for i := 0; i < n; i++ {
		require.NoError(b, r.AddDevice(DemoProductID, Device{ID: fmt.Sprintf("bench%04d", i), AuthInfo: fmt.Sprintf("k%d", i)}))
	}
	return r
}

// BenchmarkLogin: full MQTT 3.1.1 logins (TCP connect, CONNECT, CONNACK 0,
// DISCONNECT) by paho clients, one after another.
func BenchmarkLogin(b *testing.B) {
	const pool = 100
	br := startBroker(b, benchRegistry(b, pool))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("bench%04d", i%pool)
		o, _ := deviceOptions(br.MQTTAddr(), id, DemoProductID, fmt.Sprintf("k%d", i%pool))
		c := paho.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(waitBound) || tok.Error() != nil {
			b.Fatalf("login %s: %v\n%s", id, tok.Error(), lastEvents(br))
		}
		c.Disconnect(0)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}

// BenchmarkCommandRoundTrip: SendCommand (go) or POST /cmds (http) ->
// $creq received by a paho client -> $crsp replied -> status 4, with 1, 100
// and 1000 devices connected; commands go to the devices in turn.
func BenchmarkCommandRoundTrip(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		br := startBroker(b, benchRegistry(b, n))
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("bench%04d", i)
			o, _ := deviceOptions(br.MQTTAddr(), ids[i], DemoProductID, fmt.Sprintf("k%d", i))
			o.SetDefaultPublishHandler(func(c paho.Client, m paho.Message) {
				if uuid, ok := strings.CutPrefix(m.Topic(), "$creq/"); ok {
					c.Publish("$crsp/"+uuid, 0, false, append([]byte("ok:"), m.Payload()...))
				}
			})
			c := paho.NewClient(o)
			tok := c.Connect()
			require.True(b, tok.WaitTimeout(waitBound))
			require.NoError(b, tok.Error())
			b.Cleanup(func() { c.Disconnect(0) })
		}
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		send := map[string]func(id string) (string, error){
			"go": func(id string) (string, error) {
				return br.SendCommand(id, []byte("toggle"), CommandOptions{})
			},
			"http": func(id string) (string, error) {
				req, _ := http.NewRequest("POST", "http://"+br.HTTPAddr()+"/cmds?device_id="+id, strings.NewReader("toggle"))
				req.Header.Set("api-key", DemoMasterKey)
				resp, err := hc.Do(req)
				if err != nil {
					return "", err
				}
				defer resp.Body.Close()
				raw, _ := io.ReadAll(resp.Body)
				var r struct {
					Errno int
					Error string
					Data  struct {
						UUID string `json:"cmd_uuid"`
					}
				}
				if err := json.Unmarshal(raw, &r); err != nil || r.Errno != 0 {
					return "", fmt.Errorf("POST /cmds: %s", raw)
				}
				return r.Data.UUID, nil
			},
		}
		for _, api := range []string{"go", "http"} {
			b.Run(fmt.Sprintf("api=%s/devices=%d", api, n), func(b *testing.B) {
				lat := make([]time.Duration, 0, b.N)
				var last string
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					mark := br.Events().Mark()
					uuid, err := send[api](ids[i%n])
					if err != nil {
						b.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), waitBound)
					_, err = br.Events().WaitAfter(ctx, mark, ForCommand(CommandReplied, uuid))
					cancel()
					if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
					last = uuid
				}
				elapsed := time.Since(start)
				b.StopTimer()
				if info, _ := br.Command(last); info.Status != CmdReplied || !strings.HasPrefix(string(info.Response), "ok:") {
					b.Fatalf("last command: status %d, response %q", info.Status, info.Response)
				}
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cmds/s")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			})
		}
		_ = br.Close()
	}
}

// The per-command path, with -benchmem: `go test -run '^$' -bench
// CommandPath -benchmem -benchtime 20000x ./broker` (and `-bench
// ClientHeap -benchtime 2x` for the memory per client). A fleet of 100 simulated
// devices (harness/fleet: real TCP connections that allocate nothing per
// message) answers each command; one command is in flight at a time, so
// B/op and allocs/op are the broker's cost of one command and its reply
// (the fleet and the waiting add nothing). mochi=bare is the same traffic
// on bare Mochi (default options, an allow-all hook, an inline
// subscription seeing the replies): the floor under our hooks.

const benchFleet = 100

// fleetDevices registers n devices in products of a hundred (a product
// holds at most maxProductTopics topics, and each device subscribes to its
// own), when reg is not nil, and returns them as a fleet.
func fleetDevices(b *testing.B, reg *Registry, n int) []fleet.Device {
	devs := make([]fleet.Device, n)
	for i := range devs {
		pid := strconv.Itoa(700001 + i/maxProductTopics)
		devs[i] = fleet.Device{ID: fmt.Sprintf("6%08d", i), ProductID: pid, Password: fmt.Sprintf("auth-%d", i)}
		if reg == nil {
			continue
		}
		if i%maxProductTopics == 0 {
			require.NoError(b, reg.AddProduct(Product{ID: pid, Name: "bench", MasterKey: "bench-key-" + pid}))
		}
		require.NoError(b, reg.AddDevice(pid, Device{ID: devs[i].ID, AuthInfo: devs[i].Password}))
	}
	return devs
}

func startFleet(b *testing.B, addr string, devs []fleet.Device) {
	f, err := fleet.Start(context.Background(), fleet.Options{Addr: addr, Devices: devs,
		CommandPrefix: "cmd/", ReplyPrefix: "rsp/", LoginTimeout: waitBound})
	require.NoError(b, err)
	b.Cleanup(func() { _ = f.Close() })
	require.Equal(b, len(devs), f.Logins().Connected, "logins: %+v", f.Logins().Failed)
}

// benchWarmup commands run before the measured ones: the event feed's ring
// (4,096 events) and the command history's maps have grown by then, as
// in a broker that has been serving for a while.
const benchWarmup = 5000

const benchHistory = benchWarmup / 2

// benchCmds are the LED commands in turn, so each reply is a real one.
var benchCmds = [][]byte{[]byte("on"), []byte("toggle"), []byte("off")}

func BenchmarkCommandPath(b *testing.B) {
	b.Run("path=topic", func(b *testing.B) {
		reg := DemoRegistry()
		devs := fleetDevices(b, reg, benchFleet)
		br := startFleetBroker(b, reg)
		startFleet(b, br.MQTTAddr(), devs)
		topics := make([]string, len(devs))
		for i, d := range devs {
			topics[i] = "cmd/" + d.ID
		}
		events, cancel := br.Events().SubscribeN(1024)
		defer cancel()
		timeout := time.NewTimer(waitBound)
		defer timeout.Stop()
		send := func(i int) {
			if err := br.PublishCustom(devs[i%len(devs)].ProductID, topics[i%len(devs)], benchCmds[i%3]); err != nil {
				b.Fatal(err)
			}
			awaitEvent(b, events, timeout, isReply)
		}
		for i := range benchWarmup {
			send(i)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			send(i)
		}
	})
	b.Run("path=creq", func(b *testing.B) {
		reg := DemoRegistry()
		devs := fleetDevices(b, reg, benchFleet)
		br := startFleetBroker(b, reg)
		startFleet(b, br.MQTTAddr(), devs)
		events, cancel := br.Events().SubscribeN(1024)
		defer cancel()
		timeout := time.NewTimer(waitBound)
		defer timeout.Stop()
		send := func(i int) {
			if _, err := br.SendCommand(devs[i%len(devs)].ID, benchCmds[i%3], CommandOptions{}); err != nil {
				b.Fatal(err)
			}
			awaitEvent(b, events, timeout, isCommandReply)
		}
		for i := range benchWarmup {
			send(i)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			send(i)
		}
	})
	b.Run("mochi=bare", func(b *testing.B) {
		srv, addr, _ := startBareMochi(b)
		devs := fleetDevices(b, nil, benchFleet)
		startFleet(b, addr, devs)
		replies := make(chan struct{}, 1024)
		require.NoError(b, srv.Subscribe("rsp/+", 1, func(*mqtt.Client, packets.Subscription, packets.Packet) {
			replies <- struct{}{}
		}))
		topics := make([]string, len(devs))
		for i, d := range devs {
			topics[i] = "cmd/" + d.ID
		}
		timeout := time.NewTimer(waitBound)
		defer timeout.Stop()
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if err := srv.Publish(topics[i%len(devs)], benchCmds[i%3], false, 0); err != nil {
				b.Fatal(err)
			}
			timeout.Reset(waitBound)
			select {
			case <-replies:
			case <-timeout.C:
				b.Fatalf("no reply to command %d within %v", i, waitBound)
			}
		}
	})
}

func isReply(e Event) bool        { return e.Kind == Published && e.DeviceID != "" }
func isCommandReply(e Event) bool { return e.Kind == CommandReplied }

// startFleetBroker is our broker as hil bench runs it, but for a command
// history of benchHistory commands: full after the warmup, so the
// measured commands see its steady state (an old command forgotten for
// each new one) and not the growth of its maps up to the default 100,000.
func startFleetBroker(b *testing.B, reg *Registry) *Broker {
	br, err := New(Options{Registry: reg, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		ClientWritesPending: FleetClientWritesPending, Limits: Limits{History: benchHistory}})
	require.NoError(b, err)
	require.NoError(b, br.Start())
	b.Cleanup(func() { _ = br.Close() })
	return br
}

// awaitEvent waits for a matching event; timeout is reset here (one timer
// for the whole benchmark: a new one per command would count in B/op).
func awaitEvent(b *testing.B, events <-chan Event, timeout *time.Timer, match func(Event) bool) {
	timeout.Reset(waitBound)
	for {
		select {
		case e := <-events:
			if match(e) {
				return
			}
		case <-timeout.C:
			b.Fatalf("no matching event within %v", waitBound)
		}
	}
}

// allowAll is Mochi's auth.AllowHook: bare Mochi refuses every login
// without an authenticator.
type allowAll struct{ mqtt.HookBase }

func (h *allowAll) ID() string { return "allow-all" }
func (h *allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (h *allowAll) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }
func (h *allowAll) OnACLCheck(*mqtt.Client, string, bool) bool              { return true }

func startBareMochi(b *testing.B) (*mqtt.Server, string, func() error) {
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	require.NoError(b, srv.AddHook(new(allowAll), nil))
	tcp := listeners.NewTCP(listeners.Config{ID: "bare", Address: "127.0.0.1:0"})
	require.NoError(b, srv.AddListener(tcp))
	require.NoError(b, srv.Serve())
	done := closeOnce(srv)
	b.Cleanup(func() { _ = done() })
	return srv, tcp.Address(), done
}

// closeOnce: Mochi's Server.Close panics when called twice.
func closeOnce(srv *mqtt.Server) func() error { return sync.OnceValue(srv.Close) }

// BenchmarkClientHeap: the live Go heap and stacks one connected device
// costs (after a full collection), ours as hil bench runs it against bare
// Mochi's: heap-B/client and stack-B/client after the login, and
// stack-after-cmd-B/client once every device has had one command and
// answered it (a client's goroutines grow their stacks on the first
// message); each includes the fleet's own device (one goroutine and its
// buffers, the same on both sides). The op is one whole fleet login.
func BenchmarkClientHeap(b *testing.B) {
	const n = 1000
	live := func() (heap, stack float64) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapAlloc), float64(ms.StackInuse)
	}
	for _, kind := range []string{"broker=ours", "mochi=bare"} {
		b.Run(kind, func(b *testing.B) {
			var heap, stack, stackCmd float64
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				reg := DemoRegistry()
				devs := fleetDevices(b, reg, n)
				var addr string
				var stop func()
				var command func(d fleet.Device) error
				replies := make(chan struct{}, n)
				if kind == "mochi=bare" {
					srv, a, done := startBareMochi(b)
					addr, stop = a, func() { _ = done() }
					require.NoError(b, srv.Subscribe("rsp/+", 1, func(*mqtt.Client, packets.Subscription, packets.Packet) {
						replies <- struct{}{}
					}))
					command = func(d fleet.Device) error { return srv.Publish("cmd/"+d.ID, benchCmds[0], false, 0) }
				} else {
					br := startFleetBroker(b, reg)
					addr, stop = br.MQTTAddr(), func() { _ = br.Close() }
					events, cancel := br.Events().SubscribeN(n)
					b.Cleanup(cancel)
					go func() {
						for e := range events {
							if isReply(e) {
								replies <- struct{}{}
							}
						}
					}()
					command = func(d fleet.Device) error { return br.PublishCustom(d.ProductID, "cmd/"+d.ID, benchCmds[0]) }
				}
				heap0, stack0 := live()
				b.StartTimer()
				f, err := fleet.Start(context.Background(), fleet.Options{Addr: addr, Devices: devs,
					CommandPrefix: "cmd/", ReplyPrefix: "rsp/", LoginTimeout: waitBound})
				b.StopTimer()
				require.NoError(b, err)
				require.Equal(b, n, f.Logins().Connected)
				heap1, stack1 := live()
				heap += (heap1 - heap0) / n
				stack += (stack1 - stack0) / n
				if path := os.Getenv("HIL_BENCH_HEAPPROFILE"); path != "" && i == 0 {
					pf, err := os.Create(path + "." + strings.ReplaceAll(kind, "=", "-"))
					require.NoError(b, err)
					require.NoError(b, pprof.Lookup("heap").WriteTo(pf, 0))
					pf.Close()
				}
				timeout := time.NewTimer(waitBound)
				for j, d := range devs {
					require.NoError(b, command(d))
					select {
					case <-replies:
					case <-timeout.C:
						b.Fatalf("%d of %d commands answered within %v", j, n, waitBound)
					}
				}
				timeout.Stop()
				_, stack2 := live()
				stackCmd += (stack2 - stack0) / n
				_ = f.Close()
				stop()
			}
			b.ReportMetric(heap/float64(b.N), "heap-B/client")
			b.ReportMetric(stack/float64(b.N), "stack-B/client")
			b.ReportMetric(stackCmd/float64(b.N), "stack-after-cmd-B/client")
			b.ReportMetric(0, "ns/op")
		})
	}
}
