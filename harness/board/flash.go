package board

import (
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/link"
)

// ConfigPath is where the firmware reads its configuration.
const ConfigPath = "config.json"

// SyncOptions tune Sync.
type SyncOptions struct {
	// Prune removes board files the firmware does not have (except Keep).
	Prune bool
	Keep  []string
	// Progress receives a progress bar when it is a terminal, plain log
	// lines otherwise; nil for silence.
	Progress io.Writer
	// Copy chooses the upload encoding and chunk size; zero = DefaultCopy.
	Copy CopyOptions
	// NoSoftReset skips the soft reset before the upload (a fresh heap on
	// the board is worth its few milliseconds).
	NoSoftReset bool
}

// FlashResult tells what Sync did.
type FlashResult struct {
	Uploaded []string
	Skipped  []string
	Removed  []string
	Bytes    int64 // file bytes uploaded
	RawPaste bool
	Upload   time.Duration // from entering the raw REPL to the last file verified
}

// BootOptions tune Boot.
type BootOptions struct {
	// Reset is how the board is restarted.
	Reset ResetMode
	// Timeout bounds the wait for the ready line. Default 60 s.
	Timeout time.Duration
	// Ready says which serial line means the firmware is up. Default: the
	// hil firmware's login echo (echo.LoginLine).
	Ready func(line string) bool
	// What names the ready line in messages. Default "the login echo".
	What string
	// Progress receives plain log lines; nil for silence.
	Progress io.Writer
}

// BootResult tells what Boot did.
type BootResult struct {
	Reset ResetMode     // the reset used
	Boot  time.Duration // from the reset to the ready line
	Ready string        // the ready line seen
	// Mark is where the reset began in the link's line log: lines from it
	// on belong to this boot.
	Mark int64
}

// Boot resets the board and waits for its ready line; only lines printed
// after the reset count. Whether the board really logged in is for the
// caller to confirm with its broker: Boot knows only the serial line.
func Boot(ctx context.Context, r *REPL, opts BootOptions) (BootResult, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 60 * time.Second
	}
	if opts.Ready == nil {
		opts.Ready, opts.What = echo.LoginLine(echo.HIL, false), "the login echo (HIL mqtt up)"
	}
	if opts.What == "" {
		opts.What = "the ready line"
	}
	plog := newPlainLog(opts.Progress)
	res := BootResult{Mark: r.Link().Mark()}
	start := time.Now()
	used, err := r.Reset(ctx, opts.Reset)
	res.Reset = used
	if err != nil {
		return res, fmt.Errorf("boot: reset: %w", err)
	}
	plog("reset (%s); waiting up to %s for %s", used, opts.Timeout, opts.What)
	ln, err := r.Link().WaitLine(ctx, res.Mark, opts.What, opts.Timeout, func(ln link.Line) bool { return opts.Ready(ln.Text) })
	res.Boot = time.Since(start)
	if err != nil {
		return res, fmt.Errorf("boot: board did not come up: %w", err)
	}
	res.Ready = ln.Text
	plog("board up in %s: %s", res.Boot.Round(time.Millisecond), ln.Text)
	return res, nil
}

// cleanPaths checks and cleans the flash paths of want.
func cleanPaths(want map[string][]byte) (map[string][]byte, error) {
	out := make(map[string][]byte, len(want))
	for p, b := range want {
		c := strings.TrimPrefix(path.Clean("/"+p), "/")
		if c == "" || c == "." {
			return nil, fmt.Errorf("flash: bad file name %q", p)
		}
		out[c] = b
	}
	return out, nil
}

// Sync makes the board's files match want (flash path -> bytes): it hashes
// them all on the board in one exchange, writes the ones that differ,
// verifies them, and prunes if asked. The board stays in the raw REPL.
func Sync(ctx context.Context, r *REPL, want map[string][]byte, opts SyncOptions) (FlashResult, error) {
	var res FlashResult
	want, err := cleanPaths(want)
	if err != nil {
		return res, err
	}
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
func prune(ctx context.Context, r *REPL, want map[string][]byte, opts SyncOptions, res *FlashResult) error {
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
