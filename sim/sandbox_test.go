package sim

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onenet-hil/hil/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// openEscapes are the escapes known to work today, each with why. TestSandbox expects exactly
// these to succeed: it fails naming any other escape that works, and it fails once one of these no
// longer works, so that its line here is removed. Delete a line to make the test fail on it.
var openEscapes = map[string]string{}

// sandbox is TestSandbox's board and what it watches.
type sandbox struct {
	t       *testing.T
	b       *Board
	c       *serialConn
	log     *testutil.Buffer
	root    string // the flash's parent, the test's own: nothing but the flash may appear in it
	vmPIDs  []int  // every VM process seen
	worked  []string
	checked []string
}

// vmPID is the board's VM process: a child of this test process running the board's host.mjs
// (read from /proc).
func (s *sandbox) vmPID() int {
	s.t.Helper()
	host := filepath.Join(s.b.ownDir, "host.mjs")
	var found []int
	for _, p := range procs(s.t) {
		if p.ppid == os.Getpid() && strings.Contains(p.cmdline, host) {
			found = append(found, p.pid)
		}
	}
	// The VM and, once it has booted, the spare started for the next boot (which runs no board
	// code until then).
	require.NotEmpty(s.t, found, "a VM process (node %s) is a child of the test", host)
	require.LessOrEqual(s.t, len(found), 2, "the VM and its spare are the only VM processes: %v", found)
	for _, pid := range found {
		if !slices.Contains(s.vmPIDs, pid) {
			s.vmPIDs = append(s.vmPIDs, pid)
		}
	}
	return found[0]
}

type proc struct {
	pid, ppid, pgid int
	cmdline         string
}

// procs lists the host's processes from /proc.
func procs(t *testing.T) []proc {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var out []proc
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 3 {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		pgid, _ := strconv.Atoi(fields[2])
		cmd, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, proc{pid: pid, ppid: ppid, pgid: pgid, cmdline: strings.ReplaceAll(string(cmd), "\x00", " ")})
	}
	return out
}

// noSpawn fails the test if any VM process seen has a child, or if anything runs in a VM's
// process group (node runs in a group of its own) besides the VM itself.
func (s *sandbox) noSpawn(after string) {
	s.t.Helper()
	for _, p := range procs(s.t) {
		if slices.Contains(s.vmPIDs, p.pid) {
			continue
		}
		if slices.Contains(s.vmPIDs, p.ppid) || slices.Contains(s.vmPIDs, p.pgid) {
			s.t.Errorf("ESCAPE after %s: the VM started a host process: pid %d (parent %d, group %d): %s",
				after, p.pid, p.ppid, p.pgid, p.cmdline)
		}
	}
}

// lifeDone is closed when the board's current life ends (a reset, or its VM process died).
func (s *sandbox) lifeDone() <-chan struct{} {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.b.life.done
}

// expectOrEnd is expect(want), or false if the board's life ends first.
func (c *serialConn) expectOrEnd(want string, end <-chan struct{}) ([]byte, bool) {
	c.t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if i := bytes.Index(c.buf, []byte(want)); i >= 0 {
			n := i + len(want)
			out := append([]byte(nil), c.buf[:n]...)
			c.buf = c.buf[n:]
			c.consumed += n
			c.mu.Unlock()
			return out, true
		}
		seen := string(c.buf)
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-end:
			return nil, false
		case <-timer.C:
			c.t.Fatalf("timed out after %v waiting for %q; seen %q", wait, want, seen)
		}
	}
}

// try runs one escape attempt as a raw-REPL block. If the VM dies of it (a JavaScript exception
// out of the VM ends its process), the board is power-cycled and the REPL entered again; died says
// so, and what the VM logged is in vmLog.
func (s *sandbox) try(name, code string) (r rawResult, died bool, vmLog string) {
	s.t.Helper()
	s.checked = append(s.checked, name)
	logStart := len(s.log.String())
	end := s.lifeDone()
	s.c.write(code + "\x04")
	if _, ok := s.c.expectOrEnd("OK", end); ok {
		var frame []byte
		if frame, ok = s.c.expectOrEnd("\x04", end); ok {
			r.stdout = string(frame)
			if frame, ok = s.c.expectOrEnd("\x04", end); ok {
				r.stderr = string(frame)
				_, ok = s.c.expectOrEnd(">", end)
			}
		}
		if ok {
			lf := func(x string) string { return strings.ReplaceAll(strings.TrimSuffix(x, "\x04"), "\r\n", "\n") }
			r.stdout, r.stderr = lf(r.stdout), lf(r.stderr)
			s.noSpawn(name)
			return r, false, s.log.String()[logStart:]
		}
	}
	vmLog = s.log.String()[logStart:]
	s.t.Logf("escape %s: the board reset (a JavaScript error escaped the VM); power cycle", name)
	require.NoError(s.t, s.b.PowerCycle())
	s.c.expect(banner)
	s.c.enterRaw()
	s.vmPID()
	s.noSpawn(name)
	return r, true, vmLog
}

// escaped records that an escape worked: the test fails unless it is a known open one.
func (s *sandbox) escaped(name, how string) {
	s.t.Helper()
	s.worked = append(s.worked, name)
	if why, known := openEscapes[name]; known {
		s.t.Logf("KNOWN OPEN ESCAPE %s: %s (%s)", name, how, why)
		return
	}
	s.t.Errorf("ESCAPE %s: %s", name, how)
}

// outside lists what exists outside the flash: in its parent (the test's own directory), above
// it, in /tmp and at / under the names the escapes write.
func (s *sandbox) outside(names []string) []string {
	s.t.Helper()
	var found []string
	entries, err := os.ReadDir(s.root)
	require.NoError(s.t, err)
	for _, e := range entries {
		if e.Name() != "flash" {
			found = append(found, filepath.Join(s.root, e.Name()))
		}
	}
	for _, n := range names {
		for _, dir := range []string{filepath.Dir(s.root), filepath.Dir(filepath.Dir(s.root)), os.TempDir(), "/", s.b.ownDir} {
			p := filepath.Join(dir, n)
			if _, err := os.Lstat(p); err == nil {
				found = append(found, p)
			}
		}
	}
	return found
}

// TestSandbox tries, through the raw REPL, every way out of the virtual board that we know of:
// host globals through MicroPython's js module, code generation from strings, the VM's own file
// system against the host's, path traversal on the flash, non-loopback connections, a walk of
// every reachable function's globals, forged messages on the VM's pipe to Go, and the Node
// handles the VM can still reach. Each must fail; the VM must start no host process.
func TestSandbox(t *testing.T) {
	root := t.TempDir()
	flash := filepath.Join(root, "flash")
	require.NoError(t, os.Mkdir(flash, 0o700))
	log := &testutil.Buffer{}
	b, c := startBoard(t, Options{FlashDir: flash, Log: log})
	c.expect(banner)
	c.enterRaw()
	s := &sandbox{t: t, b: b, c: c, log: log, root: root}
	s.vmPID()
	s.noSpawn("boot")
	mark := fmt.Sprintf("hil-escape-%d", time.Now().UnixNano()) // the names escapes try to create
	t0 := time.Now()

	// Every function, class and module reachable from builtins and sys.modules, and the globals of
	// every function (CPython's old escape: print.__globals__['__builtins__'] ... os.system): no
	// way to a host-reaching name. Run first, before anything imports js.
	r, _, _ := s.try("globals-walk", `import sys, builtins
for e in ('print.__globals__', 'len.__globals__', 'print.__self__', 'object.__subclasses__', '().__class__.__base__'):
    try:
        eval(e)
        print('REACHED', e)
    except AttributeError:
        pass
BAD = ('system', 'popen', 'spawn', 'spawnv', 'fork', 'execv', 'execve', 'process', 'require',
       'child_process', 'subprocess', 'environ', 'globalThis')
seen = set()
todo = [('builtins', builtins)] + [('sys.modules[%r]' % k, m) for k, m in sys.modules.items()]
found = []
n = 0
while todo and n < 20000:
    path, o = todo.pop()
    if id(o) in seen or type(o).__name__ == 'JsProxy':
        continue
    seen.add(id(o))
    n += 1
    kids = []
    if type(o) is dict:
        kids = [(repr(k), v) for k, v in o.items()]
    elif type(o) is type(sys) or isinstance(o, type):
        for a in dir(o):
            try:
                kids.append((a, getattr(o, a)))
            except Exception:
                pass
    try:
        kids.append(('__globals__', o.__globals__))
    except AttributeError:
        pass
    for a, v in kids:
        if a.strip("'") in BAD:
            found.append(path + '.' + a)
        if type(v) is dict or type(v) is type(sys) or callable(v):
            todo.append((path + '.' + a, v))
print(n > 100, found)
del seen, todo, found, kids  # live past the block, they would outgrow the 38 KB heap
`)
	require.Empty(t, r.stderr, "the globals walk ran")
	if r.stdout != "True []\n" {
		s.escaped("globals-walk", r.stdout)
	}

	// os has no process functions, and no module that would start one can be imported.
	r, _, _ = s.try("os-process-functions", `import os
print([n for n in ('system', 'popen', 'spawnv', 'execv', 'fork', 'kill', 'putenv', 'environ') if hasattr(os, n)])
for m in ('subprocess', 'ffi', '_thread', 'termios', 'pyscript'):
    try:
        __import__(m)
        print('IMPORTED', m)
    except ImportError:
        pass
`)
	require.Empty(t, r.stderr)
	if r.stdout != "[]\n" {
		s.escaped("os-process-functions", r.stdout)
	}

	// MicroPython's js module is globalThis: the globals that reach the host are gone.
	r, _, _ = s.try("js-host-globals", `import js
for n in ('process', 'require', 'module', 'global', 'fetch', 'WebAssembly', 'Worker', 'SharedArrayBuffer',
          'Deno', 'Bun', 'XMLHttpRequest', 'WebSocket', 'importScripts'):
    for where, o in (('js', js), ('js.globalThis', js.globalThis)):
        try:
            if getattr(o, n) is not None:
                print('REACHED %s.%s' % (where, n))
        except AttributeError:
            pass
try:
    print(list(js.Object.keys(js.Module.FS.filesystems)))
except AttributeError:
    print('no Module')
`)
	assert.Empty(t, r.stderr, "js globals")
	// The Emscripten module is reachable (js.Module), but its file systems are in memory only.
	if r.stdout != "['MEMFS']\n" && r.stdout != "no Module\n" {
		s.escaped("js-host-globals", r.stdout+r.stderr)
	}

	// Code generation from strings is disabled in the VM's process: each way to JavaScript's
	// eval fails. The JavaScript error it raises leaves the VM's state untrustworthy, so the board
	// says so and resets (as a chip that faults).
	for _, e := range []struct{ name, code string }{
		{"js-eval", "import js\nr = js.eval('process')"},
		{"js-function", "import js\nr = js.Function('return process')()"},
		{"jsffi-constructor", "import jsffi\nr = jsffi.to_js([]).constructor.constructor('return process')()"},
		{"object-constructor", "import js\nr = js.Object.constructor('return process')()"},
		{"reflect-construct", "import js\nr = js.Reflect.construct(js.Function, js.Array.of('return process'))()"},
	} {
		r, died, vmLog := s.try(e.name, e.code+"\nprint('ESCAPED', r)")
		refused := strings.Contains(vmLog+r.stderr, "Code generation from strings disallowed")
		if strings.Contains(r.stdout, "ESCAPED") || !refused {
			s.escaped(e.name, fmt.Sprintf("stdout %q, traceback %q, VM died %v, VM log %q", r.stdout, r.stderr, died, vmLog))
		}
	}

	// The VM's file system is its own, in memory: mounting its root shows no host file.
	passwd, err := os.ReadFile("/etc/passwd")
	require.NoError(t, err)
	hostLine, _, _ := strings.Cut(string(passwd), "\n")
	require.NotEmpty(t, hostLine)
	r, _, _ = s.try("vfs-host-root", `import os
os.umount('/')
os.mount(os.VfsPosix('/'), '/')
print(sorted(os.listdir('/')))
for p in ('/etc/passwd', '/etc/hostname', '/proc/self/environ', '/proc/self/cmdline', '/proc/1/cmdline', '/proc/self/status'):
    try:
        with open(p) as f:
            print(p, repr(f.read(300)))
    except OSError:
        pass
os.umount('/')
os.mount(os.VfsPosix('/flash'), '/')
os.chdir('/')
print(os.getcwd())
`)
	assert.Empty(t, r.stderr, "remount")
	assert.True(t, strings.HasSuffix(r.stdout, "\n/\n"), "the flash is mounted at / again: %q", r.stdout)
	if strings.Contains(r.stdout, hostLine) || strings.Contains(r.stdout, "'usr'") || strings.Contains(r.stdout, "'etc'") ||
		strings.Contains(r.stdout, "PATH=") {
		s.escaped("vfs-host-root", r.stdout)
	}

	// Writes out of the flash by path: every one stays in the VM (inside the flash, or in its
	// memory), none reaches the host outside the flash directory.
	r, _, _ = s.try("path-traversal", strings.ReplaceAll(`import os
M = 'MARK'
def w(p):
    try:
        with open(p, 'w') as f:
            f.write('escaped')
    except OSError:
        pass
for p in ('../' + M, '/../../' + M, '/flash/../' + M, '//' + M, '/' + '../' * 20 + 'tmp/' + M, '../../tmp/' + M, '/tmp/' + M):
    w(p)
for f, a in ((os.mkdir, ('../' + M + 'd',)), (os.rename, ('/' + M, '../../' + M + 'r'))):
    try:
        f(*a)
    except OSError:
        pass
os.umount('/')
os.mount(os.VfsPosix('/'), '/')
for p in ('/' + M, '/tmp/' + M, '/flash/../' + M, '/home/' + M):
    w(p)
os.umount('/')
os.mount(os.VfsPosix('/flash'), '/')
os.chdir('/')
print('written')
`, "MARK", mark))
	assert.Equal(t, "written\n", r.stdout, r.stderr)
	if found := s.outside([]string{mark, mark + "d", mark + "r"}); len(found) > 0 {
		s.escaped("path-traversal", fmt.Sprintf("files outside the flash: %v", found))
	}

	// Forged messages on the VM's pipe to Go (console.log writes to the process's stdout) cannot
	// write outside the flash either.
	r, _, _ = s.try("forged-flash-write", strings.ReplaceAll(`import js
m = '{"t":"fs","w":[["../../MARKf","x"],["/../MARKf","x"],["..//..//MARKf","x"]],"dirs":["../../MARKg"]}'
try:
    js.console.log(m)
except AttributeError:
    pass
print('sent')
`, "MARK", mark))
	assert.Equal(t, "sent\n", r.stdout, r.stderr)
	if found := s.outside([]string{mark + "f", mark + "g"}); len(found) > 0 {
		s.escaped("forged-flash-write", fmt.Sprintf("files outside the flash: %v", found))
	}

	// Non-loopback connections are refused inside the board before any packet leaves (sim/net.go
	// route: only the redirect table, empty here, and 127.x.x.x); names are never looked up.
	// Wi-Fi is up, so that the refusal is the sandbox's and not the missing link's.
	r, _, _ = s.try("non-loopback-connect", `import network, socket
w = network.WLAN(network.STA_IF)
w.active(True)
w.connect('lab', 'pw')
print(w.isconnected())
for a in (('10.0.0.1', 80), ('8.8.8.8', 53), ('0.0.0.0', 80), ('::ffff:10.0.0.1', 80), ('192.168.1.1', 80)):
    s = socket.socket()
    try:
        s.connect(a)
        print('CONNECTED', a)
    except OSError as e:
        print(a[0], e.errno)
    s.close()
try:
    socket.getaddrinfo('example.com', 80)
    print('RESOLVED')
except OSError as e:
    print('example.com', e.errno)
`)
	assert.Empty(t, r.stderr)
	if r.stdout != "True\n10.0.0.1 113\n8.8.8.8 113\n0.0.0.0 113\n::ffff:10.0.0.1 113\n192.168.1.1 113\nexample.com -2\n" {
		s.escaped("non-loopback-connect", r.stdout)
	}
	for _, a := range []string{"10.0.0.1:80", "8.8.8.8:53", "0.0.0.0:80", "192.168.1.1:80"} {
		assert.Contains(t, log.String(), "refused connect to "+a, "the board's log names the refused connection")
	}

	// Node's own handles, reached through the global console (process.stdout), must not reach
	// the host's file system or network.
	bound := filepath.Join(root, "bound.sock")
	r, _, _ = s.try("pipe-bind", fmt.Sprintf(`import js
try:
    P = js.console._stdout._handle.constructor
    print(P.new(0).bind(%q))
except AttributeError:
    print('no handle')
`, bound))
	if _, err := os.Lstat(bound); err == nil {
		s.escaped("pipe-bind", fmt.Sprintf("created %s on the host (stdout %q)", bound, r.stdout))
		require.NoError(t, os.Remove(bound))
	}

	unixPath := filepath.Join(root, "host.sock")
	uln, err := net.Listen("unix", unixPath)
	require.NoError(t, err)
	r, _, _ = s.try("pipe-connect", fmt.Sprintf(`import js
try:
    P = js.console._stdout._handle.constructor
    print(P.new(0).connect(P.new(0), %q))
except AttributeError:
    print('no handle')
`, unixPath))
	// connect(2) on a Unix socket completes at once: a connection made is already queued.
	require.NoError(t, uln.(*net.UnixListener).SetDeadline(time.Now().Add(100*time.Millisecond)))
	if conn, err := uln.Accept(); err == nil {
		conn.Close()
		s.escaped("pipe-connect", fmt.Sprintf("connected to the host's Unix socket %s (stdout %q)", unixPath, r.stdout))
	}
	require.NoError(t, uln.Close()) // removes host.sock

	// A TCP connection made by Node, not by the board's sockets, with the Wi-Fi down, so that the
	// board itself could not connect. The listener is on loopback (nothing here may try another
	// host); the escape is bypassing the board's network. Node dials when its event loop turns,
	// which a soft reboot lets it do. Then the board connects for real: whatever the listener
	// accepted before that connection came from the escape. (The board reads to the end before
	// it closes: sim/net.go's reader goroutine must have started by then.)
	tln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer tln.Close()
	type acceptedConn struct {
		seq  int
		line string
	}
	accepted := make(chan acceptedConn, 8)
	go func() {
		for seq := 0; ; seq++ {
			conn, err := tln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				_ = conn.SetReadDeadline(time.Now().Add(wait))
				line, _ := bufio.NewReader(conn).ReadString('\n')
				accepted <- acceptedConn{seq, line}
			}()
		}
	}()
	port := tln.Addr().(*net.TCPAddr).Port
	require.NoError(t, b.SetWiFi(false))
	r, _, _ = s.try("tcp-connect", fmt.Sprintf(`import js, network
print(network.WLAN(network.STA_IF).isconnected())
try:
    S = js.console._stdout.constructor
    sock = S.new()
    sock.connect(%d, '127.0.0.1')
    sock.write('escape\n')
except AttributeError:
    pass
`, port))
	assert.Equal(t, "False\n", r.stdout, r.stderr)
	c.write("\x04") // soft reboot
	c.expect("raw REPL; CTRL-B to exit\r\n>")
	require.NoError(t, b.SetWiFi(true))
	r, _, _ = s.try("tcp-connect-barrier", fmt.Sprintf(`import network, socket
w = network.WLAN(network.STA_IF)
w.active(True)
w.connect('lab', 'pw')
s = socket.socket()
s.connect(('127.0.0.1', %d))
s.write(b'barrier\n')
s.read()
s.close()
`, port))
	require.Empty(t, r.stderr)
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for barrier := -1; barrier < 0; {
		select {
		case a := <-accepted:
			if a.line == "barrier\n" {
				barrier = a.seq
				if barrier > 0 {
					s.escaped("tcp-connect", fmt.Sprintf("the listener accepted %d connection(s) before the board's own", barrier))
				}
			}
		case <-timer.C:
			t.Fatalf("the board's own connection never arrived")
		}
	}

	// Nothing was started, nothing written outside the flash, and the board still answers.
	s.vmPID()
	s.noSpawn("all escapes")
	assert.Empty(t, s.outside([]string{mark, mark + "d", mark + "r", mark + "f", mark + "g"}), "files outside the flash")
	r, _, _ = s.try("still-answers", "print(6 * 7)")
	assert.Equal(t, "42\n", r.stdout)
	for name := range openEscapes {
		if !slices.Contains(s.worked, name) {
			t.Errorf("the escape %s no longer works: remove it from openEscapes", name)
		}
	}
	t.Logf("%d escape attempts in %v; %d worked: %v", len(s.checked)-2, time.Since(t0).Round(time.Millisecond), len(s.worked), s.worked)
}
