// Package board drives a MicroPython board over its serial link the way
// MicroPython's own host tools do: the raw REPL (with raw-paste mode and its
// window flow control, falling back to plain raw mode on firmware without
// it), files on the board's flash (sha256 skip), resets, and the flasher.
package board

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/onenet-hil/hil/harness/link"
)

// Protocol bytes and banners (MicroPython shared/runtime/pyexec.c).
var (
	rawBanner       = []byte("raw REPL; CTRL-B to exit\r\n>")
	rawBannerTail   = []byte("w REPL; CTRL-B to exit\r\n>") // after an old board's "ra"
	softRebootLine  = []byte("soft reboot\r\n")
	friendlyPrompt  = []byte(">>> ")
	rawPasteRequest = []byte("\x05A\x01")
)

// Options tune a REPL; zero values take the defaults.
type Options struct {
	// Step bounds one protocol step (an answer to a control byte). Default 5 s.
	Step time.Duration
	// ExecTimeout bounds the run of one block of code. Default 30 s.
	ExecTimeout time.Duration
	// NoRawPaste forces plain raw mode even where raw paste is available.
	NoRawPaste bool
	// PlainChunk and PlainDelay pace plain raw mode: the board's input
	// buffer is small, so hosts write 256 bytes every 10 ms.
	PlainChunk int
	PlainDelay time.Duration
}

func (o *Options) defaults() {
	if o.Step <= 0 {
		o.Step = 5 * time.Second
	}
	if o.ExecTimeout <= 0 {
		o.ExecTimeout = 30 * time.Second
	}
	if o.PlainChunk <= 0 {
		o.PlainChunk = 256
	}
	if o.PlainDelay <= 0 {
		o.PlainDelay = 10 * time.Millisecond
	}
}

// pasteSupport is what we know of the board's raw-paste mode.
type pasteSupport int

const (
	pasteUnknown pasteSupport = iota
	pasteYes
	pasteNo
)

// REPL is a raw-REPL client on one link. Its methods are safe for
// concurrent use; they run one at a time.
type REPL struct {
	link  *link.Link
	opts  Options
	mu    sync.Mutex
	inRaw bool
	paste pasteSupport
}

// NewREPL makes a client; it sends nothing until the first call.
func NewREPL(l *link.Link, opts Options) *REPL {
	opts.defaults()
	r := &REPL{link: l, opts: opts}
	if opts.NoRawPaste {
		r.paste = pasteNo
	}
	return r
}

// Link is the serial link the client talks over.
func (r *REPL) Link() *link.Link { return r.link }

// RawPaste reports whether the board accepted raw-paste mode (false until
// the first Exec found out, or when the board lacks it).
func (r *REPL) RawPaste() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.paste == pasteYes
}

// PythonError is an exception raised by code run on the board.
type PythonError struct {
	Traceback string // the board's stderr, as printed
}

// Exception is the traceback's last line, e.g. "OSError: [Errno 2] ENOENT".
func (e *PythonError) Exception() string {
	lines := strings.Split(strings.TrimRight(e.Traceback, "\r\n"), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func (e *PythonError) Error() string {
	return "board raised " + e.Exception() + "\n" + strings.TrimRight(e.Traceback, "\r\n")
}

func (r *REPL) write(b []byte) error {
	_, err := r.link.Write(b)
	return err
}

// EnterRaw stops whatever runs on the board (a main.py looping or blocked
// in a socket read) and enters the raw REPL; with softReset it then
// soft-resets the board (fresh heap; boot.py runs, main.py does not).
func (r *REPL) EnterRaw(ctx context.Context, softReset bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.enterRaw(ctx, softReset)
}

func (r *REPL) enterRaw(ctx context.Context, softReset bool) error {
	r.inRaw = false
	const attempts = 3
	var err error
	for i := 0; i < attempts; i++ {
		if err = ctx.Err(); err != nil {
			return err
		}
		// Two Ctrl-C: the second one catches a program that was between
		// statements or swallowed the first KeyboardInterrupt.
		if err = r.write([]byte("\r\x03\x03")); err != nil {
			return fmt.Errorf("enter raw REPL: %w", err)
		}
		r.link.DiscardRaw()
		if err = r.write([]byte("\r\x01")); err != nil {
			return fmt.Errorf("enter raw REPL: %w", err)
		}
		if _, err = r.link.ReadUntil(ctx, rawBanner, r.opts.Step); err == nil {
			break
		}
		if r.link.Err() != nil || ctx.Err() != nil {
			return fmt.Errorf("enter raw REPL: %w", err)
		}
	}
	if err != nil {
		return fmt.Errorf("enter raw REPL: no raw REPL banner after %d attempts: %w", attempts, err)
	}
	r.inRaw = true
	if softReset {
		return r.rawSoftReset(ctx)
	}
	return nil
}

// rawSoftReset: Ctrl-D at the raw prompt; the board prints OK, soft reboot,
// boot.py's output, and the raw banner again.
func (r *REPL) rawSoftReset(ctx context.Context) error {
	if err := r.write([]byte("\x04")); err != nil {
		return fmt.Errorf("soft reset: %w", err)
	}
	if _, err := r.link.ReadUntil(ctx, softRebootLine, r.opts.Step); err != nil {
		r.inRaw = false
		return fmt.Errorf("soft reset: %w", err)
	}
	if _, err := r.link.ReadUntil(ctx, rawBanner, r.opts.ExecTimeout); err != nil {
		r.inRaw = false
		return fmt.Errorf("soft reset: boot.py did not finish: %w", err)
	}
	return nil
}

// SoftResetRaw soft-resets the board and stays in the raw REPL (main.py
// does not run).
func (r *REPL) SoftResetRaw(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.inRaw {
		return r.enterRaw(ctx, true)
	}
	return r.rawSoftReset(ctx)
}

// ExitRaw goes back to the friendly REPL (">>> ").
func (r *REPL) ExitRaw(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exitRaw(ctx)
}

func (r *REPL) exitRaw(ctx context.Context) error {
	r.inRaw = false
	if err := r.write([]byte("\r\x02")); err != nil {
		return fmt.Errorf("exit raw REPL: %w", err)
	}
	if _, err := r.link.ReadUntil(ctx, friendlyPrompt, r.opts.Step); err != nil {
		return fmt.Errorf("exit raw REPL: %w", err)
	}
	return nil
}

// SoftReboot leaves the raw REPL and soft-resets from the friendly REPL,
// so boot.py and main.py run as after power-up. It returns once the board
// printed "soft reboot".
func (r *REPL) SoftReboot(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.enterRaw(ctx, false); err != nil {
		return err
	}
	if err := r.exitRaw(ctx); err != nil {
		return err
	}
	if err := r.write([]byte("\x04")); err != nil {
		return fmt.Errorf("soft reboot: %w", err)
	}
	if _, err := r.link.ReadUntil(ctx, softRebootLine, r.opts.Step); err != nil {
		return fmt.Errorf("soft reboot: %w", err)
	}
	return nil
}

// Exec runs code on the board and returns its stdout; an exception comes
// back as a *PythonError carrying the traceback.
func (r *REPL) Exec(ctx context.Context, code string) ([]byte, error) {
	out, stderr, err := r.ExecSplit(ctx, code)
	if err != nil {
		return out, err
	}
	if len(stderr) > 0 {
		return out, &PythonError{Traceback: string(stderr)}
	}
	return out, nil
}

// ExecSplit runs code and returns stdout and stderr apart; err is only for
// failures of the link or the protocol.
func (r *REPL) ExecSplit(ctx context.Context, code string) (stdout, stderr []byte, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.send(ctx, []byte(code)); err != nil {
		return nil, nil, err
	}
	return r.follow(ctx)
}

// Eval evaluates a Python expression on the board and returns what print
// shows of it.
func (r *REPL) Eval(ctx context.Context, expr string) (string, error) {
	out, err := r.Exec(ctx, "print("+expr+")")
	return strings.TrimRight(string(out), "\r\n"), err
}

// send puts code on the board for execution: raw paste when the board has
// it, plain raw mode otherwise.
func (r *REPL) send(ctx context.Context, code []byte) error {
	if !r.inRaw {
		if err := r.enterRaw(ctx, false); err != nil {
			return err
		}
	}
	// Nothing should arrive at an idle raw prompt; whatever did is noise.
	r.link.DiscardRaw()
	if r.paste != pasteNo {
		if err := r.write(rawPasteRequest); err != nil {
			return r.broken(err)
		}
		ans, err := r.link.ReadN(ctx, 2, r.opts.Step)
		if err != nil {
			return r.broken(fmt.Errorf("raw paste: %w", err))
		}
		switch parsePasteAnswer(ans) {
		case answerAccepted:
			r.paste = pasteYes
			return r.pasteWrite(ctx, code)
		case answerRefused:
			// Understood, refused; pyexec then prompts ">" again.
			r.paste = pasteNo
			if _, err := r.link.ReadUntil(ctx, []byte(">"), r.opts.Step); err != nil {
				return r.broken(fmt.Errorf("raw paste refused: %w", err))
			}
		default:
			// Old firmware took \x05A as input and Ctrl-A as "reset the raw
			// REPL": it printed the banner again. Skip it.
			if _, err := r.link.ReadUntil(ctx, rawBannerTail, r.opts.Step); err != nil {
				return r.broken(fmt.Errorf("raw paste probe answered %q: %w", ans, err))
			}
			r.paste = pasteNo
		}
	}
	return r.plainWrite(ctx, code)
}

// broken marks the raw REPL state as unknown after a protocol failure so
// the next call starts over with Ctrl-C.
func (r *REPL) broken(err error) error {
	r.inRaw = false
	return err
}

// pasteWrite sends code in raw-paste mode, honouring the board's window.
func (r *REPL) pasteWrite(ctx context.Context, code []byte) error {
	hdr, err := r.link.ReadN(ctx, 2, r.opts.Step)
	if err != nil {
		return r.broken(fmt.Errorf("raw paste window: %w", err))
	}
	window, err := parseWindow(hdr)
	if err != nil {
		return r.broken(err)
	}
	remain := window
	for i := 0; i < len(code); {
		// Take the board's flow-control bytes: wait for one when the window
		// is used up, otherwise only take what is already there.
		var ctl []byte
		if remain == 0 {
			if ctl, err = r.link.ReadSome(ctx, r.opts.Step); err != nil {
				return r.broken(fmt.Errorf("raw paste: waiting for the board's window: %w", err))
			}
		} else {
			ctl = r.link.TakeRaw()
		}
		for _, c := range ctl {
			switch c {
			case 0x01:
				remain += window
			case 0x04: // the board ends the paste early: acknowledge and stop
				if err := r.write([]byte{0x04}); err != nil {
					return r.broken(err)
				}
				return nil
			default:
				return r.broken(fmt.Errorf("raw paste: unexpected byte %q from the board", c))
			}
		}
		if remain == 0 {
			continue
		}
		n := min(remain, len(code)-i)
		if err := r.write(code[i : i+n]); err != nil {
			return r.broken(err)
		}
		remain -= n
		i += n
	}
	if err := r.write([]byte{0x04}); err != nil {
		return r.broken(err)
	}
	// The board answers \x04 once it has the whole source (window bytes may
	// come first).
	if _, err := r.link.ReadUntil(ctx, []byte{0x04}, r.opts.ExecTimeout); err != nil {
		return r.broken(fmt.Errorf("raw paste: end not acknowledged: %w", err))
	}
	return nil
}

// plainWrite sends code in plain raw mode, in paced pieces.
func (r *REPL) plainWrite(ctx context.Context, code []byte) error {
	for i := 0; i < len(code); i += r.opts.PlainChunk {
		if i > 0 {
			select {
			case <-time.After(r.opts.PlainDelay): // pacing for the board's small buffer
			case <-ctx.Done():
				return r.broken(ctx.Err())
			}
		}
		if err := r.write(code[i:min(i+r.opts.PlainChunk, len(code))]); err != nil {
			return r.broken(err)
		}
	}
	if err := r.write([]byte{0x04}); err != nil {
		return r.broken(err)
	}
	ok, err := r.link.ReadN(ctx, 2, r.opts.Step)
	if err != nil {
		return r.broken(fmt.Errorf("exec: %w", err))
	}
	if string(ok) != "OK" {
		return r.broken(fmt.Errorf("exec: board answered %q instead of OK", ok))
	}
	return nil
}

// follow reads the result of a block: stdout \x04 stderr \x04 >.
func (r *REPL) follow(ctx context.Context) (stdout, stderr []byte, err error) {
	out, err := r.link.ReadUntil(ctx, []byte{0x04}, r.opts.ExecTimeout)
	if err != nil {
		return nil, nil, r.broken(fmt.Errorf("exec: waiting for output: %w", err))
	}
	errOut, err := r.link.ReadUntil(ctx, []byte{0x04}, r.opts.Step)
	if err != nil {
		return out[:len(out)-1], nil, r.broken(fmt.Errorf("exec: waiting for error output: %w", err))
	}
	if _, err := r.link.ReadUntil(ctx, []byte(">"), r.opts.Step); err != nil {
		return out[:len(out)-1], errOut[:len(errOut)-1], r.broken(fmt.Errorf("exec: waiting for the raw prompt: %w", err))
	}
	return out[:len(out)-1], errOut[:len(errOut)-1], nil
}

// ExecNoFollow sends code and returns once the board accepted it, without
// waiting for it to finish: for code that resets the board.
func (r *REPL) ExecNoFollow(ctx context.Context, code string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	err := r.send(ctx, []byte(code))
	r.inRaw = false
	return err
}
