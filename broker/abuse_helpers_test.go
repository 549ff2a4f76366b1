package broker

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// plainHTTP makes no keep-alive connections: an idle one would hold a
// server goroutine and blur the goroutine counts.
var plainHTTP = &http.Client{Timeout: 2 * waitBound, Transport: &http.Transport{DisableKeepAlives: true}}

// figures records the process's memory and goroutines before an abuse and
// prints them, before and after, when it is over.
type figures struct {
	t     *testing.T
	name  string
	rss0  int64 // KB
	heap0 uint64
	g0    int
}

func measure(t *testing.T, name string) *figures {
	return &figures{t: t, name: name, rss0: rssKB(), heap0: liveHeap(), g0: runtime.NumGoroutine()}
}

// done waits (bounded) for the goroutines to come back to the baseline,
// logs the figures and returns the growth of the live heap.
func (f *figures) done(extra string) int64 {
	f.t.Helper()
	waitGoroutines(f.t, f.g0)
	heap := liveHeap()
	rss := rssKB()
	f.t.Logf("%s: RSS %.1f -> %.1f MB, live heap %.1f -> %.1f MB, goroutines %d -> %d; %s", f.name,
		float64(f.rss0)/1024, float64(rss)/1024, float64(f.heap0)/(1<<20), float64(heap)/(1<<20),
		f.g0, runtime.NumGoroutine(), extra)
	return int64(heap) - int64(f.heap0)
}

// liveHeap is the heap still in use after two collections.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func rssKB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// tenant is another product's device and key holder, served while a test
// abuses the broker: it measures what the abuse costs everyone else.
type tenant struct {
	t    *testing.T
	b    *Broker
	dev  *device
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	lat    []time.Duration
	logins []time.Duration
	fails  []string
}

// The tenant's second device, which logs in anew every fifth probe.
const (
	tenantLoginID   = "900001002"
	tenantLoginAuth = "other-002"
)

// startTenant logs the other product's device in and, every 20 ms until
// report, sends it a command (waiting for it to arrive) and asks the HTTP
// API for its status with the other product's key.
func startTenant(t *testing.T, b *Broker) *tenant {
	t.Helper()
	if _, _, ok := b.reg.Device(tenantLoginID); !ok {
		require.NoError(t, b.reg.AddDevice(otherProductID, Device{ID: tenantLoginID, Title: "tenant", AuthInfo: tenantLoginAuth}))
	}
	tn := &tenant{t: t, b: b, dev: login(t, b, otherDeviceID, otherAuthInfo), stop: make(chan struct{}), done: make(chan struct{})}
	hc := plainHTTP
	go func() {
		defer close(tn.done)
		tick := time.NewTicker(20 * time.Millisecond) // pacing, not synchronisation
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-tn.stop:
				return
			case <-tick.C:
			}
			t0 := time.Now()
			err := tn.probe(hc, i)
			took := time.Since(t0)
			var login time.Duration
			if err == nil && i%5 == 0 {
				t0 = time.Now()
				err = tn.login()
				login = time.Since(t0)
			}
			tn.mu.Lock()
			tn.lat = append(tn.lat, took)
			if login > 0 {
				tn.logins = append(tn.logins, login)
			}
			if err != nil && len(tn.fails) < 5 {
				tn.fails = append(tn.fails, err.Error())
			}
			tn.mu.Unlock()
		}
	}()
	return tn
}

func (tn *tenant) probe(hc *http.Client, i int) error {
	payload := fmt.Sprintf("tenant-%d", i)
	if _, err := tn.b.SendCommand(otherDeviceID, []byte(payload), CommandOptions{}); err != nil {
		return fmt.Errorf("command: %w", err)
	}
	select {
	case m := <-tn.dev.msgs:
		if string(m.Payload()) != payload {
			return fmt.Errorf("tenant got %q, want %q", m.Payload(), payload)
		}
	case <-time.After(waitBound):
		return fmt.Errorf("tenant command %d not received", i)
	}
	req, err := http.NewRequest("GET", "http://"+tn.b.HTTPAddr()+"/devices/status?devIds="+otherDeviceID, nil)
	if err != nil {
		return err
	}
	req.Header.Set("api-key", otherMasterKey)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	resp.Body.Close()
	return nil
}

// login logs the tenant's second device in over MQTT (up to its CONNACK)
// and out again.
func (tn *tenant) login() error {
	c, err := net.Dial("tcp", tn.b.MQTTAddr())
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(waitBound)); err != nil {
		return err
	}
	if _, err := c.Write(rawConnect("MQTT", 4, 0xC2, tenantLoginID, otherProductID, tenantLoginAuth)); err != nil {
		return err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		return fmt.Errorf("tenant login: %w", err)
	}
	if ack[3] != 0 {
		return fmt.Errorf("tenant login refused: %x", ack)
	}
	_, err = c.Write([]byte{0xE0, 0}) // DISCONNECT
	return err
}

// report stops the tenant and returns its latency figure (p50 and max of
// one command round trip plus one API call); a tenant that failed fails
// the test.
func (tn *tenant) report() string {
	tn.t.Helper()
	close(tn.stop)
	<-tn.done
	tn.mu.Lock()
	defer tn.mu.Unlock()
	require.Empty(tn.t, tn.fails, "the other tenant was disturbed")
	if len(tn.lat) == 0 {
		return "other tenant: no probe ran"
	}
	l := slices.Clone(tn.lat)
	slices.Sort(l)
	out := fmt.Sprintf("other tenant (command round trip + API call): %d probes, p50 %v, max %v",
		len(l), l[len(l)/2].Round(10*time.Microsecond), l[len(l)-1].Round(10*time.Microsecond))
	if len(tn.logins) > 0 {
		g := slices.Clone(tn.logins)
		slices.Sort(g)
		out += fmt.Sprintf("; its MQTT login: %d, p50 %v, max %v", len(g), g[len(g)/2].Round(10*time.Microsecond),
			g[len(g)-1].Round(10*time.Microsecond))
	}
	return out
}

// maxLatency is the tenant's worst probe so far.
func (tn *tenant) maxLatency() time.Duration {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	var m time.Duration
	for _, l := range tn.lat {
		m = max(m, l)
	}
	return m
}

// rawPublish builds a PUBLISH packet (QoS 0).
func rawPublish(topic string, payload []byte) []byte {
	v := append([]byte{byte(len(topic) >> 8), byte(len(topic))}, topic...)
	v = append(v, payload...)
	pkt := []byte{0x30}
	for n := len(v); ; {
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

// rawSubscribe builds a SUBSCRIBE of one filter at QoS 0.
func rawSubscribe(topic string) []byte {
	sub := []byte{0x82, byte(2 + 2 + len(topic) + 1), 0, 1, 0, byte(len(topic))}
	return append(append(sub, topic...), 0)
}

// countEvents counts the events after mark that match.
func countEvents(b *Broker, mark Mark, match func(Event) bool) int {
	n := 0
	for _, e := range b.Events().Since(mark) {
		if match(e) {
			n++
		}
	}
	return n
}

// apiPost posts body to path with the demo key and decodes the envelope.
func apiPost(t *testing.T, b *Broker, path string, body []byte) (errno int, msg string, data map[string]any) {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+b.HTTPAddr()+path, strings.NewReader(string(body)))
	require.NoError(t, err)
	req.Header.Set("api-key", DemoMasterKey)
	resp, err := plainHTTP.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var env struct {
		Errno int            `json:"errno"`
		Error string         `json:"error"`
		Data  map[string]any `json:"data"`
	}
	require.NoError(t, jsonDecode(resp, &env))
	return env.Errno, env.Error, env.Data
}

// dialSmallBuffer dials addr with a small receive buffer, so that a
// client that stops reading fills the pipe after little data.
func dialSmallBuffer(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).SetReadBuffer(4096))
	t.Cleanup(func() { c.Close() })
	return c
}
