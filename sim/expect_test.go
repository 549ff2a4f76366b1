package sim

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.bug.st/serial"
)

// wait bounds every expectation: generous, the machine is small and shared.
const wait = 20 * time.Second

// arrival records when the bytes up to absolute offset end were read from the port.
type arrival struct {
	at  time.Time
	end int
}

// serialConn is a small expect() over go.bug.st/serial, as a host tool sees the board.
type serialConn struct {
	t        testing.TB
	port     serial.Port
	mu       sync.Mutex
	buf      []byte // received and not yet consumed
	consumed int    // absolute offset of buf[0]
	arrivals []arrival
	wake     chan struct{}
	done     chan struct{}
}

func openPort(t testing.TB, path string) *serialConn {
	t.Helper()
	port, err := serial.Open(path, &serial.Mode{BaudRate: 115200})
	require.NoError(t, err, "open %s with go.bug.st/serial", path)
	c := &serialConn{t: t, port: port, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go c.read()
	t.Cleanup(func() {
		port.Close()
		<-c.done
	})
	return c
}

func (c *serialConn) read() {
	defer close(c.done)
	buf := make([]byte, 4096)
	for {
		n, err := c.port.Read(buf)
		if n > 0 {
			now := time.Now()
			c.mu.Lock()
			c.buf = append(c.buf, buf[:n]...)
			c.arrivals = append(c.arrivals, arrival{at: now, end: c.consumed + len(c.buf)})
			c.mu.Unlock()
			select {
			case c.wake <- struct{}{}:
			default:
			}
		}
		if err != nil || n == 0 {
			return
		}
	}
}

func (c *serialConn) write(s string) {
	c.t.Helper()
	_, err := c.port.Write([]byte(s))
	require.NoError(c.t, err)
}

// expectN waits until the received bytes satisfy match (returning how many to consume) or fails
// showing what was seen.
func (c *serialConn) expectN(what string, timeout time.Duration, match func([]byte) int) []byte {
	c.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if n := match(c.buf); n >= 0 {
			out := append([]byte(nil), c.buf[:n]...)
			c.buf = c.buf[n:]
			c.consumed += n
			c.mu.Unlock()
			return out
		}
		seen := c.buf
		if len(seen) > 400 {
			seen = seen[len(seen)-400:]
		}
		seen = append([]byte(nil), seen...)
		c.mu.Unlock()
		select {
		case <-c.wake:
		case <-c.done:
			c.t.Fatalf("port closed while waiting for %s; last bytes seen: %q", what, seen)
		case <-timer.C:
			c.t.Fatalf("timed out after %v waiting for %s; last bytes seen: %q", timeout, what, seen)
		}
	}
}

// expect consumes and returns everything up to and including s.
func (c *serialConn) expect(s string) []byte {
	c.t.Helper()
	return c.expectN(strconv.Quote(s), wait, func(b []byte) int {
		if i := bytes.Index(b, []byte(s)); i >= 0 {
			return i + len(s)
		}
		return -1
	})
}

// take consumes exactly n bytes.
func (c *serialConn) take(n int) []byte {
	c.t.Helper()
	return c.expectN(fmt.Sprintf("%d bytes", n), wait, func(b []byte) int {
		if len(b) >= n {
			return n
		}
		return -1
	})
}

func (c *serialConn) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.buf)
}

// arrivedAt is when the byte at absolute offset off was read.
func (c *serialConn) arrivedAt(off int) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range c.arrivals {
		if a.end > off {
			return a.at
		}
	}
	return time.Time{}
}

func (c *serialConn) offset() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.consumed
}

// --- a minimal raw-REPL client, byte for byte what pyboard.py/mpremote send

func (c *serialConn) enterRaw() {
	c.t.Helper()
	c.write("\r\x03")
	c.write("\r\x01")
	c.expect("raw REPL; CTRL-B to exit\r\n>")
}

// execPaste runs code in raw-paste mode honouring the flow-control window; returns stdout, stderr
// and the number of window grants (\x01) received.
func (c *serialConn) execPaste(code string) (string, string, int) {
	c.t.Helper()
	c.write("\x05A\x01")
	hdr := c.take(2)
	require.Equal(c.t, "R\x01", string(hdr), "raw paste refused")
	w := c.take(2)
	window := int(w[0]) | int(w[1])<<8
	require.Positive(c.t, window)
	remain, grants := window, 0
	for i := 0; i < len(code); {
		for remain == 0 || c.pending() > 0 {
			b := c.take(1)[0]
			switch b {
			case 0x01:
				remain += window
				grants++
			case 0x04:
				c.write("\x04")
				c.t.Fatalf("board ended raw paste early")
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
	ack := c.expect("\x04")
	grants += strings.Count(string(ack), "\x01")
	out := c.expect("\x04")
	errOut := c.expect("\x04")
	c.expect(">")
	return strings.TrimSuffix(string(out), "\x04"), strings.TrimSuffix(string(errOut), "\x04"), grants
}

// execPlain runs code in plain raw mode (what hosts do on firmware without raw paste).
func (c *serialConn) execPlain(code string) (string, string) {
	c.t.Helper()
	for i := 0; i < len(code); i += 256 {
		c.write(code[i:min(i+256, len(code))])
	}
	c.write("\x04")
	require.Equal(c.t, "OK", string(c.take(2)))
	out := c.expect("\x04")
	errOut := c.expect("\x04")
	c.expect(">")
	return strings.TrimSuffix(string(out), "\x04"), strings.TrimSuffix(string(errOut), "\x04")
}

// mustExec runs code and fails the test on any traceback.
func (c *serialConn) mustExec(code string) string {
	c.t.Helper()
	out, errOut, _ := c.execPaste(code)
	require.Empty(c.t, errOut, "code %q raised", code)
	return out
}

// startBoard starts a board and opens its port; both are closed at the end of the test.
func startBoard(t testing.TB, opts Options) (*Board, *serialConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b, err := Start(ctx, opts)
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	return b, openPort(t, b.Port())
}

// parsePyBytes reads a bytes repr as printed by the board.
func parsePyBytes(t testing.TB, lit string) []byte {
	t.Helper()
	lit = strings.TrimSpace(lit)
	require.True(t, len(lit) >= 3 && lit[0] == 'b' && (lit[1] == '\'' || lit[1] == '"') && lit[len(lit)-1] == lit[1],
		"not a bytes literal: %q", lit)
	body := lit[2 : len(lit)-1]
	var out []byte
	for i := 0; i < len(body); i++ {
		if body[i] != '\\' {
			out = append(out, body[i])
			continue
		}
		i++
		switch body[i] {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'x':
			v, err := strconv.ParseUint(body[i+1:i+3], 16, 8)
			require.NoError(t, err)
			out = append(out, byte(v))
			i += 2
		default:
			out = append(out, body[i])
		}
	}
	return out
}
