package sim

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// What mpremote (tools/mpremote in MicroPython's repository) does on the serial line, byte for
// byte, reproduced without it: CI has no mpremote. TestMpremote runs the real one when
// HIL_MPREMOTE names its source directory.

// mpremoteEnter is mpremote's enter_raw_repl(soft_reset=True): Ctrl-C, Ctrl-A, then Ctrl-D for a
// soft reboot, which it waits for as "soft reboot\r\n" and then the raw REPL's banner.
func (c *serialConn) mpremoteEnter() string {
	c.t.Helper()
	c.write("\r\x03")
	c.write("\r\x01")
	c.expect("raw REPL; CTRL-B to exit\r\n>")
	c.write("\x04")
	got := string(c.expect("soft reboot\r\n"))
	got += string(c.expect("raw REPL; CTRL-B to exit\r\n"))
	c.expect(">")
	return got
}

// pasteSend sends code in raw-paste mode, as mpremote's raw_paste_write does, up to the board's
// acknowledgement of its end; what the code prints is the caller's to read.
func (c *serialConn) pasteSend(code string) {
	c.t.Helper()
	c.write("\x05A\x01")
	require.Equal(c.t, "R\x01", string(c.take(2)), "raw paste refused")
	w := c.take(2)
	window := int(w[0]) | int(w[1])<<8
	remain := window
	for i := 0; i < len(code); {
		for remain == 0 || c.pending() > 0 {
			switch b := c.take(1)[0]; b {
			case 0x01:
				remain += window
			default:
				c.t.Fatalf("unexpected byte %q during raw paste", b)
			}
		}
		n := min(remain, len(code)-i)
		c.write(code[i : i+n])
		remain -= n
		i += n
	}
	c.write("\x04")
	c.expect("\x04")
}

// linkCode is the device side of a host-served file system, built as mpremote's mount is (its
// own code, not mpremote's): binary frames on sys.stdout.buffer, 0x18 and a command byte, the
// host's 0x18 back, a length-prefixed argument; the answer comes length-prefixed on
// sys.stdin.buffer, read with select.poll and readinto(buf, n), Ctrl-C off meanwhile
// (micropython.kbd_intr). The file system (os.mount of a Python object) reads a module's source
// through an io.IOBase file, a request per readinto, while the VM imports it.
const linkCode = `import os, io, sys, select, micropython

class Link:
    def __init__(self):
        self.b = bytearray(4)
        self.o = sys.stdout.buffer
        self.i = sys.stdin.buffer
        self.p = select.poll()
        self.p.register(self.i, select.POLLIN)
        self.n = 0

    def rx(self, n):
        buf = bytearray(n)
        mv = memoryview(buf)
        got = 0
        while got < n:
            if not self.p.poll(5000):
                raise OSError(110)
            got += self.i.readinto(mv[got:], n - got)
        return buf

    def req(self, cmd, arg):
        micropython.kbd_intr(-1)
        self.n += 1
        self.b[0] = 0x18
        self.b[1] = cmd
        self.o.write(self.b, 2)
        while self.rx(1)[0] != 0x18:
            pass
        self.o.write(len(arg).to_bytes(4, 'little'))
        self.o.write(arg)
        r = self.rx(int.from_bytes(self.rx(4), 'little'))
        micropython.kbd_intr(3)
        return r


class HostFile(io.IOBase):
    def __init__(self, link, path):
        self.link = link
        self.path = path
        self.pos = 0

    def readinto(self, buf):
        d = self.link.req(2, b'%d,%d,%s' % (self.pos, len(buf), self.path))
        buf[:len(d)] = d
        self.pos += len(d)
        return len(d)

    def ioctl(self, req, arg):
        if req == 11:
            return 128
        return 0 if req in (1, 4) else -1


class HostFS:
    def __init__(self, link):
        self.link = link

    def mount(self, readonly, mkfs):
        pass

    def umount(self):
        pass

    def chdir(self, path):
        pass

    def getcwd(self):
        return '/'

    def stat(self, path):
        r = self.link.req(1, path.encode())
        if not r:
            raise OSError(2)
        if r == b'D':
            return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        return (0x8000, 0, 0, 0, 0, 0, int(r[1:]), 0, 0, 0)

    def open(self, path, mode):
        self.stat(path)
        return HostFile(self.link, path.encode())

L = Link()
`

// linkHost is the host side of linkCode's protocol.
type linkHost struct {
	c     *serialConn
	files map[string]string
	paths []string // what the board asked for, in order
	echo  [][]byte // the arguments of the echo command (3)
}

// run reads the board's output until the raw REPL's end of output (\x04), serving the requests
// it meets; it returns the output without them.
func (h *linkHost) run() string {
	h.c.t.Helper()
	var out []byte
	for {
		switch b := h.c.take(1)[0]; b {
		case 0x04:
			return string(out)
		case 0x18:
			cmd := h.c.take(1)[0]
			h.c.write("\x18")
			arg := h.c.take(int(binary.LittleEndian.Uint32(h.c.take(4))))
			reply := h.serve(cmd, arg)
			var n [4]byte
			binary.LittleEndian.PutUint32(n[:], uint32(len(reply)))
			h.c.write(string(n[:]) + string(reply))
		default:
			out = append(out, b)
		}
	}
}

func (h *linkHost) serve(cmd byte, arg []byte) []byte {
	switch cmd {
	case 1: // stat
		p := strings.Trim(string(arg), "/")
		h.paths = append(h.paths, p)
		if p == "" {
			return []byte("D")
		}
		if data, ok := h.files[p]; ok {
			return []byte("F" + strconv.Itoa(len(data)))
		}
		return nil
	case 2: // read: offset,n,path
		parts := strings.SplitN(string(arg), ",", 3)
		require.Len(h.c.t, parts, 3)
		off, err := strconv.Atoi(parts[0])
		require.NoError(h.c.t, err)
		n, err := strconv.Atoi(parts[1])
		require.NoError(h.c.t, err)
		data := h.files[strings.Trim(parts[2], "/")]
		return []byte(data[min(off, len(data)):min(off+n, len(data))])
	case 3: // echo
		h.echo = append(h.echo, append([]byte(nil), arg...))
		return arg
	}
	h.c.t.Fatalf("unknown link command %d", cmd)
	return nil
}

// execServed runs code in raw-paste mode while serving the link; it returns stdout and the
// traceback.
func (h *linkHost) execServed(code string) (string, string) {
	h.c.t.Helper()
	h.c.pasteSend(code)
	out := h.run()
	errOut := h.c.expect("\x04")
	h.c.expect(">")
	return out, strings.TrimSuffix(string(errOut), "\x04")
}

// mpremote mount: binary frames through sys.stdout.buffer and sys.stdin.buffer while the VM
// imports from a host-served file system at /remote, as on the ESP8266 (where
// sys.stdout.buffer is the UART's raw write, not the text stream's "\n" -> "\r\n").
func TestMountProtocolAsMpremote(t *testing.T) {
	_, c := startBoard(t, Options{})
	c.expect(banner)
	assert.Equal(t, "OK\r\nMPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n", c.mpremoteEnter())

	// The board's stdio: one binary object behind stdin and stdout, raw on output.
	assert.Equal(t, "<io.TextIOWrapper 1> <io.FileIO 0> True\r\n",
		c.mustExec("import sys\nprint(sys.stdout, sys.stdout.buffer, sys.stdin.buffer is sys.stdout.buffer)"))
	assert.Equal(t, "a\r\nb", c.mustExec("sys.stdout.write('a\\nb')"), "the text stream cooks line ends")
	assert.Equal(t, "\x00\n\r\x18\xff", c.mustExec("sys.stdout.buffer.write(b'\\x00\\n\\r\\x18\\xff!', 5)"),
		"the binary stream sends bytes as they are, up to n")

	c.mustExec(linkCode)
	h := &linkHost{c: c, files: map[string]string{
		"app.py":    "import helper\nX = helper.Y * 2\nprint('app from the host')\n",
		"helper.py": "Y = 21\n",
	}}
	// Every byte value both ways, Ctrl-C and Ctrl-D included.
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	out, errOut := h.execServed("r = L.req(3, bytes(range(256)))\nprint(r == bytes(range(256)), len(r))")
	require.Empty(t, errOut)
	assert.Equal(t, "True 256\r\n", out)
	require.Len(t, h.echo, 1)
	assert.Equal(t, all, h.echo[0], "the board's binary frame arrived unchanged")

	c.mustExec("os.mount(HostFS(L), '/remote')\nos.chdir('/remote')")
	out, errOut = h.execServed("import app\nprint(app.X, os.getcwd())")
	require.Empty(t, errOut)
	assert.Equal(t, "app from the host\r\n42 /remote\r\n", out)
	assert.Contains(t, h.paths, "app.py")
	assert.Contains(t, h.paths, "helper.py")

	// The ESP8266's modules are C: using them imports nothing, so nothing reaches the mounted
	// file system (which is first on sys.path now).
	h.paths = nil
	out, errOut = h.execServed("import machine\nos.urandom(4); machine.unique_id(); sys.stdout.buffer.write(b'')\n" +
		"n = L.n\nprint(len(sys.stdin.buffer.read(0) or b''), L.n - n)")
	require.Empty(t, errOut)
	assert.Equal(t, "0 0\r\n", out)
	assert.Empty(t, h.paths, "the board's modules searched sys.path")

	assert.Equal(t, "/ [(<VfsLfs2>, '/')]\r\n", c.mustExec("import vfs\nos.umount('/remote')\nprint(os.getcwd(), vfs.mount())"))
}

// sys.exit() is PYEXEC_FORCED_EXIT in v1.27's pyexec.c: the friendly REPL, the raw REPL and
// raw-paste all return it, and ports/esp8266/main.c soft-reboots (boot.py, and main.py when the
// REPL is friendly). input() at Ctrl-D raises EOFError, which does not.
func TestSysExitSoftReboots(t *testing.T) {
	flash := t.TempDir()
	writeFlash(t, flash, map[string]string{"boot.py": "print('boot ran')\n", "main.py": "print('main ran')\n"})
	_, c := startBoard(t, Options{FlashDir: flash})
	c.expect(banner)

	c.write("x = 1\r")
	c.expect(">>> ")
	c.write("import sys; sys.exit()\r")
	assert.Equal(t, "import sys; sys.exit()\r\nMPY: soft reboot\r\nboot ran\r\nmain ran\r\n"+banner, string(c.expect(banner)))
	c.write("x\r")
	assert.Contains(t, string(c.expect(">>> ")), "NameError: name 'x' isn't defined", "the soft reboot cleared globals")

	// Ctrl-D on a line emptied by Backspace: the VM's readline sees the empty line, pyexec returns
	// PYEXEC_FORCED_EXIT (the host's own empty-prompt check does not see it).
	c.write("a\x08\x04")
	assert.Equal(t, "a\x08\x1b[K\r\nMPY: soft reboot\r\nboot ran\r\nmain ran\r\n"+banner, string(c.expect(banner)))

	c.write("input('q? ')\r")
	c.expect("\r\nq? ")
	c.write("\x04")
	assert.Equal(t, "Traceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\nEOFError: \r\n>>> ",
		string(c.expect(">>> ")))

	// Raw REPL: both EOF markers, no traceback, then the reboot and the raw REPL again.
	c.enterRaw()
	c.write("import sys\nsys.exit()\x04")
	assert.Equal(t, "OK\x04\x04MPY: soft reboot\r\nboot ran\r\nraw REPL; CTRL-B to exit\r\n>",
		string(c.expect("raw REPL; CTRL-B to exit\r\n>")))
	// Raw-paste: the same after the end-of-data acknowledgement.
	c.pasteSend("print('bye')\nraise SystemExit(3)")
	assert.Equal(t, "bye\r\n\x04\x04MPY: soft reboot\r\nboot ran\r\nraw REPL; CTRL-B to exit\r\n>",
		string(c.expect("raw REPL; CTRL-B to exit\r\n>")))
	// Other exceptions do not reboot.
	out, errOut, _ := c.execPaste("raise ValueError(1)")
	assert.Empty(t, out)
	assert.Contains(t, errOut, "ValueError: 1")
}

// boot.py's end decides main.py as ports/esp8266/main.c does: it runs after a SystemExit
// (PYEXEC_FORCED_EXIT is non-zero), not after another exception.
func TestBootPyExitStillRunsMainPy(t *testing.T) {
	flash := t.TempDir()
	writeFlash(t, flash, map[string]string{"boot.py": "print('boot')\nimport sys\nsys.exit()\n", "main.py": "print('main ran')\n"})
	_, c := startBoard(t, Options{FlashDir: flash})
	assert.Equal(t, "boot\r\nmain ran\r\n\r\n"+banner, string(c.expect(banner)))
	writeFlash(t, flash, map[string]string{"boot.py": "print('boot')\nundefined_name\n"})
	c.write("\x04")
	got := string(c.expect(banner))
	assert.Contains(t, got, "NameError")
	assert.NotContains(t, got, "main ran", "an exception out of boot.py skips main.py")
}

// Directories are the flash's: an empty one made on the board (mpremote mkdir) outlives a soft
// reboot, one removed (mpremote rmdir, rm -r) goes from the host too.
func TestDirectoriesPersistAsOnTheFlash(t *testing.T) {
	flash := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(flash, "empty"), 0o700))
	_, c := startBoard(t, Options{FlashDir: flash})
	c.expect(banner)
	c.mpremoteEnter()
	assert.Equal(t, "['empty']\r\n", c.mustExec("import os\nprint(os.listdir())"))

	c.mustExec("import os\nos.mkdir('d')")
	c.mustExec("import os\nos.mkdir('d/e')")
	c.mustExec("f=open('g.txt','a')\nf.close()")
	assert.DirExists(t, filepath.Join(flash, "d", "e"))
	c.mpremoteEnter()
	assert.Equal(t, "['d', 'empty', 'g.txt'] ['e']\r\n", c.mustExec("import os\nprint(sorted(os.listdir()), os.listdir('d'))"))

	c.mustExec("import os\nos.rmdir('d/e')")
	c.mustExec("import os\nos.rmdir('d')\nos.rmdir('empty')")
	assert.NoDirExists(t, filepath.Join(flash, "d"))
	assert.NoDirExists(t, filepath.Join(flash, "empty"))
	c.mpremoteEnter()
	assert.Equal(t, "['g.txt']\r\n", c.mustExec("import os\nprint(os.listdir())"))
}

// vfs and statvfs as mpremote's df reads them: the flash is the board's littlefs at /; another
// mounted file system answers statvfs itself (a Python one without statvfs fails as on the board).
func TestVfsMountsAsTheBoard(t *testing.T) {
	_, c := startBoard(t, Options{})
	c.expect(banner)
	c.enterRaw()
	assert.Equal(t, "[(<VfsLfs2>, '/')] (4096, 4096, 759, 700, 700, 0, 0, 0, 0, 255)\r\n",
		c.mustExec("import vfs, os\nprint(vfs.mount(), os.statvfs('/'))"))
	c.mustExec("class FS:\n def mount(self, r, m):\n  pass\n def umount(self):\n  pass\n def stat(self, p):\n  return (0x4000, 0, 0, 0, 0, 0, 0, 0, 0, 0)\n" +
		"vfs.mount(FS(), '/remote')")
	assert.Equal(t, "['/remote', '/'] <VfsLfs2>\r\n", c.mustExec("print([p for m, p in vfs.mount()], vfs.mount()[1][0])"))
	_, errOut, _ := c.execPaste("os.statvfs('/remote')")
	assert.Contains(t, errOut, "AttributeError: 'FS' object has no attribute 'statvfs'")
	c.mustExec("vfs.umount('/remote')")
}

// TestMpremote runs MicroPython's mpremote (its source directory in HIL_MPREMOTE, e.g.
// tools/mpremote of a micropython checkout; pyserial installed) against a virtual board: every
// command but repl (which wants a terminal), edit and mip.
func TestMpremote(t *testing.T) {
	src := os.Getenv("HIL_MPREMOTE")
	if src == "" {
		t.Skip("HIL_MPREMOTE is not set (mpremote's source directory, tools/mpremote of a micropython checkout)")
	}
	python := ""
	for _, p := range []string{os.Getenv("HIL_PYTHON"), "python3", "/usr/bin/python3"} {
		if p != "" && exec.Command(p, "-c", "import serial").Run() == nil {
			python = p
			break
		}
	}
	if python == "" {
		t.Skip("no python3 with pyserial (set HIL_PYTHON)")
	}
	flash := t.TempDir()
	b, c := startBoard(t, Options{FlashDir: flash})
	c.expect(banner)
	c.port.Close() // mpremote opens the port exclusively
	<-c.done

	work := t.TempDir()
	writeFlash(t, work, map[string]string{
		"script.py":      "import sys\nprint('run', sys.platform)\n",
		"mnt/app.py":     "import helper\nprint('app', helper.X)\n",
		"mnt/helper.py":  "X = 42\n",
		"tree/a/one.txt": "1\n",
	})
	data := bytes.Repeat([]byte{0, '\n', '\r', 0x18, 0x04, 0x03, 0xff, 'x'}, 2500)
	require.NoError(t, os.WriteFile(filepath.Join(work, "data.bin"), data, 0o644))
	mp := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, python, append([]string{"-m", "mpremote", "connect", b.Port()}, args...)...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PYTHONPATH="+src)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "mpremote %s:\n%s", strings.Join(args, " "), out)
		return strings.ReplaceAll(string(out), "\r\n", "\n")
	}
	assert.Equal(t, "2\n", mp("exec", "print(1 + 1)"))
	assert.Equal(t, "3\n", mp("eval", "1 + 2"))
	assert.Equal(t, "run esp8266\n", mp("run", "script.py"))
	mp("fs", "cp", "data.bin", ":data.bin")
	onFlash, err := os.ReadFile(filepath.Join(flash, "data.bin"))
	require.NoError(t, err)
	assert.Equal(t, data, onFlash)
	mp("fs", "cp", ":data.bin", "back.bin")
	back, err := os.ReadFile(filepath.Join(work, "back.bin"))
	require.NoError(t, err)
	assert.Equal(t, data, back)
	sum := sha256.Sum256(data)
	assert.Contains(t, mp("fs", "sha256sum", ":data.bin"), hex.EncodeToString(sum[:]))
	mp("fs", "mkdir", ":d")
	mp("fs", "touch", ":d/x")
	assert.Contains(t, mp("fs", "ls", ":d"), "0 x")
	mp("fs", "cp", "script.py", ":script.py")
	assert.Equal(t, "import sys\nprint('run', sys.platform)\n", mp("fs", "cat", ":script.py"))
	mp("fs", "cp", "-r", "tree", ":")
	assert.Contains(t, mp("fs", "tree"), "one.txt")
	mp("fs", "rm", ":d/x")
	mp("fs", "rmdir", ":d")
	mp("fs", "rm", "-r", ":tree")
	assert.NoDirExists(t, filepath.Join(flash, "d"))
	assert.NoDirExists(t, filepath.Join(flash, "tree"))
	assert.Contains(t, mp("df"), "<VfsLfs2>")
	assert.Contains(t, mp("mount", "mnt", "exec", "import app", "+", "umount", "+", "exec", "import os; print(os.getcwd())"),
		"app 42\n/\n")
	assert.Contains(t, mp("mount", "mnt", "run", "mnt/app.py"), "app 42\n")
	assert.Contains(t, mp("rtc", "--set", "+", "rtc"), "("+strconv.Itoa(time.Now().Year())+", ")
	mp("exec", "kept = 5")
	assert.Equal(t, "5\n", mp("resume", "exec", "print(kept)"))
	assert.Equal(t, "False\n", mp("exec", "kept = 5", "+", "soft-reset", "+", "exec", "print('kept' in globals())"))
	// reset: machine.reset() 100 ms after mpremote leaves (a pty has no DTR/RTS to reset with).
	// Bytes sent while the board restarts are lost, as on the chip: wait for its banner.
	mp("exec", "kept = 6")
	mp("reset")
	c = openPort(t, b.Port())
	c.expect(banner)
	c.port.Close()
	<-c.done
	assert.Equal(t, "False 4\n", mp("resume", "exec", "import machine; print('kept' in globals(), machine.reset_cause())"),
		"machine.reset() is the ESP8266's SOFT_RESET (system_restart)")
}

// mpremote rtc --set: machine.RTC().datetime(8-tuple), then rtc reads it back; the setting holds
// across soft reboots and resets (the ESP8266's RTC memory) and time.localtime() follows it.
func TestRTCSetAsMpremote(t *testing.T) {
	b, c := startBoard(t, Options{})
	c.expect(banner)
	c.mpremoteEnter()
	year := strconv.Itoa(time.Now().UTC().Year())
	assert.True(t, strings.HasPrefix(c.mustExec("import machine\nprint(machine.RTC().datetime())"), "("+year+", "),
		"an RTC never set runs at the host's time")
	c.mustExec("import machine")
	c.mustExec("machine.RTC().datetime((2031, 5, 6, 0, 7, 8, 9, 123456))")
	assert.Regexp(t, `^\(2031, 5, 6, 1, 7, 8, (9|10), 0\)\r\n$`, c.mustExec("import machine\nprint(machine.RTC().datetime())"),
		"2031-05-06 is a Tuesday (weekday 1): the one given is ignored")
	c.mpremoteEnter()
	assert.Regexp(t, `^\(2031, 5, 6, 7, 8, (9|10), 1, 126\)\r\n$`, c.mustExec("import time\nprint(time.localtime())"))
	_, errOut, _ := c.execPaste("import machine\nmachine.RTC().datetime((2031, 5, 6))")
	assert.Contains(t, errOut, "ValueError: requested length 8 but object has length 3")
	require.NoError(t, b.PowerCycle())
	c.expect(banner)
	c.enterRaw()
	assert.Equal(t, "2031\r\n", c.mustExec("import time\nprint(time.localtime()[0])"), "the reset line keeps the RTC")
}

// machine.soft_reset is sys.exit on the ESP8266 (extmod/modmachine.c): the REPL soft-reboots on
// its SystemExit, main.py's ends the program (ports/esp8266/main.c ignores main.py's result), and
// a caught one is nothing.
func TestMachineSoftResetIsSysExit(t *testing.T) {
	flash := t.TempDir()
	writeFlash(t, flash, map[string]string{"main.py": "print('main')\nimport machine\nmachine.soft_reset()\nprint('not reached')\n"})
	_, c := startBoard(t, Options{FlashDir: flash})
	assert.Equal(t, "main\r\n\r\n"+banner, string(c.expect(banner)), "no soft reboot out of main.py")
	c.enterRaw()
	assert.Equal(t, "caught\r\n", c.mustExec("import machine\ntry:\n    machine.soft_reset()\nexcept SystemExit:\n    print('caught')"))
	c.write("machine.soft_reset()\x04")
	assert.Equal(t, "OK\x04\x04MPY: soft reboot\r\nraw REPL; CTRL-B to exit\r\n>", string(c.expect("raw REPL; CTRL-B to exit\r\n>")))
}

// The flash's errors are MicroPython's numbers, another mount's (mpremote mount's RemoteFS) its
// own; open takes keyword arguments; littlefs removes a file or an empty directory with either call.
func TestOSErrorsPerMount(t *testing.T) {
	_, c := startBoard(t, Options{})
	c.expect(banner)
	c.enterRaw()
	c.mustExec("import os, vfs\nclass FS:\n def mount(self, r, m):\n  pass\n def umount(self):\n  pass\n" +
		" def chdir(self, p):\n  pass\n def getcwd(self):\n  return '/'\n" +
		" def stat(self, p):\n  raise OSError(2)\n def open(self, p, m):\n  raise OSError(2)\n def remove(self, p):\n  raise OSError(21)\n" +
		"vfs.mount(FS(), '/remote')")
	probe := "def e(f, *a):\n try:\n  f(*a)\n except OSError as x:\n  return x.errno\nprint(%s)"
	assert.Equal(t, "2 2 21 2 2\r\n", c.mustExec(fmt.Sprintf(probe,
		"e(os.stat, '/remote/x'), e(open, '/remote/x'), e(os.remove, '/remote/x'), e(os.stat, 'nope'), e(open, 'nope')")))
	c.mustExec("os.chdir('/remote')")
	assert.Equal(t, "2 2\r\n", c.mustExec(fmt.Sprintf(probe, "e(os.stat, 'x'), e(open, 'x', 'rb')")))
	c.mustExec("os.chdir('/')\nvfs.umount('/remote')")

	assert.Equal(t, "x\r\n", c.mustExec("f = open('kw.txt', mode='w')\nf.write('x')\nf.close()\nprint(open('kw.txt', mode='r').read())"))
	assert.Equal(t, "[]\r\n", c.mustExec("os.mkdir('d')\nos.remove('d')\nos.rmdir('kw.txt')\nprint(os.listdir())"))
	assert.Equal(t, "39 2\r\n", c.mustExec("os.mkdir('d')\nopen('d/f', 'w').close()\nprint(e(os.remove, 'd'), e(os.rmdir, 'nope'))"))
}
