package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/onenet-hil/hil/harness/fleet"
	"github.com/onenet-hil/hil/internal/child"
)

// Bare Mochi is the floor under our broker: the same Mochi module with its
// default options and no hook but the allow-all authenticator (Mochi
// refuses every login without one), in a child process of its own so its
// memory and CPU are measured alone. The parent reaches it over MQTT, like
// Mosquitto, and asks it for its Go runtime figures on stdin/stdout: the
// child writes one JSON line with its address, then answers each request
// line ("stats", or "mem" after a full collection) with a RuntimeStats
// line. EOF on its stdin stops it.

// RuntimeStats are a Go broker process's runtime figures at one moment.
type RuntimeStats struct {
	RSSKB  int64 `json:"rss_kb"`
	HeapKB int64 `json:"heap_kb"` // live heap + goroutine stacks (after a collection when asked)
	// Cumulative since the process started.
	GCCycles   uint32  `json:"gc_cycles"`
	AllocBytes uint64  `json:"alloc_bytes"`
	GCCPUSec   float64 `json:"gc_cpu_s"` // the collector's CPU (workers and assists)
	HeapAlloc  uint64  `json:"heap_alloc"`
	NextGC     uint64  `json:"next_gc"`
	// PauseNs is runtime.MemStats' ring of the last 256 stop-the-world
	// pauses (cycle i at i%256).
	PauseNs [256]uint64 `json:"pause_ns"`
	// Where the resident memory is, in KiB: heap spans in use, heap
	// spans free but not returned to the OS, goroutine stacks, and all
	// the runtime holds from the OS less what it returned.
	HeapInuseKB, HeapFreeKB, StackKB, SysKB int64
	// FullGCMs is the wall time of the forced collection ("mem" only).
	FullGCMs float64 `json:"full_gc_ms,omitempty"`
	GOGC     int     `json:"gogc"`
}

// readRuntime reads this process's figures; with full, after a forced
// collection that returns freed pages to the OS (so RSS and HeapKB hold
// what is live, not what the collector has yet to find).
func readRuntime(full bool) RuntimeStats {
	var st RuntimeStats
	if full {
		start := time.Now()
		debug.FreeOSMemory()
		st.FullGCMs = ms(time.Since(start))
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	sample := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindFloat64 {
		st.GCCPUSec = sample[0].Value.Float64()
	}
	st.RSSKB = fleet.ProcRSSKB(os.Getpid())
	st.HeapKB = int64(m.HeapAlloc+m.StackInuse) / 1024
	st.GCCycles, st.AllocBytes, st.HeapAlloc, st.NextGC, st.PauseNs = m.NumGC, m.TotalAlloc, m.HeapAlloc, m.NextGC, m.PauseNs
	st.HeapInuseKB, st.HeapFreeKB = int64(m.HeapInuse>>10), int64((m.HeapIdle-m.HeapReleased)>>10)
	st.StackKB, st.SysKB = int64(m.StackInuse>>10), int64((m.Sys-m.HeapReleased)>>10)
	st.GOGC = gcPercent()
	return st
}

// ServeMochi runs bare Mochi on a free loopback port for a parent process
// (hil bench --mochi-worker): see RuntimeStats.
func ServeMochi(ctx context.Context, r io.Reader, w io.Writer) error {
	srv := mqtt.New(&mqtt.Options{
		// Mochi logs to stdout by default; stdout is the parent's pipe.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err := srv.AddHook(new(allowHook), nil); err != nil {
		return err
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "bench", Address: "127.0.0.1:0"})
	if err := srv.AddListener(tcp); err != nil {
		return err
	}
	if err := srv.Serve(); err != nil {
		return err
	}
	defer srv.Close()
	enc := json.NewEncoder(w)
	if err := enc.Encode(map[string]any{"addr": tcp.Address(), "pid": os.Getpid()}); err != nil {
		return err
	}
	in := bufio.NewScanner(r)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "stats":
			_ = enc.Encode(readRuntime(false))
		case "mem":
			_ = enc.Encode(readRuntime(true))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil
}

// allowHook is Mochi's auth.AllowHook (which would pull a YAML module into
// the build for its ledger): every login and topic allowed.
type allowHook struct{ mqtt.HookBase }

func (h *allowHook) ID() string { return "allow-all" }

func (h *allowHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *allowHook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

func (h *allowHook) OnACLCheck(*mqtt.Client, string, bool) bool { return true }

// mochiProc is the bare-Mochi child process.
type mochiProc struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	mu   sync.Mutex // one request at a time
	addr string
	pid  int
}

// startMochi starts argv (a program that calls ServeMochi) with env added
// to this process's environment.
func startMochi(ctx context.Context, argv, env []string) (*mochiProc, error) {
	if len(argv) == 0 {
		return nil, errors.New("bare mochi: no worker command (Options.MochiWorker)")
	}
	cmd, in, out, err := child.Start(argv, env)
	if err != nil {
		return nil, fmt.Errorf("bare mochi: %w", err)
	}
	p := &mochiProc{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	p.out.Buffer(make([]byte, 0, 64<<10), 1<<20)
	hello := make(chan error, 1)
	go func() {
		var h struct {
			Addr string `json:"addr"`
			PID  int    `json:"pid"`
		}
		if !p.out.Scan() {
			hello <- fmt.Errorf("bare mochi exited before it listened: %v", p.out.Err())
			return
		}
		if err := json.Unmarshal(p.out.Bytes(), &h); err != nil || h.Addr == "" {
			hello <- fmt.Errorf("bare mochi: bad first line %q", p.out.Text())
			return
		}
		p.addr, p.pid = h.Addr, h.PID
		hello <- nil
	}()
	select {
	case err = <-hello:
	case <-time.After(10 * time.Second):
		err = errors.New("bare mochi did not listen within 10 s")
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// stats asks the child for its figures ("stats" or "mem"); ok is false
// when it does not answer.
func (p *mochiProc) stats(req string) (RuntimeStats, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var st RuntimeStats
	if _, err := io.WriteString(p.in, req+"\n"); err != nil {
		return st, false
	}
	if !p.out.Scan() {
		return st, false
	}
	return st, json.Unmarshal(p.out.Bytes(), &st) == nil
}

// close ends the child (EOF on its stdin), killing it after 10 s.
func (p *mochiProc) close() error {
	p.in.Close()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		return <-done
	}
}

// mochiTarget is bare Mochi, reached over MQTT like Mosquitto (the same
// controller and topics), with its runtime figures from the child.
type mochiTarget struct {
	mqttTarget
	p      *mochiProc
	lastGC float64 // wall ms of the last forced collection
}

func (t *mochiTarget) memory() (int64, int64) {
	st, ok := t.p.stats("mem")
	if !ok {
		return fleet.ProcRSSKB(t.p.pid), -1
	}
	t.lastGC = st.FullGCMs
	return st.RSSKB, st.HeapKB
}

func (t *mochiTarget) runtimeStats() (RuntimeStats, bool) { return t.p.stats("stats") }

func (t *mochiTarget) rss() int64 { return fleet.ProcRSSKB(t.p.pid) }

func (t *mochiTarget) close() error { return t.p.close() }

// RunMochi starts bare Mochi in o.MochiWorker (with env, e.g. the same
// GOGC as the embedded broker's), measures it and stops it.
func RunMochi(ctx context.Context, o Options, env []string) (*Result, error) {
	p, err := startMochi(ctx, o.MochiWorker, env)
	if err != nil {
		return nil, err
	}
	t := &mochiTarget{p: p, mqttTarget: mqttTarget{label: "mochi", address: p.addr, pid: p.pid,
		productID: BenchProductID, productKey: randomSecret(), ctrlUser: "hil-bench", ctrlPass: randomSecret(),
		controllerName: "hil-bench-controller"}}
	defer t.close()
	res, err := run(ctx, t, o)
	if res != nil {
		res.MemMethod = "child process after a forced GC and debug.FreeOSMemory: VmRSS after the fleet logged in minus before, per device (heap+stacks: runtime.MemStats HeapAlloc+StackInuse, same delta)"
		res.CPUMethod = "child process utime+stime (/proc/PID/stat) during the load phase / wall time"
		res.FullGCMs = t.lastGC
	}
	return res, err
}
