package board

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onenet-hil/hil/internal/testutil"
	"github.com/onenet-hil/hil/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestExecStdoutStderrAndEval(t *testing.T) {
	ctx := testCtx(t)
	_, _, r := startBoard(t, sim.Options{}, nil)
	require.NoError(t, r.EnterRaw(ctx, true))

	out, err := r.Exec(ctx, "x=6\nprint('hello', x*7)")
	require.NoError(t, err)
	assert.Equal(t, "hello 42\r\n", string(out))
	assert.True(t, r.RawPaste(), "the virtual board (MicroPython 1.19) has raw paste")

	v, err := r.Eval(ctx, "x+1")
	require.NoError(t, err)
	assert.Equal(t, "7", v, "globals survive between blocks")

	stdout, stderr, err := r.ExecSplit(ctx, "print('before')\nraise ValueError('boom')")
	require.NoError(t, err)
	assert.Equal(t, "before\r\n", string(stdout))
	assert.Contains(t, string(stderr), "ValueError: boom")

	_, err = r.Exec(ctx, "import os\nos.stat('/nope')")
	var pe *PythonError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, pe.Exception(), "OSError")
	assert.Contains(t, pe.Traceback, "Traceback")

	_, err = r.Exec(ctx, "def f(:\n pass")
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, pe.Exception(), "SyntaxError")

	// A block larger than many raw-paste windows.
	big := "s=0\n" + strings.Repeat("s+=1\n", 400) + "print(s)"
	out, err = r.Exec(ctx, big)
	require.NoError(t, err)
	assert.Equal(t, "400\r\n", string(out))

	require.NoError(t, r.ExitRaw(ctx))
	_, err = r.Exec(ctx, "print(1)") // re-enters raw by itself
	require.NoError(t, err)
}

func TestFallbackWithoutRawPaste(t *testing.T) {
	ctx := testCtx(t)
	_, _, r := startBoard(t, sim.Options{NoRawPaste: true}, nil)
	big := "s=0\n" + strings.Repeat("s+=1\n", 300) + "print(s)"
	out, err := r.Exec(ctx, big)
	require.NoError(t, err)
	assert.Equal(t, "300\r\n", string(out))
	assert.False(t, r.RawPaste())
	out, err = r.Exec(ctx, "print('again')")
	require.NoError(t, err)
	assert.Equal(t, "again\r\n", string(out))
}

func TestEnterRawStopsWhileTrueMain(t *testing.T) {
	ctx := testCtx(t)
	_, l, r := startBoard(t, sim.Options{}, map[string]string{
		"main.py": "print('looping')\nwhile True:\n    pass\n",
	})
	_, err := l.Expect("looping", 20*time.Second)
	require.NoError(t, err)
	require.NoError(t, r.EnterRaw(ctx, false))
	v, err := r.Eval(ctx, "1+1")
	require.NoError(t, err)
	assert.Equal(t, "2", v)
}

func TestEnterRawStopsMainBlockedInSocketRead(t *testing.T) {
	ctx := testCtx(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	_, l, r := startBoard(t, sim.Options{}, map[string]string{
		"main.py": "import network,socket\nw=network.WLAN(network.STA_IF)\nw.active(True)\nw.connect('lab','pw')\ns=socket.socket()\ns.connect(socket.getaddrinfo('127.0.0.1'," +
			strconv.Itoa(port) + ")[0][-1])\nprint('reading')\ns.read(1)\n",
	})
	_, err = l.Expect("reading", 20*time.Second)
	require.NoError(t, err)
	select {
	case c := <-accepted:
		defer c.Close()
	case <-time.After(20 * time.Second):
		t.Fatal("main.py never connected")
	}
	require.NoError(t, r.EnterRaw(ctx, true))
	v, err := r.Eval(ctx, "'free'")
	require.NoError(t, err)
	assert.Equal(t, "free", v)
}

func TestGarbageBetweenPrompts(t *testing.T) {
	ctx := testCtx(t)
	_, l, r := startBoard(t, sim.Options{BootGarbage: true}, map[string]string{
		"main.py": "import sys,time\nwhile True:\n    sys.stdout.buffer.write(b'\\xff\\x00\\xfe>raw REPL\\x04OK\\x80\\r\\n')\n    time.sleep_ms(5)\n",
	})
	_, err := l.Expect(`raw REPL`, 20*time.Second)
	require.NoError(t, err)
	require.NoError(t, r.EnterRaw(ctx, false))
	for i := 0; i < 5; i++ {
		v, err := r.Eval(ctx, "'ok%d'"+"%"+strconv.Itoa(i))
		require.NoError(t, err)
		assert.Equal(t, "ok"+strconv.Itoa(i), v)
	}
	lines := l.Lines()
	require.NotEmpty(t, lines)
	assert.Contains(t, lines[0].Text, `\x`, "the boot garbage is in the log, escaped")
}

func TestSoftResetRawRunsBootNotMain(t *testing.T) {
	ctx := testCtx(t)
	_, l, r := startBoard(t, sim.Options{}, map[string]string{
		"boot.py": "print('boot ran')\n",
		"main.py": "print('main ran')\n",
	})
	_, err := l.Expect("main ran", 20*time.Second)
	require.NoError(t, err)
	mark := l.Mark()
	require.NoError(t, r.EnterRaw(ctx, true))
	require.NoError(t, r.SoftResetRaw(ctx))
	v, err := r.Eval(ctx, "2*21")
	require.NoError(t, err)
	assert.Equal(t, "42", v)
	var boots, mains int
	for _, ln := range l.Lines() {
		if ln.Seq < mark {
			continue
		}
		boots += strings.Count(ln.Text, "boot ran")
		mains += strings.Count(ln.Text, "main ran")
	}
	assert.Equal(t, 2, boots, "two soft resets in raw mode run boot.py twice")
	assert.Equal(t, 0, mains, "main.py does not run from the raw REPL")
}

func TestCancelledContextEndsWaits(t *testing.T) {
	_, _, r := startBoard(t, sim.Options{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, r.EnterRaw(ctx, false))
	done := make(chan error, 1)
	go func() {
		_, err := r.Exec(ctx, "import time\ntime.sleep(60)")
		done <- err
	}()
	time.AfterFunc(200*time.Millisecond, cancel)
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(20 * time.Second):
		t.Fatal("Exec did not end with its context")
	}
	// The client recovers: the next call interrupts the sleep and goes on.
	v, err := r.Eval(testCtx(t), "'back'")
	require.NoError(t, err)
	assert.Equal(t, "back", v)
}

// A process that also serves a large fleet holds thousands of sockets; the
// board's port then gets a descriptor beyond select's 1024.
func TestREPLWithTwoThousandSocketsOpen(t *testing.T) {
	testutil.HoldSockets(t, 2000)
	ctx := testCtx(t)
	_, _, r := startBoard(t, sim.Options{}, nil)
	skipped, err := r.Put(ctx, "x.bin", allBytes(2000))
	require.NoError(t, err)
	assert.False(t, skipped)
	got, err := r.Get(ctx, "x.bin")
	require.NoError(t, err)
	assert.Equal(t, allBytes(2000), got)
}
