package esprom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/internal/esp8266"
)

// Timeouts (Espressif, "Serial Protocol" and esptool's documented
// defaults): a command answers within 3 s; FLASH_BEGIN erases first, so
// it gets 30 s per MB erased; a FLASH_DATA block 40 s per MB written, at
// least the default.
const (
	DefaultTimeout     = 3 * time.Second
	SyncTimeout        = 100 * time.Millisecond
	EraseTimeoutPerMB  = 30 * time.Second
	WriteTimeoutPerMB  = 40 * time.Second
	ROMBaud            = 115200
	syncAttempts       = 7
	probeTimeout       = 300 * time.Millisecond // a command the ROM may not have
	resetHold          = 100 * time.Millisecond // EN held low
	bootstrapHold      = 50 * time.Millisecond  // GPIO0 held low after EN rises
	defaultBannerAfter = 3 * time.Second        // then Ctrl-C: a main.py may hold the REPL
)

// perMB scales a per-megabyte timeout to size bytes, never under the default.
func perMB(per time.Duration, size int) time.Duration {
	return max(DefaultTimeout, time.Duration(float64(per)*float64(size)/1e6))
}

// CommandError is a command the ROM answered with a failure status.
type CommandError struct {
	Op   byte
	Code byte
	// Unsupported: the loader does not have the command.
	Unsupported bool
}

func (e *CommandError) Error() string {
	if e.Unsupported {
		return fmt.Sprintf("%s: not a command of this loader", esp8266.CommandName(e.Op))
	}
	return fmt.Sprintf("%s failed: %s", esp8266.CommandName(e.Op), esp8266.ErrorName(e.Code))
}

// drain drops what arrives until the line is quiet for 50 ms (at most
// 400 ms): the repeats of an "unsupported" answer.
func (l *Loader) drain(ctx context.Context) {
	deadline := time.Now().Add(400 * time.Millisecond)
	for time.Now().Before(deadline) {
		if _, err := l.port.ReadSome(ctx, 50*time.Millisecond); err != nil {
			break
		}
	}
	l.got, l.dec = nil, esp8266.SLIPDecoder{}
}

// ErrNoAnswer means a command got no answer in time.
var ErrNoAnswer = errors.New("no answer")

// Info is what the ROM says about the board.
type Info struct {
	Chip      string // "ESP8266"
	MAC       [6]byte
	ChipID    uint32
	FlashID   uint32 // JEDEC id as RDID returns it (manufacturer in the low byte)
	FlashSize int    // bytes, from the id
}

// MACString is the MAC as aa:bb:cc:dd:ee:ff.
func (i Info) MACString() string {
	m := i.MAC
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// Loader talks to a board's ROM bootloader on a serial port.
type Loader struct {
	path string
	port *link.Link
	dec  esp8266.SLIPDecoder
	got  [][]byte
	// after is what the board printed behind FLASH_END's answer (its reboot).
	after []byte
	// heard is the last bytes received, for a SYNC nobody answered.
	heard []byte
	// Baud is the line's current rate.
	Baud int
	// Log gets a line for each step (nil: none).
	Log func(format string, args ...any)
}

// Open opens the port at the ROM's 115200 baud.
func Open(path string) (*Loader, error) {
	p, err := link.Open(path, link.Options{Baud: ROMBaud, MaxLines: 200})
	if err != nil {
		return nil, err
	}
	return &Loader{path: path, port: p, Baud: ROMBaud}, nil
}

// NewLoader talks over a link that is already open (a rig's), at its
// rate: without the path to reopen it, the rate cannot change, and Close
// leaves the link open.
func NewLoader(l *link.Link) *Loader {
	return &Loader{port: l, Baud: ROMBaud}
}

// Close closes the port (unless it was lent: NewLoader).
func (l *Loader) Close() error {
	if l.path == "" {
		return nil
	}
	return l.port.Close()
}

// Link is the open port (to read the board's boot output after Run).
func (l *Loader) Link() *link.Link { return l.port }

func (l *Loader) logf(format string, args ...any) {
	if l.Log != nil {
		l.Log(format, args...)
	}
}

// EnterBootloader drives the auto-reset circuit of ESP8266 boards (two
// transistors: DTR pulls GPIO0 low, RTS pulls EN low) as Espressif's
// "Entering the Bootloader" describes: EN low, then EN high while GPIO0
// is low, then GPIO0 released. A port without modem lines returns an error
// matching link.ErrNoModemLines: the board must be put in download mode
// by hand (FLASH button held while pressing RESET; hil sim --download).
func (l *Loader) EnterBootloader(ctx context.Context) error {
	steps := []struct {
		dtr, rts bool
		hold     time.Duration
	}{{false, true, resetHold}, {true, false, bootstrapHold}, {false, false, 0}}
	for _, s := range steps {
		if err := l.port.SetDTR(s.dtr); err != nil {
			return fmt.Errorf("enter the bootloader: %w", err)
		}
		if err := l.port.SetRTS(s.rts); err != nil {
			return fmt.Errorf("enter the bootloader: %w", err)
		}
		if s.hold > 0 {
			t := time.NewTimer(s.hold) // a hold time of the circuit, not a wait for an event
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
	}
	return nil
}

// send writes one command.
func (l *Loader) send(op byte, payload []byte, checksum uint32) error {
	_, err := l.port.Write(esp8266.SLIPEncode(esp8266.Request(op, payload, checksum)))
	return err
}

// receive waits up to timeout for the answer to op; answers to other
// commands (the ROM's extra SYNC answers) are skipped.
func (l *Loader) receive(ctx context.Context, op byte, timeout time.Duration) (esp8266.Response, error) {
	deadline := time.Now().Add(timeout)
	for {
		for len(l.got) > 0 {
			p := l.got[0]
			l.got = l.got[1:]
			r, ok := esp8266.ParseResponse(p)
			switch {
			case !ok:
			case r.Op == op:
				return r, nil
			case r.Status != 0 && r.Error == 0x05:
				// A loader answers a command it does not have with an
				// "invalid message" answer that is not the command's
				// own, several times: drop the rest.
				l.drain(ctx)
				return r, &CommandError{Op: op, Code: r.Error, Unsupported: true}
			}
		}
		left := time.Until(deadline)
		if left <= 0 {
			return esp8266.Response{}, fmt.Errorf("%w to %s within %v", ErrNoAnswer, esp8266.CommandName(op), timeout)
		}
		b, err := l.port.ReadSome(ctx, left)
		if err != nil {
			if gone := l.port.Err(); gone != nil {
				return esp8266.Response{}, gone
			}
			if ctx.Err() != nil {
				return esp8266.Response{}, ctx.Err()
			}
			continue // the deadline check above reports it
		}
		if l.heard = append(l.heard, b...); len(l.heard) > 512 {
			l.heard = l.heard[len(l.heard)-512:]
		}
		l.got = append(l.got, l.dec.Feed(b)...)
	}
}

// ReadPacket returns the next SLIP packet from the board, whatever it is
// (the stub's "OHAI").
func (l *Loader) ReadPacket(ctx context.Context, timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	for len(l.got) == 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, fmt.Errorf("%w: no packet within %v", ErrNoAnswer, timeout)
		}
		b, err := l.port.ReadSome(ctx, left)
		if err != nil && (l.port.Err() != nil || ctx.Err() != nil) {
			return nil, err
		}
		l.got = append(l.got, l.dec.Feed(b)...)
	}
	p := l.got[0]
	l.got = l.got[1:]
	return p, nil
}

// Command sends op and waits for its answer; a failure status is a
// *CommandError.
func (l *Loader) Command(ctx context.Context, op byte, payload []byte, checksum uint32, timeout time.Duration) (esp8266.Response, error) {
	if err := l.send(op, payload, checksum); err != nil {
		return esp8266.Response{}, err
	}
	r, err := l.receive(ctx, op, timeout)
	if err != nil {
		return r, err
	}
	if r.Status != 0 {
		return r, &CommandError{Op: op, Code: r.Error}
	}
	return r, nil
}

// Sync sends SYNC until the ROM answers (attempts times, 100 ms each) and
// drops its extra answers as they come.
func (l *Loader) Sync(ctx context.Context, attempts int) error {
	l.port.DiscardRaw()
	l.got, l.dec, l.heard = nil, esp8266.SLIPDecoder{}, nil
	var last error
	for i := 0; i < attempts; i++ {
		if _, last = l.Command(ctx, esp8266.CmdSync, esp8266.SyncPayload(), 0, SyncTimeout); last == nil {
			return nil
		}
		if l.port.Err() != nil || ctx.Err() != nil {
			return last
		}
	}
	heard := append(l.heard, l.port.TakeRaw()...)
	why := ""
	// A ROM never echoes; MicroPython's REPL echoes SYNC's 0x55 bytes as typing.
	if bytes.Contains(heard, bytes.Repeat([]byte{0x55}, 16)) || bytes.Contains(heard, []byte(">>>")) || bytes.Contains(heard, []byte("MicroPython")) {
		why = ": the board answered as MicroPython (its REPL), not as its ROM bootloader"
		l.port.Write([]byte{3, 3}) // clear the SYNC bytes its REPL took as typing
	}
	return fmt.Errorf("the ROM bootloader did not answer SYNC (%d tries at %d baud; last: %v; the port gave \"%s\")%s",
		attempts, l.Baud, last, tail(heard, 120), why)
}

// ReadReg reads a 32-bit register or memory word.
func (l *Loader) ReadReg(ctx context.Context, addr uint32) (uint32, error) {
	r, err := l.Command(ctx, esp8266.CmdReadReg, esp8266.Words(addr), 0, DefaultTimeout)
	if err != nil {
		return 0, fmt.Errorf("READ_REG 0x%08X: %w", addr, err)
	}
	return r.Value, nil
}

// WriteReg writes value to a register.
func (l *Loader) WriteReg(ctx context.Context, addr, value uint32) error {
	if _, err := l.Command(ctx, esp8266.CmdWriteReg, esp8266.Words(addr, value, 0xFFFFFFFF, 0), 0, DefaultTimeout); err != nil {
		return fmt.Errorf("WRITE_REG 0x%08X: %w", addr, err)
	}
	return nil
}

// Identify reads the chip magic and refuses anything but an ESP8266 (by
// name), then the MAC and chip id from the efuses and the SPI flash's id.
func (l *Loader) Identify(ctx context.Context) (Info, error) {
	var info Info
	magic, err := l.ReadReg(ctx, esp8266.ChipMagicReg)
	if err != nil {
		return info, err
	}
	name, known := esp8266.ChipNames[magic]
	if magic != esp8266.ESP8266Magic {
		if !known {
			name = fmt.Sprintf("an unknown chip (magic 0x%08X at 0x%08X)", magic, uint32(esp8266.ChipMagicReg))
		}
		return info, fmt.Errorf("this board is %s, not an ESP8266: hil flashes only ESP8266 boards (TPYBoard v202)", name)
	}
	info.Chip = name
	var e [4]uint32
	for i := range e {
		if e[i], err = l.ReadReg(ctx, esp8266.EfuseBase+uint32(4*i)); err != nil {
			return info, err
		}
	}
	if info.MAC, err = esp8266.MAC(e[0], e[1], e[3]); err != nil {
		return info, err
	}
	info.ChipID = esp8266.ChipID(e[0], e[1])
	// The ESP8266's ROM has no SPI_ATTACH: a FLASH_BEGIN of nothing
	// attaches the flash chip (and erases nothing) before it is asked
	// its id.
	if _, err := l.Command(ctx, esp8266.CmdFlashBegin, esp8266.Words(0, 0, esp8266.FlashBlockSize, 0), 0, DefaultTimeout); err != nil {
		return info, fmt.Errorf("FLASH_BEGIN of nothing (to attach the flash): %w", err)
	}
	if info.FlashID, err = l.FlashID(ctx); err != nil {
		return info, err
	}
	info.FlashSize = esp8266.FlashSizeFromID(info.FlashID)
	if info.FlashSize == 0 {
		return info, fmt.Errorf("SPI flash id 0x%06X: unknown size (no flash chip answering?)", info.FlashID)
	}
	return info, nil
}

// FlashID asks the SPI flash chip for its JEDEC id (RDID, 0x9F) through
// the flash controller's user-command registers: the ROM has no command
// for it.
func (l *Loader) FlashID(ctx context.Context) (uint32, error) {
	return l.spiCommand(ctx, esp8266.FlashRDID, 24)
}

// spiCommand runs a flash command that reads bits of answer, restoring the
// controller's registers afterwards.
func (l *Loader) spiCommand(ctx context.Context, cmd byte, bits int) (uint32, error) {
	usr, err := l.ReadReg(ctx, esp8266.SPIUsrReg)
	if err != nil {
		return 0, err
	}
	usr2, err := l.ReadReg(ctx, esp8266.SPIUsr2Reg)
	if err != nil {
		return 0, err
	}
	steps := [][2]uint32{
		{esp8266.SPIUsr1Reg, uint32(bits-1) << 8}, // MISO bit length - 1 at bits 8-16
		{esp8266.SPIUsrReg, esp8266.SPIUsrCommand | esp8266.SPIUsrMISO},
		{esp8266.SPIUsr2Reg, 7<<28 | uint32(cmd)}, // an 8-bit command
		{esp8266.SPIW0Reg, 0},
		{esp8266.SPICmdReg, esp8266.SPICmdUsr},
	}
	for _, s := range steps {
		if err := l.WriteReg(ctx, s[0], s[1]); err != nil {
			return 0, err
		}
	}
	done := false
	for range 10 {
		v, err := l.ReadReg(ctx, esp8266.SPICmdReg)
		if err != nil {
			return 0, err
		}
		if v&esp8266.SPICmdUsr == 0 {
			done = true
			break
		}
	}
	if !done {
		return 0, fmt.Errorf("SPI flash command 0x%02X did not complete", cmd)
	}
	v, err := l.ReadReg(ctx, esp8266.SPIW0Reg)
	if err != nil {
		return 0, err
	}
	if err := l.WriteReg(ctx, esp8266.SPIUsrReg, usr); err != nil {
		return 0, err
	}
	if err := l.WriteReg(ctx, esp8266.SPIUsr2Reg, usr2); err != nil {
		return 0, err
	}
	return v & (1<<bits - 1), nil
}

// SpeedUp moves the line to the highest of bauds (highest first) that the
// board accepts: CHANGE_BAUDRATE where the loader has it, else the ROM's
// baud detection (SYNC again at the new rate). It returns the rate in use;
// 115200 when the ROM takes none.
func (l *Loader) SpeedUp(ctx context.Context, bauds []int) (int, error) {
	if l.path == "" {
		return l.Baud, nil // a lent link keeps its rate
	}
	for _, b := range bauds {
		if b <= l.Baud {
			continue
		}
		_, err := l.Command(ctx, esp8266.CmdChangeBaudrate, esp8266.Words(uint32(b), 0), 0, probeTimeout)
		if l.port.Err() != nil {
			return l.Baud, l.port.Err()
		}
		old := l.Baud
		if err == nil {
			if err := l.reopen(b); err != nil {
				return old, err
			}
			if err := l.Sync(ctx, 3); err == nil {
				l.logf("line at %d baud (CHANGE_BAUDRATE)", b)
				return b, nil
			}
		} else {
			// The ESP8266 ROM has no CHANGE_BAUDRATE; it detects the rate
			// of each SYNC.
			if err := l.reopen(b); err != nil {
				return old, err
			}
			if err := l.Sync(ctx, 3); err == nil {
				l.logf("line at %d baud (the ROM has no CHANGE_BAUDRATE; it detected the rate of SYNC)", b)
				return b, nil
			}
		}
		if err := l.reopen(old); err != nil {
			return old, err
		}
		if err := l.Sync(ctx, syncAttempts); err != nil {
			return old, fmt.Errorf("back at %d baud after %d failed: %w", old, b, err)
		}
	}
	return l.Baud, nil
}

// SetBaud moves this end of the line to baud (the port is opened again),
// after the loader's CHANGE_BAUDRATE. A lent link cannot.
func (l *Loader) SetBaud(baud int) error {
	if l.path == "" {
		return errors.New("esprom: a lent link keeps its rate")
	}
	return l.reopen(baud)
}

// reopen opens the port again at baud.
func (l *Loader) reopen(baud int) error {
	l.port.Close()
	p, err := link.Open(l.path, link.Options{Baud: baud, MaxLines: 200})
	if err != nil {
		return fmt.Errorf("reopen %s at %d baud: %w", l.path, baud, err)
	}
	l.port, l.Baud = p, baud
	return nil
}

// WriteStats say how a write went.
type WriteStats struct {
	Bytes, Blocks int
	Erased        uint32 // bytes FLASH_BEGIN was asked to erase (the ROM's quirk corrected)
	Took          time.Duration
}

// Rate is the write's speed in bytes a second.
func (s WriteStats) Rate() float64 { return float64(s.Bytes) / s.Took.Seconds() }

// BlockError is a FLASH_DATA block that failed: which block, where, why.
type BlockError struct {
	Block, Blocks int
	Offset        uint32
	Err           error
}

func (e *BlockError) Error() string {
	return fmt.Sprintf("FLASH_DATA block %d of %d (flash 0x%06X-0x%06X): %v", e.Block+1, e.Blocks, e.Offset, e.Offset+esp8266.FlashBlockSize-1, e.Err)
}

func (e *BlockError) Unwrap() error { return e.Err }

// CheckImage refuses an image the ROM would not boot or that does not fit
// the flash at offset: before anything is erased.
func CheckImage(data []byte, offset uint32, info Info) (*esp8266.Image, error) {
	img, err := esp8266.ParseImage(data)
	if err != nil {
		return nil, err
	}
	if end := int(offset) + len(data); info.FlashSize > 0 && end > info.FlashSize {
		return nil, fmt.Errorf("the image ends at 0x%X, past the board's %d KB flash", end, info.FlashSize>>10)
	}
	if info.FlashSize > 0 && img.FlashSize > info.FlashSize {
		return nil, fmt.Errorf("the image's header is for a %d KB flash; the board has %d KB", img.FlashSize>>10, info.FlashSize>>10)
	}
	return img, nil
}

// WriteFlash writes data at offset with FLASH_BEGIN, FLASH_DATA blocks of
// 0x400 bytes (the last padded with 0xFF) each with its checksum, and
// progress after each block. It does not end the session (Run does).
func (l *Loader) WriteFlash(ctx context.Context, offset uint32, data []byte, progress func(done, total int)) (WriteStats, error) {
	start := time.Now()
	blocks := (len(data) + esp8266.FlashBlockSize - 1) / esp8266.FlashBlockSize
	st := WriteStats{Blocks: blocks, Erased: esp8266.EraseSize(offset, uint32(len(data)))}
	erase := perMB(EraseTimeoutPerMB, len(data))
	if _, err := l.Command(ctx, esp8266.CmdFlashBegin, esp8266.Words(st.Erased, uint32(blocks), esp8266.FlashBlockSize, offset), 0, erase); err != nil {
		return st, fmt.Errorf("FLASH_BEGIN (erase %d bytes at 0x%06X): %w", st.Erased, offset, err)
	}
	blockTimeout := perMB(WriteTimeoutPerMB, esp8266.FlashBlockSize)
	for i := range blocks {
		block := make([]byte, esp8266.FlashBlockSize)
		n := copy(block, data[i*esp8266.FlashBlockSize:])
		for j := n; j < esp8266.FlashBlockSize; j++ {
			block[j] = 0xFF
		}
		payload := append(esp8266.Words(esp8266.FlashBlockSize, uint32(i), 0, 0), block...)
		if _, err := l.Command(ctx, esp8266.CmdFlashData, payload, uint32(esp8266.Checksum(block)), blockTimeout); err != nil {
			return st, &BlockError{Block: i, Blocks: blocks, Offset: offset + uint32(i*esp8266.FlashBlockSize), Err: err}
		}
		st.Bytes += n
		if progress != nil {
			progress(st.Bytes, len(data))
		}
	}
	st.Took = time.Since(start)
	return st, nil
}

// Run leaves the bootloader for the flashed image: FLASH_END asking to run
// the user code (1; 0 would reboot, which keeps the boot mode latched at
// the last reset: the loader again), then, on a port with modem lines, an
// EN pulse with GPIO0 high: a clean boot.
func (l *Loader) Run(ctx context.Context) error {
	if _, err := l.Command(ctx, esp8266.CmdFlashEnd, esp8266.Words(1), 0, DefaultTimeout); err != nil {
		var ce *CommandError
		if !errors.As(err, &ce) && !errors.Is(err, ErrNoAnswer) {
			return fmt.Errorf("FLASH_END: %w", err)
		}
		l.logf("FLASH_END: %v (the reset below reboots the board)", err)
	}
	l.after = l.dec.Drain()
	for _, p := range l.got { // a packet-shaped piece of boot output
		l.after = append(l.after, p...)
	}
	l.got = nil
	if l.Baud != ROMBaud {
		// What came before the port closes is kept; MicroPython's banner
		// comes at 115200 well after its VM starts.
		l.after = append(l.after, l.port.TakeRaw()...)
		if err := l.reopen(ROMBaud); err != nil { // MicroPython talks at 115200
			return err
		}
	}
	if err := l.port.SetDTR(false); err == nil {
		if err := l.port.SetRTS(true); err != nil {
			return err
		}
		t := time.NewTimer(resetHold)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
		return l.port.SetRTS(false)
	}
	return nil
}

// ReadUntil returns what the board printed after Run up to and including
// want, waiting at most timeout.
func (l *Loader) ReadUntil(ctx context.Context, want string, timeout time.Duration) (string, error) {
	seen := l.after
	l.after = nil
	deadline := time.Now().Add(timeout)
	for {
		if i := bytes.Index(seen, []byte(want)); i >= 0 {
			return string(seen[:i+len(want)]), nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return string(seen), fmt.Errorf("no %q within %v after the reset (the board printed \"%s\")", want, timeout, tail(seen, 200))
		}
		b, err := l.port.ReadSome(ctx, left)
		seen = append(seen, b...)
		if err != nil && (l.port.Err() != nil || ctx.Err() != nil) {
			return string(seen), err
		}
	}
}

// BannerRE matches MicroPython's banner line and its version.
var BannerRE = regexp.MustCompile(`MicroPython (v\d+\.\d+(?:\.\d+)?\S*) on \S+; [^\r\n]*`)

// romFailure is the ROM's output when no bootable image is in the flash.
var romFailure = regexp.MustCompile(`ets_main\.c|csum 0x[0-9a-f]+|invalid header`)

// WaitBanner waits, within timeout, for the MicroPython banner after Run.
// A main.py that holds the REPL keeps the banner back: after a few
// seconds without it, Ctrl-C is sent (twice). The ROM's boot failure
// output ends the wait at once.
func (l *Loader) WaitBanner(ctx context.Context, timeout time.Duration) (banner, version string, err error) {
	deadline := time.Now().Add(timeout)
	nudge := time.Now().Add(min(defaultBannerAfter, timeout/3))
	seen := l.after
	l.after = nil
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return "", "", fmt.Errorf("no MicroPython banner within %v after the reset (the board printed \"%s\")", timeout, tail(seen, 200))
		}
		wait := left
		if !nudge.IsZero() {
			wait = max(time.Until(nudge), time.Millisecond)
		}
		b, rerr := l.port.ReadSome(ctx, min(wait, left))
		seen = append(seen, b...)
		if m := BannerRE.FindSubmatch(seen); m != nil {
			return string(m[0]), string(m[1]), nil
		}
		if m := romFailure.Find(seen); m != nil {
			return "", "", fmt.Errorf("the board's ROM found no bootable image (\"%s\"): the write did not take", tail(seen, 200))
		}
		if rerr != nil {
			if gone := l.port.Err(); gone != nil {
				return "", "", gone
			}
			if ctx.Err() != nil {
				return "", "", ctx.Err()
			}
		}
		if !nudge.IsZero() && time.Now().After(nudge) {
			nudge = time.Time{}
			l.logf("no banner yet: Ctrl-C, in case main.py holds the REPL")
			if _, err := l.port.Write([]byte{3, 3}); err != nil {
				return "", "", err
			}
		}
	}
}

func tail(b []byte, n int) string {
	s := link.Render(b)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	return s
}
