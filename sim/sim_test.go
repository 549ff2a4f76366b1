package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/onenet-hil/hil/internal/pylit"
	"github.com/onenet-hil/hil/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const banner = "MicroPython v1.27.0 on 2025-12-10; ESP module with ESP8266\r\nType \"help()\" for more information.\r\n>>> "

func writeFlash(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
}

func TestBannerAndPrompt(t *testing.T) {
	t0 := time.Now()
	b, c := startBoard(t, Options{BootGarbage: true})
	boot := c.expect(banner)
	t.Logf("runtime start to first prompt: %v", time.Since(t0))
	assert.Contains(t, string(boot), "\r\n\r\n"+banner, "the banner follows a blank line")
	assert.False(t, utf8.Valid(boot[:len(boot)-len(banner)]), "ROM boot garbage (not UTF-8) precedes the banner: %q", boot)

	// A hard reset prints the boot garbage and the banner again on the same open port.
	require.NoError(t, b.PowerCycle())
	again := c.expect(banner)
	assert.Greater(t, len(again), len(banner)+32, "boot output after a power cycle: %q", again)

	// The friendly REPL answers an empty line with a new prompt, Ctrl-B with the banner.
	c.write("\r")
	assert.Equal(t, "\r\n>>> ", string(c.expect(">>> ")))
	c.write("\x02")
	assert.Equal(t, "\r\n"+banner, string(c.expect(">>> ")))
}

func TestFriendlyREPLExpressions(t *testing.T) {
	_, c := startBoard(t, Options{})
	c.expect(banner)
	c.write("1+2\r")
	assert.Equal(t, "1+2\r\n3\r\n>>> ", string(c.expect(">>> ")))
	c.write("'ab'*2\r")
	assert.Equal(t, "'ab'*2\r\n'abab'\r\n>>> ", string(c.expect(">>> ")))
	c.write("x\r")
	assert.Equal(t, "x\r\nTraceback (most recent call last):\r\n  File \"<stdin>\", line 1, in <module>\r\n"+
		"NameError: name 'x' isn't defined\r\n>>> ", string(c.expect(">>> ")))
	// A compound statement: continuation prompt with auto-indent (readline.c); three Enters
	// after the body end the block.
	c.write("for i in range(2):\r")
	assert.Equal(t, "for i in range(2):\r\n...     ", string(c.expect("...     ")))
	c.write("print(i*10)\r")
	c.expect("...     ")
	c.write("\r")
	assert.Equal(t, "\r\n...     ", string(c.expect("...     ")))
	c.write("\r")
	assert.Equal(t, "\r\n... ", string(c.expect("... ")))
	c.write("\r") // the third Enter ends the block
	assert.Equal(t, "\r\n0\r\n10\r\n>>> ", string(c.expect(">>> ")))
	// Line editing: backspace removes a character.
	c.write("7*7\x7f8\r")
	assert.Contains(t, string(c.expect(">>> ")), "56\r\n")
	// readline.c takes printable ASCII only: UTF-8 typed at the prompt is dropped, as on
	// the board (a file or the raw REPL carries it: see the raw REPL test).
	c.write("print('你好')\r")
	assert.Contains(t, string(c.expect(">>> ")), "print('')\r\n\r\n")
	// Paste mode (Ctrl-E) takes indented code as it is.
	c.write("\x05")
	c.expect("paste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
	c.write("if 1:\r    print('pasted')\r\x04")
	assert.Contains(t, string(c.expect(">>> ")), "\r\npasted\r\n")
	// import of the u-names and the MicroPython-only sys.print_exception
	c.write("import ujson, sys; sys.print_exception(ValueError('v')); ujson.dumps({'a': [1]})\r")
	out := string(c.expect(">>> "))
	assert.Contains(t, out, "ValueError: v\r\n")
	assert.Contains(t, out, "'{\"a\": [1]}'\r\n")
}

func TestCtrlCStopsBusyLoopInMain(t *testing.T) {
	flash := t.TempDir()
	writeFlash(t, flash, map[string]string{"main.py": "print('looping')\nwhile True:\n    pass\n"})
	_, c := startBoard(t, Options{FlashDir: flash})
	c.expect("looping\r\n")
	// The VM cannot be interrupted inside a loop that never calls the host: the host ends it,
	// says so, and the REPL comes back (the program's state is lost).
	c.write("\r\x03")
	out := string(c.expect(banner))
	assert.Contains(t, out, "hil: the program ignored Ctrl-C")
	assert.Contains(t, out, "KeyboardInterrupt: \r\n")
	c.write("1\r")
	c.expect("1\r\n>>> ")
}

func TestCtrlCStopsBlockedSocketReadAndSleep(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			accepted <- conn
		}
	}()
	_, c := startBoard(t, Options{})
	c.expect(banner)
	c.write("import network, socket; w = network.WLAN(network.STA_IF); w.active(True); w.connect('lab', 'pw')\r")
	c.expect(">>> ")
	port := ln.Addr().(*net.TCPAddr).Port
	c.write(fmt.Sprintf("s = socket.socket(); s.connect(('127.0.0.1', %d)); s.recv(1)\r", port))
	select {
	case conn := <-accepted:
		defer conn.Close()
	case <-time.After(wait):
		t.Fatal("the board never connected")
	}
	c.write("\x03")
	out := string(c.expect(">>> "))
	assert.Contains(t, out, "KeyboardInterrupt: \r\n", "recv interrupted")

	c.write("import time; time.sleep(600)\r")
	c.expect("time.sleep(600)\r\n")
	c.write("\x03")
	out = string(c.expect(">>> "))
	assert.Contains(t, out, "KeyboardInterrupt: \r\n", "sleep interrupted")
}

func TestRawREPLFramesStdoutAndStderr(t *testing.T) {
	_, c := startBoard(t, Options{})
	c.expect(banner)
	c.enterRaw()
	out, errOut := c.execPlain("print('out')\nraise ValueError('bad')")
	assert.Equal(t, "out\r\n", out)
	assert.Equal(t, "Traceback (most recent call last):\r\n  File \"<stdin>\", line 2, in <module>\r\nValueError: bad\r\n", errOut)

	out, errOut, _ = c.execPaste("print(1+1)")
	assert.Equal(t, "2\r\n", out)
	assert.Empty(t, errOut)

	// UTF-8 source (the tutorial is in Chinese) runs and prints intact.
	assert.Equal(t, "你好\r\n", c.mustExec("print('你好')"))

	// Globals persist between blocks, as mpremote relies on.
	c.mustExec("v = 41")
	assert.Equal(t, "42\r\n", c.mustExec("print(v + 1)"))

	// A syntax error goes to stderr.
	_, errOut, _ = c.execPaste("def (")
	assert.Contains(t, errOut, "SyntaxError: invalid syntax\r\n")

	// Ctrl-B leaves raw mode for the friendly banner.
	c.write("\r\x02")
	assert.Equal(t, "\r\n"+banner, string(c.expect(">>> ")))
}

func script10K() (string, int) {
	var sb strings.Builder
	sum := 0
	for i := 0; sb.Len() < 10*1024; i++ {
		fmt.Fprintf(&sb, "a%d = %d  # padding to make the script larger\n", i, i)
		sum += i
	}
	sb.WriteString("print(sum(v for k, v in globals().items() if k.startswith('a') and k[1:].isdigit()))\n")
	return sb.String(), sum
}

func TestRawPaste10KBHonoursWindow(t *testing.T) {
	_, c := startBoard(t, Options{})
	c.expect(banner)
	c.enterRaw()
	code, sum := script10K()
	require.GreaterOrEqual(t, len(code), 10*1024)
	out, errOut, grants := c.execPaste(code)
	assert.Empty(t, errOut)
	assert.Equal(t, fmt.Sprintf("%d\r\n", sum), out)
	assert.Equal(t, len(code)/128+1, grants, "a grant at the start, then one per 128 bytes received")
}

func TestRawPasteDetectsHostIgnoringWindow(t *testing.T) {
	log := &testutil.Buffer{}
	_, c := startBoard(t, Options{Log: log})
	c.expect(banner)
	c.enterRaw()
	code, sum := script10K()
	c.write("\x05A\x01")
	require.Equal(t, "R\x01\x80\x00\x01", string(c.take(5)), "window 128, and a second window free at once")
	c.write(code + "\x04") // ignores the window
	c.expect("\x04")
	out := string(c.expect("\x04"))
	errOut := string(c.expect("\x04"))
	c.expect(">")
	t.Logf("stdout %q stderr %q", out, errOut)
	assert.NotEqual(t, fmt.Sprintf("%d\r\n\x04", sum), out, "a host overrunning the window must not get a clean run")
	log.WaitFor(t, "ignored the flow-control window", wait)
}

func TestOldFirmwareFallsBackToPlainRaw(t *testing.T) {
	_, c := startBoard(t, Options{NoRawPaste: true})
	c.expect(banner)
	c.enterRaw()
	c.write("\x05A\x01")
	assert.Equal(t, "ra", string(c.take(2)), "old firmware answers with the raw REPL banner")
	c.expect("w REPL; CTRL-B to exit\r\n>")
	code, sum := script10K()
	out, errOut := c.execPlain(code)
	assert.Empty(t, errOut)
	assert.Equal(t, fmt.Sprintf("%d\r\n", sum), out)
}

func TestBinaryFileRoundTripWithMpremoteCode(t *testing.T) {
	b, c := startBoard(t, Options{})
	c.expect(banner)
	c.enterRaw()
	data := make([]byte, 10*1024)
	_, err := rand.Read(data)
	require.NoError(t, err)
	data[0], data[1], data[2], data[3] = '\'', '"', '\\', '\n' // the awkward bytes, for sure

	// fs_writefile
	c.mustExec("f=open('data.bin','wb')\nw=f.write")
	for i := 0; i < len(data); i += 256 {
		c.mustExec("w(" + pylit.Repr(data[i:min(i+256, len(data))]) + ")") // mpremote's repr() chunks
	}
	c.mustExec("f.close()")
	onFlash, err := os.ReadFile(filepath.Join(b.FlashDir(), "data.bin"))
	require.NoError(t, err)
	assert.True(t, bytes.Equal(data, onFlash), "bytes on the flash differ from those sent")

	// fs_hashfile
	c.mustExec("import hashlib\nh = hashlib.sha256()")
	c.mustExec("buf = memoryview(bytearray(256))\nwith open('data.bin', 'rb') as f:\n while True:\n  n = f.readinto(buf)\n  if n == 0:\n   break\n  h.update(buf if n == 256 else buf[:n])\n")
	digest := parsePyBytes(t, c.mustExec("print(repr(h.digest()))"))
	want := sha256.Sum256(data)
	assert.Equal(t, want[:], digest)

	// fs_readfile
	c.mustExec("f=open('data.bin','rb')\nr=f.read")
	var back []byte
	for {
		chunk := parsePyBytes(t, c.mustExec("print(repr(r(256)))"))
		if len(chunk) == 0 {
			break
		}
		back = append(back, chunk...)
	}
	c.mustExec("f.close()")
	assert.True(t, bytes.Equal(data, back), "bytes read back differ")
	assert.Equal(t, "(32768, 0, 0, 0, 0, 0, 10240, ", c.mustExec("print(__import__('os').stat('data.bin'))")[:30])
}

func TestSoftRebootRunsBootAndMain(t *testing.T) {
	flash := t.TempDir()
	writeFlash(t, flash, map[string]string{
		"boot.py":       "print('boot ran')\n",
		"main.py":       "import helper\nprint('main ran', helper.X)\n",
		"lib/helper.py": "X = 7\n",
	})
	_, c := startBoard(t, Options{FlashDir: flash})
	assert.Equal(t, "boot ran\r\nmain ran 7\r\n\r\n"+banner, string(c.expect(banner)))
	c.write("y = 1\r")
	c.expect(">>> ")
	c.write("\x04")
	assert.Equal(t, "\r\nMPY: soft reboot\r\nboot ran\r\nmain ran 7\r\n"+banner, string(c.expect(banner)))
	c.write("y\r")
	assert.Contains(t, string(c.expect(">>> ")), "NameError: name 'y' isn't defined", "soft reboot clears globals")

	// From the raw REPL a soft reboot runs boot.py only.
	c.enterRaw()
	c.write("\x04")
	assert.Equal(t, "OK\r\nMPY: soft reboot\r\nboot ran\r\nraw REPL; CTRL-B to exit\r\n>",
		string(c.expect("raw REPL; CTRL-B to exit\r\n>")))

	// On MicroPython 1.27 a flash file does not shadow a built-in module (CPython's import
	// would take it): import json is still the VM's own.
	writeFlash(t, flash, map[string]string{"json.py": "def dumps(o):\n    return 'mine'\n"})
	assert.Equal(t, "1\r\n", c.mustExec("import json; print(json.dumps(1))"))
	assert.Equal(t, "'1'\r\n", c.mustExec("import ujson; print(repr(ujson.dumps(1)))"))
}

func TestPowerCycleKeepsFiles(t *testing.T) {
	b, c := startBoard(t, Options{})
	c.expect(banner)
	c.enterRaw()
	c.mustExec("with open('keep.txt', 'w') as f:\n f.write('kept')\nstate = 5\nfrom machine import Pin\nPin(4, Pin.OUT).on()")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, b.WaitPin(ctx, 4, 1))

	require.NoError(t, b.PowerCycle())
	c.expect(banner)
	assert.Equal(t, 0, b.Pin(4), "GPIO levels are lost on a hard reset")
	c.enterRaw()
	assert.Equal(t, "kept\r\n", c.mustExec("print(open('keep.txt').read())"))
	_, errOut, _ := c.execPaste("print(state)")
	assert.Contains(t, errOut, "NameError")
	assert.Equal(t, "6\r\n", c.mustExec("import machine; print(machine.reset_cause())"), "HARD_RESET")

	// machine.reset() is a hard reset too.
	c.write("import machine; machine.reset()\x04")
	c.expect(banner)
	c.enterRaw()
	assert.Equal(t, "4\r\n", c.mustExec("import machine; print(machine.reset_cause())"), "SOFT_RESET cause")
}

func TestPinChangesSeenFromGo(t *testing.T) {
	b, c := startBoard(t, Options{})
	changes, stop := b.PinChanges()
	defer stop()
	c.expect(banner)
	c.enterRaw()
	before := time.Now()
	c.mustExec("from machine import Pin\np = Pin(4, Pin.OUT, value=0)\np.on()\np.off()\np.value(1)\np(1)\nPin(2, Pin.OUT).off()")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, b.WaitPin(ctx, 4, 1))
	var got []PinChange
	for len(got) < 3 {
		select {
		case ch := <-changes:
			got = append(got, ch)
		case <-ctx.Done():
			t.Fatalf("only %d pin changes seen: %+v", len(got), got)
		}
	}
	assert.Equal(t, []int{1, 0, 1}, []int{got[0].Value, got[1].Value, got[2].Value})
	for i, ch := range got {
		assert.Equal(t, 4, ch.Pin)
		assert.False(t, ch.Time.Before(before.Add(-time.Second)), "change %d stamped %v", i, ch.Time)
		if i > 0 {
			assert.False(t, ch.Time.Before(got[i-1].Time), "changes in order")
		}
	}
	assert.Equal(t, 1, b.Pin(4))
	assert.Equal(t, 0, b.Pin(2))

	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	err := b.WaitPin(short, 5, 1)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "GPIO5 is 0")

	_, errOut, _ := c.execPaste("Pin(6, Pin.OUT)")
	assert.Contains(t, errOut, "ValueError: invalid pin")
}

func TestRedirectTableAndRefusal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	received := make(chan []byte, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.Write([]byte("pong"))
		buf := make([]byte, 5)
		if _, err := io.ReadFull(conn, buf); err == nil {
			received <- buf
		}
		io.Copy(io.Discard, conn)
	}()
	log := &testutil.Buffer{}
	b, c := startBoard(t, Options{Log: log, Redirects: map[string]string{"183.230.40.39:6002": ln.Addr().String()}})
	c.expect(banner)
	c.enterRaw()

	// Without Wi-Fi nothing is reachable.
	_, errOut, _ := c.execPaste("import socket\nsocket.socket().connect(('183.230.40.39', 6002))")
	assert.Contains(t, errOut, "OSError: [Errno 113] EHOSTUNREACH")

	c.mustExec("import network\nw = network.WLAN(network.STA_IF)\nw.active(True)\nw.connect('lab', 'secret-pw')")
	assert.Equal(t, "True\r\n", c.mustExec("print(w.isconnected())"))
	out := c.mustExec("a = socket.getaddrinfo('183.230.40.39', 6002)[0][-1]\ns = socket.socket()\ns.connect(a)\nprint(s.recv(4))\ns.write(b'hello')")
	assert.Equal(t, "b'pong'\r\n", out)
	select {
	case got := <-received:
		assert.Equal(t, "hello", string(got))
	case <-time.After(wait):
		t.Fatal("the redirected connection never delivered its bytes")
	}

	_, errOut, _ = c.execPaste("socket.socket().connect(('8.8.8.8', 53))")
	assert.Contains(t, errOut, "OSError: [Errno 113] EHOSTUNREACH")
	log.WaitFor(t, "refused connect to 8.8.8.8:53", wait)
	_, errOut, _ = c.execPaste("socket.getaddrinfo('open.iot.10086.cn', 6002)")
	assert.Contains(t, errOut, "OSError: -2")
	assert.NotContains(t, log.String(), "secret-pw", "the Wi-Fi password never reaches the log")

	// Wi-Fi drops: isconnected() false, an open socket fails; it comes back.
	require.NoError(t, b.SetWiFi(false))
	log.WaitFor(t, "wifi link down", wait)
	assert.Equal(t, "False\r\n", c.mustExec("print(w.isconnected())"))
	_, errOut, _ = c.execPaste("s.recv(1)")
	assert.Contains(t, errOut, "OSError: [Errno 103] ECONNABORTED")
	require.NoError(t, b.SetWiFi(true))
	log.WaitFor(t, "wifi link up", wait)
	assert.Equal(t, "True\r\n", c.mustExec("print(w.isconnected())"))
}

// A redirect may only lead to this machine: 183.230.40.39:6002 -> 183.230.40.39:6002 would put the
// virtual board on the real OneNET.
func TestRedirectToAnotherHostIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, target := range []string{"183.230.40.39:6002", "10.0.0.5:1883", "localhost:1883", "[::1]:1883",
		"0.0.0.0:1883", "[::ffff:8.8.8.8]:53", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:x", ""} {
		b, err := Start(ctx, Options{Redirects: map[string]string{"183.230.40.39:6002": target}})
		if !assert.Error(t, err, "target %q accepted", target) {
			b.Close()
			continue
		}
		assert.Contains(t, err.Error(), "must be a loopback IPv4 address and port", target)
		assert.Contains(t, err.Error(), "183.230.40.39:6002 -> "+strconv.Quote(target))
	}
	for _, from := range []string{"nonsense", ":6002", "183.230.40.39:0", "183.230.40.39:http"} {
		_, err := Start(ctx, Options{Redirects: map[string]string{from: "127.0.0.1:1883"}})
		assert.ErrorContains(t, err, "sim: redirect", from)
	}
	assert.NoError(t, CheckRedirect("183.230.40.39:6002", "127.0.0.1:1883"))
	assert.NoError(t, CheckRedirect("open.iot.10086.cn:6002", "127.3.2.1:40000"))

}

func TestWiFiDelayAndNever(t *testing.T) {
	_, c := startBoard(t, Options{WiFi: WiFiBehaviour{Mode: WiFiDelay, Delay: 300 * time.Millisecond}})
	c.expect(banner)
	c.enterRaw()
	out := c.mustExec("import network, time\nw = network.WLAN(network.STA_IF)\nw.active(True)\nw.connect('lab', 'pw')\n" +
		"t = time.ticks_ms()\nprint(w.isconnected())\nwhile not w.isconnected():\n pass\nprint(time.ticks_diff(time.ticks_ms(), t) >= 290, w.status())")
	assert.Equal(t, "False\r\nTrue 5\r\n", out)

	_, c2 := startBoard(t, Options{WiFi: WiFiBehaviour{Mode: WiFiNever}})
	c2.expect(banner)
	c2.enterRaw()
	out = c2.mustExec("import network, time\nw = network.WLAN(network.STA_IF)\nw.active(True)\nw.connect('lab', 'pw')\ntime.sleep_ms(100)\nprint(w.isconnected(), w.ifconfig()[0])")
	assert.Equal(t, "False 0.0.0.0\r\n", out)
}

// measureRate returns bytes/s between the arrival of byte offsets from and to.
func measureRate(c *serialConn, from, to int) float64 {
	d := c.arrivedAt(to - 1).Sub(c.arrivedAt(from))
	return float64(to-1-from) / d.Seconds()
}

// lineRate is 115200 baud 8N1 in bytes/s.
const lineRate = 11520.0

// pacedRates moves about n bytes each way through a board paced at 115200 8N1, starting and
// ending at the friendly prompt, and returns bytes/s. out and in are timed from before the first
// byte could move to the arrival of the last, so a loaded machine can only make them lower; the
// one way above the line rate is the pacer's idle slack (10 ms, 0.5% of two seconds); steadyOut is the board's output rate between the arrivals of its first and
// last bytes (the exact figure the benchmark reports; a reader late for the first byte inflates it).
func pacedRates(t testing.TB, c *serialConn, n int) (out, steadyOut, in float64) {
	cmd := fmt.Sprintf("print('x' * %d)\r", n)
	t0 := time.Now()
	c.write(cmd)
	echo := c.expect("\r\n") // the echo of the command, paced like everything the board sends
	start := c.offset()
	printed := c.expect("\r\n>>> ")
	out = float64(len(echo)+len(printed)) / time.Since(t0).Seconds()
	require.Equal(t, n+6, len(printed), "output length")
	steadyOut = measureRate(c, start, start+n+2)

	// host -> board: a raw-REPL block of n bytes is answered OK only once it has all arrived.
	c.enterRaw()
	body := "#" + strings.Repeat("y", n-1) + "\x04"
	t0 = time.Now()
	c.write(body)
	c.expect("OK")
	in = float64(len(body)) / time.Since(t0).Seconds()
	c.expect(">")
	c.write("\r\x02") // back to the friendly REPL
	c.expect(">>> ")
	return out, steadyOut, in
}

// The board is never faster than its line, and not much slower. The exact rate is the benchmark's
// business (BenchmarkLineRate): a wall-clock tolerance of a few percent flakes on a loaded machine.
func TestLineRatePacing(t *testing.T) {
	_, c := startBoard(t, Options{LineRate: true})
	c.expect(banner)
	out, steady, in := pacedRates(t, c, 23040) // two seconds of line time each way
	t.Logf("board -> host: %.0f bytes/s (steady %.0f); host -> board: %.0f bytes/s", out, steady, in)
	assert.LessOrEqual(t, out, lineRate*1.05, "output faster than 115200 8N1")
	assert.GreaterOrEqual(t, out, lineRate*0.5, "output far slower than 115200 8N1")
	assert.LessOrEqual(t, in, lineRate*1.05, "input faster than 115200 8N1")
	assert.GreaterOrEqual(t, in, lineRate*0.5, "input far slower than 115200 8N1")
}

// BenchmarkLineRate reports the paced line's bytes/s both ways; 115200 8N1 is 11,520.
func BenchmarkLineRate(b *testing.B) {
	_, c := startBoard(b, Options{LineRate: true})
	c.expect(banner)
	var out, steady, in float64
	runs := 0
	for b.Loop() {
		o, s, i := pacedRates(b, c, 11520)
		out, steady, in, runs = out+o, steady+s, in+i, runs+1
	}
	b.ReportMetric(steady/float64(runs), "out-B/s")
	b.ReportMetric(out/float64(runs), "out-cmd-B/s")
	b.ReportMetric(in/float64(runs), "in-B/s")
}

func TestStartErrors(t *testing.T) {
	_, err := Start(context.Background(), Options{Node: "no-such-node-here"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "Node.js 20")
	notDir := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(notDir, nil, 0o600))
	_, err = Start(context.Background(), Options{FlashDir: notDir})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "flash directory")
	_, err = Start(context.Background(), Options{Heap: 100})
	assert.ErrorContains(t, err, "want 4096 or more")
	_, err = Start(context.Background(), Options{WiFi: WiFiBehaviour{Mode: 9}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unknown Wi-Fi mode")
}

func BenchmarkStartToPrompt(b *testing.B) {
	for b.Loop() {
		brd, c := startBoard(b, Options{})
		c.expect(banner)
		brd.Close()
	}
}

func TestSocketStreamSemantics(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	conns := make(chan net.Conn, 1)
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			conns <- conn
		}
	}()
	_, c := startBoard(t, Options{})
	c.expect(banner)
	c.enterRaw()
	c.mustExec(fmt.Sprintf("import network, socket, select\nnetwork.WLAN(0).active(True)\nnetwork.WLAN(0).connect('lab', 'pw')\n"+
		"s = socket.socket()\ns.connect(('127.0.0.1', %d))", ln.Addr().(*net.TCPAddr).Port))
	var conn net.Conn
	select {
	case conn = <-conns:
		defer conn.Close()
	case <-time.After(wait):
		t.Fatal("no connection")
	}
	// Non-blocking read with nothing there is None, as py/stream.c returns.
	assert.Equal(t, "None\r\n", c.mustExec("s.setblocking(False)\nprint(s.read(1))"))
	// poll sees readable data; read(n) then returns exactly n bytes.
	_, err = conn.Write([]byte("abcdef"))
	require.NoError(t, err)
	assert.Equal(t, "True b'abcd'\r\n", c.mustExec("p = select.poll()\np.register(s, select.POLLIN)\nev = p.poll(5000)\ns.setblocking(True)\nprint(ev[0][0] is s, s.read(4))"))
	// A timeout is OSError ETIMEDOUT.
	_, errOut, _ := c.execPaste("s.read(2)\ns.settimeout(0.05)\ns.read(1)")
	assert.Contains(t, errOut, "OSError: [Errno 110] ETIMEDOUT")
}

func TestOutputNobodyReadsDoesNotStallTheBoard(t *testing.T) {
	flash := t.TempDir()
	writeFlash(t, flash, map[string]string{"main.py": "from machine import Pin\nfor i in range(4000):\n    print('x' * 60)\nPin(5, Pin.OUT).on()\n"})
	log := &testutil.Buffer{}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b, err := Start(ctx, Options{FlashDir: flash, Log: log})
	require.NoError(t, err)
	defer b.Close()
	// 244 KB of output and no client on the port: the program still runs to its end.
	require.NoError(t, b.WaitPin(ctx, 5, 1), "log: %s", log.String())
	assert.Contains(t, log.String(), "not read by any client")
}

func TestWatchdogResetsTheBoard(t *testing.T) {
	_, c := startBoard(t, Options{})
	c.expect(banner)
	c.enterRaw()
	c.mustExec("import machine\nwdt = machine.WDT(timeout=300)")
	c.expect(banner)
	c.enterRaw()
	assert.Equal(t, "1\r\n", c.mustExec("import machine; print(machine.reset_cause())"), "WDT_RESET")
}

func TestPortHasNoResetLines(t *testing.T) {
	_, c := startBoard(t, Options{})
	c.expect(banner)
	// As the design note says of a pty: DTR/RTS fail, so hosts fall back to a soft reset.
	err := c.port.SetRTS(true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "inappropriate ioctl")
	c.write("1\r")
	c.expect("1\r\n>>> ")
}

// input() and sys.stdin read the serial line through the host, which echoes what input() gets;
// micropython.kbd_intr(-1) lets Ctrl-C through as data (mpremote's mount relies on both).
func TestInputAndStdinReadTheSerialLine(t *testing.T) {
	_, c := startBoard(t, Options{})
	c.expect(banner)
	c.write("x = input('name? ')\r")
	c.expect("\r\nname? ")
	c.write("bob\r")
	assert.Equal(t, "bob\r\n>>> ", string(c.expect(">>> ")))
	c.write("x\r")
	assert.Equal(t, "x\r\n'bob'\r\n>>> ", string(c.expect(">>> ")))
	c.write("import sys, micropython\r")
	c.expect(">>> ")
	// kbd_intr holds for the execution that sets it: pyexec sets Ctrl-C again for the next.
	c.write("micropython.kbd_intr(-1); print('ready'); sys.stdin.buffer.read(3)\r")
	c.expect("ready\r\n")
	c.write("a\x03c")
	assert.Equal(t, "b'a\\x03c'\r\n>>> ", string(c.expect(">>> ")), "Ctrl-C is data while kbd_intr is off")
	c.write("print('ready'); sys.stdin.read(1)\r")
	c.expect("ready\r\n")
	c.write("\x03")
	assert.Contains(t, string(c.expect(">>> ")), "KeyboardInterrupt", "Ctrl-C interrupts a read again")
}
