package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/sim"
)

// freePort picks a loopback port for the broker of a real-board-style run
// (hil run takes a port number there, not :0).
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// realBoardEnv makes hil run treat a pty like a real board's port.
func realBoardEnv(t *testing.T, password string) {
	t.Setenv(rig.EnvPort, "")
	t.Setenv(rig.EnvWiFiSSID, "vanish-lab")
	t.Setenv(rig.EnvWiFiPassword, password)
	t.Setenv(rig.EnvBrokerHost, "127.0.0.1")
	t.Setenv(rig.EnvBrokerPort, strconv.Itoa(freePort(t)))
}

// firstWrite is closed when a file is first written in dir (inotify: the
// flasher's first upload lands on the virtual board's flash).
func firstWrite(t *testing.T, dir string) <-chan struct{} {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	require.NoError(t, err)
	_, err = unix.InotifyAddWatch(fd, dir, unix.IN_CLOSE_WRITE|unix.IN_MODIFY)
	require.NoError(t, err)
	f := os.NewFile(uintptr(fd), "inotify")
	t.Cleanup(func() { f.Close() })
	ch := make(chan struct{})
	go func() {
		buf := make([]byte, 4096)
		if n, _ := f.Read(buf); n > 0 {
			close(ch)
		}
	}()
	return ch
}

const vanishScenario = `name: long
steps:
  - send: on
  - expect: {led: 1}
  - repeat: 40
    steps:
      - wait: 100ms
      - send: toggle
`

type vanishRun struct {
	code                    int
	took                    time.Duration
	stdout, stderr          string
	junit, json, html, slog string
}

// runVanishing plays hil run on the pty of b, a virtual board driven as a
// real one, and unplugs it (closes the pty and stops the board) when
// trigger fires.
func runVanishing(t *testing.T, b *sim.Board, trigger <-chan struct{}) vanishRun {
	dir := runDir(t, map[string]string{"a_long.yaml": vanishScenario, "b_next.yaml": runPass})
	out := t.TempDir()
	v := vanishRun{junit: filepath.Join(out, "j.xml"), json: filepath.Join(out, "r.json"),
		html: filepath.Join(out, "r.html"), slog: filepath.Join(out, "serial.log")}
	unplugged := make(chan struct{})
	go func() {
		defer close(unplugged)
		select {
		case <-trigger:
			b.Close()
		case <-time.After(2 * time.Minute):
		}
	}()
	var stdout, stderr bytes.Buffer
	start := time.Now()
	v.code = runMain([]string{"run", "--port", b.Port(), "--scenarios", dir, "--junit", v.junit, "--json", v.json,
		"--html", v.html, "--log", v.slog}, &stdout, &stderr)
	v.took = time.Since(start)
	<-unplugged
	v.stdout, v.stderr = stdout.String(), stderr.String()
	return v
}

// checkPartial: exit 1 in bounded time, a clear message, every report and
// the serial log written, each scenario failed or not run with the reason.
func checkPartial(t *testing.T, v vanishRun, port string) {
	t.Helper()
	msg := "stdout:\n" + v.stdout + "\nstderr:\n" + v.stderr
	assert.Equal(t, 1, v.code, msg)
	assert.Less(t, v.took, 90*time.Second, "bounded")
	assert.Contains(t, v.stdout, "serial port "+port+" went away", msg)
	assert.Contains(t, v.stdout, "0 passed", msg)

	js, err := os.ReadFile(v.json)
	require.NoError(t, err, msg)
	var rep struct {
		Scenarios []struct{ Name, Status, Reason string }
	}
	require.NoError(t, json.Unmarshal(js, &rep), string(js))
	require.Len(t, rep.Scenarios, 2)
	assert.Contains(t, rep.Scenarios[0].Reason, "went away")
	assert.Equal(t, "skip", rep.Scenarios[1].Status, "after the board is gone the rest is not attempted")
	assert.Contains(t, rep.Scenarios[1].Reason, "not run: the board is gone")
	for _, sc := range rep.Scenarios {
		assert.NotEqual(t, "pass", strings.ToLower(sc.Status), sc.Name)
	}
	jx, err := os.ReadFile(v.junit)
	require.NoError(t, err)
	var suites struct {
		XMLName xml.Name
	}
	require.NoError(t, xml.Unmarshal(jx, &suites), string(jx))
	assert.Contains(t, string(jx), "went away")
	h, err := os.ReadFile(v.html)
	require.NoError(t, err)
	assert.Contains(t, string(h), "went away")
	assert.Contains(t, string(h), "</html>")
	sl, err := os.ReadFile(v.slog)
	require.NoError(t, err)
	assert.NotEmpty(t, sl, "the serial lines before the board vanished are in the log")
}

// A board unplugged in the middle of the flash: hil run ends with a clear
// error in bounded time and still writes every report and the serial log.
func TestRunBoardVanishesMidFlash(t *testing.T) {
	realBoardEnv(t, "vanish-wifi-secret-1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	flash := t.TempDir()
	b, err := sim.Start(ctx, sim.Options{FlashDir: flash, LineRate: true})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	v := runVanishing(t, b, firstWrite(t, flash))
	checkPartial(t, v, b.Port())
	entries, _ := os.ReadDir(flash)
	assert.Less(t, len(entries), 5, "unplugged before the whole firmware was on the board")
	assert.Contains(t, v.stdout, "setting up the board")
}

// A board unplugged in the middle of a scenario (after its first command
// lit the LED): the same.
func TestRunBoardVanishesMidScenario(t *testing.T) {
	realBoardEnv(t, "vanish-wifi-secret-2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := sim.Start(ctx, sim.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	pins, unsub := b.PinChanges()
	lit := make(chan struct{})
	go func() {
		defer unsub()
		for c := range pins {
			if c.Pin == 4 && c.Value == 1 {
				close(lit)
				return
			}
		}
	}()
	v := runVanishing(t, b, lit)
	checkPartial(t, v, b.Port())
	assert.Contains(t, v.stdout, "step ", "the failure names the step it happened at")
}
