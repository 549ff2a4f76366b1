// Package sim is the virtual TPYBoard v202: a pty that behaves like the board's USB serial port,
// with MicroPython's own VM (v1.27, 32-bit, compiled to WebAssembly: runtime/host.mjs runs it in a
// sandboxed Node.js process) as the CPU and this package as the rest of the ESP8266: the REPL
// protocol, the flash (a host directory), the GPIO pins (observable from Go), Wi-Fi, TCP sockets
// (loopback only), time, reset and power. The ESP8266's modules (machine, network, socket, ...)
// are MicroPython code in runtime/rom over a small bridge to this package.
//
// The pty master stays with the Board for its whole life; the VM behind it is replaced on every
// reset, so a client holding the port open sees the reboot as it would through a USB-serial
// bridge.
package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/term"
)

// WiFiMode chooses how the board's station interface behaves after connect().
type WiFiMode int

const (
	WiFiInstant WiFiMode = iota // isconnected() true at once
	WiFiDelay                   // true after WiFiBehaviour.Delay
	WiFiNever                   // never connects
)

// wifiModes are the names the runtime knows the modes by.
var wifiModes = map[WiFiMode]string{WiFiInstant: "instant", WiFiDelay: "delay", WiFiNever: "never"}

// WiFiBehaviour is the Wi-Fi the virtual board finds.
type WiFiBehaviour struct {
	Mode  WiFiMode
	Delay time.Duration
}

// Options configures a virtual board. The zero value is a fresh board on an empty temporary flash.
type Options struct {
	FlashDir    string            // "" = a fresh temp dir, removed by Close
	LineRate    bool              // pace both directions at BaudRate 8N1 (115200 -> 11,520 bytes/s)
	BaudRate    int               // line rate used with LineRate; 0 = 115200
	NoRawPaste  bool              // behave like firmware older than 1.14
	BootGarbage bool              // ROM boot log bytes before the banner on power-up/hard reset
	Redirects   map[string]string // "183.230.40.39:6002" -> "127.0.0.1:NNNN" (loopback targets only); unmapped non-loopback -> OSError
	WiFi        WiFiBehaviour
	// Heap is the board's GC heap in bytes; default DefaultHeap, the ESP8266's. Code that needs
	// more makes the board's heap "exceeded" (Heap, HeapError): where the ESP8266 raises
	// MemoryError.
	Heap int
	// Download starts the board in its ROM bootloader (download mode, as
	// with GPIO0 held low at reset): see rom.go.
	Download bool
	Node     string    // Node.js 20 or newer, default "node"
	Log      io.Writer // diagnostics (the VM's stderr, Wi-Fi, resets), nil = discard
}

// DefaultHeap is the ESP8266 port's GC heap: 38 KB (ports/esp8266/main.c).
const DefaultHeap = 38 * 1024

// Reset causes as machine.reset_cause() reports them on the ESP8266.
const (
	causePowerOn = 0
	causeWDT     = 1
	causeSoft    = 4 // machine.reset()
	causeHard    = 6 // reset line / PowerCycle
)

// startTimeout bounds how long a runtime may take to come up (a loaded CI machine is slow).
const startTimeout = 20 * time.Second

// Board is one running virtual board.
type Board struct {
	opts    Options
	master  *os.File
	slave   *os.File // held open so the master never sees EIO while no client has the port
	port    string
	flash   string
	ownDir  string // temp dir holding the runtime script (and the flash when not given)
	rx, tx  *pacer
	pins    *pinBoard
	deps    runtimeDeps
	in      *input
	net     *network
	heap    heapStats
	cpuFreq int
	cycleMu sync.Mutex // serialises power cycles and Close

	mu     sync.Mutex
	life   *life
	closed bool
	spare  *vmProc   // a VM process started ahead, waiting for its boot
	rom    *romState // the ROM bootloader and the SPI flash (rom.go)

	relayDone   chan struct{}
	congested   bool      // output is being dropped (only the output relay touches it)
	congestedAt time.Time // when a write last found nobody reading
}

// Start creates the pty, starts the VM and returns once it has loaded; the board then boots on
// its own (boot output, boot.py, main.py, banner) as after power-up.
func Start(ctx context.Context, opts Options) (*Board, error) {
	if opts.Node == "" {
		opts.Node = "node"
	}
	if opts.BaudRate == 0 {
		opts.BaudRate = 115200
	}
	if opts.BaudRate < 0 {
		return nil, fmt.Errorf("sim: invalid baud rate %d", opts.BaudRate)
	}
	if opts.Heap == 0 {
		opts.Heap = DefaultHeap
	}
	if opts.Heap < 4096 {
		return nil, fmt.Errorf("sim: heap of %d bytes: want 4096 or more", opts.Heap)
	}
	if _, ok := wifiModes[opts.WiFi.Mode]; !ok {
		return nil, fmt.Errorf("sim: unknown Wi-Fi mode %d", opts.WiFi.Mode)
	}
	var errs []error
	for _, from := range slices.Sorted(maps.Keys(opts.Redirects)) {
		errs = append(errs, CheckRedirect(from, opts.Redirects[from]))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	deps, err := findRuntime(ctx, opts.Node, opts.Log)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hil-sim-")
	if err != nil {
		return nil, err
	}
	b := &Board{opts: opts, ownDir: dir, deps: deps, pins: newPinBoard(), in: newInput(), cpuFreq: 80000000,
		relayDone: make(chan struct{})}
	b.net = newNetwork(b, true)
	b.rom = newROM(b)
	if err := b.prepare(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go b.relayInput()

	if opts.Download {
		b.rom.enter()
		return b, nil
	}
	if err := b.startLife(ctx, causePowerOn); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// CheckRedirect accepts a redirect of host:port from to a loopback IPv4
// literal and port: the virtual board must never reach another host (a
// target of 183.230.40.39:6002 would be the real OneNET).
func CheckRedirect(from, to string) error {
	host, port, err := net.SplitHostPort(from)
	if err != nil || host == "" {
		return fmt.Errorf("sim: redirect %q: want the address the firmware dials as host:port", from)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("sim: redirect %q: bad port %q", from, port)
	}
	ap, err := netip.ParseAddrPort(to)
	if err != nil || !ap.Addr().Is4() || !ap.Addr().IsLoopback() || ap.Port() == 0 {
		return fmt.Errorf("sim: redirect %s -> %q refused: the target must be a loopback IPv4 address and port "+
			"(127.x.x.x:PORT); the virtual board never reaches another host", from, to)
	}
	return nil
}

// prepare lays out the runtime and the flash and opens the pty; on error the caller removes ownDir.
func (b *Board) prepare() error {
	if err := os.WriteFile(filepath.Join(b.ownDir, "host.mjs"), hostSource, 0o600); err != nil {
		return err
	}
	b.flash = b.opts.FlashDir
	if b.flash == "" {
		b.flash = filepath.Join(b.ownDir, "flash")
		if err := os.Mkdir(b.flash, 0o700); err != nil { // config.json's secrets live here
			return err
		}
	} else if st, err := os.Stat(b.flash); err != nil || !st.IsDir() {
		return fmt.Errorf("sim: flash directory %q is not a directory", b.flash)
	}
	if abs, err := filepath.Abs(b.flash); err == nil {
		b.flash = abs
	}
	if b.opts.LineRate {
		perByte := time.Second * 10 / time.Duration(b.opts.BaudRate) // 8N1: 10 bits a byte
		b.rx, b.tx = &pacer{perByte: perByte}, &pacer{perByte: perByte}
	}
	master, slave, err := pty.Open()
	if err != nil {
		return fmt.Errorf("sim: open pty: %w", err)
	}
	// Raw from the start: no echo, no CR/NL translation before a client sets its own mode.
	if _, err := term.MakeRaw(int(slave.Fd())); err != nil {
		master.Close()
		slave.Close()
		return fmt.Errorf("sim: raw mode on pty: %w", err)
	}
	if master, err = pollable(master); err != nil {
		slave.Close()
		return fmt.Errorf("sim: pty master: %w", err)
	}
	b.master, b.slave, b.port = master, slave, slave.Name()
	return nil
}

// Port is the pty slave path, to be opened like /dev/ttyUSB0.
func (b *Board) Port() string { return b.port }

// FlashDir is the host directory that is the board's flash.
func (b *Board) FlashDir() string { return b.flash }

// Pin is the current level of GPIO n (0 for a pin never driven).
func (b *Board) Pin(n int) int { return b.pins.level(n) }

// PinChanges subscribes to pin level changes; call the returned func to unsubscribe.
func (b *Board) PinChanges() (<-chan PinChange, func()) { return b.pins.subscribe() }

// WaitPin waits until GPIO pin is at value, bounded by ctx.
func (b *Board) WaitPin(ctx context.Context, pin, value int) error {
	return b.pins.wait(ctx, pin, value)
}

// SetWiFi makes the access point disappear (isconnected() false, open sockets fail) or come back.
func (b *Board) SetWiFi(up bool) error {
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return errors.New("sim: board closed")
	}
	b.net.setLink(up)
	return nil
}

// PowerCycle is a hard reset: the program's state is lost, the flash is kept, the board boots again.
func (b *Board) PowerCycle() error { return b.restart(context.Background(), causeHard) }

func (b *Board) restart(ctx context.Context, cause int) error {
	return b.restartIf(ctx, nil, cause)
}

// restartIf resets the board; with from set, only while from is still
// the current life (checked under cycleMu, so a watchdog or
// machine.reset() racing a power cycle does not reset the new life).
func (b *Board) restartIf(ctx context.Context, from *life, cause int) error {
	b.cycleMu.Lock()
	defer b.cycleMu.Unlock()
	b.mu.Lock()
	closed, current := b.closed, b.life
	b.mu.Unlock()
	if closed {
		return errors.New("sim: board closed")
	}
	if from != nil && current != from {
		return nil
	}
	b.stopLife()
	b.pins.powerOff()
	return b.bootFlash(ctx, cause)
}

// restartFrom resets the board from inside life l (machine.reset(), the
// watchdog, a crash), unless a reset has replaced l already.
func (b *Board) restartFrom(l *life, cause int) {
	if err := b.restartIf(context.Background(), l, cause); err != nil {
		b.logf("reset: %v", err)
	}
}

// Close stops the board and removes its temporary files (and the flash when it was temporary).
func (b *Board) Close() error {
	b.cycleMu.Lock()
	defer b.cycleMu.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.stopLife()
	b.mu.Lock()
	spare := b.spare
	b.spare = nil
	b.mu.Unlock()
	if spare != nil {
		spare.kill()
	}
	err := b.master.Close()
	<-b.relayDone
	b.slave.Close()
	b.pins.close()
	if rmErr := os.RemoveAll(b.ownDir); err == nil {
		err = rmErr
	}
	return err
}

// takeVM returns the spare VM process (or a new one) and starts the next
// spare in the background.
func (b *Board) takeVM() (*vmProc, error) {
	b.mu.Lock()
	vm := b.spare
	b.spare = nil
	b.mu.Unlock()
	if vm == nil || vm.exitedEarly() {
		var err error
		if vm, err = startVM(context.Background(), b); err != nil {
			return nil, err
		}
	}
	go b.startSpare()
	return vm, nil
}

func (b *Board) startSpare() {
	vm, err := startVM(context.Background(), b)
	if err != nil {
		return // the next boot starts its own
	}
	b.mu.Lock()
	if b.closed || b.spare != nil {
		b.mu.Unlock()
		vm.kill()
		return
	}
	b.spare = vm
	b.mu.Unlock()
}

// startLife boots the board and returns once its VM has loaded.
func (b *Board) startLife(ctx context.Context, cause int) error {
	b.in.reset()
	b.net.reboot()
	l := newLife(b, cause)
	b.mu.Lock()
	b.life = l
	b.mu.Unlock()
	go l.run()
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case <-l.up:
		return l.err
	case <-timer.C:
		return fmt.Errorf("sim: the VM did not load within %v", startTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Board) stopLife() {
	b.mu.Lock()
	l := b.life
	b.life = nil
	b.mu.Unlock()
	if l != nil {
		l.end()
	}
}

func (b *Board) freq(hz int) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if hz > 0 {
		b.cpuFreq = hz
	}
	return b.cpuFreq
}

// serialOut writes the board's output to the line, paced like it.
func (b *Board) serialOut(p []byte) {
	pieces := [][]byte{p}
	if b.tx != nil {
		pieces = chunks(p, paceChunk)
	}
	for _, chunk := range pieces {
		b.tx.wait(len(chunk))
		b.writeMaster(chunk)
	}
}

// vmLog is where the VM's own diagnostics go.
func (b *Board) vmLog() io.Writer {
	if b.opts.Log == nil {
		return io.Discard
	}
	return prefixWriter{w: b.opts.Log, prefix: "sim: vm: "}
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	_, err := io.WriteString(p.w, p.prefix+string(b))
	return len(b), err
}

// relayInput carries the host's bytes (pty master) to the current runtime, paced like the line.
// Bytes sent while the board is being reset are lost, as on the real line.
func (b *Board) relayInput() {
	defer close(b.relayDone)
	buf := make([]byte, 1024)
	for {
		n, err := b.master.Read(buf)
		if n > 0 {
			pieces := [][]byte{buf[:n]} // unpaced: as the host wrote it
			if b.rx != nil {
				pieces = chunks(buf[:n], paceChunk)
			}
			for _, piece := range pieces {
				b.rx.wait(len(piece))
				if b.rom.takes(piece) { // download mode
					continue
				}
				b.in.feed(piece)
			}
		}
		if err != nil {
			return
		}
	}
}

// writeMaster drops what no client reads, as a USB-serial bridge with nobody listening does: the
// first write into a full pty may wait a second, later ones barely, until the client reads again.
// The board itself never stalls for long on its output.
func (b *Board) writeMaster(p []byte) {
	wait := time.Second
	if b.congested {
		// Output goes out a line at a time: while nobody reads, drop at once
		// and look again every 50 ms (a client that stalled a moment gets
		// the line rate back within that).
		if time.Since(b.congestedAt) < 50*time.Millisecond {
			return
		}
		wait = 10 * time.Millisecond
	}
	deadlineOK := b.master.SetWriteDeadline(time.Now().Add(wait)) == nil
	for len(p) > 0 {
		n, err := b.master.Write(p)
		p = p[n:]
		if err != nil {
			if deadlineOK && errors.Is(err, os.ErrDeadlineExceeded) {
				if !b.congested {
					b.logf("serial output not read by any client: dropping it until a client reads")
				}
				b.congested = true
				b.congestedAt = time.Now()
			}
			return
		}
	}
	b.congested = false
}

func (b *Board) logf(format string, args ...any) {
	if b.opts.Log != nil {
		fmt.Fprintf(b.opts.Log, "sim: "+format+"\n", args...)
	}
}

// pollable returns f as a non-blocking file on Go's poller, so that Close interrupts a pending Read
// and writes can have deadlines (creack/pty leaves the master in blocking mode).
func pollable(f *os.File) (*os.File, error) {
	fd, err := syscall.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return nil, err
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "/dev/ptmx"), nil
}
