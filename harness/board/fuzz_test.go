package board

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/link"
)

// FuzzAnswers feeds arbitrary board output to every parser of the
// board's answers: an error or a value, never a panic, and a value only
// when it is consistent with the bytes.
func FuzzAnswers(f *testing.F) {
	h := SumHex([]byte("x"))
	for _, s := range []string{
		"32768 123\r\n", "16384 0\r\n", "-\r\n", "1 2 3", "abc def", "9223372036854775808 1",
		`[["main.py", 32768, 10], ["lib", 16384, 0]]` + "\r\n", "null\r\n", `[["a"]]`, `[[1, 2, 3]]`, `[["../x", 32768, 1]]`,
		h + "\r\n-\r\n", h + "\r\n", "zz\r\n-\r\n", strings.Repeat("a", 5000),
		"6869\r\n.\r\n", ".\r\n", "-\r\n", "6g\r\n.\r\n",
		"R\x01", "R\x00", "\x00\x01", "", "\x04\x04>", "out\x04err\x04>", "\x04Traceback\r\nOSError: 2\x04>",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := parseStat("/p", b); err == nil {
			assert.GreaterOrEqual(t, e.Size, int64(0))
			assert.Equal(t, "/p", e.Path)
		}
		if es, err := parseList("/d", b); err == nil {
			for _, e := range es {
				assert.True(t, strings.HasPrefix(e.Path, "/d/"), "entry %q escapes /d", e.Path)
				assert.GreaterOrEqual(t, e.Size, int64(0))
			}
		} else if errors.Is(err, fs.ErrNotExist) {
			assert.Equal(t, "null", string(bytes.TrimSpace(b)))
		}
		paths := []string{"/a", "/b"}
		if hs, err := parseHashes(paths, b); err == nil {
			for _, p := range paths {
				v, ok := hs[p]
				assert.True(t, ok)
				if v != "" {
					_, derr := hex.DecodeString(v)
					assert.NoError(t, derr)
					assert.Len(t, v, 64)
				}
			}
		}
		if data, err := parseGet("/g", b); err == nil {
			assert.LessOrEqual(t, len(data), len(b)/2)
		}
		if w, err := parseWindow(b); err == nil {
			assert.Positive(t, w)
			assert.Len(t, b, 2)
		}
		if parsePasteAnswer(b) == answerAccepted {
			assert.Equal(t, "R\x01", string(b))
		}
		out, errOut, done := splitExecReply(b)
		assert.LessOrEqual(t, len(out)+len(errOut), len(b))
		if done {
			assert.Equal(t, 2, bytes.Count(b[:len(out)+len(errOut)+2], []byte{0x04}))
		}
		_ = (&PythonError{Traceback: string(b)}).Exception()
	})
}

// FuzzExecReply plays a board on a pty whose reply to a block of code is
// the fuzzer's bytes (then "\x04\x04>" so that it always ends), and runs
// REPL.ExecSplit through the real link: the reply is split exactly as
// splitExecReply says, within a bound, whatever the bytes.
func FuzzExecReply(f *testing.F) {
	for _, s := range []string{"", "hello\r\n", "out\x04err\x04>", "\x04Traceback (most recent call last):\r\nOSError: 2\r\n\x04>",
		"a>b\x04c>d", "raw REPL; CTRL-B to exit\r\n>", "OK", "\x04", "\x01\x02\x03\xff", strings.Repeat("x\r\n", 3000)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		full := append(append([]byte{}, reply...), "\x04\x04>"...)
		wantOut, wantErr, ok := splitExecReply(full)
		require.True(t, ok)

		ptmx, tty, err := pty.Open()
		require.NoError(t, err)
		defer ptmx.Close()
		name := tty.Name()
		defer tty.Close()
		l, err := link.Open(name, link.Options{MaxLines: 100})
		require.NoError(t, err)
		defer l.Close()
		go fakeRawBoard(ptmx, append([]byte("OK"), full...))

		repl := NewREPL(l, Options{NoRawPaste: true, Step: 5 * time.Second, ExecTimeout: 5 * time.Second})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, errOut, err := repl.ExecSplit(ctx, "print(1)")
		require.NoError(t, err, "serial tail: %v", l.Tail(5))
		assert.Equal(t, wantOut, out)
		assert.Equal(t, wantErr, errOut)
	})
}

// fakeRawBoard answers the raw REPL protocol on the pty's master side:
// the banner after Ctrl-A, reply after the block's Ctrl-D. It stops when
// the pty closes.
func fakeRawBoard(m *os.File, reply []byte) {
	buf := make([]byte, 4096)
	for {
		n, err := m.Read(buf)
		if err != nil {
			return
		}
		for _, c := range buf[:n] {
			switch c {
			case 0x01:
				m.Write(rawBanner)
			case 0x04:
				m.Write(reply)
			}
		}
	}
}
