package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/onenet-hil/hil/sim"
)

// redirectFlags collects repeated --redirect host:port=127.x.x.x:port.
type redirectFlags map[string]string

func (r redirectFlags) String() string { return fmt.Sprint(map[string]string(r)) }

func (r redirectFlags) Set(v string) error {
	from, to, ok := strings.Cut(v, "=")
	if !ok || !strings.Contains(from, ":") || !strings.Contains(to, ":") {
		return fmt.Errorf("want host:port=host:port, got %q", v)
	}
	// Only to this machine: the virtual board must never reach the real OneNET.
	if err := sim.CheckRedirect(from, to); err != nil {
		return err
	}
	r[from] = to
	return nil
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func init() {
	register(command{
		name:    "sim",
		summary: "run a virtual TPYBoard on a pty (prints the port path)",
		run:     runSim,
	})
}

func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hil sim", flag.ContinueOnError)
	flash := fs.String("flash", "", "host directory used as the board's flash (default: a fresh temporary one)")
	baud := fs.Int("baud", 0, "pace the line at this baud rate, 8N1 (e.g. 115200); 0 = as fast as possible")
	noRawPaste := fs.Bool("no-raw-paste", false, "behave like MicroPython older than 1.14 (no raw-paste mode)")
	garbage := fs.Bool("boot-garbage", true, "print the ESP8266 ROM boot log (garbage at 115200) on power-up")
	heap := fs.Int("heap", sim.DefaultHeap, "the board's GC heap in bytes (the ESP8266's is 38 KB); live data past it is a MemoryError")
	redirects := redirectFlags{}
	fs.Var(redirects, "redirect", "route host:port to a loopback IPv4 host:port, e.g. 183.230.40.39:6002=127.0.0.1:1883 (repeatable)")
	if err := parseFlags(fs, args, stderr, "usage: hil sim [--flash DIR] [--baud N] [--heap BYTES] [--no-raw-paste] [--boot-garbage=false] [--redirect HOST:PORT=127.0.0.1:PORT]...",
		"Runs a virtual TPYBoard (MicroPython's own VM) on a pty until Ctrl-C: prints the port path, then every pin change."); err != nil {
		return err
	}
	stderr = &lockedWriter{w: stderr} // the board's diagnostics arrive from another goroutine
	if *baud < 0 {
		return fmt.Errorf("--baud must be positive, got %d", *baud)
	}
	board, err := sim.Start(ctx, sim.Options{
		FlashDir:    *flash,
		LineRate:    *baud > 0,
		BaudRate:    *baud,
		NoRawPaste:  *noRawPaste,
		BootGarbage: *garbage,
		Redirects:   redirects,
		Heap:        *heap,
		Log:         stderr,
	})
	if err != nil {
		return err
	}
	defer board.Close()
	changes, stop := board.PinChanges()
	defer stop()
	// The path alone on the first line, so scripts can read it.
	if _, err := fmt.Fprintln(stdout, board.Port()); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "hil sim: virtual board on %s, flash %s; Ctrl-C to stop\n", board.Port(), board.FlashDir())
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.Canceled) {
				return nil
			}
			return ctx.Err()
		case c, ok := <-changes:
			if !ok {
				return nil
			}
			fmt.Fprintf(stdout, "%s pin %d = %d\n", c.Time.Format("15:04:05.000"), c.Pin, c.Value)
		}
	}
}
