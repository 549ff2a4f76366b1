package board

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// ConfigPath is where the firmware reads its configuration.
const ConfigPath = "config.json"

// DefaultReady is the serial echo that says the firmware logged in.
var DefaultReady = regexp.MustCompile(`^HIL mqtt up\b`)

// ArmFunc is called just before the board is reset and returns the wait
// for the broker's "device connected" event: the broker's feed must be
// marked before the board can connect, and waited on after.
type ArmFunc func() (wait func(ctx context.Context) error)

// FlashOptions tune Flash; the zero value uploads, resets (auto) and waits
// for the serial echo only if ArmConnected is nil — see ArmConnected.
type FlashOptions struct {
	// Prune removes board files the firmware does not have (except Keep).
	Prune bool
	Keep  []string
	// Reset is how the board is restarted after the upload.
	Reset ResetMode
	// NoReset skips the reset and the waits (upload only).
	NoReset bool
	// BootTimeout bounds the wait for Ready and the broker event. Default 60 s.
	BootTimeout time.Duration
	// Ready is the serial line that says the firmware is up. Default DefaultReady.
	Ready *regexp.Regexp
	// ArmConnected waits for the broker's connected event; Flash requires
	// it unless NoReset is set (either signal alone is not proof).
	ArmConnected ArmFunc
	// Progress receives a progress bar when it is a terminal, plain log
	// lines otherwise; nil for silence.
	Progress io.Writer
	// Copy chooses the upload encoding and chunk size; zero = DefaultCopy.
	Copy CopyOptions
	// NoSoftReset skips the soft reset before the upload (a fresh heap on
	// the board is worth its few milliseconds).
	NoSoftReset bool
}

// FlashResult tells what Flash did.
type FlashResult struct {
	Uploaded []string
	Skipped  []string
	Removed  []string
	Bytes    int64 // file bytes uploaded
	RawPaste bool
	Reset    ResetMode
	Upload   time.Duration // from entering the raw REPL to the last file verified
	Boot     time.Duration // from the reset to ready and connected
	Ready    string        // the ready line seen
}

// Flash uploads what changed of files (flash path -> bytes) and the
// config (written as config.json unless nil), optionally prunes, resets the
// board and waits for the firmware's ready line and the broker's connected
// event.
func Flash(ctx context.Context, r *REPL, files map[string][]byte, config []byte, opts FlashOptions) (FlashResult, error) {
	if !opts.NoReset && opts.ArmConnected == nil {
		return FlashResult{}, errors.New("flash: no broker wait given (ArmConnected): the serial echo alone does not prove the board logged in")
	}
	want := make(map[string][]byte, len(files)+1)
	for p, b := range files {
		p = strings.TrimPrefix(path.Clean("/"+p), "/")
		if p == "" || p == "." {
			return FlashResult{}, fmt.Errorf("flash: bad file name %q", p)
		}
		want[p] = b
	}
	if config != nil {
		want[ConfigPath] = config
	}
	res, err := Sync(ctx, r, want, opts)
	if err != nil || opts.NoReset {
		return res, err
	}

	if opts.BootTimeout <= 0 {
		opts.BootTimeout = 60 * time.Second
	}
	ready := opts.Ready
	if ready == nil {
		ready = DefaultReady
	}
	plog := newPlainLog(opts.Progress)
	mark := r.Link().Mark()
	wait := opts.ArmConnected()
	start := time.Now()
	used, err := r.Reset(ctx, opts.Reset)
	res.Reset = used
	if err != nil {
		return res, fmt.Errorf("flash: reset: %w", err)
	}
	plog("reset (%s); waiting up to %s for /%s/ and the broker's connected event", used, opts.BootTimeout, ready)

	bctx, cancel := context.WithTimeout(ctx, opts.BootTimeout)
	defer cancel()
	brokerErr := make(chan error, 1)
	go func() { brokerErr <- wait(bctx) }()
	m, lineErr := r.Link().ExpectFrom(bctx, mark, ready, opts.BootTimeout)
	bErr := <-brokerErr
	res.Boot = time.Since(start)
	switch {
	case lineErr != nil && bErr != nil:
		return res, fmt.Errorf("flash: board did not come up: %w; broker: %v", lineErr, bErr)
	case lineErr != nil:
		return res, fmt.Errorf("flash: the broker saw the login but the board did not echo it: %w", lineErr)
	case bErr != nil:
		return res, fmt.Errorf("flash: the board echoed %q but the broker saw no login: %w", m.Line.Text, bErr)
	}
	res.Ready = m.Line.Text
	plog("board up in %s: %s", res.Boot.Round(time.Millisecond), m.Line.Text)
	return res, nil
}

// Sync makes the board's files match want (flash path -> bytes): it hashes
// them all on the board in one exchange, writes the ones that differ,
// verifies them, and prunes if asked. The board stays in the raw REPL.
func Sync(ctx context.Context, r *REPL, want map[string][]byte, opts FlashOptions) (FlashResult, error) {
	var res FlashResult
	start := time.Now()
	if err := r.EnterRaw(ctx, !opts.NoSoftReset); err != nil {
		return res, fmt.Errorf("flash: %w", err)
	}
	changed, total, err := changedFiles(ctx, r, want, &res)
	if err != nil {
		return res, fmt.Errorf("flash: %w", err)
	}
	prog := newProgress(opts.Progress, total, len(changed), len(res.Skipped))
	if err := upload(ctx, r, want, changed, opts.Copy, prog, &res); err != nil {
		prog.fail()
		return res, fmt.Errorf("flash: %w", err)
	}
	if err := verify(ctx, r, want, changed); err != nil {
		prog.fail()
		return res, fmt.Errorf("flash: verify: %w", err)
	}
	prog.done(res.Bytes, time.Since(start))
	if opts.Prune {
		if err := prune(ctx, r, want, opts, &res); err != nil {
			return res, fmt.Errorf("flash: prune: %w", err)
		}
	}
	res.RawPaste = r.RawPaste()
	res.Upload = time.Since(start)
	return res, nil
}

// changedFiles hashes want's files on the board and returns, in path
// order, those that differ and their byte total; the others go to
// res.Skipped.
func changedFiles(ctx context.Context, r *REPL, want map[string][]byte, res *FlashResult) (changed []string, total int64, err error) {
	paths := make([]string, 0, len(want))
	for p := range want {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	have, err := r.Hashes(ctx, paths)
	if err != nil {
		return nil, 0, err
	}
	for _, p := range paths {
		if have[p] == SumHex(want[p]) {
			res.Skipped = append(res.Skipped, p)
			continue
		}
		changed = append(changed, p)
		total += int64(len(want[p]))
	}
	return changed, total, nil
}

// upload writes the changed files, making their directories first, and
// counts them in res.
func upload(ctx context.Context, r *REPL, want map[string][]byte, changed []string, copyOpts CopyOptions, prog *progress, res *FlashResult) error {
	made := map[string]bool{}
	for i, p := range changed {
		if dir := path.Dir("/" + p); dir != "/" && !made[dir] {
			if err := r.MkdirAll(ctx, dir); err != nil {
				return err
			}
			made[dir] = true
		}
		prog.file(i, p, len(want[p]))
		if err := r.WriteFile(ctx, p, want[p], copyOpts, prog.add); err != nil {
			return err
		}
		res.Uploaded = append(res.Uploaded, p)
		res.Bytes += int64(len(want[p]))
	}
	return nil
}

// verify hashes the changed files again: each must now be what was sent.
func verify(ctx context.Context, r *REPL, want map[string][]byte, changed []string) error {
	if len(changed) == 0 {
		return nil
	}
	got, err := r.Hashes(ctx, changed)
	if err != nil {
		return err
	}
	for _, p := range changed {
		if got[p] != SumHex(want[p]) {
			return fmt.Errorf("%s on the board has sha256 %q after the upload, want %s", p, got[p], SumHex(want[p]))
		}
	}
	return nil
}

// prune removes every file on the board that is neither in want nor in
// opts.Keep, and lists them in res.Removed.
func prune(ctx context.Context, r *REPL, want map[string][]byte, opts FlashOptions, res *FlashResult) error {
	keep := map[string]bool{}
	for _, k := range opts.Keep {
		keep[strings.TrimPrefix(path.Clean("/"+k), "/")] = true
	}
	onBoard, err := r.Walk(ctx, "/")
	if err != nil {
		return err
	}
	for _, e := range onBoard {
		p := strings.TrimPrefix(e.Path, "/")
		if _, ok := want[p]; ok || keep[p] {
			continue
		}
		if err := r.Remove(ctx, e.Path); err != nil {
			return err
		}
		res.Removed = append(res.Removed, p)
	}
	if len(res.Removed) > 0 {
		newPlainLog(opts.Progress)("removed %s", strings.Join(res.Removed, ", "))
	}
	return nil
}

// progress shows an upload: a bar on a terminal, log lines elsewhere.
type progress struct {
	bar   *progressbar.ProgressBar
	log   func(format string, args ...any)
	files int
}

// isTerminal also sees through a wrapper (a masking writer) that tells the
// descriptor it writes to.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

func newPlainLog(w io.Writer) func(format string, args ...any) {
	if w == nil {
		return func(string, ...any) {}
	}
	return func(format string, args ...any) { fmt.Fprintf(w, "flash: "+format+"\n", args...) }
}

func newProgress(w io.Writer, total int64, files, skipped int) *progress {
	p := &progress{log: newPlainLog(w), files: files}
	p.log("%d file(s) to upload (%d bytes), %d unchanged", files, total, skipped)
	if w != nil && isTerminal(w) && files > 0 {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
	}
	return p
}

// file starts file i; only names and sizes are shown, never contents.
func (p *progress) file(i int, name string, size int) {
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("[%d/%d] %s", i+1, p.files, name))
		return
	}
	p.log("[%d/%d] %s (%d bytes)", i+1, p.files, name, size)
}

func (p *progress) add(n int) {
	if p.bar != nil {
		p.bar.Add(n)
	}
}

func (p *progress) fail() {
	if p.bar != nil {
		p.bar.Exit()
	}
}

func (p *progress) done(bytes int64, d time.Duration) {
	if p.bar != nil {
		p.bar.Finish()
	}
	if bytes > 0 {
		p.log("uploaded %d bytes in %s (%.0f B/s)", bytes, d.Round(time.Millisecond), float64(bytes)/d.Seconds())
	}
}
