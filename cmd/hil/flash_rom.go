package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/onenet-hil/hil/harness/esprom"
	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/internal/esp8266"
)

// micropythonFlagHelp is hil flash's and hil run's --micropython.
const micropythonFlagHelp = "first write this MicroPython image (a combined ESP8266 .bin, written at 0x0) through the board's ROM\n" +
	"bootloader, then wait for its banner (a port without DTR/RTS, such as hil sim's pty, must be in download mode: hil sim --download)"

// flashMicroPython is hil flash --micropython: the image is checked, then
// written through the ROM bootloader, before the application is uploaded.
// It settles the port (f.port) for what follows.
func (f *flashFlags) flashMicroPython(ctx context.Context, stdout io.Writer) error {
	if f.micropython == "" {
		return nil
	}
	if f.port == "" {
		f.port = os.Getenv(rig.EnvPort)
	}
	if f.port == "" {
		found, err := link.FindBoard()
		if err != nil {
			return err
		}
		f.port = found.Name
		fmt.Fprintf(stdout, "flash: using %s (%s %s:%s)\n", found.Name, found.Chip, found.VID, found.PID)
	}
	_, err := flashMicroPythonImage(ctx, f.port, f.micropython, stdout)
	return err
}

// flashMicroPythonImage writes the image file at path to the board on
// port and returns the image's MicroPython version.
func flashMicroPythonImage(ctx context.Context, port, path string, stdout io.Writer) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--micropython: %w", err)
	}
	// Checked before the port is touched: a wrong file erases nothing.
	img, err := esp8266.ParseImage(data)
	if err != nil {
		return "", fmt.Errorf("--micropython %s: refusing the image (nothing was erased): %w", path, err)
	}
	fmt.Fprintf(stdout, "flash: image %s: %d bytes, %d segments, MicroPython %s\n", path, len(data), len(img.Segments), orNone(img.Version))
	logf := func(format string, args ...any) { fmt.Fprintf(stdout, "flash: rom: "+format+"\n", args...) }
	prog := newROMProgress(stdout, len(data))
	res, err := esprom.Flash(ctx, port, data, esprom.FlashOptions{Progress: prog.update, Log: logf})
	prog.finish(err)
	if err != nil {
		return img.Version, fmt.Errorf("--micropython %s: %w", path, err)
	}
	fmt.Fprintf(stdout, "flash: MicroPython %s written (%d bytes in %s, %.1f kB/s at %d baud); the board says: %s\n",
		img.Version, res.Write.Bytes, res.Write.Took.Round(time.Millisecond), res.Write.Rate()/1000, res.Baud, res.Banner)
	if res.Version != img.Version {
		fmt.Fprintf(stdout, "flash: note: the board's banner names %s, the image %s (the virtual board's VM is always v1.27.0)\n", res.Version, img.Version)
	}
	return img.Version, nil
}

func orNone(v string) string {
	if v == "" {
		return "(none: no MicroPython banner string)"
	}
	return v
}

// romProgress shows the write: a bar on a terminal, a line every 10%
// elsewhere.
type romProgress struct {
	bar  *progressbar.ProgressBar
	w    io.Writer
	next int // the next tenth to print
}

func newROMProgress(w io.Writer, total int) *romProgress {
	p := &romProgress{w: w, next: 1}
	if f, ok := w.(interface{ Fd() uintptr }); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("flash: writing"),
			progressbar.OptionShowBytes(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

func (p *romProgress) update(done, total int) {
	if p.bar != nil {
		p.bar.Set(done)
		return
	}
	for p.next <= 10 && done*10 >= p.next*total {
		fmt.Fprintf(p.w, "flash: writing: %3d%% (%d of %d bytes)\n", p.next*10, done, total)
		p.next++
	}
}

func (p *romProgress) finish(err error) {
	if p.bar == nil {
		return
	}
	if err != nil {
		p.bar.Exit()
		return
	}
	p.bar.Finish()
}
