package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	flash := fs.String("flash", "", "host directory used as the board's flash, created when missing (default: a fresh temporary one)")
	linkPath := fs.String("link", "", "also make the port reachable as this symlink, removed on exit (e.g. /dev/ttyUSB-hil0, which\nserial-port lists such as Thonny's show; a pty's /dev/pts/N path is listed by none)")
	baud := fs.Int("baud", 0, "pace the line at this baud rate, 8N1 (e.g. 115200); 0 = as fast as possible")
	noRawPaste := fs.Bool("no-raw-paste", false, "behave like MicroPython older than 1.14 (no raw-paste mode)")
	garbage := fs.Bool("boot-garbage", true, "print the ESP8266 ROM boot log (garbage at 115200) on power-up")
	download := fs.Bool("download", false, "start in the ROM bootloader (download mode, as with GPIO0 held low: a pty has no DTR/RTS),\nfor hil flash --micropython or esptool --before no_reset; a reset boots the flashed image")
	heap := fs.Int("heap", sim.DefaultHeap, "the board's GC heap in bytes (the ESP8266's is 38 KB); live data past it is a MemoryError")
	redirects := redirectFlags{}
	fs.Var(redirects, "redirect", "route host:port to a loopback IPv4 host:port, e.g. 183.230.40.39:6002=127.0.0.1:1883 (repeatable)")
	if err := parseFlags(fs, args, stderr, "usage: hil sim [--flash DIR] [--link PATH] [--baud N] [--heap BYTES] [--no-raw-paste] [--boot-garbage=false] [--download] [--redirect HOST:PORT=127.0.0.1:PORT]...",
		"Runs a virtual TPYBoard (MicroPython's own VM) on a pty until Ctrl-C: prints the port path, then every pin change."); err != nil {
		return err
	}
	stderr = &lockedWriter{w: stderr} // the board's diagnostics arrive from another goroutine
	if *baud < 0 {
		return fmt.Errorf("--baud must be positive, got %d", *baud)
	}
	if *flash != "" {
		// The flash holds config.json (secrets): the directory is the user's alone.
		if err := os.MkdirAll(*flash, 0o700); err != nil {
			return fmt.Errorf("--flash: %w", err)
		}
	}
	board, err := sim.Start(ctx, sim.Options{
		FlashDir:    *flash,
		LineRate:    *baud > 0,
		BaudRate:    *baud,
		NoRawPaste:  *noRawPaste,
		BootGarbage: *garbage,
		Download:    *download,
		Redirects:   redirects,
		Heap:        *heap,
		Log:         stderr,
	})
	if err != nil {
		return err
	}
	defer board.Close()
	port := board.Port()
	if *linkPath != "" {
		unlink, err := linkPort(*linkPath, port)
		if err != nil {
			return err
		}
		defer unlink()
		port = *linkPath
	}
	changes, stop := board.PinChanges()
	defer stop()
	// The path alone on the first line, so scripts can read it: the link
	// when there is one (it outlives no run), else the pty.
	if _, err := fmt.Fprintln(stdout, port); err != nil {
		return err
	}
	if port != board.Port() {
		fmt.Fprintf(stderr, "hil sim: virtual board on %s (-> %s), flash %s; Ctrl-C to stop\n", port, board.Port(), board.FlashDir())
	} else {
		fmt.Fprintf(stderr, "hil sim: virtual board on %s, flash %s; Ctrl-C to stop\n", port, board.FlashDir())
	}
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

// linkPort makes path a symlink to the pty and returns what removes it.
// A symlink already at path is replaced only when it leads to a pty (one
// left by a hil sim that was killed) or nowhere; anything else there is
// refused, so that a real board's device or link is never touched. The
// returned func removes the link only while it still leads to pty.
func linkPort(path, pty string) (unlink func(), err error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSymlink == 0 {
			return nil, fmt.Errorf("--link %s: exists and is not a symlink; give another path", path)
		}
		old, _ := os.Readlink(path)
		if _, serr := os.Stat(path); serr == nil && !strings.HasPrefix(old, "/dev/pts/") {
			return nil, fmt.Errorf("--link %s: is a symlink to %s, not to a pty; give another path", path, old)
		}
	}
	// Beside path and renamed over it: the link is never missing or half-made.
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(pty, tmp); err != nil {
		return nil, linkError(path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return nil, linkError(path, err)
	}
	return func() {
		if dst, err := os.Readlink(path); err == nil && dst == pty {
			os.Remove(path)
		}
	}, nil
}

// linkError says how to get a link where the user may not write (/dev,
// where serial-port lists look).
func linkError(path string, err error) error {
	if errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("--link %s: %w; /dev is root's: once per boot run "+
			"`sudo ln -sfn \"$XDG_RUNTIME_DIR/ttyUSB-hil0\" /dev/ttyUSB-hil0`, then give --link \"$XDG_RUNTIME_DIR/ttyUSB-hil0\" "+
			"(serial-port lists show /dev/ttyUSB-hil0; see sim/README.md)", path, err)
	}
	return fmt.Errorf("--link %s: %w", path, err)
}
