package sim

import (
	"bytes"
	"compress/zlib"
	"context"
	"crypto/md5"
	"errors"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/esprom"
	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/internal/esp8266"
)

// startDownload starts a board in its ROM bootloader.
func startDownload(t *testing.T) *Board {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b, err := Start(ctx, Options{Download: true})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	require.True(t, b.InDownloadMode())
	return b
}

func TestROMFlashesAMicroPythonImageAndBootsIt(t *testing.T) {
	b := startDownload(t)
	img := esp8266.SampleImage("v1.27.0", 256<<10)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var progress []int
	res, err := esprom.Flash(ctx, b.Port(), img, esprom.FlashOptions{
		Progress:      func(done, total int) { progress = append(progress, done) },
		BannerTimeout: wait,
	})
	require.NoError(t, err)
	assert.Equal(t, "ESP8266", res.Info.Chip)
	assert.Equal(t, ROMMAC, res.Info.MACString())
	assert.Equal(t, uint32(romFlashID), res.Info.FlashID)
	assert.Equal(t, 4<<20, res.Info.FlashSize)
	assert.Equal(t, "v1.27.0", res.Image.Version)
	assert.Equal(t, len(img), res.Write.Bytes)
	assert.Len(t, progress, (len(img)+esp8266.FlashBlockSize-1)/esp8266.FlashBlockSize, "one progress call a block")
	assert.Equal(t, "v1.27.0", res.Version, "the board boots into MicroPython: %q", res.Banner)
	assert.Equal(t, img, b.FlashImage(len(img)), "the flash holds the image")
	assert.False(t, b.InDownloadMode())
	t.Logf("virtual board: %d bytes in %v (%.0f kB/s) at %d baud", res.Write.Bytes, res.Write.Took, res.Write.Rate()/1000, res.Baud)

	// The booted board is MicroPython on the line.
	c := openPort(t, b.Port())
	c.write("\r\n")
	c.expect(">>> ")
}

func TestROMRefusesACorruptedImageBeforeErasing(t *testing.T) {
	b := startDownload(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for name, tc := range map[string]struct {
		corrupt func([]byte) []byte
		want    string
	}{
		"checksum":  {func(p []byte) []byte { p[20] ^= 0x40; return p }, "checksum 0x"},
		"magic":     {func(p []byte) []byte { p[0] = 0xEA; return p }, "magic byte 0xEA, want 0xE9"},
		"segments":  {func(p []byte) []byte { p[1] = 0; return p }, "0 segments"},
		"truncated": {func(p []byte) []byte { return p[:0x700] }, "run past the end of the file"},
		"too big":   {func(p []byte) []byte { return append(p, make([]byte, 4<<20)...) }, "past the board's 4096 KB flash"},
		"not micropython": {func(p []byte) []byte {
			return bytes.ReplaceAll(p, []byte("MicroPython"), []byte("MacroPython"))
		}, "holds no MicroPython banner string"},
	} {
		t.Run(name, func(t *testing.T) {
			img := tc.corrupt(esp8266.SampleImage("v1.27.0", 64<<10))
			_, err := esprom.Flash(ctx, b.Port(), img, esprom.FlashOptions{BannerTimeout: wait})
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.Contains(t, err.Error(), "nothing was erased")
			assert.Nil(t, b.FlashImage(16), "the flash was not touched")
			assert.True(t, b.InDownloadMode(), "the board is still in its bootloader")
		})
	}
}

func TestROMBoardThatDisappearsMidWrite(t *testing.T) {
	b := startDownload(t)
	img := esp8266.SampleImage("v1.27.0", 256<<10)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	gone := false
	_, err := esprom.Flash(ctx, b.Port(), img, esprom.FlashOptions{Progress: func(done, total int) {
		if !gone && done >= 100*esp8266.FlashBlockSize {
			gone = true
			require.NoError(t, b.Close()) // unplugged
		}
	}})
	require.Error(t, err)
	var be *esprom.BlockError
	require.True(t, errors.As(err, &be), "a block error: %v", err)
	assert.Equal(t, 100, be.Block, "the block after the last one acknowledged: %v", err)
	assert.True(t, errors.Is(err, link.ErrGone), "the reason is the port going away: %v", err)
	assert.Regexp(t, `FLASH_DATA block 101 of 256 \(flash 0x019000-0x0193FF\): serial port .* went away`, err.Error())
}

func TestROMRefusesAnotherChipByName(t *testing.T) {
	b := startDownload(t)
	b.rom.mu.Lock()
	b.rom.regs[esp8266.ChipMagicReg] = 0x00F01D83
	b.rom.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err := esprom.Flash(ctx, b.Port(), esp8266.SampleImage("v1.27.0", 64<<10), esprom.FlashOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "this board is ESP32, not an ESP8266")
	assert.Nil(t, b.FlashImage(16))
}

// bootImage writes img (unchecked) and resets; it returns what the board
// printed until want, or fails with what it saw.
func bootImage(t *testing.T, b *Board, img []byte, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	l, err := esprom.Open(b.Port())
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Sync(ctx, 5))
	_, err = l.WriteFlash(ctx, 0, img, nil)
	require.NoError(t, err)
	require.NoError(t, l.Run(ctx))
	out, err := l.ReadUntil(ctx, want, 10*time.Second)
	require.NoError(t, err, "waiting for %q after the reset", want)
	return out
}

func TestROMBootsOnlyWhatItsChecksPass(t *testing.T) {
	t.Run("not MicroPython: loaded, nothing runs", func(t *testing.T) {
		b := startDownload(t)
		img := bytes.ReplaceAll(esp8266.SampleImage("v1.27.0", 64<<10), []byte("MicroPython"), []byte("MacroPython"))
		out := bootImage(t, b, img, "chksum 0x")
		assert.Contains(t, out, "load 0x40100000, len 1536, room 16")
		assert.False(t, b.InDownloadMode())
		l, err := link.Open(b.Port(), link.Options{})
		require.NoError(t, err)
		defer l.Close()
		_, err = l.Write([]byte("\r\n"))
		require.NoError(t, err)
		_, err = l.ReadUntil(context.Background(), []byte(">>> "), 500*time.Millisecond)
		assert.Error(t, err, "no REPL answers")
	})
	t.Run("bad checksum", func(t *testing.T) {
		b := startDownload(t)
		img := esp8266.SampleImage("v1.27.0", 64<<10)
		img[30] ^= 1
		out := bootImage(t, b, img, "ets_main.c")
		assert.Contains(t, out, "csum err")
	})
	t.Run("bad magic", func(t *testing.T) {
		b := startDownload(t)
		img := esp8266.SampleImage("v1.27.0", 64<<10)
		img[0] = 0
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		l, err := esprom.Open(b.Port())
		require.NoError(t, err)
		defer l.Close()
		require.NoError(t, l.Sync(ctx, 5))
		_, err = l.WriteFlash(ctx, 0, img, nil)
		require.NoError(t, err)
		require.NoError(t, l.Run(ctx))
		_, _, err = l.WaitBanner(ctx, 10*time.Second)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "found no bootable image")
		assert.Contains(t, err.Error(), "ets_main.c")
	})
}

// TestROMStubMode does what esptool does in its default mode: upload a
// stub to RAM, run it, then use the stub's commands.
func TestROMStubMode(t *testing.T) {
	b := startDownload(t)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	l, err := esprom.Open(b.Port())
	require.NoError(t, err)
	defer l.Close()
	require.NoError(t, l.Sync(ctx, 5))

	// Commands the ESP8266 ROM lacks are refused before the stub runs.
	_, err = l.Command(ctx, esp8266.CmdSPIFlashMD5, esp8266.Words(0, 16, 0, 0), 0, time.Second)
	var ce *esprom.CommandError
	require.True(t, errors.As(err, &ce), "the ROM refuses SPI_FLASH_MD5: %v", err)

	code := bytes.Repeat([]byte{0x12, 0x34}, 300)
	_, err = l.Command(ctx, esp8266.CmdMemBegin, esp8266.Words(uint32(len(code)), 1, 0x1800, 0x4010E000), 0, time.Second)
	require.NoError(t, err)
	_, err = l.Command(ctx, esp8266.CmdMemData, append(esp8266.Words(uint32(len(code)), 0, 0, 0), code...), uint32(esp8266.Checksum(code)), time.Second)
	require.NoError(t, err)
	_, err = l.Command(ctx, esp8266.CmdMemEnd, esp8266.Words(0, 0x4010E004), 0, time.Second)
	require.NoError(t, err)
	ohai, err := l.ReadPacket(ctx, 5*time.Second)
	require.NoError(t, err, "the stub says OHAI")
	assert.Equal(t, "OHAI", string(ohai))

	_, err = l.Command(ctx, esp8266.CmdChangeBaudrate, esp8266.Words(460800, 115200), 0, time.Second)
	require.NoError(t, err)
	// At the old rate the stub's UART hears noise: READ_REG goes unanswered.
	_, err = l.Command(ctx, esp8266.CmdReadReg, esp8266.Words(esp8266.ChipMagicReg), 0, 300*time.Millisecond)
	require.ErrorIs(t, err, esprom.ErrNoAnswer)
	require.NoError(t, l.SetBaud(460800))
	v, err := l.ReadReg(ctx, esp8266.UARTClkDivReg)
	require.NoError(t, err)
	assert.Equal(t, uint32(52000000/460800), v, "the UART's divider follows the rate")

	img := esp8266.SampleImage("v1.27.0", 100<<10)
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	_, err = zw.Write(img)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	comp := z.Bytes()
	const block = 0x4000
	blocks := (len(comp) + block - 1) / block
	_, err = l.Command(ctx, esp8266.CmdFlashDeflBegin, esp8266.Words(uint32(len(img)), uint32(blocks), block, 0), 0, 3*time.Second)
	require.NoError(t, err)
	for i := range blocks {
		piece := comp[i*block : min(len(comp), (i+1)*block)]
		_, err = l.Command(ctx, esp8266.CmdFlashDeflData, append(esp8266.Words(uint32(len(piece)), uint32(i), 0, 0), piece...), uint32(esp8266.Checksum(piece)), 3*time.Second)
		require.NoError(t, err, "block %d", i)
	}
	r, err := l.Command(ctx, esp8266.CmdSPIFlashMD5, esp8266.Words(0, uint32(len(img)), 0, 0), 0, 3*time.Second)
	require.NoError(t, err)
	want := md5.Sum(img)
	assert.Equal(t, want[:], r.Data, "the stub's MD5 of what was written")

	_, err = l.Command(ctx, esp8266.CmdEraseRegion, esp8266.Words(0x10000, 0x1000), 0, 3*time.Second)
	require.NoError(t, err)
	assert.Equal(t, bytes.Repeat([]byte{0xFF}, 0x1000), b.FlashImage(0x11000)[0x10000:], "ERASE_REGION erased")
	_, err = l.Command(ctx, esp8266.CmdEraseFlash, nil, 0, 3*time.Second)
	require.NoError(t, err)
	assert.Equal(t, bytes.Repeat([]byte{0xFF}, 64), b.FlashImage(64))

	// FLASH_END with 0 reboots the chip, which keeps the boot mode latched
	// at its last reset: the ROM loader again, without the stub.
	_, err = l.Command(ctx, esp8266.CmdFlashEnd, esp8266.Words(0), 0, time.Second)
	require.NoError(t, err)
	require.True(t, b.InDownloadMode())
	require.NoError(t, l.SetBaud(115200)) // the ROM detects the rate again at the next SYNC
	require.NoError(t, l.Sync(ctx, 5))
	_, err = l.Command(ctx, esp8266.CmdSPIFlashMD5, esp8266.Words(0, 16, 0, 0), 0, time.Second)
	require.True(t, errors.As(err, &ce), "the ROM again, not the stub: %v", err)

	// FLASH_END with 1 runs the user code; the erased board has none.
	require.NoError(t, l.Run(ctx))
	_, _, err = l.WaitBanner(ctx, 10*time.Second)
	require.Error(t, err)
	assert.Regexp(t, regexp.MustCompile(`found no bootable image .*boot mode:\(3,6\).*ets_main\.c`), err.Error())
}

// A board running MicroPython, not its bootloader: the flasher says so and
// names the way in, and leaves the REPL usable.
func TestROMFlashToABoardNotInDownloadMode(t *testing.T) {
	b, err := Start(context.Background(), Options{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	_, err = esprom.Flash(ctx, b.Port(), esp8266.SampleImage("v1.27.0", 64<<10), esprom.FlashOptions{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the board answered as MicroPython (its REPL), not as its ROM bootloader")
	assert.Contains(t, err.Error(), "hil sim --download")
	assert.Nil(t, b.FlashImage(16))
	c := openPort(t, b.Port())
	c.write("print(6*7)\r\n")
	c.expect("42\r\n>>> ")
}
