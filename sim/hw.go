package sim

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"
)

// rtcOffsets holds what machine.RTC was set to, per board: the seconds it runs
// ahead of the host's clock (time.time(), time.localtime() and RTC.datetime()
// follow it). The ESP8266 keeps it in RTC memory, which every reset keeps; a
// new Board starts at the host's time. Weak keys: a board's entry goes with it.
var rtcOffsets sync.Map // weak.Pointer[Board] -> int64

func (b *Board) rtcOffset() int64 {
	if v, ok := rtcOffsets.Load(weak.Make(b)); ok {
		return v.(int64)
	}
	return 0
}

func (b *Board) setRTCOffset(off int64) {
	k := weak.Make(b)
	if _, loaded := rtcOffsets.Swap(k, off); !loaded {
		runtime.AddCleanup(b, func(k weak.Pointer[Board]) { rtcOffsets.Delete(k) }, k)
	}
}

// The board's hardware as the VM's ESP8266 modules (runtime/rom) reach it:
// one handler per bridge call. A handler that blocks (sleep, recv, poll)
// wakes on Ctrl-C and on the end of the life.

// reply is a call's answer: a value, an errno (OSError), or an interrupt.
type reply struct {
	T    string `json:"t"`
	V    any    `json:"v,omitempty"`
	Err  *int   `json:"err,omitempty"`
	Intr int    `json:"intr,omitempty"`
	EOF  int    `json:"eof,omitempty"` // raise EOFError (input() read Ctrl-D)
}

func ok(v any) reply    { return reply{T: "ret", V: v} }
func oserr(n int) reply { return reply{T: "ret", Err: &n} }

// MicroPython's errno numbers (the ESP8266 port's).
const (
	eNOENT        = 2
	eIO           = 5
	eBADF         = 9
	eAGAIN        = 11
	eINVAL        = 22
	eOPNOTSUPP    = 95
	eCONNABORTED  = 103
	eCONNRESET    = 104
	eNOTCONN      = 107
	eTIMEDOUT     = 110
	eCONNREFUSED  = 111
	eHOSTUNREACH  = 113
	eINPROGRESS   = 115
	lwipNotFound  = -2 // getaddrinfo: the name did not resolve
	intrSentinel  = -1
	defaultUnique = "7f010203" // machine.unique_id(): the ESP8266's 4-byte chip id
)

type args []json.RawMessage

func (a args) int(i int) int {
	if i >= len(a) {
		return 0
	}
	var n float64
	if json.Unmarshal(a[i], &n) != nil {
		return 0
	}
	return int(n)
}

func (a args) str(i int) string {
	if i >= len(a) {
		return ""
	}
	var s string
	if json.Unmarshal(a[i], &s) != nil {
		return ""
	}
	return s
}

// call dispatches one bridge call.
func (l *life) call(m vmMsg) reply {
	a := args(m.A)
	b := l.b
	// Every call into the host is where a pending Ctrl-C is raised, as the
	// board's VM raises it at its next check.
	if m.Op != "reset" && m.Op != "sock_close" && b.in.takeIntr() {
		return l.interrupted()
	}
	switch m.Op {
	case "sleep":
		return l.sleep(time.Duration(a.int(0)) * time.Millisecond)
	case "sleep_us":
		if us := a.int(0); us >= 1000 {
			return l.sleep(time.Duration(us) * time.Microsecond)
		}
		return l.sleep(0)
	case "time":
		return ok(time.Now().Unix() + b.rtcOffset())
	case "rtc_set":
		// machine.RTC().datetime((y, m, d, wd, h, mi, s, sub)), the weekday ignored
		// as on the board.
		set := time.Date(a.int(0), time.Month(a.int(1)), a.int(2), a.int(3), a.int(4), a.int(5), 0, time.UTC)
		b.setRTCOffset(set.Unix() - time.Now().Unix())
		return ok(nil)
	case "pin":
		n, v := a.int(0), a.int(1)
		if v < 0 {
			return ok(b.pins.level(n))
		}
		b.pins.set(n, v, time.Now())
		return ok(nil)
	case "pin_mode":
		return ok(nil)
	case "reset":
		go b.restartFrom(l, causeSoft)
		<-l.stop
		return l.interrupted()
	case "cause":
		return ok(l.cause)
	case "unique_id":
		return ok(defaultUnique)
	case "freq":
		return ok(l.b.freq(a.int(0)))
	case "wdt":
		l.feedWDT(time.Duration(a.int(0)) * time.Millisecond)
		return ok(nil)
	case "wlan_active", "wlan_connect", "wlan_disconnect", "wlan_isconnected", "wlan_status", "wlan_rssi",
		"wlan_ifconfig", "wlan_config":
		return b.net.wlan(l, m.Op, a)
	case "resolve":
		return b.net.resolve(a.str(0), a.int(1))
	case "sock_new":
		return ok(b.net.newSocket())
	case "sock_connect":
		return b.net.connect(l, a.int(0), a.str(1), a.int(2))
	case "sock_send":
		data, err := hex.DecodeString(a.str(1))
		if err != nil {
			return oserr(eINVAL)
		}
		return b.net.send(l, a.int(0), data)
	case "sock_recv":
		return b.net.recv(l, a.int(0), a.int(1), a.int(2) == 1, a.int(3))
	case "sock_timeout":
		return b.net.setTimeout(a.int(0), a.int(1))
	case "sock_close":
		b.net.close(a.int(0))
		return ok(nil)
	case "sock_bind", "sock_listen", "sock_accept", "sock_peer":
		return oserr(eOPNOTSUPP)
	case "poll":
		return b.net.poll(l, a.str(0), a.int(1))
	case "stdin":
		return l.stdin(a.int(0))
	case "input":
		return l.input(a.str(0))
	case "kbd":
		l.b.in.mu.Lock()
		l.b.in.kbd = a.int(0)
		l.b.in.mu.Unlock()
		return ok(nil)
	case "help":
		if a.str(0) == "modules" {
			l.outStr(crlf(helpModules))
		} else {
			l.outStr(crlf(helpText))
		}
		return ok(nil)
	}
	return oserr(eINVAL)
}

// stdin is sys.stdin's read: at least one byte, up to n, as they come.
func (l *life) stdin(n int) reply {
	in := l.b.in
	for {
		if in.takeIntr() {
			return l.interrupted()
		}
		in.mu.Lock()
		if len(in.q) > 0 {
			k := min(n, len(in.q))
			data := append([]byte(nil), in.q[:k]...)
			in.q = in.q[k:]
			in.mu.Unlock()
			return ok(hex.EncodeToString(data))
		}
		notify, intr := in.notify, in.intrCh
		in.mu.Unlock()
		select {
		case <-notify:
		case <-intr:
		case <-l.stop:
			return l.interrupted()
		}
	}
}

// input is input(): the prompt, then a line typed on the serial line with
// its echo; Enter ends it, Backspace removes a character, Ctrl-C is
// KeyboardInterrupt and Ctrl-D on an empty line EOFError (as readline.c and
// builtins.input have it).
func (l *life) input(prompt string) reply {
	l.outStr(prompt)
	var line []byte
	for {
		r := l.stdin(1)
		if r.Intr != 0 || r.Err != nil {
			return r
		}
		b, _ := hex.DecodeString(r.V.(string))
		for _, c := range b {
			switch {
			case c == '\r' || c == '\n':
				l.outStr("\r\n")
				return ok(string(line))
			case c == 8 || c == 127:
				if len(line) > 0 {
					line = line[:len(line)-1]
					l.outStr("\x08\x1b[K")
				}
			case c == 4 && len(line) == 0:
				return reply{T: "ret", EOF: 1}
			case c >= 32:
				line = append(line, c)
				l.out([]byte{c})
			}
		}
	}
}

// interrupted answers a call the life will not finish (it is being reset).
func (l *life) interrupted() reply { return reply{T: "ret", Intr: 1} }

// sleep blocks the VM for d, or until Ctrl-C (KeyboardInterrupt).
func (l *life) sleep(d time.Duration) reply {
	if l.b.in.takeIntr() {
		return l.interrupted()
	}
	if d <= 0 {
		return ok(nil)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return ok(nil)
	case <-l.b.in.intrChan():
		l.b.in.takeIntr()
		return l.interrupted()
	case <-l.stop:
		return l.interrupted()
	}
}

// feedWDT arms (timeout > 0 the first time) or feeds the watchdog: unfed
// for its timeout, it resets the board.
func (l *life) feedWDT(timeout time.Duration) {
	l.wdtMu.Lock()
	defer l.wdtMu.Unlock()
	if l.wdt == nil {
		if timeout <= 0 {
			return
		}
		l.wdt = time.AfterFunc(timeout, func() {
			l.b.logf("watchdog timeout: resetting")
			l.b.restartFrom(l, causeWDT)
		})
		l.wdtTimeout = timeout
		return
	}
	l.wdt.Reset(l.wdtTimeout)
}

// input is the serial line's receive side: the bytes the host sent, and
// Ctrl-C as an interrupt while code runs.
type input struct {
	mu      sync.Mutex
	q       []byte
	notify  chan struct{}
	running *life
	intr    bool
	intrCh  chan struct{}
	hang    *time.Timer
	kbd     int // the interrupt character (micropython.kbd_intr)
	intrPos int // where in q the pending interrupt arrived
	// paste is the raw-paste window accounting while the host pastes: a
	// host that sends past the windows granted has those bytes dropped.
	paste *pasteWindowAcct
}

type pasteWindowAcct struct {
	allowed, received, dropped int
}

func newInput() *input {
	return &input{notify: make(chan struct{}), intrCh: make(chan struct{}), kbd: 3}
}

// maxInput bounds what waits unread (the UART's buffer): more is dropped.
const maxInput = 1 << 16

func (in *input) feed(p []byte) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, c := range p {
		if in.running != nil && int(c) == in.kbd {
			if !in.intr {
				in.intr = true
				in.intrPos = len(in.q)
				close(in.intrCh)
				l := in.running
				in.hang = time.AfterFunc(hangTimeout, func() { l.hangUp() })
			}
			continue
		}
		if p := in.paste; p != nil {
			if p.received >= p.allowed && c != 0x03 && c != 0x04 {
				p.dropped++
				continue
			}
			p.received++
		}
		if len(in.q) < maxInput {
			in.q = append(in.q, c)
		}
	}
	close(in.notify)
	in.notify = make(chan struct{})
}

// get returns the next byte, waiting until one comes or stop closes.
func (in *input) get(stop <-chan struct{}) (byte, bool) {
	for {
		in.mu.Lock()
		if len(in.q) > 0 {
			c := in.q[0]
			in.q = in.q[1:]
			in.mu.Unlock()
			return c, true
		}
		n := in.notify
		in.mu.Unlock()
		select {
		case <-n:
		case <-stop:
			return 0, false
		}
	}
}

// setRunning marks the time code runs (Ctrl-C then interrupts it). An
// interrupt not taken by the time it stops goes to the REPL as a byte.
func (in *input) setRunning(l *life, on bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if on {
		// pyexec sets Ctrl-C as the interrupt for every execution
		// (micropython.kbd_intr changes it for that execution only).
		in.kbd = 3
		in.running = l
		return
	}
	in.running = nil
	if in.intr {
		// Not taken by the code: the byte goes to the REPL where it came.
		pos := min(in.intrPos, len(in.q))
		in.q = append(in.q[:pos], append([]byte{byte(in.kbd)}, in.q[pos:]...)...)
		in.clearIntrLocked()
	}
	in.kbd = 3
}

func (in *input) clearIntrLocked() {
	in.intr = false
	in.intrCh = make(chan struct{})
	if in.hang != nil {
		in.hang.Stop()
		in.hang = nil
	}
}

// takeIntr consumes a pending interrupt.
func (in *input) takeIntr() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.intr {
		return false
	}
	in.clearIntrLocked()
	return true
}

func (in *input) intrChan() <-chan struct{} {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.intrCh
}

// startPaste begins the window accounting: the window size implies one
// free window and the first \x01 a second one.
func (in *input) startPaste(window int) *pasteWindowAcct {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.paste = &pasteWindowAcct{allowed: 2 * window}
	return in.paste
}

// grant opens one more window (before the host can see the \x01).
func (in *input) grant(window int) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.paste != nil {
		in.paste.allowed += window
	}
}

// endPaste stops the accounting and says how many bytes were dropped.
func (in *input) endPaste() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	d := 0
	if in.paste != nil {
		d = in.paste.dropped
	}
	in.paste = nil
	return d
}

// reset drops what was unread and any interrupt (the chip restarted).
func (in *input) reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.q = nil
	in.running = nil
	in.kbd = 3
	if in.intr {
		in.clearIntrLocked()
	}
}

// hangUp ends a VM that ignored Ctrl-C: a loop with no call into the host
// cannot be interrupted inside the VM.
func (l *life) hangUp() {
	l.b.in.mu.Lock()
	still := l.b.in.intr && l.b.in.running == l
	if still {
		l.b.in.clearIntrLocked()
	}
	l.b.in.mu.Unlock()
	if !still {
		return
	}
	l.hung.Store(true)
	if vm := l.currentVM(); vm != nil {
		vm.kill()
	}
}

// heapStats follow the board's heap across lives.
type heapStats struct {
	mu       sync.Mutex
	limit    int  // the board's heap total (as the ESP8266's gc reports it)
	rom      int  // what the ESP8266's modules hold on this VM's heap after boot
	live     int  // the most the board's code held live after a request
	peak     int  // the most a request held before its collection
	over     bool // a request held more than the heap before its collection
	grew     bool
	grewSize int
}

func (h *heapStats) boot(limit, rom int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.limit, h.rom = limit, rom
}

// sample takes one request's figures (the board code's share, less what
// the modules' doubles hold).
func (h *heapStats) sample(live, peak int, over bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live = max(h.live, live)
	h.peak = max(h.peak, peak, live)
	h.over = h.over || over
}

func (h *heapStats) exceeded(total int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.grew, h.grewSize = true, total
}

func (h *heapStats) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.live, h.peak, h.over, h.grew, h.grewSize = 0, 0, false, false, 0
}

// Heap is what the board's heap went through since Start (or ResetHeap).
//
// This VM collects garbage only when control returns to its top level,
// between two requests (a raw-REPL exec, a REPL line, boot.py, main.py);
// during a request it grows its heap instead of collecting. So the figures
// are taken there: Live is exact, Peak is an upper bound of what the board,
// which collects whenever it must, needs. Code that never returns to the top
// level (a firmware's main loop) is measured by running its steps one
// request at a time (harness/heapprobe).
type Heap struct {
	// Size is the heap the board's code has (the ESP8266's GC heap).
	Size int
	// Live is the most the board's code held after a request's collection.
	Live int
	// Peak is the most a request held before its collection: the live data
	// before it plus everything it allocated.
	Peak int
	// Over is set once a request held more than Size at some point before
	// its collection (this VM then adds a heap area): the board would have
	// had to collect mid-request, which frees only garbage. For a compile
	// (an import), whose scratch memory is freed explicitly rather than
	// left as garbage, it is as good as a MemoryError.
	Over bool
	// Exceeded is set once the live data outgrew Size: where the ESP8266
	// raises MemoryError for certain.
	Exceeded bool
}

// Heap reports the board's heap.
func (b *Board) Heap() Heap {
	b.heap.mu.Lock()
	defer b.heap.mu.Unlock()
	return Heap{Size: b.heap.limit, Live: b.heap.live, Peak: b.heap.peak, Over: b.heap.over, Exceeded: b.heap.grew}
}

// ResetHeap starts the figures again (Size stays).
func (b *Board) ResetHeap() { b.heap.reset() }

// HeapError says why the board's heap failed it, or nil.
func (b *Board) HeapError() error {
	h := b.Heap()
	if !h.Exceeded {
		return nil
	}
	return fmt.Errorf("MemoryError: the firmware needed more than the board's %d-byte heap (the ESP8266 has %d KB)",
		h.Size, b.opts.Heap/1024)
}

func parsePollSpec(s string) [][2]int {
	var out [][2]int
	for _, part := range strings.Split(s, ",") {
		f, m, found := strings.Cut(part, ":")
		if !found {
			continue
		}
		fd, err1 := strconv.Atoi(f)
		mask, err2 := strconv.Atoi(m)
		if err1 == nil && err2 == nil {
			out = append(out, [2]int{fd, mask})
		}
	}
	return out
}

// helpText is the ESP8266 port's help() (ports/esp8266/help.c, esp_help_text, as of v1.27.0).
const helpText = `Welcome to MicroPython!

For online docs please visit http://docs.micropython.org/

For diagnostic information to include in bug reports execute 'import port_diag'.

Basic WiFi configuration:

import network
sta_if = network.WLAN(network.WLAN.IF_STA); sta_if.active(True)
sta_if.scan()                             # Scan for available access points
sta_if.connect("<AP_name>", "<key>") # Connect to an AP
sta_if.isconnected()                      # Check for successful connection
# Change name/password of ESP8266's AP:
ap_if = network.WLAN(network.WLAN.IF_AP)
ap_if.config(ssid="<AP_NAME>", security=network.AUTH_WPA_WPA2_PSK, key="<key>")

Control commands:
  CTRL-A        -- on a blank line, enter raw REPL mode
  CTRL-B        -- on a blank line, enter normal REPL mode
  CTRL-C        -- interrupt a running program
  CTRL-D        -- on a blank line, do a soft reset of the board
  CTRL-E        -- on a blank line, enter paste mode

For further help on a specific object, type help(obj)
`

// helpModules is help('modules') of the ESP8266 build: its built-in and
// frozen modules (the frozen ones are not on this VM: see sim/README.md).
const helpModules = `__main__          esp               micropython       struct
_boot             flashbdev         neopixel          sys
_onewire          framebuf          network           time
_webrepl          gc                ntptime           uasyncio
apa102            hashlib           onewire           uctypes
array             heapq             os                umqtt/robust
asyncio/__init__  inisetup          port_diag         umqtt/simple
asyncio/core      io                random            vfs
asyncio/event     json              re                webrepl
asyncio/funcs     lwip              select            webrepl_setup
asyncio/lock      machine           socket
asyncio/stream    math              ssl
binascii          builtins          deflate           dht
collections       ds18x20           errno
Plus any modules on the filesystem
`
