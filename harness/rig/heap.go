package rig

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onenet-hil/hil/harness/board"
	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/scenario"
)

// The firmware's heap, measured one step at a time (a scenario's heap
// step). The firmware's main loop never returns to the interpreter's top
// level, and the virtual board's VM collects garbage only there (sim.Heap),
// so the probe stops main.py and drives the same code from the raw REPL:
// boot.py, then app.login(), then app.tick() once per command, each its own
// request. On the virtual board a step's figure is its live data plus all it
// allocated (an upper bound of what the ESP8266 needs, since it collects
// mid-step when it must); on a real board it is gc.mem_alloc() after a
// collection, and the board raises its own MemoryError.

// cleanupTimeout bounds the soft reboot after a failed measurement.
const cleanupTimeout = 10 * time.Second

// heapCommands are sent in turn; the LED model follows them.
var heapCommands = []string{"on", "toggle", "off", "toggle", "toggle"}

// readHeap prints a real board's live heap and its total.
const readHeap = "import gc\ngc.collect()\nprint('HEAP', gc.mem_alloc(), gc.mem_alloc() + gc.mem_free())"

// ProbeHeap implements scenario.HeapProber.
func (r *Rig) ProbeHeap(ctx context.Context, commands int) (h report.Heap, err error) {
	defer func() { err = r.mask.MaskError(err) }()
	p := heapProbe{r: r, h: &h}
	if sb := r.Sim(); sb != nil {
		h.Method, h.Size = "peak", sb.Heap().Size
	} else {
		h.Method = "live"
	}
	// Stop main.py first: its own request ends then, with all the garbage
	// of its run. A soft reset in the raw REPL runs boot.py and not main.py.
	if err := r.repl.EnterRaw(ctx, false); err != nil {
		return h, fmt.Errorf("heap: stopping the firmware for the measurement: %w", err)
	}
	rebooted := false
	defer func() {
		// A failed measurement leaves main.py stopped (and maybe a session
		// open): best effort, the firmware runs again, on a bound of its own
		// since ctx may be what ended.
		if err != nil && !rebooted {
			cctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
			defer cancel()
			_ = r.repl.SoftReboot(cctx)
		}
	}()
	p.begin()
	if err := r.repl.SoftResetRaw(ctx); err != nil {
		return h, fmt.Errorf("heap: soft reset for the measurement: %w", err)
	}
	if h.Boot, _, err = p.figure(ctx, "boot.py"); err != nil {
		return h, err
	}

	p.begin()
	out, err := p.exec(ctx, "login", "import app\n_c = app.login()\nprint('LOGIN', _c is not None)")
	if err != nil {
		return h, err
	}
	if !strings.Contains(out, "LOGIN True") {
		return h, fmt.Errorf("heap: app.login() did not log in; the board printed:\n%s", lastLines(out, 8))
	}
	if h.Login, _, err = p.figure(ctx, "login"); err != nil {
		return h, err
	}

	var m scenario.Model
	for i := range commands {
		cmd := heapCommands[i%len(heapCommands)]
		want, _ := m.Apply(cmd)
		p.begin()
		if err := r.send(ctx, scenario.Creq, []byte(cmd), scenario.SendOptions{}); err != nil {
			return h, fmt.Errorf("heap: command %d (%s): sending: %w", i+1, cmd, err)
		}
		if err := p.tick(ctx, i+1, cmd, want); err != nil {
			return h, err
		}
		peak, live, err := p.figure(ctx, fmt.Sprintf("command %d (%s)", i+1, cmd))
		if err != nil {
			return h, err
		}
		h.Command, h.Live, h.Commands = max(h.Command, peak), live, i+1
	}

	// The firmware runs again, as it would after the same soft reset.
	if _, err := p.exec(ctx, "logout", "app.close(_c)\ndel _c"); err != nil {
		return h, err
	}
	prof, err := echo.Lookup("hil")
	if err != nil {
		return h, err
	}
	r.markScenario()
	rebooted = true
	if err := r.repl.SoftReboot(ctx); err != nil {
		return h, fmt.Errorf("heap: restarting the firmware: %w", err)
	}
	return h, r.awaitLogin(ctx, prof, false)
}

// heapProbe is one measurement's state.
type heapProbe struct {
	r *Rig
	h *report.Heap
}

// begin starts a step's figures on the virtual board.
func (p heapProbe) begin() {
	if sb := p.r.Sim(); sb != nil {
		sb.ResetHeap()
	}
}

// exec runs one step's code; a MemoryError (the board's own, or the virtual
// board's when live data outgrew the heap) fails the measurement with that
// reason.
func (p heapProbe) exec(ctx context.Context, step, code string) (string, error) {
	out, err := p.r.repl.Exec(ctx, code)
	var pe *board.PythonError
	if errors.As(err, &pe) && strings.HasPrefix(pe.Exception(), "MemoryError") {
		return string(out), fmt.Errorf("MemoryError in the firmware's %s (heap %d bytes): %s", step, p.h.Size, pe.Exception())
	}
	if err != nil {
		return string(out), fmt.Errorf("heap: %s: %w", step, err)
	}
	return string(out), nil
}

// tick runs app.tick until the command's echo shows the LED at want (a
// tick waits up to a second for a message).
func (p heapProbe) tick(ctx context.Context, n int, cmd string, want int) error {
	var seen strings.Builder
	for range 5 {
		out, err := p.exec(ctx, fmt.Sprintf("command %d (%s)", n, cmd), "app.tick(_c)")
		seen.WriteString(out)
		if err != nil {
			return err
		}
		for _, ln := range strings.Split(out, "\n") {
			ev, err := echo.ParseHIL(ln)
			if err != nil || ev.Kind != echo.LED {
				continue
			}
			if ev.State != want {
				return fmt.Errorf("heap: command %d (%s): the echo says LED=%d, the model %d", n, cmd, ev.State, want)
			}
			return nil
		}
	}
	return fmt.Errorf("heap: command %d (%s): no LED echo after 5 ticks; the board printed:\n%s", n, cmd, lastLines(seen.String(), 8))
}

// figure is the step's heap figure and the live heap after it.
func (p heapProbe) figure(ctx context.Context, step string) (peak, live int, err error) {
	if sb := p.r.Sim(); sb != nil {
		hs := sb.Heap()
		kind, _, _ := strings.Cut(step, " ")
		if hs.Over && !slices.Contains(p.h.Over, kind) {
			p.h.Over = append(p.h.Over, kind)
		}
		if hs.Exceeded {
			return hs.Peak, hs.Live, fmt.Errorf("MemoryError in the firmware's %s: its live data outgrew the board's %d-byte heap", step, hs.Size)
		}
		// Boot and login compile modules: the compiler frees its scratch
		// itself, so a collection mid-step would not have helped the board.
		if hs.Over && (kind == "boot.py" || kind == "login") {
			return hs.Peak, hs.Live, fmt.Errorf("MemoryError in the firmware's %s: compiling its modules needed more than the board's %d-byte heap", step, hs.Size)
		}
		return hs.Peak, hs.Live, nil
	}
	out, err := p.exec(ctx, step+" (reading the heap)", readHeap)
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(out))
	if len(f) != 3 || f[0] != "HEAP" {
		return 0, 0, fmt.Errorf("heap: %s: unexpected answer %q", step, out)
	}
	live, _ = strconv.Atoi(f[1])
	p.h.Size, _ = strconv.Atoi(f[2])
	return live, live, nil
}

// lastLines is the end of out, for messages.
func lastLines(out string, n int) string {
	lines := strings.Split(strings.TrimRight(out, "\r\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
