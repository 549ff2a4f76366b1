package link

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/onenet-hil/hil/internal/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.bug.st/serial"
)

// peer is the far end of a pty pair: whatever it writes, the link reads.
func newPeer(t *testing.T) (master *os.File, path string) {
	t.Helper()
	m, tty, err := pty.Open()
	require.NoError(t, err)
	t.Cleanup(func() { m.Close(); tty.Close() })
	return m, tty.Name()
}

func openLink(t *testing.T, path string, opts Options) *Link {
	t.Helper()
	l, err := Open(path, opts)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l
}

func TestLinesSurviveGarbageAndAreLogged(t *testing.T) {
	m, path := newPeer(t)
	logPath := filepath.Join(t.TempDir(), "serial.log")
	l := openLink(t, path, Options{LogPath: logPath})

	boot := []byte("\x00\xe0\x10\x8c\xfe\xff ets Jan  8 2013,rst cause:2\r\n\xc3\x28\xa0\xa1\r\n")
	_, err := m.Write(boot)
	require.NoError(t, err)
	_, err = m.Write([]byte("MicroPython v1.19 on 2022-06-18; ESP module with ESP8266\r\nHIL boot fw=1 id=503367129\r\n"))
	require.NoError(t, err)

	got, err := l.Expect(`^HIL boot fw=(\S+) id=(\d+)$`, 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, []string{"HIL boot fw=1 id=503367129", "1", "503367129"}, got.Groups)

	lines := l.Lines()
	require.Len(t, lines, 4)
	assert.Equal(t, `\x00\xe0\x10\x8c\xfe\xff ets Jan  8 2013,rst cause:2`, lines[0].Text)
	assert.Equal(t, `\xc3(\xa0\xa1`, lines[1].Text)
	assert.False(t, lines[0].Time.IsZero())
	assert.False(t, lines[3].Time.Before(lines[0].Time))

	require.NoError(t, l.Close())
	data, err := os.ReadFile(logPath)
	require.NoError(t, err)
	logLines := strings.Split(strings.TrimSpace(string(data)), "\n")
	require.Len(t, logLines, 4)
	assert.Regexp(t, `^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z HIL boot fw=1 id=503367129$`, logLines[3])
	for _, ln := range logLines {
		assert.True(t, isValidUTF8(ln), "log line is not valid UTF-8: %q", ln)
	}
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "?") == s }

func TestExpectAdvancesAndTimesOutWithLastLines(t *testing.T) {
	m, path := newPeer(t)
	l := openLink(t, path, Options{})
	_, err := m.Write([]byte("HIL led state=1 cmd=on via=x\r\nHIL led state=0 cmd=off via=x\r\nnoise\r\n"))
	require.NoError(t, err)

	a, err := l.Expect(`HIL led state=(\d)`, 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "1", a.Groups[1])
	b, err := l.Expect(`HIL led state=(\d)`, 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "0", b.Groups[1], "the second Expect must look after the first match")

	_, err = l.Expect(`HIL led state=(\d)`, 200*time.Millisecond)
	require.Error(t, err)
	var we *WaitError
	require.ErrorAs(t, err, &we)
	assert.Nil(t, we.Cause)
	assert.Contains(t, err.Error(), "timed out after 200ms")
	assert.Contains(t, err.Error(), "| ")
	assert.Contains(t, err.Error(), "noise")

	_, err = l.Expect(`(`, time.Second)
	assert.ErrorContains(t, err, "bad pattern")
}

func TestExpectFromSeesOnlyLaterLines(t *testing.T) {
	ctx := context.Background()
	m, path := newPeer(t)
	l := openLink(t, path, Options{})
	_, err := m.Write([]byte("HIL mqtt up broker=old\r\n"))
	require.NoError(t, err)
	_, err = l.ExpectFrom(ctx, 0, regexp.MustCompile(`mqtt up`), 5*time.Second)
	require.NoError(t, err)

	mark := l.Mark()
	_, err = l.ExpectFrom(ctx, mark, regexp.MustCompile(`mqtt up`), 100*time.Millisecond)
	require.Error(t, err, "a line from before the mark must not match")

	_, err = m.Write([]byte("HIL mqtt up broker=new\r\n"))
	require.NoError(t, err)
	got, err := l.ExpectFrom(ctx, mark, regexp.MustCompile(`mqtt up broker=(\w+)`), 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "new", got.Groups[1])
}

func TestRawBytesBesideLinesAndWrite(t *testing.T) {
	ctx := context.Background()
	m, path := newPeer(t)
	l := openLink(t, path, Options{})

	_, err := l.Write([]byte("\r\x03\x03"))
	require.NoError(t, err)
	buf := make([]byte, 3)
	require.NoError(t, m.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = ioReadFull(m, buf)
	require.NoError(t, err)
	assert.Equal(t, []byte("\r\x03\x03"), buf)

	_, err = m.Write([]byte("raw REPL; CTRL-B to exit\r\n>OK\x04\x00\xff\x04>"))
	require.NoError(t, err)
	got, err := l.ReadUntil(ctx, []byte("exit\r\n>"), 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "raw REPL; CTRL-B to exit\r\n>", string(got))
	two, err := l.ReadN(ctx, 2, 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "OK", string(two))
	rest, err := l.ReadUntil(ctx, []byte(">"), 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, []byte("\x04\x00\xff\x04>"), rest)

	_, err = l.ReadN(ctx, 1, 100*time.Millisecond)
	assert.ErrorContains(t, err, "timed out")
	tail := l.Tail(5)
	require.NotEmpty(t, tail)
	assert.Equal(t, `>OK\x04\x00\xff\x04>…`, tail[len(tail)-1].Text, "the unfinished line shows in the tail")
}

func ioReadFull(f *os.File, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := f.Read(buf[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func TestLongLineIsSplitAndRingIsBounded(t *testing.T) {
	m, path := newPeer(t)
	l := openLink(t, path, Options{MaxLines: 10})
	_, err := m.Write([]byte(strings.Repeat("x", maxLineBytes+10) + "\r\n"))
	require.NoError(t, err)
	for i := 0; i < 30; i++ {
		_, err = m.Write([]byte("line\r\n"))
		require.NoError(t, err)
	}
	_, err = m.Write([]byte("last\r\n"))
	require.NoError(t, err)
	_, err = l.Expect(`^last$`, 5*time.Second)
	require.NoError(t, err)
	lines := l.Lines()
	assert.Len(t, lines, 10)
	assert.Equal(t, "last", lines[9].Text)
	assert.Equal(t, int64(32), lines[9].Seq, "4096 x's, 10 x's, 30 lines, last")
}

func TestPortGoneEndsWaitsAtOnce(t *testing.T) {
	ctx := context.Background()
	m, path := newPeer(t)
	l := openLink(t, path, Options{})
	_, err := m.Write([]byte("booting\r\n"))
	require.NoError(t, err)
	_, err = l.Expect("booting", 5*time.Second)
	require.NoError(t, err)

	errc := make(chan error, 1)
	go func() {
		_, err := l.Expect("never", time.Minute)
		errc <- err
	}()
	require.NoError(t, m.Close())
	select {
	case err := <-errc:
		require.Error(t, err)
		assert.Contains(t, err.Error(), "went away")
		assert.Contains(t, err.Error(), "booting")
	case <-time.After(10 * time.Second):
		t.Fatal("Expect did not return after the port went away")
	}
	select {
	case <-l.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("link not done")
	}
	got, err := l.ReadN(ctx, 9, time.Minute)
	require.NoError(t, err, "bytes received before the port went away stay readable")
	assert.Equal(t, "booting\r\n", string(got))
	_, err = l.ReadN(ctx, 1, time.Minute)
	assert.ErrorContains(t, err, "went away")
	_, err = l.Write([]byte("x"))
	assert.ErrorContains(t, err, "went away")
}

func TestPtyHasNoModemLines(t *testing.T) {
	_, path := newPeer(t)
	l := openLink(t, path, Options{})
	assert.ErrorIs(t, l.SetRTS(true), ErrNoModemLines)
	assert.ErrorIs(t, l.SetDTR(false), ErrNoModemLines)
	assert.False(t, l.HasModemLines(), "a pty has no DTR/RTS")
}

// Linux asserts DTR and RTS when a tty opens; RTS on with DTR off holds an
// ESP8266 in reset. Open must ask go.bug.st/serial for both off ("run"),
// and still open a pty, which cannot set them.
func TestOpenSetsDTRAndRTSOff(t *testing.T) {
	m := portMode(115200, true)
	require.NotNil(t, m.InitialStatusBits, "without InitialStatusBits Linux leaves DTR and RTS on")
	assert.Equal(t, serial.ModemOutputBits{DTR: false, RTS: false}, *m.InitialStatusBits)
	assert.Equal(t, 8, m.DataBits)
	assert.Nil(t, portMode(115200, false).InitialStatusBits)

	// The library refuses a pty when asked to set the lines; that refusal,
	// and only that one, makes Open retry without them.
	_, path := newPeer(t)
	p, err := serial.Open(path, portMode(115200, true))
	if err == nil {
		p.Close()
		t.Skip("this kernel lets a pty set modem lines")
	}
	assert.True(t, noModemLinesAtOpen(err), "pty refusal not recognised: %v", err)
	_, err = serial.Open(filepath.Join(t.TempDir(), "ttyUSB9"), portMode(115200, true))
	require.Error(t, err)
	assert.False(t, noModemLinesAtOpen(err), "a missing port is not a port without modem lines")
	l := openLink(t, path, Options{})
	assert.False(t, l.HasModemLines())
}

// A process holding 2,000 sockets (a broker with a fleet) opens its port
// above descriptor 1024, where go.bug.st/serial's own Read panics in
// select. The link must work there.
func TestWorksWithTwoThousandSocketsOpen(t *testing.T) {
	testutil.HoldSockets(t, 2000)
	m, path := newPeer(t)
	l := openLink(t, path, Options{})
	fd, err := portFD(l.port)
	require.NoError(t, err)
	require.GreaterOrEqual(t, fd, 1024, "precondition: the port's descriptor is beyond select's reach")

	// The trap is real: the library's own Read panics on this descriptor.
	assert.Panics(t, func() {
		buf := make([]byte, 1)
		l.port.SetReadTimeout(time.Millisecond)
		l.port.Read(buf)
	})

	_, err = m.Write([]byte("HIL boot fw=1 id=7\r\n"))
	require.NoError(t, err)
	_, err = l.Expect(`HIL boot`, 5*time.Second)
	require.NoError(t, err)
	_, err = l.Write([]byte("ping"))
	require.NoError(t, err)
	buf := make([]byte, 4)
	require.NoError(t, m.SetReadDeadline(time.Now().Add(5*time.Second)))
	_, err = ioReadFull(m, buf)
	require.NoError(t, err)
	assert.Equal(t, "ping", string(buf))
}

func TestOpenMissingPortFailsClearly(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "ttyUSB9"), Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ttyUSB9")
}

func TestWriteStallIsBounded(t *testing.T) {
	_, path := newPeer(t) // the peer never reads
	l := openLink(t, path, Options{WriteTimeout: 300 * time.Millisecond})
	big := make([]byte, 1<<20)
	_, err := l.Write(big)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "stalled")
}

var _ = serial.NoParity

// After the ring wrapped, ExpectFrom still finds lines by sequence number,
// skips those that fell out, and the Log writer got every line.
func TestExpectFromAfterTheRingWrappedAndLogWriter(t *testing.T) {
	m, path := newPeer(t)
	var lw testutil.Buffer
	l := openLink(t, path, Options{MaxLines: 4, Log: &lw})
	for i := 0; i < 10; i++ {
		_, err := m.Write([]byte("line " + string(rune('0'+i)) + "\r\n"))
		require.NoError(t, err)
	}
	_, err := l.Expect(`^line 9$`, 5*time.Second)
	require.NoError(t, err)
	ctx := context.Background()
	first, err := l.ExpectFrom(ctx, 0, regexp.MustCompile(``), time.Second)
	require.NoError(t, err)
	assert.Equal(t, int64(6), first.Line.Seq, "lines 0..5 fell out of a ring of 4")
	assert.Equal(t, "line 6", first.Line.Text)
	eight, err := l.ExpectFrom(ctx, 7, regexp.MustCompile(`^line [89]$`), time.Second)
	require.NoError(t, err)
	assert.Equal(t, "line 8", eight.Line.Text)
	_, err = l.ExpectFrom(ctx, 10, regexp.MustCompile(``), 50*time.Millisecond)
	assert.ErrorContains(t, err, "timed out")
	require.NoError(t, l.Close())
	assert.Equal(t, 10, strings.Count(lw.String(), "\n"))
	assert.Regexp(t, `(?m)^\d{4}-\d\d-\d\dT\S+Z line 9$`, lw.String())
}
