package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/onenet-hil/hil/harness/esprom"
	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/internal/esp8266"
)

// flashMicroPythonFirst is hil run --micropython: before any scenario the
// image is written to the rig's board through its ROM bootloader (a
// virtual board is put in download mode; a real one by DTR/RTS) over the
// rig's own link, at 115200 baud. The write is the run's first testcase,
// named after the image's MicroPython version, so a JUnit report says
// which version the scenarios ran on.
func (f *runFlags) flashMicroPythonFirst(ctx context.Context, r *rig.Rig, stdout io.Writer) error {
	if f.micropython == "" {
		return nil
	}
	started := time.Now()
	sc := report.Scenario{Name: "flash MicroPython (" + filepath.Base(f.micropython) + ")", File: f.micropython, Started: started}
	err := func() error {
		data, err := os.ReadFile(f.micropython)
		if err != nil {
			return fmt.Errorf("--micropython: %w", err)
		}
		img, err := esp8266.ParseImage(data)
		if err != nil {
			return fmt.Errorf("--micropython %s: refusing the image (nothing was erased): %w", f.micropython, err)
		}
		if img.Version != "" {
			sc.Name = fmt.Sprintf("flash MicroPython %s (%s)", img.Version, filepath.Base(f.micropython))
		}
		if s := r.Sim(); s != nil {
			if err := s.EnterDownloadMode(); err != nil {
				return err
			}
		}
		logf := func(format string, args ...any) { fmt.Fprintf(stdout, "run: rom: "+format+"\n", args...) }
		res, err := esprom.FlashWith(ctx, esprom.NewLoader(r.Link()), data, esprom.FlashOptions{Log: logf})
		if err != nil {
			return fmt.Errorf("--micropython %s: %w", f.micropython, err)
		}
		sc.Reason = fmt.Sprintf("%d bytes in %s (%.1f kB/s); the board says: %s", res.Write.Bytes,
			res.Write.Took.Round(time.Millisecond), res.Write.Rate()/1000, res.Banner)
		fmt.Fprintf(stdout, "run: MicroPython %s written: %s\n", img.Version, sc.Reason)
		return nil
	}()
	sc.Duration = time.Since(started)
	sc.Status = report.Pass
	if err != nil {
		sc.Status, sc.Reason = report.Fail, err.Error()
	}
	f.flashed = []report.Scenario{sc}
	return err
}
