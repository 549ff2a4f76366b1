package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	err = runSim(context.Background(), []string{"--flash", filepath.Join(file, "flash")}, &out, &errOut)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not a directory")
	assert.Empty(t, out.String(), "nothing on stdout when the board does not start")
}

// simCommand is a running hil sim: the path it printed first, its stdout
// lines after that, and stop, which cancels it and returns its error.
type simCommand struct {
	path  string
	lines *bufio.Reader
	stop  func() error
}

// startSimCommand runs hil sim with args until the test ends (or stop).
func startSimCommand(t *testing.T, args ...string) *simCommand {
	t.Helper()
	outR, outW := io.Pipe()
	errOut := &lockedWriter{w: &strings.Builder{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runSim(ctx, args, outW, errOut)
		outW.Close()
	}()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(20 * time.Second):
				stopErr = errors.New("hil sim did not stop within 20 s of the cancel")
			}
		})
		return stopErr
	}
	t.Cleanup(func() { stop() })
	lines := bufio.NewReader(outR)
	first := make(chan string, 1)
	go func() {
		l, _ := lines.ReadString('\n')
		first <- l
	}()
	select {
	case l := <-first:
		if l == "" {
			errOut.mu.Lock()
			defer errOut.mu.Unlock()
			t.Fatalf("hil sim %v ended: %v; stderr: %s", args, stop(), errOut.w)
		}
		return &simCommand{path: strings.TrimSpace(l), lines: lines, stop: stop}
	case <-time.After(20 * time.Second):
		cancel()
		errOut.mu.Lock()
		defer errOut.mu.Unlock()
		t.Fatalf("no port path printed within 20 s; stderr: %s", errOut.w)
		return nil
	}
}

// --flash DIR is created when it does not exist, for the user alone (it
// will hold config.json), and used.
func TestSimCommandCreatesFlashDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "flash")
	sc := startSimCommand(t, "--flash", dir)
	fi, err := os.Stat(dir)
	require.NoError(t, err)
	assert.True(t, fi.IsDir())
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	port, err := serial.Open(sc.path, &serial.Mode{BaudRate: 115200})
	require.NoError(t, err)
	defer port.Close()
	readUntil(t, port, ">>> ", 20*time.Second)
	_, err = port.Write([]byte("f = open('made-here.txt', 'w'); f.write('hi'); f.close()\r"))
	require.NoError(t, err)
	readUntil(t, port, ">>> ", 20*time.Second)
	var got []byte
	require.Eventually(t, func() bool {
		got, err = os.ReadFile(filepath.Join(dir, "made-here.txt"))
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "the board's file reaches the created directory within 10 s")
	assert.Equal(t, "hi", string(got))
	require.NoError(t, sc.stop())
}

// --link PATH is a symlink to the pty for the run: printed first instead of
// the pty, usable as the port, replacing a stale link a killed run left, and
// gone after the run.
func TestSimCommandLink(t *testing.T) {
	link := filepath.Join(t.TempDir(), "ttyUSB-hil0")
	require.NoError(t, os.Symlink("/dev/pts/99999", link), "a stale link from a killed run")
	sc := startSimCommand(t, "--link", link)
	assert.Equal(t, link, sc.path, "the link is the path printed first")
	dst, err := os.Readlink(link)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(dst, "/dev/pts/") && dst != "/dev/pts/99999", "links to the new pty: %s", dst)
	port, err := serial.Open(link, &serial.Mode{BaudRate: 115200})
	require.NoError(t, err)
	readUntil(t, port, ">>> ", 20*time.Second)
	_, err = port.Write([]byte("print(6*7)\r"))
	require.NoError(t, err)
	readUntil(t, port, "42", 20*time.Second)
	port.Close()
	require.NoError(t, sc.stop())
	_, err = os.Lstat(link)
	assert.True(t, os.IsNotExist(err), "the link is removed on exit: %v", err)
	entries, err := os.ReadDir(filepath.Dir(link))
	require.NoError(t, err)
	assert.Empty(t, entries, "no temporary link left behind")
}

// --link never replaces what is not a link to a pty: a file, or a link to
// something else (a real board's device, say).
func TestSimCommandLinkRefusesToReplace(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ttyUSB0")
	require.NoError(t, os.WriteFile(file, []byte("keep"), 0o600))
	other := filepath.Join(dir, "other")
	require.NoError(t, os.Symlink(file, other))
	for _, c := range []struct{ path, want string }{
		{file, "exists and is not a symlink"},
		{other, "is a symlink to " + file + ", not to a pty"},
	} {
		var out, errOut strings.Builder
		err := runSim(context.Background(), []string{"--link", c.path}, &out, &errOut)
		require.Error(t, err, c.path)
		assert.Contains(t, err.Error(), c.want)
		assert.Empty(t, out.String(), "no port path when the link is refused")
	}
	got, err := os.ReadFile(file)
	require.NoError(t, err)
	assert.Equal(t, "keep", string(got))
	dst, err := os.Readlink(other)
	require.NoError(t, err)
	assert.Equal(t, file, dst)
}

// Where the user may not write (/dev for a non-root user), the error says
// how to get a link that serial-port lists show.
func TestSimLinkPermissionErrorSaysHow(t *testing.T) {
	err := linkError("/dev/ttyUSB-hil0", &os.PathError{Op: "symlink", Path: "/dev/ttyUSB-hil0", Err: os.ErrPermission})
	assert.Contains(t, err.Error(), "sudo ln -sfn")
	assert.Contains(t, err.Error(), "sim/README.md")
}
