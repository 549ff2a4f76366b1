package sim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The REPL is the host's, byte for byte as MicroPython's pyexec.c has it:
// the friendly REPL runs in the VM (its readline, auto-indent, completion
// and paste mode are MicroPython's own C), the raw REPL and raw-paste
// here (the VM's build has no raw-paste), and the host decides soft
// reboots and interrupts.

const (
	rawBanner    = "raw REPL; CTRL-B to exit\r\n"
	pasteWindow  = 128                    // the raw-paste window the board advertises
	hangTimeout  = 700 * time.Millisecond // Ctrl-C unanswered this long: a loop with no blocking call
	softRebootMs = "MPY: soft reboot\r\n"
)

// life is one power-on of the board: from a reset to the next. Soft
// reboots happen inside it (each on a fresh VM).
type life struct {
	b     *Board
	cause int
	vm    *vmProc
	up    chan struct{} // closed once the first VM has loaded
	stop  chan struct{} // closed to end the life (a reset or Close)
	done  chan struct{} // closed when run returns
	err   error         // why the life could not start

	raw        bool        // the REPL is in raw mode (Go's)
	inRawExec  bool        // a raw-REPL block is running
	promptIdle bool        // the friendly REPL shows ">>> " and nothing has been typed since
	hung       atomic.Bool // the host ended a loop that ignored Ctrl-C (set by the hang timer)
	// rebootAfter: a REPL request ended in an unhandled SystemExit (sys.exit(),
	// machine.soft_reset(), which is sys.exit on the ESP8266); the soft reboot follows
	// the end of the running code.
	rebootAfter bool
	wdt         *time.Timer
	wdtTimeout  time.Duration
	wdtMu       sync.Mutex
	heap        heapState
	stopOnce    sync.Once
	tail        []byte // the last output bytes, to see the prompt
}

type heapState struct {
	limit, rom int
}

func newLife(b *Board, cause int) *life {
	return &life{b: b, cause: cause, up: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
}

// end stops the life and waits for it.
func (l *life) end() {
	l.stopOnce.Do(func() { close(l.stop) })
	if vm := l.currentVM(); vm != nil {
		vm.kill()
	}
	<-l.done
	l.wdtMu.Lock()
	if l.wdt != nil {
		l.wdt.Stop()
	}
	l.wdtMu.Unlock()
}

func (l *life) currentVM() *vmProc {
	l.b.mu.Lock()
	defer l.b.mu.Unlock()
	return l.vm
}

func (l *life) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

// run is the life: boot, boot.py and main.py, then the REPL until a reset.
func (l *life) run() {
	defer close(l.done)
	defer l.b.net.closeAll()
	l.raw = false
	if l.b.opts.BootGarbage {
		l.out(bootGarbage())
	}
	first := true
	for !l.stopped() {
		if err := l.loadVM(); err != nil {
			if first {
				l.err = err
				close(l.up)
			} else if !l.stopped() {
				l.b.logf("reboot: %v", err)
			}
			return
		}
		if first {
			close(l.up)
		}
		reboot := l.bootFiles(first)
		first = false
		if l.hung.Load() && !l.stopped() {
			reboot = l.afterHang() // main.py ignored Ctrl-C
		}
		for !reboot && !l.stopped() {
			var err error
			reboot, err = l.step()
			if err != nil {
				if l.hung.Load() && !l.stopped() {
					reboot = l.afterHang()
					continue
				}
				l.crashed(err)
				return
			}
		}
	}
}

// loadVM boots a fresh VM with the flash and the ESP8266's modules, in a
// new process every time: a process where board code has run could have
// left a JavaScript callback behind. The process comes from the board's
// spare (started ahead, so a reboot does not wait for Node.js to start).
func (l *life) loadVM() error {
	if vm := l.currentVM(); vm != nil {
		vm.kill()
	}
	vm, err := l.b.takeVM()
	if err != nil {
		return err
	}
	l.b.mu.Lock()
	l.vm = vm
	l.b.mu.Unlock()
	if l.stopped() {
		vm.kill()
		return errors.New("sim: reset during boot")
	}
	return l.boot()
}

// boot sends the VM its flash and modules.
func (l *life) boot() error {
	files, err := flashFiles(l.b.flash)
	if err != nil {
		return err
	}
	dirs, err := flashDirs(l.b.flash)
	if err != nil {
		return err
	}
	done, err := l.request(map[string]any{"t": "boot", "heap": l.b.opts.Heap, "files": files, "dirs": dirs,
		"rom": romModules(), "romCost": romCost.Load()})
	if err != nil {
		return fmt.Errorf("sim: the VM did not boot: %w", err)
	}
	romCost.Store(int64(done.RomCost))
	l.heap = heapState{limit: done.Limit, rom: done.Rom}
	l.b.heap.boot(done.Limit, done.Rom)
	return nil
}

// flashDirs lists every directory below the flash directory (empty ones
// too: os.mkdir on the board makes one that must outlive a reset), by its
// slash-separated path.
func flashDirs(dir string) ([]string, error) {
	dirs := []string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir || !d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		dirs = append(dirs, filepath.ToSlash(rel))
		return nil
	})
	return dirs, err
}

// bootFiles runs boot.py, then main.py when the REPL is friendly, as the
// board does after every reset; then the banner. It reports a soft reboot
// asked for meanwhile.
func (l *life) bootFiles(power bool) bool {
	l.b.net.closeAll()
	r, err := l.request(map[string]any{"t": "file", "path": "boot.py"})
	if err != nil || l.takeReboot() {
		return err == nil
	}
	// ports/esp8266/main.c runs main.py when pyexec_file_if_exists("boot.py") is
	// non-zero: boot.py ran to its end, or raised SystemExit (PYEXEC_FORCED_EXIT);
	// any other exception out of boot.py skips main.py.
	if !l.raw && (r.Exc == "" || r.Exc == "SystemExit") {
		if _, err := l.request(map[string]any{"t": "file", "path": "main.py"}); err != nil || l.takeReboot() {
			return err == nil
		}
	}
	if l.raw {
		l.outStr(rawBanner + ">")
		return false
	}
	_, _ = l.request(map[string]any{"t": "replinit", "lead": power})
	return false
}

// afterHang follows a loop the host ended: the state is lost; the REPL
// comes back as it was, on a fresh VM without running main.py again.
func (l *life) afterHang() bool {
	l.hung.Store(false)
	msg := "hil: the program ignored Ctrl-C for " + hangTimeout.String() +
		" (a loop with no blocking call, which this VM cannot interrupt); the host ended it and lost its state\r\n" +
		"KeyboardInterrupt: \r\n"
	if l.raw && l.inRawExec {
		// The raw REPL's client waits for the frames of the block it sent.
		l.outStr("\x04" + msg + "\x04")
	} else {
		l.outStr("\r\n" + msg)
	}
	if err := l.loadVM(); err != nil {
		return false
	}
	if l.raw {
		if !l.inRawExec {
			l.outStr(rawBanner)
		}
		l.outStr(">")
	} else {
		_, _ = l.request(map[string]any{"t": "replinit", "lead": false})
	}
	l.inRawExec = false
	return false
}

// crashed follows a VM process that ended on its own: the board says so
// and resets, as a chip that faults.
func (l *life) crashed(err error) {
	if l.stopped() {
		return
	}
	l.outStr("\r\nhil: the VM ended unexpectedly; the board resets\r\n")
	l.b.logf("vm: %v; resetting the board", err)
	go l.b.restartFrom(l, causeHard)
}

// step reads one unit of input: a friendly-REPL byte, or a raw-REPL block.
// It reports a soft reboot (done by then: the next loop iteration reboots).
func (l *life) step() (bool, error) {
	if l.raw {
		return l.rawStep()
	}
	c, ok := l.b.in.get(l.stop)
	if !ok {
		return false, errVMGone
	}
	if c == 0x04 && l.promptIdle {
		l.outStr("\r\n" + softRebootMs)
		return true, l.softReboot()
	}
	r, err := l.request(map[string]any{"t": "char", "c": int(c)})
	if err != nil {
		return false, err
	}
	if r.Raw {
		l.raw = true
	}
	if r.Exc == "SystemExit" {
		// The VM's pyexec returned PYEXEC_FORCED_EXIT (sys.exit(), or Ctrl-D on
		// an empty line it saw as such): the board soft-reboots.
		l.rebootAfter = true
	}
	return l.takeReboot(), nil
}

// takeReboot reports (once) a soft reboot that a SystemExit asked for,
// printing what the board prints.
func (l *life) takeReboot() bool {
	if !l.rebootAfter {
		return false
	}
	l.rebootAfter = false
	l.outStr(softRebootMs)
	l.cause = causeSoft
	return true
}

// softReboot marks a soft reset; run's loop then boots a new VM instance
// and runs boot.py (and main.py).
func (l *life) softReboot() error {
	l.cause = causeSoft
	return nil
}

// rawStep is pyexec_raw_repl_process_char over one block: bytes up to
// Ctrl-D, then OK and the execution; or raw-paste; or a mode change.
func (l *life) rawStep() (bool, error) {
	var line []byte
	for {
		c, ok := l.b.in.get(l.stop)
		if !ok {
			return false, errVMGone
		}
		switch c {
		case 0x01:
			if !l.b.opts.NoRawPaste && len(line) == 2 && line[0] == 0x05 {
				if line[1] != 'A' {
					l.outStr("R\x00")
					return false, nil
				}
				return l.rawPaste()
			}
			l.outStr(rawBanner + ">")
			line = line[:0]
			continue
		case 0x02:
			l.raw = false
			_, err := l.request(map[string]any{"t": "banner"})
			return false, err
		case 0x03:
			line = line[:0]
			continue
		case 0x04:
		default:
			line = append(line, c)
			continue
		}
		break
	}
	l.outStr("OK")
	if len(line) == 0 {
		l.outStr("\r\n" + softRebootMs)
		return true, l.softReboot()
	}
	err := l.rawExec(string(line))
	return l.takeReboot(), err
}

// rawExec runs src and frames its result: output, \x04, traceback, \x04, ">".
func (l *life) rawExec(src string) error {
	l.inRawExec = true
	r, err := l.request(map[string]any{"t": "exec", "src": src})
	if err != nil {
		return err
	}
	l.inRawExec = false
	if r.Exc == "SystemExit" {
		// pyexec.c: an unhandled SystemExit is PYEXEC_FORCED_EXIT; the raw REPL
		// returns it and ports/esp8266/main.c soft-reboots (boot.py runs, the
		// raw REPL starts again). Both EOF markers come first.
		l.rebootAfter = true
	}
	if l.rebootAfter {
		l.outStr("\x04\x04")
		return nil
	}
	l.outStr("\x04" + crlf(r.TB) + "\x04>")
	return nil
}

// rawPaste is raw-paste mode as mp_reader_new_stdin has it: the window
// size implies one free window and the first \x01 a second one; Ctrl-D ends
// the code, Ctrl-C abandons it.
func (l *life) rawPaste() (bool, error) {
	hdr := []byte{'R', 0x01, 0, 0, 0x01}
	binary.LittleEndian.PutUint16(hdr[2:4], pasteWindow)
	l.b.in.startPaste(pasteWindow)
	l.out(hdr)
	var code []byte
	remain := pasteWindow
	for {
		c, ok := l.b.in.get(l.stop)
		if !ok {
			l.b.in.endPaste()
			return false, errVMGone
		}
		if c == 0x03 || c == 0x04 {
			if d := l.b.in.endPaste(); d > 0 {
				l.b.logf("raw-paste: the host ignored the flow-control window; %d bytes dropped", d)
			}
			l.outStr("\x04")
			if c == 0x03 {
				l.outStr("\x04KeyboardInterrupt: \r\n\x04>")
				return false, nil
			}
			break
		}
		code = append(code, c)
		if remain--; remain == 0 {
			l.b.in.grant(pasteWindow)
			l.outStr("\x01")
			remain = pasteWindow
		}
	}
	err := l.rawExec(string(code))
	return l.takeReboot(), err
}

// request sends m and serves the VM until it says done: its output goes
// to the serial line, its flash changes to the host, its hardware calls to
// hw.go. Ctrl-C meanwhile interrupts it.
func (l *life) request(m map[string]any) (vmMsg, error) {
	vm := l.currentVM()
	if vm == nil {
		return vmMsg{}, errVMGone
	}
	if t := m["t"]; t == "exec" || t == "file" || t == "char" {
		l.b.in.setRunning(l, true)
		defer l.b.in.setRunning(l, false)
	}
	if err := vm.send(m); err != nil {
		return vmMsg{}, err
	}
	for {
		r, err := vm.recv()
		if err != nil {
			return vmMsg{}, err
		}
		switch r.T {
		case "out":
			l.out(unlatin1(r.D))
		case "fs":
			if err := applyFlash(l.b.flash, r); err != nil {
				l.b.logf("flash: %v", err)
			}
		case "call":
			reply := l.call(r)
			if err := vm.send(reply); err != nil {
				return vmMsg{}, err
			}
		case "done":
			if r.Crash != "" {
				// As a chip that faults: say why, then start again.
				l.outStr("\r\nhil: the VM stopped on a JavaScript error (" + r.Crash + "); the board resets\r\n")
				l.b.logf("vm: a JavaScript error escaped the VM: %s; resetting the board", r.Crash)
				go l.b.restartFrom(l, causeHard)
				<-l.stop
				return vmMsg{}, errVMGone
			}
			l.b.heap.sample(r.Live, r.Peak, r.Over)
			if r.Grew > 0 {
				l.b.heap.exceeded(r.Grew)
				l.b.logf("heap: the live data needed %d bytes, more than the board's %d (a MemoryError on the ESP8266)", r.Grew, l.heap.limit)
				switch {
				case m["t"] == "exec" && r.Exc == "":
					r.Exc, r.TB = "MemoryError", memoryErrorTB(l.heap.limit)
				case m["t"] == "file" || m["t"] == "char":
					l.outStr(crlf(memoryErrorTB(l.heap.limit)))
				}
			}
			return r, nil
		}
	}
}

// out writes serial output (paced at line rate when asked) and remembers
// whether it ends with the friendly prompt.
func (l *life) out(p []byte) {
	if len(p) == 0 {
		return
	}
	l.tail = append(l.tail, p...)
	if len(l.tail) > 8 {
		l.tail = l.tail[len(l.tail)-8:]
	}
	l.promptIdle = strings.HasSuffix(string(l.tail), ">>> ")
	l.b.serialOut(p)
}

func (l *life) outStr(s string) { l.out([]byte(s)) }

// memoryErrorTB is what a raw-REPL run that outgrew the heap reports:
// where the ESP8266 raises MemoryError.
func memoryErrorTB(limit int) string {
	return fmt.Sprintf("Traceback (most recent call last):\n  File \"<stdin>\", line 1, in <module>\n"+
		"MemoryError: memory allocation failed (hil: the live data outgrew the board's %d-byte heap)\n", limit)
}

// crlf ends lines as the board's UART does.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// bootGarbage is the ROM's log at 74880 baud read at 115200: deterministic
// noise with a few readable bytes, then a line end.
func bootGarbage() []byte {
	alphabet := []byte("\x00\x80\x8c\x9c\xe0\xf0\xfc\x12\x02\x0c\x8e\x92\xec\x72\x6c\x63\x70")
	out := make([]byte, 0, 98)
	x := uint32(74880)
	for range 96 {
		x = x*1103515245 + 12345
		out = append(out, alphabet[(x>>16)%uint32(len(alphabet))])
	}
	return append(out, '\r', '\n')
}
