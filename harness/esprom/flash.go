package esprom

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/internal/esp8266"
)

// FlashOptions tune Flash.
type FlashOptions struct {
	// Offset is where the image goes (0 for a combined MicroPython file).
	Offset uint32
	// Bauds are the rates to try after SYNC, highest first (nil: 921600,
	// 460800, 230400).
	Bauds []int
	// BannerTimeout bounds the wait for MicroPython after the reset
	// (default 30 s).
	BannerTimeout time.Duration
	// Progress is called after each block.
	Progress func(done, total int)
	// Log gets a line for each step.
	Log func(format string, args ...any)
}

// Result is what Flash did.
type Result struct {
	Info    Info
	Image   *esp8266.Image
	Baud    int
	Write   WriteStats
	Banner  string // the board's banner line after the reset
	Version string // the version in the board's banner
}

var errNotMicroPython = errors.New("refusing the image (nothing was erased): it holds no MicroPython banner string " +
	"(\"MicroPython vX.Y.Z on YYYY-MM-DD\"): not a MicroPython firmware")

// Flash puts a MicroPython image on the board at path: it checks the image
// first (ParseImage), starts the ROM bootloader (DTR/RTS; a port without
// modem lines must be in download mode already), syncs, identifies the
// chip (an ESP8266, or a refusal naming the chip), checks that the image
// fits the flash, moves to the fastest baud the ROM takes, writes, resets
// into the image and waits for MicroPython's banner. Nothing is erased
// before every check has passed.
func Flash(ctx context.Context, path string, data []byte, o FlashOptions) (Result, error) {
	var res Result
	img, err := esp8266.ParseImage(data)
	if err != nil {
		return res, fmt.Errorf("refusing the image (nothing was erased): %w", err)
	}
	if !img.IsMicroPython() {
		return res, errNotMicroPython
	}
	l, err := Open(path)
	if err != nil {
		return res, err
	}
	defer l.Close()
	return FlashWith(ctx, l, data, o)
}

// FlashWith is Flash over a loader already open (NewLoader: a rig's link).
func FlashWith(ctx context.Context, l *Loader, data []byte, o FlashOptions) (Result, error) {
	var res Result
	logf := func(format string, args ...any) {
		if o.Log != nil {
			o.Log(format, args...)
		}
	}
	img, err := esp8266.ParseImage(data)
	if err != nil {
		return res, fmt.Errorf("refusing the image (nothing was erased): %w", err)
	}
	if !img.IsMicroPython() {
		return res, errNotMicroPython
	}
	res.Image = img
	path := l.port.Name()
	l.Log = o.Log
	if err := l.EnterBootloader(ctx); err != nil {
		if !errors.Is(err, link.ErrNoModemLines) {
			return res, err
		}
		logf("%s has no modem lines (DTR/RTS): expecting the board in download mode already", path)
	}
	if err := l.Sync(ctx, syncAttempts); err != nil {
		return res, fmt.Errorf("%w: is the board in download mode? (a port without DTR/RTS cannot start it: hold FLASH/GPIO0 low and press RESET; a virtual board: hil sim --download)", err)
	}
	if res.Info, err = l.Identify(ctx); err != nil {
		return res, err
	}
	logf("chip %s, MAC %s, flash id 0x%06X (%d MB)", res.Info.Chip, res.Info.MACString(), res.Info.FlashID, res.Info.FlashSize>>20)
	if _, err := CheckImage(data, o.Offset, res.Info); err != nil {
		return res, fmt.Errorf("refusing the image (nothing was erased): %w", err)
	}
	bauds := o.Bauds
	if bauds == nil {
		bauds = []int{921600, 460800, 230400}
	}
	if res.Baud, err = l.SpeedUp(ctx, bauds); err != nil {
		return res, err
	}
	if res.Write, err = l.WriteFlash(ctx, o.Offset, data, o.Progress); err != nil {
		return res, err
	}
	logf("wrote %d bytes at 0x%06X in %s (%.1f kB/s, %d baud)", res.Write.Bytes, o.Offset, res.Write.Took.Round(time.Millisecond), res.Write.Rate()/1000, res.Baud)
	if err := l.Run(ctx); err != nil {
		return res, err
	}
	timeout := o.BannerTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if res.Banner, res.Version, err = l.WaitBanner(ctx, timeout); err != nil {
		return res, err
	}
	return res, nil
}
