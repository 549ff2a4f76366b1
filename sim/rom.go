package sim

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/onenet-hil/hil/internal/esp8266"
)

// The virtual board's ROM bootloader: what an ESP8266 does with GPIO0 held
// low at reset. EnterDownloadMode (or Options.Download, hil sim
// --download: a pty has no modem lines to strap GPIO0 with) starts it;
// the host's bytes then go to it instead of MicroPython. It answers the
// ROM protocol as the ESP8266's ROM does (chip magic, efuses, the flash
// controller's registers, FLASH_BEGIN with the ROM's erase-size quirk,
// 0x400-byte FLASH_DATA blocks with their checksums, FLASH_END) over a
// 4 MB SPI flash (a Winbond W25Q32, JEDEC id EF 40 16) held in memory for
// the board's life. After MEM_END with an entry point (a flasher stub
// uploaded to RAM) it answers as esptool's flasher stub does ("OHAI",
// FLASH_DEFL_*, SPI_FLASH_MD5, CHANGE_BAUDRATE, ERASE_FLASH/REGION), without
// running the uploaded code.
//
// At every reset the board boots what the flash holds at 0, checked as the
// ROM checks it (esp8266.ParseImage: magic 0xE9, segments, checksum):
//   - never written (the factory state): MicroPython, on the VM;
//   - a bootable image that holds MicroPython's banner string ("MicroPython
//     vX.Y.Z on YYYY-MM-DD"): MicroPython, on the VM (whose banner is its
//     own, v1.27.0);
//   - a bootable image without it: the ROM's load lines, then nothing runs;
//   - anything else: the ROM's boot failure output ("ets_main.c").
//
// The line's rate is the host's (the termios of the pty, as go.bug.st/serial,
// pyserial or stty set it): the ROM detects it from the first SYNC after a
// reset and keeps it; a packet sent at another rate is noise to its UART and
// goes unanswered. Only the stub's CHANGE_BAUDRATE moves it. (A paced line,
// Options.LineRate, keeps its own pace.)
//
// The ROM's own output is at 74880 baud on a real board (garbage at
// 115200); here it is printed readable.

// Virtual flash chip and efuses.
const (
	romFlashSize = 4 << 20
	romFlashID   = 0x1640EF // RDID: manufacturer EF (Winbond), type 40, capacity 16 (4 MB)
	romDownload  = " ets Jan  8 2013,rst cause:%d, boot mode:(1,7)\r\n\r\n"
	romBootLine  = " ets Jan  8 2013,rst cause:2, boot mode:(3,6)\r\n\r\n"
	stubBlock    = 0x4000 // the flasher stub's write block
	mhzUART      = 52e6   // the UART clock: a 26 MHz crystal, doubled
)

// romEfuses give MAC 18:fe:34:a1:b2:c3 (OUI 18:FE:34 from word 1's zero
// byte 2), and mark an ESP8266EX (not an ESP8285: bits 4 and 80 clear).
var romEfuses = [4]uint32{0xC3000000, 0x0000A1B2, 0x00000000, 0x00000000}

// ROMMAC is the virtual board's MAC, as its efuses give it.
const ROMMAC = "18:fe:34:a1:b2:c3"

type romState struct {
	b  *Board
	mu sync.Mutex

	active  bool // download mode: the host's bytes go here
	stub    bool // a flasher stub "runs"
	dec     esp8266.SLIPDecoder
	regs    map[uint32]uint32
	baud    int // the rate the UART listens at; 0 until the first SYNC
	misrate int // packets dropped for a rate that is not the UART's
	flash   []byte
	factory bool // nothing written or erased yet: the board's MicroPython
	// the write in progress (FLASH_BEGIN or FLASH_DEFL_BEGIN)
	wr *romWrite
	// MEM_BEGIN in progress
	memBlocks int
	memSeq    int
}

type romWrite struct {
	offset, size   uint32
	blocks, bsize  uint32
	seq            uint32
	deflate        bool
	comp           []byte // compressed data so far (FLASH_DEFL_DATA)
	written        int    // uncompressed bytes written so far
	deflateErrSeen bool
}

func newROM(b *Board) *romState {
	r := &romState{b: b, factory: true}
	r.resetRegs()
	return r
}

func (r *romState) resetRegs() {
	r.regs = map[uint32]uint32{
		esp8266.ChipMagicReg: esp8266.ESP8266Magic,
		esp8266.SPIUsrReg:    0x80000064,
		esp8266.SPIUsr2Reg:   0x70000035,
	}
	for i, v := range romEfuses {
		r.regs[esp8266.EfuseBase+uint32(4*i)] = v
	}
}

// EnterDownloadMode resets the board with GPIO0 low: its ROM bootloader
// then owns the serial line until it runs the user code (FLASH_END with 1
// from the ROM, RUN_USER_CODE from the stub) or PowerCycle; a reboot
// (FLASH_END with 0) comes back to it.
func (b *Board) EnterDownloadMode() error {
	b.cycleMu.Lock()
	defer b.cycleMu.Unlock()
	b.mu.Lock()
	closed := b.closed
	b.mu.Unlock()
	if closed {
		return errors.New("sim: board closed")
	}
	b.stopLife()
	b.pins.powerOff()
	b.in.reset()
	b.rom.enter()
	return nil
}

// InDownloadMode reports whether the ROM bootloader owns the line.
func (b *Board) InDownloadMode() bool {
	b.rom.mu.Lock()
	defer b.rom.mu.Unlock()
	return b.rom.active
}

// FlashImage is a copy of the SPI flash from 0 to n bytes (the image the
// ROM wrote); nil while the flash is in its factory state.
func (b *Board) FlashImage(n int) []byte {
	b.rom.mu.Lock()
	defer b.rom.mu.Unlock()
	if b.rom.factory {
		return nil
	}
	return bytes.Clone(b.rom.flash[:min(n, len(b.rom.flash))])
}

func (r *romState) enter() {
	r.mu.Lock()
	// The ROM's writes are made under mu, so that the line's writers (this
	// ROM on the input relay, a boot on the resetting goroutine) follow one
	// another.
	if r.flash == nil {
		r.flash = bytes.Repeat([]byte{0xFF}, romFlashSize) // erased
	}
	r.restartLoader(causeExtROM)
	r.mu.Unlock()
	r.b.logf("download mode: the ROM bootloader has the serial line")
}

// The ROM's reset causes (its "rst cause:N" line): the reset pin, software.
const (
	causeExtROM  = 2
	causeSoftROM = 4
)

// restartLoader starts the loader afresh (under mu): a reset into
// download mode.
func (r *romState) restartLoader(cause int) {
	r.b.serialOut([]byte(fmt.Sprintf(romDownload, cause)))
	r.active, r.stub, r.dec, r.wr, r.baud, r.misrate = true, false, esp8266.SLIPDecoder{}, nil, 0, 0
	r.resetRegs()
}

// takes hands the host's bytes to the ROM when it has the line.
func (r *romState) takes(p []byte) bool {
	r.mu.Lock()
	if !r.active {
		r.mu.Unlock()
		return false
	}
	run := false
	for _, pkt := range r.dec.Feed(p) {
		if !r.atRate(pkt) {
			continue
		}
		out, next := r.handle(pkt)
		for _, o := range out {
			r.b.serialOut(o)
		}
		if next == romReboot {
			r.restartLoader(causeSoftROM)
			break // the rest was sent to a chip that was resetting
		}
		if next == romRun {
			run = true
			r.active = false
			break
		}
	}
	r.mu.Unlock()
	if run {
		// Not on this goroutine: a reset waits for the input relay to stop.
		go func() {
			if err := r.b.restart(context.Background(), causeHard); err != nil {
				r.b.logf("ROM reboot: %v", err)
			}
		}()
	}
	return true
}

// atRate tells whether the UART hears pkt: the host's rate is the one it
// detected (the first SYNC after a reset detects it).
func (r *romState) atRate(pkt []byte) bool {
	host := r.b.hostBaud()
	switch {
	case host == 0:
		return true // not known: taken
	case r.baud == 0:
		if len(pkt) > 1 && pkt[1] == esp8266.CmdSync {
			r.baud = host
		}
		return true
	case host == r.baud:
		return true
	}
	if r.misrate++; r.misrate == 1 {
		r.b.logf("download mode: a packet at %d baud; the UART is at %d (the ROM detects the rate once, at the first SYNC)", host, r.baud)
	}
	return false
}

// hostBaud is the rate the host set on its end of the pty (0: unknown).
func (b *Board) hostBaud() int {
	t, err := unix.IoctlGetTermios(int(b.slave.Fd()), unix.TCGETS)
	if err != nil {
		return 0
	}
	if t.Cflag&unix.CBAUD == unix.BOTHER {
		return int(t.Ospeed)
	}
	return termiosRates[t.Cflag&unix.CBAUD]
}

var termiosRates = map[uint32]int{
	unix.B9600: 9600, unix.B19200: 19200, unix.B38400: 38400, unix.B57600: 57600, unix.B115200: 115200,
	unix.B230400: 230400, unix.B460800: 460800, unix.B500000: 500000, unix.B576000: 576000,
	unix.B921600: 921600, unix.B1000000: 1000000, unix.B1500000: 1500000, unix.B2000000: 2000000,
}

// What a packet asks of the loader after its answer.
type romNext int

const (
	romStay   romNext = iota
	romRun            // run the user code: boot the flash (FLASH_END 1, RUN_USER_CODE)
	romReboot         // a soft reset: the boot mode latched at reset is kept, so the ROM loader again (FLASH_END 0)
)

// handle answers one packet and says what follows.
func (r *romState) handle(pkt []byte) (out [][]byte, next romNext) {
	if len(pkt) < 8 || pkt[0] != 0 {
		return nil, romStay // not a request: the ROM ignores it
	}
	op := pkt[1]
	size := int(binary.LittleEndian.Uint16(pkt[2:]))
	chk := binary.LittleEndian.Uint32(pkt[4:])
	data := pkt[8:]
	if size != len(data) {
		return [][]byte{r.fail(op, 0x05)}, romStay
	}
	word := func(i int) uint32 {
		if 4*i+4 > len(data) {
			return 0
		}
		return binary.LittleEndian.Uint32(data[4*i:])
	}
	ok := func(value uint32, body []byte) [][]byte {
		return [][]byte{esp8266.SLIPEncode(esp8266.Reply(op, value, body, 0, 0))}
	}
	switch op {
	case esp8266.CmdSync:
		if !bytes.Equal(data, esp8266.SyncPayload()) {
			return [][]byte{r.fail(op, 0x05)}, romStay
		}
		// The ROM answers SYNC eight times, with a non-zero value; the
		// stub once per request as well, with 0.
		v := uint32(0x20120707)
		if r.stub {
			v = 0
		}
		for range 8 {
			out = append(out, esp8266.SLIPEncode(esp8266.Reply(op, v, nil, 0, 0)))
		}
		return out, romStay
	case esp8266.CmdReadReg:
		if len(data) != 4 {
			return [][]byte{r.fail(op, 0x05)}, romStay
		}
		return ok(r.readReg(word(0)), nil), romStay
	case esp8266.CmdWriteReg:
		if len(data)%16 != 0 || len(data) == 0 {
			return [][]byte{r.fail(op, 0x05)}, romStay
		}
		for i := 0; i < len(data)/16; i++ {
			r.writeReg(word(4*i), word(4*i+1), word(4*i+2))
		}
		return ok(0, nil), romStay
	case esp8266.CmdFlashBegin, esp8266.CmdFlashDeflBegin:
		if op == esp8266.CmdFlashDeflBegin && !r.stub {
			return r.unsupported(op), romStay
		}
		if len(data) < 16 {
			return [][]byte{r.fail(op, 0x05)}, romStay
		}
		size, blocks, bsize, offset := word(0), word(1), word(2), word(3)
		// The ROM's documented block is 0x400 (esprom's); esptool-js
		// sends 0x4000 to the ROM as well, which is taken.
		if uint64(offset)+uint64(size) > romFlashSize || (blocks > 0 && (bsize < 0x100 || bsize > stubBlock)) {
			return [][]byte{r.fail(op, 0x06)}, romStay
		}
		erase := size
		if !r.stub {
			erase = esp8266.ROMErased(offset, size) // the ROM's quirk
		}
		r.erase(offset, erase)
		r.wr = &romWrite{offset: offset, size: size, blocks: blocks, bsize: bsize, deflate: op == esp8266.CmdFlashDeflBegin}
		return ok(0, nil), romStay
	case esp8266.CmdFlashData, esp8266.CmdFlashDeflData:
		w := r.wr
		if op == esp8266.CmdFlashDeflData && !r.stub {
			return r.unsupported(op), romStay
		}
		if w == nil || w.deflate != (op == esp8266.CmdFlashDeflData) || len(data) < 16 {
			return [][]byte{r.fail(op, 0x05)}, romStay
		}
		n, seq, body := word(0), word(1), data[16:]
		if int(n) != len(body) || seq != w.seq || seq >= w.blocks {
			return [][]byte{r.fail(op, 0x05)}, romStay
		}
		if uint32(esp8266.Checksum(body)) != chk&0xFF {
			return [][]byte{r.fail(op, 0x07)}, romStay
		}
		w.seq++
		if w.deflate {
			if !r.inflate(w, body) {
				return [][]byte{r.fail(op, 0x0B)}, romStay
			}
		} else {
			at := w.offset + seq*w.bsize
			r.program(at, body)
		}
		return ok(0, nil), romStay
	case esp8266.CmdFlashEnd, esp8266.CmdFlashDeflEnd:
		if op == esp8266.CmdFlashDeflEnd && !r.stub {
			return r.unsupported(op), romStay
		}
		r.wr = nil
		// One word: 0 reboots; otherwise the ROM runs the user code
		// (Espressif's protocol) and the stub stays (it has
		// RUN_USER_CODE for that). A reboot keeps the boot mode latched
		// at the last reset: the loader again, as esptool's --after
		// no_reset expects.
		switch {
		case len(data) >= 4 && word(0) == 0:
			return ok(0, nil), romReboot
		case r.stub:
			return ok(0, nil), romStay
		}
		return ok(0, nil), romRun
	case esp8266.CmdMemBegin:
		if len(data) < 16 {
			return [][]byte{r.fail(op, 0x05)}, romStay
		}
		r.memBlocks, r.memSeq = int(word(1)), 0
		return ok(0, nil), romStay
	case esp8266.CmdMemData:
		if len(data) < 16 || int(word(0)) != len(data)-16 {
			return [][]byte{r.fail(op, 0x05)}, romStay
		}
		if uint32(esp8266.Checksum(data[16:])) != chk&0xFF {
			return [][]byte{r.fail(op, 0x07)}, romStay
		}
		r.memSeq++
		return ok(0, nil), romStay
	case esp8266.CmdMemEnd:
		out = ok(0, nil)
		if len(data) >= 8 && word(0) == 0 && word(1) != 0 {
			// Execute the upload: a flasher stub. It is not run; the board
			// answers as the stub would from here on.
			r.stub = true
			r.b.logf("download mode: a flasher stub was uploaded (entry 0x%08X); answering as esptool's stub", word(1))
			out = append(out, esp8266.SLIPEncode([]byte("OHAI")))
		}
		return out, romStay
	}
	if !r.stub {
		return r.unsupported(op), romStay // not an ESP8266 ROM command
	}
	switch op {
	case esp8266.CmdSPIAttach, esp8266.CmdSPISetParams:
		return ok(0, nil), romStay
	case esp8266.CmdChangeBaudrate:
		if word(0) == 0 {
			return [][]byte{r.fail(op, 0x05)}, romStay
		}
		// Answered at the old rate; the next packet comes at the new one.
		r.baud = int(word(0))
		return ok(0, nil), romStay
	case esp8266.CmdSPIFlashMD5:
		addr, n := word(0), word(1)
		if uint64(addr)+uint64(n) > romFlashSize {
			return [][]byte{r.fail(op, 0x06)}, romStay
		}
		sum := md5.Sum(r.flash[addr : addr+n])
		return ok(0, sum[:]), romStay
	case esp8266.CmdEraseFlash:
		r.erase(0, romFlashSize)
		return ok(0, nil), romStay
	case esp8266.CmdEraseRegion:
		addr, n := word(0), word(1)
		if addr%esp8266.SectorSize != 0 || n%esp8266.SectorSize != 0 || uint64(addr)+uint64(n) > romFlashSize {
			return [][]byte{r.fail(op, 0x06)}, romStay
		}
		r.erase(addr, n)
		return ok(0, nil), romStay
	case esp8266.CmdRunUserCode:
		return nil, romRun
	}
	return r.unsupported(op), romStay
}

// unsupported is the answer to a command the loader does not have: an
// "invalid message" status in an answer that is not the command's own
// (opcode 0), eight times over, as Espressif's tools expect of the ROMs
// (they tell "unsupported" from "failed" by the opcode).
func (r *romState) unsupported(op byte) [][]byte {
	r.b.logf("download mode: %s: not a command of the %s", esp8266.CommandName(op), map[bool]string{false: "ESP8266 ROM", true: "flasher stub"}[r.stub])
	p := esp8266.SLIPEncode(esp8266.Reply(0, 0, nil, 1, 0x05))
	return [][]byte{bytes.Repeat(p, 8)}
}

func (r *romState) fail(op, code byte) []byte {
	r.b.logf("download mode: %s refused: %s", esp8266.CommandName(op), esp8266.ErrorName(code))
	return esp8266.SLIPEncode(esp8266.Reply(op, 0, nil, 1, code))
}

func (r *romState) readReg(addr uint32) uint32 {
	if addr == esp8266.UARTClkDivReg {
		return uint32(mhzUART / float64(cmp.Or(r.baud, 115200)))
	}
	return r.regs[addr]
}

// romMaxRegs bounds the registers a host can create by writing them.
const romMaxRegs = 4096

// writeReg stores a register; the SPI controller's command register runs
// a user command on the flash chip at once.
func (r *romState) writeReg(addr, value, mask uint32) {
	if mask == 0 {
		mask = 0xFFFFFFFF
	}
	if _, known := r.regs[addr]; !known && len(r.regs) >= romMaxRegs {
		return // a host writing all over the address space: bounded, dropped
	}
	r.regs[addr] = r.regs[addr]&^mask | value&mask
	if addr == esp8266.SPICmdReg && r.regs[addr]&esp8266.SPICmdUsr != 0 {
		switch byte(r.regs[esp8266.SPIUsr2Reg]) {
		case esp8266.FlashRDID:
			r.regs[esp8266.SPIW0Reg] = romFlashID
		case 0x05, 0x35: // RDSR, RDSR2: idle, no protection
			r.regs[esp8266.SPIW0Reg] = 0
		}
		r.regs[addr] &^= esp8266.SPICmdUsr
	}
}

// erase sets whole sectors to 0xFF, from offset's sector for n bytes.
func (r *romState) erase(offset, n uint32) {
	if n == 0 {
		return
	}
	start := offset / esp8266.SectorSize * esp8266.SectorSize
	end := min(uint64(offset)+uint64(n), romFlashSize)
	end = (end + esp8266.SectorSize - 1) / esp8266.SectorSize * esp8266.SectorSize
	for i := uint64(start); i < end; i++ {
		r.flash[i] = 0xFF
	}
	r.factory = false
}

// program writes as NOR flash does: bits only go from 1 to 0 (an area not
// erased first keeps the old zeros).
func (r *romState) program(at uint32, p []byte) {
	for i, c := range p {
		if int(at)+i < len(r.flash) {
			r.flash[int(at)+i] &= c
		}
	}
	r.factory = false
}

// inflate takes the next piece of a compressed write: everything so far is
// inflated again and what is new is written.
func (r *romState) inflate(w *romWrite, piece []byte) bool {
	if len(w.comp)+len(piece) > romFlashSize {
		return false // no image compresses to more than the flash
	}
	w.comp = append(w.comp, piece...)
	zr, err := zlib.NewReader(bytes.NewReader(w.comp))
	if err != nil {
		return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
	}
	var out bytes.Buffer
	_, err = io.Copy(&out, io.LimitReader(zr, int64(w.size)+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return false
	}
	if out.Len() > int(w.size) {
		return false
	}
	if n := out.Len(); n > w.written {
		r.program(w.offset+uint32(w.written), out.Bytes()[w.written:n])
		w.written = n
	}
	return true
}

// bootFlash boots what the flash holds (see the comment at the top).
func (b *Board) bootFlash(ctx context.Context, cause int) error {
	r := b.rom
	r.mu.Lock()
	r.active, r.stub, r.wr = false, false, nil
	if r.factory {
		r.mu.Unlock()
		return b.startLife(ctx, cause)
	}
	img, err := esp8266.ParseImage(r.flash)
	out := romBootLine
	if img != nil {
		for _, s := range img.Segments {
			out += fmt.Sprintf("load 0x%08x, len %d, room 16 \r\n", s.Addr, s.Len)
		}
		out += fmt.Sprintf("tail %d\r\nchksum 0x%02x\r\n", img.ChecksumAt%16, img.Checksum)
	}
	var ie *esp8266.ImageError
	run := false
	switch {
	case err == nil && img.IsMicroPython():
		b.logf("boot: a MicroPython %s image (the VM runs it)", img.Version)
		run = true
	case err == nil:
		b.logf("boot: the image at 0 holds no MicroPython version string: loaded, nothing runs")
	case errors.As(err, &ie) && ie.Offset == 0:
		b.logf("boot: %v", err)
		out += "ets_main.c \r\n"
	default:
		b.logf("boot: %v", err)
		// The ROM loads segments until its checksum disagrees.
		out += "csum err\r\nets_main.c \r\n"
	}
	b.serialOut([]byte(out)) // under mu: see enter
	r.mu.Unlock()
	if run {
		return b.startLife(ctx, cause)
	}
	return nil
}
