package main

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.bug.st/serial"
)

// readUntil reads from r until s is seen or the deadline passes (the read is abandoned then).
func readUntil(t *testing.T, r io.Reader, s string, d time.Duration) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		var sb strings.Builder
		buf := make([]byte, 256)
		for !strings.Contains(sb.String(), s) {
			n, err := r.Read(buf)
			sb.Write(buf[:n])
			if err != nil {
				break
			}
		}
		got <- sb.String()
	}()
	select {
	case out := <-got:
		require.Contains(t, out, s)
		return out
	case <-time.After(d):
		t.Fatalf("timed out waiting for %q", s)
		return ""
	}
}

func TestSimCommandPrintsPortAndLogsPins(t *testing.T) {
	outR, outW := io.Pipe()
	errOut := &lockedWriter{w: &strings.Builder{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runSim(ctx, []string{"--flash", t.TempDir(), "--baud", "115200"}, outW, errOut)
		outW.Close()
	}()
	lines := bufio.NewReader(outR)
	first := make(chan string, 1)
	go func() {
		l, _ := lines.ReadString('\n')
		first <- l
	}()
	var path string
	select {
	case l := <-first:
		path = strings.TrimSpace(l)
	case <-time.After(20 * time.Second):
		cancel()
		errOut.mu.Lock()
		defer errOut.mu.Unlock()
		t.Fatalf("no port path printed; stderr: %s", errOut.w)
	}
	require.True(t, strings.HasPrefix(path, "/dev/"), "first line is the pty path alone: %q", path)

	port, err := serial.Open(path, &serial.Mode{BaudRate: 115200})
	require.NoError(t, err)
	defer port.Close()
	readUntil(t, port, ">>> ", 20*time.Second)
	_, err = port.Write([]byte("from machine import Pin; Pin(4, Pin.OUT).on()\r"))
	require.NoError(t, err)
	line := readUntil(t, lines, "pin 4 = 1\n", 20*time.Second)
	assert.Regexp(t, `^\d\d:\d\d:\d\d\.\d{3} pin 4 = 1`, line)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err)
	case <-time.After(20 * time.Second):
		t.Fatal("hil sim did not stop on cancel")
	}
}

func TestSimCommandRejectsBadFlags(t *testing.T) {
	var out, errOut strings.Builder
	err := runSim(context.Background(), []string{"--redirect", "nonsense"}, &out, &errOut)
	require.Error(t, err)
	assert.Contains(t, errOut.String(), "host:port=host:port")
	err = runSim(context.Background(), []string{"--flash", "/no/such/dir"}, &out, &errOut)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a directory")
	assert.Empty(t, out.String(), "nothing on stdout when the board does not start")
}
