package sim

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/onenet-hil/hil/internal/dirfiles"
)

//go:embed runtime/host.mjs
var hostSource []byte

//go:embed runtime/rom/*.py
var romFS embed.FS

// vmMsg is one line of the protocol with the VM process (runtime/host.mjs
// describes it).
type vmMsg struct {
	T    string            `json:"t"`
	D    string            `json:"d,omitempty"`
	Op   string            `json:"op,omitempty"`
	M    int               `json:"m,omitempty"`
	A    []json.RawMessage `json:"a,omitempty"`
	Exc  string            `json:"exc,omitempty"`
	TB   string            `json:"tb,omitempty"`
	Raw  bool              `json:"raw,omitempty"`
	W    [][2]string       `json:"w,omitempty"`
	RM   []string          `json:"rm,omitempty"`
	Dirs []string          `json:"dirs,omitempty"`
	// Limit and Rom (on done): the heap's total and what the ESP8266's
	// modules cost on it.
	Limit int `json:"limit,omitempty"`
	Rom   int `json:"rom,omitempty"`
	// Live and Grew (on done): the board's code's live heap after the
	// request, and the heap's total when it grew past its size.
	Live int `json:"live,omitempty"`
	Grew int `json:"grew,omitempty"`
	// Peak (on done): what the board's code held at the end of the request
	// before the collection: its live data and all the request allocated.
	Peak int `json:"peak,omitempty"`
	// Over (on done): the request held more than the heap's size at some
	// point before the collection (the VM added a heap area).
	Over bool `json:"over,omitempty"`
	// RomCost (on done): what runtime/rom costs on a VM's heap; the same for
	// every VM of this build, so later processes skip measuring it.
	RomCost int `json:"romCost,omitempty"`
	// Crash (on done): a JavaScript error escaped the VM; its state is lost.
	Crash string `json:"crash,omitempty"`
}

// romCost caches RomCost for the process's later VMs.
var romCost atomic.Int64

// errVMGone ends a life whose VM process has exited (killed by a reset, or
// crashed).
var errVMGone = errors.New("sim: the VM process has ended")

// vmProc is one VM process: the CPU of one life of the board.
type vmProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	exited chan struct{}
	err    error
	wmu    sync.Mutex
	stderr *tailBuffer // the end of what the process said on stderr
}

// tailBuffer keeps the last bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 2048 {
		t.buf = t.buf[len(t.buf)-2048:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// gone is errVMGone with what the process said last.
func (p *vmProc) gone() error {
	select {
	case <-p.exited:
	case <-time.After(time.Second): // its stderr is read until it exits
	}
	if s := p.stderr.String(); s != "" {
		return fmt.Errorf("%w; it said: %s", errVMGone, s)
	}
	return errVMGone
}

// startVM starts node on host.mjs in the sandbox: no code from strings, no
// child processes, no writes, reads only of the script and the package.
func startVM(ctx context.Context, b *Board) (*vmProc, error) {
	host := filepath.Join(b.ownDir, "host.mjs")
	cmd := exec.Command(b.deps.node,
		"--disallow-code-generation-from-strings",
		"--experimental-permission", "--no-warnings",
		"--allow-fs-read="+host,
		"--allow-fs-read="+filepath.Join(b.deps.pkg, "*"),
		"--stack-size=2000",
		host, filepath.Join(b.deps.pkg, "micropython.mjs"))
	cmd.Dir = b.ownDir
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	p0 := &tailBuffer{}
	cmd.Stderr = io.MultiWriter(b.vmLog(), p0)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	outR, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("sim: start the VM (%s): %w", b.deps.node, err)
	}
	p := &vmProc{cmd: cmd, stdin: in, out: bufio.NewReaderSize(outR, 1<<16), exited: make(chan struct{}), stderr: p0}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *vmProc) send(m any) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if _, err := p.stdin.Write(append(data, '\n')); err != nil {
		return errVMGone
	}
	return nil
}

func (p *vmProc) recv() (vmMsg, error) {
	line, err := p.out.ReadBytes('\n')
	if err != nil {
		return vmMsg{}, p.gone()
	}
	var m vmMsg
	if err := json.Unmarshal(line, &m); err != nil {
		return vmMsg{}, fmt.Errorf("sim: the VM said %q: %w", bytes.TrimSpace(line), err)
	}
	return m, nil
}

// exitedEarly reports a process that is gone before its boot.
func (p *vmProc) exitedEarly() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// kill ends the process at once (a reset cuts the chip off mid-output).
func (p *vmProc) kill() {
	if p.cmd.Process != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	}
	<-p.exited
}

// latin1 turns bytes into the protocol's strings of code points 0..255.
func latin1(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// unlatin1 is latin1's inverse.
func unlatin1(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		out = append(out, byte(r))
	}
	return out
}

// romModules are the ESP8266 modules written in MicroPython over the
// bridge (runtime/rom), by file name.
func romModules() map[string]string {
	out := map[string]string{}
	entries, _ := fs.ReadDir(romFS, "runtime/rom")
	for _, e := range entries {
		b, _ := romFS.ReadFile("runtime/rom/" + e.Name())
		out[e.Name()] = string(b)
	}
	return out
}

// flashFiles reads the flash directory for the VM: every regular file, by
// its path below the flash.
func flashFiles(dir string) (map[string]string, error) {
	raw, err := dirfiles.Read(dir, nil)
	files := make(map[string]string, len(raw))
	for p, data := range raw {
		files[p] = latin1(data)
	}
	return files, err
}

// applyFlash keeps on the host what the VM changed on its flash. Files are
// 0600: config.json holds the Wi-Fi password and the device's key.
func applyFlash(dir string, m vmMsg) error {
	sort.Strings(m.Dirs)
	for _, d := range m.Dirs {
		if err := os.MkdirAll(hostPath(dir, d), 0o700); err != nil {
			return err
		}
	}
	var errs []error
	for _, w := range m.W {
		p := hostPath(dir, w[0])
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, os.WriteFile(p, unlatin1(w[1]), 0o600), os.Chmod(p, 0o600)) // also a file that was there
	}
	for _, r := range m.RM {
		if err := os.Remove(hostPath(dir, r)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// hostPath maps a flash path into dir; ".." cannot leave it.
func hostPath(dir, rel string) string {
	clean := filepath.Clean("/" + filepath.FromSlash(rel))
	return filepath.Join(dir, strings.TrimPrefix(clean, string(filepath.Separator)))
}

// bootDeadline bounds loading the VM.
const bootDeadline = 20 * time.Second
