// Package link is the harness's serial link to a board: a port opened with
// go.bug.st/serial (a real USB-serial bridge or a virtual board's pty), a
// reader that turns the incoming bytes into a bounded, timestamped line log
// (also written to a file; the log is an internal/seqlog, the same sequenced
// log as the broker's event feed: Mark, Since, Next, WaitLine), raw byte
// access for the REPL protocol beside it, and bounded waits that fail with
// the last lines seen. An error caused by the port going away matches
// ErrGone.
//
// Two traps of go.bug.st/serial v1.8.0 are avoided by never calling the
// library's Read: it returns (0, nil) when its timeout passes, and it builds
// a select(2) fd_set from the port's descriptor, which panics when the
// descriptor is 1024 or more (a process running a broker with a large fleet
// easily gets there). The library opens and configures the port and drives
// its modem lines; the bytes flow through a duplicate of its descriptor held
// by an *os.File in non-blocking mode, which the Go runtime polls with epoll
// (no descriptor limit) and which supports deadlines and Close-unblocks-Read.
package link

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"go.bug.st/serial"
	"golang.org/x/sys/unix"

	"github.com/onenet-hil/hil/internal/seqlog"
)

// Defaults for Options.
const (
	DefaultBaud         = 115200
	DefaultMaxLines     = 5000
	DefaultMaxRaw       = 1 << 20
	DefaultWriteTimeout = 5 * time.Second
	// maxLineBytes splits a line that never ends (boot garbage, a board
	// printing without newlines) so one line cannot grow without bound.
	maxLineBytes = 4096
)

// ErrNoModemLines means the port has no DTR/RTS lines (a pty answers
// "inappropriate ioctl for device"); callers fall back to a soft reset.
var ErrNoModemLines = errors.New("port has no modem control lines")

// ErrGone matches (errors.Is) every error that comes from the port having
// closed or gone away (unplugged): the board can no longer be reached
// through it.
var ErrGone = errors.New("the board is gone")

// goneError is why the reader stopped; its text is the cause's.
type goneError struct{ error }

func (e goneError) Is(target error) bool { return target == ErrGone }
func (e goneError) Unwrap() error        { return e.error }

// Options tune a Link; the zero value is 115200 8N1 with no log file.
type Options struct {
	Baud         int           // default 115200
	LogPath      string        // timestamped line log file (appended); "" for none
	Log          io.Writer     // also gets every timestamped line (e.g. a masking writer); nil for none
	MaxLines     int           // lines kept in memory; default 5000
	MaxRaw       int           // raw bytes kept for the REPL; default 1 MiB
	WriteTimeout time.Duration // bound for one Write; default 5 s
}

// Line is one line received from the board, without its line ending.
// Bytes that are not printable UTF-8 are shown as \xNN.
type Line struct {
	Seq  int64
	Time time.Time
	Text string
}

func (l Line) String() string {
	return l.Time.UTC().Format("15:04:05.000") + " " + l.Text
}

// Link is an open serial link. All methods are safe for concurrent use;
// raw reads are meant for one protocol user at a time (the REPL client).
type Link struct {
	name  string
	port  serial.Port
	f     *os.File
	opts  Options
	logf  *os.File
	logw  *bufio.Writer
	wmu   sync.Mutex
	done  chan struct{}
	close sync.Once

	lines *seqlog.Log[Line] // the finished lines

	mu          sync.Mutex
	partial     []byte
	partialTime time.Time
	raw         []byte
	rawDropped  int64
	notify      chan struct{}
	err         error // why the reader stopped
	cursor      int64 // Expect's position in the line stream
}

// Open opens the serial port at path (115200 8N1 unless opts says
// otherwise) and starts its reader.
func Open(path string, opts Options) (*Link, error) {
	if opts.Baud == 0 {
		opts.Baud = DefaultBaud
	}
	if opts.MaxLines <= 0 {
		opts.MaxLines = DefaultMaxLines
	}
	if opts.MaxRaw <= 0 {
		opts.MaxRaw = DefaultMaxRaw
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	port, err := serial.Open(path, portMode(opts.Baud, true))
	if err != nil && noModemLinesAtOpen(err) {
		// A pty has no modem lines to set: open it as it is.
		port, err = serial.Open(path, portMode(opts.Baud, false))
	}
	if err != nil {
		return nil, fmt.Errorf("open serial port %s: %w", path, err)
	}
	fd, err := portFD(port)
	if err != nil {
		port.Close()
		return nil, fmt.Errorf("open serial port %s: %w", path, err)
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		port.Close()
		return nil, fmt.Errorf("open serial port %s: dup: %w", path, err)
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		port.Close()
		return nil, fmt.Errorf("open serial port %s: non-blocking: %w", path, err)
	}
	l := &Link{
		name:   path,
		port:   port,
		f:      os.NewFile(uintptr(nfd), path),
		opts:   opts,
		lines:  seqlog.New(opts.MaxLines, 0, func(ln *Line, seq int64) { ln.Seq = seq }),
		done:   make(chan struct{}),
		notify: make(chan struct{}),
	}
	if opts.LogPath != "" {
		lf, err := os.OpenFile(opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			l.f.Close()
			port.Close()
			return nil, fmt.Errorf("open serial log: %w", err)
		}
		l.logf = lf
		l.logw = bufio.NewWriter(lf)
	}
	go l.read()
	return l, nil
}

// portMode is 8N1 at baud. With lines, DTR and RTS are set off at open:
// Linux asserts both when a tty opens, and RTS on with DTR off holds an
// ESP8266 in reset through its auto-reset circuit (both off: "run").
func portMode(baud int, lines bool) *serial.Mode {
	m := &serial.Mode{BaudRate: baud, DataBits: 8, Parity: serial.NoParity, StopBits: serial.OneStopBit}
	if lines {
		m.InitialStatusBits = &serial.ModemOutputBits{RTS: false, DTR: false}
	}
	return m
}

// noModemLinesAtOpen tells whether serial.Open failed only because the
// port cannot set its modem lines (a pty: "inappropriate ioctl for
// device"). go.bug.st/serial v1.8.0's PortError does not unwrap its cause,
// so its text is all there is to go by.
func noModemLinesAtOpen(err error) bool {
	var pe *serial.PortError
	if !errors.As(err, &pe) || pe.Code() != serial.InvalidSerialPort {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "modem bits") &&
		(strings.Contains(msg, unix.ENOTTY.Error()) || strings.Contains(msg, unix.EINVAL.Error()))
}

// portFD reads the descriptor go.bug.st/serial keeps in its unexported
// unixPort.handle (v1.8.0); the library offers no accessor.
func portFD(p serial.Port) (int, error) {
	v := reflect.ValueOf(p)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return 0, fmt.Errorf("unexpected port type %T", p)
	}
	h := v.Elem().FieldByName("handle")
	if !h.IsValid() || h.Kind() != reflect.Int {
		return 0, fmt.Errorf("port type %T has no descriptor field (go.bug.st/serial changed?)", p)
	}
	return int(h.Int()), nil
}

// Name is the port's path.
func (l *Link) Name() string { return l.name }

// Done is closed when the reader stops: the port was closed or went away.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err tells why the reader stopped (nil while it runs).
func (l *Link) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Close stops the reader and closes the port and the log file.
func (l *Link) Close() error {
	var err error
	l.close.Do(func() {
		l.f.Close() // unblocks the reader
		<-l.done
		err = l.port.Close()
		if l.logf != nil {
			l.logw.Flush()
			l.logf.Close()
		}
	})
	return err
}

func (l *Link) read() {
	buf := make([]byte, 4096)
	for {
		n, err := l.f.Read(buf)
		if n > 0 {
			l.ingest(buf[:n], time.Now())
		}
		if err != nil {
			l.stop(err)
			return
		}
	}
}

func (l *Link) stop(err error) {
	switch {
	case errors.Is(err, os.ErrClosed):
		err = fmt.Errorf("serial port %s closed", l.name)
	case errors.Is(err, io.EOF), errors.Is(err, syscall.EIO), errors.Is(err, syscall.ENXIO), errors.Is(err, syscall.ENODEV):
		err = fmt.Errorf("serial port %s went away (%v)", l.name, err)
	default:
		err = fmt.Errorf("serial port %s: read: %w", l.name, err)
	}
	err = goneError{err}
	l.mu.Lock()
	var flushed []Line
	if len(l.partial) > 0 {
		flushed = append(flushed, l.addLine(l.partial, l.partialTime))
		l.partial = nil
	}
	l.err = err
	l.wake()
	l.mu.Unlock()
	l.lines.Close(err)
	l.writeLog(flushed)
	close(l.done)
}

// ingest appends bytes to the raw buffer and the line log.
func (l *Link) ingest(b []byte, now time.Time) {
	l.mu.Lock()
	l.raw = append(l.raw, b...)
	if over := len(l.raw) - l.opts.MaxRaw; over > 0 {
		l.rawDropped += int64(over)
		l.raw = append(l.raw[:0], l.raw[over:]...)
	}
	var done []Line
	for _, c := range b {
		if len(l.partial) == 0 {
			l.partialTime = now
		}
		if c == '\n' {
			done = append(done, l.addLine(l.partial, l.partialTime))
			l.partial = l.partial[:0]
			continue
		}
		l.partial = append(l.partial, c)
		if len(l.partial) >= maxLineBytes {
			done = append(done, l.addLine(l.partial, l.partialTime))
			l.partial = l.partial[:0]
		}
	}
	l.wake()
	l.mu.Unlock()
	l.writeLog(done)
}

// addLine stores a finished line; l.mu held (so that lines keep the
// order their bytes came in).
func (l *Link) addLine(b []byte, t time.Time) Line {
	b = []byte(strings.TrimSuffix(string(b), "\r"))
	return l.lines.Append(Line{Time: t, Text: Render(b)})
}

func (l *Link) writeLog(lines []Line) {
	if (l.logw == nil && l.opts.Log == nil) || len(lines) == 0 {
		return
	}
	var b strings.Builder
	for _, ln := range lines {
		fmt.Fprintf(&b, "%s %s\n", ln.Time.UTC().Format(time.RFC3339Nano), ln.Text)
	}
	if l.logw != nil {
		l.logw.WriteString(b.String())
		l.logw.Flush()
	}
	if l.opts.Log != nil {
		io.WriteString(l.opts.Log, b.String())
	}
}

// wake tells every waiter that something changed; l.mu held.
func (l *Link) wake() {
	close(l.notify)
	l.notify = make(chan struct{})
}

// Render shows bytes as text: printable UTF-8 as is, tabs kept, every other
// byte (control characters, invalid UTF-8, boot garbage) as \xNN.
func Render(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, size := decodeRune(b)
		if r < 0 || (r < 0x20 && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			for _, c := range b[:size] {
				fmt.Fprintf(&sb, "\\x%02x", c)
			}
		} else {
			sb.Write(b[:size])
		}
		b = b[size:]
	}
	return sb.String()
}

func decodeRune(b []byte) (rune, int) {
	if b[0] < 0x80 {
		return rune(b[0]), 1
	}
	r, size := utf8.DecodeRune(b)
	if r == utf8.RuneError && size <= 1 {
		return -1, 1
	}
	return r, size
}

// Write sends bytes to the board, bounded by Options.WriteTimeout.
func (l *Link) Write(p []byte) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	select {
	case <-l.done:
		return 0, l.Err()
	default:
	}
	l.f.SetWriteDeadline(time.Now().Add(l.opts.WriteTimeout))
	n, err := l.f.Write(p)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return n, fmt.Errorf("serial port %s: write of %d bytes stalled for %s (board not reading?)", l.name, len(p), l.opts.WriteTimeout)
		}
		if e := l.Err(); e != nil {
			return n, e
		}
		return n, fmt.Errorf("serial port %s: write: %w", l.name, err)
	}
	return n, nil
}

// SetDTR and SetRTS drive the modem lines (the ESP8266 auto-reset circuit).
// A port without them returns ErrNoModemLines.
func (l *Link) SetDTR(on bool) error { return modemErr(l.port.SetDTR(on)) }

// SetRTS: see SetDTR.
func (l *Link) SetRTS(on bool) error { return modemErr(l.port.SetRTS(on)) }

// HasModemLines reports whether the port has DTR and RTS, and leaves both
// off ("run" on the ESP8266 auto-reset circuit). RTS goes off first: DTR
// off while RTS is still on would hold the chip in reset, however briefly.
// Any failure to drive the lines counts as "no lines" (the caller then
// falls back to a soft reset, which reports a port that went away).
func (l *Link) HasModemLines() bool {
	return l.SetRTS(false) == nil && l.SetDTR(false) == nil
}

func modemErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("%w: %v", ErrNoModemLines, err)
	}
	return err
}

// Lines returns a copy of the lines in memory, oldest first.
func (l *Link) Lines() []Line {
	lines, _ := l.lines.Since(0)
	return lines
}

// Since returns, without waiting, the lines in memory numbered from on
// (from a Mark) and how many of those fell out of memory unread.
func (l *Link) Since(from int64) ([]Line, int64) { return l.lines.Since(from) }

// Tail returns the last n lines, plus the unfinished line if any (shown
// with a trailing "…" so a prompt without a newline is visible).
func (l *Link) Tail(n int) []Line {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tailLocked(n)
}

func (l *Link) tailLocked(n int) []Line {
	all := l.lines.Last(n)
	if len(l.partial) > 0 {
		all = append(all, Line{Seq: l.lines.Mark(), Time: l.partialTime, Text: Render(l.partial) + "…"})
	}
	return all
}

// Mark returns the sequence number the next line will get; pass it to
// ExpectFrom to look only at lines received after this moment.
func (l *Link) Mark() int64 { return l.lines.Mark() }

// Match is a line that matched a pattern, with its submatches.
type Match struct {
	Line   Line
	Groups []string
}

// WaitError is a bounded wait that failed; it shows the last lines seen.
type WaitError struct {
	Port    string
	What    string
	Timeout time.Duration
	Cause   error // nil: the time ran out
	Last    []Line
}

func (e *WaitError) Error() string {
	var sb strings.Builder
	if e.Cause != nil {
		fmt.Fprintf(&sb, "%s: waiting for %s: %v", e.Port, e.What, e.Cause)
	} else {
		fmt.Fprintf(&sb, "%s: waiting for %s: timed out after %s", e.Port, e.What, e.Timeout)
	}
	if len(e.Last) == 0 {
		sb.WriteString("; nothing received")
	} else {
		sb.WriteString("; last lines seen:")
		for _, ln := range e.Last {
			sb.WriteString("\n  | " + ln.String())
		}
	}
	return sb.String()
}

func (e *WaitError) Unwrap() error { return e.Cause }

// TailLines is how many lines a WaitError shows.
const TailLines = 20

// Fail builds a WaitError for a wait that a caller bounded itself.
func (l *Link) Fail(what string, timeout time.Duration, cause error) error {
	return &WaitError{Port: l.name, What: what, Timeout: timeout, Cause: cause, Last: l.Tail(TailLines)}
}

// Expect waits up to timeout for a line matching pattern (a regexp),
// looking at lines after the previous Expect's match; it advances past
// the matching line.
func (l *Link) Expect(pattern string, timeout time.Duration) (Match, error) {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return Match{}, fmt.Errorf("expect: bad pattern %q: %w", pattern, err)
	}
	l.mu.Lock()
	from := l.cursor
	l.mu.Unlock()
	m, err := l.ExpectFrom(context.Background(), from, re, timeout)
	if err == nil {
		l.mu.Lock()
		if m.Line.Seq+1 > l.cursor {
			l.cursor = m.Line.Seq + 1
		}
		l.mu.Unlock()
	}
	return m, err
}

// ExpectFrom waits up to timeout (or until ctx ends) for a line with
// Seq >= from matching re.
func (l *Link) ExpectFrom(ctx context.Context, from int64, re *regexp.Regexp, timeout time.Duration) (Match, error) {
	var groups []string
	ln, err := l.WaitLine(ctx, from, fmt.Sprintf("a line matching /%s/", re), timeout, func(ln Line) bool {
		groups = re.FindStringSubmatch(ln.Text)
		return groups != nil
	})
	if err != nil {
		return Match{}, err
	}
	return Match{Line: ln, Groups: groups}, nil
}

// WaitLine waits up to timeout (or until ctx ends) for a line with Seq >=
// from that match accepts; what names it in the error, which shows the
// last lines seen.
func (l *Link) WaitLine(ctx context.Context, from int64, what string, timeout time.Duration, match func(Line) bool) (Line, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ln, _, err := l.lines.Wait(wctx, from, match)
	switch {
	case err == nil:
		return ln, nil
	case ctx.Err() != nil:
		return Line{}, l.Fail(what, timeout, ctx.Err())
	case errors.Is(err, context.DeadlineExceeded):
		return Line{}, l.Fail(what, timeout, nil)
	}
	return Line{}, l.Fail(what, timeout, err)
}

// ErrLinesLost is Next's error when lines fell out of the link's memory
// before they were read.
var ErrLinesLost = errors.New("serial lines fell out of the link's buffer before they were read")

// Next returns the line numbered from (waiting until it comes or ctx
// ends: then ctx.Err()). When that line already fell out of memory it
// returns the oldest one kept with an error wrapping ErrLinesLost; a
// closed port is an error matching ErrGone.
func (l *Link) Next(ctx context.Context, from int64) (Line, error) {
	ln, seq, err := l.lines.Wait(ctx, from, nil)
	switch {
	case err != nil && ctx.Err() != nil:
		return Line{}, ctx.Err()
	case err != nil:
		return Line{}, err
	case seq != from:
		return ln, fmt.Errorf("%w: %d line(s)", ErrLinesLost, seq-from)
	}
	return ln, nil
}

// DiscardRaw drops the raw bytes received so far (the line log keeps them).
func (l *Link) DiscardRaw() {
	l.mu.Lock()
	l.raw = l.raw[:0]
	l.mu.Unlock()
}

// TakeRaw returns and consumes the raw bytes received so far, without waiting.
func (l *Link) TakeRaw() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := append([]byte(nil), l.raw...)
	l.raw = l.raw[:0]
	return out
}

// ReadUntil waits up to timeout for suffix in the raw stream and consumes
// and returns everything up to and including it.
func (l *Link) ReadUntil(ctx context.Context, suffix []byte, timeout time.Duration) ([]byte, error) {
	return l.readRaw(ctx, fmt.Sprintf("%q", suffix), timeout, func(raw []byte) int {
		i := bytes.Index(raw, suffix)
		if i < 0 {
			return -1
		}
		return i + len(suffix)
	})
}

// ReadN waits up to timeout for n raw bytes and consumes them.
func (l *Link) ReadN(ctx context.Context, n int, timeout time.Duration) ([]byte, error) {
	return l.readRaw(ctx, fmt.Sprintf("%d bytes", n), timeout, func(raw []byte) int {
		if len(raw) < n {
			return -1
		}
		return n
	})
}

// ReadSome waits up to timeout for at least one raw byte and consumes all
// that are there.
func (l *Link) ReadSome(ctx context.Context, timeout time.Duration) ([]byte, error) {
	return l.readRaw(ctx, "a byte", timeout, func(raw []byte) int {
		if len(raw) == 0 {
			return -1
		}
		return len(raw)
	})
}

// readRaw waits until want returns how many leading raw bytes to consume.
func (l *Link) readRaw(ctx context.Context, what string, timeout time.Duration, want func([]byte) int) ([]byte, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		if n := want(l.raw); n >= 0 {
			out := append([]byte(nil), l.raw[:n]...)
			l.raw = append(l.raw[:0], l.raw[n:]...)
			l.mu.Unlock()
			return out, nil
		}
		notify, err := l.notify, l.err
		l.mu.Unlock()
		if err != nil {
			return nil, l.Fail(what, timeout, err)
		}
		select {
		case <-notify:
		case <-ctx.Done():
			return nil, l.Fail(what, timeout, ctx.Err())
		case <-deadline.C:
			return nil, l.Fail(what, timeout, nil)
		}
	}
}
