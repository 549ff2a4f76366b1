package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.bug.st/serial"

	"github.com/onenet-hil/hil/harness/board"
	"github.com/onenet-hil/hil/harness/link"
)

// debianPython is the interpreter of Debian's thonny package (Thonny's
// back-end runs on the python3 that has it).
const debianPython = "/usr/bin/python3"

// requireThonny skips the test when Debian's thonny is not installed (or
// the modules of it the test uses do not import).
func requireThonny(t *testing.T, modules ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, debianPython, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput()
	if err != nil {
		t.Skipf("Debian's thonny is not installed (apt-get install thonny): %s: %v %s", debianPython, err, strings.TrimSpace(string(out)))
	}
}

// Thonny's workflow on the virtual board, headless: Thonny's own ESP8266
// back-end (Debian's thonny 4) runs as a subprocess, as the IDE starts it,
// on hil sim's --link, and is driven through its message protocol by
// testdata/thonny_backend.py: connect, list the files, save main.py to the
// board, open it back, download it, upload a folder, run, interrupt, soft
// reboot, import the uploaded module, help('modules'), disconnect. The
// saved and uploaded files are on the board's flash (the host directory),
// not on the host's own file system.
func TestThonnyBackendWorkflow(t *testing.T) {
	requireThonny(t, "thonny.plugins.esp.esp_back")
	rootMain := "/main.py"
	_, statErr := os.Stat(rootMain)
	hadRootMain := statErr == nil

	flash := t.TempDir()
	link := filepath.Join(t.TempDir(), "ttyUSB-hil0")
	sc := startSimCommand(t, "--flash", flash, "--link", link)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, debianPython, filepath.Join("testdata", "thonny_backend.py"), sc.path, t.TempDir())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the Thonny driver failed (%v):\n%s", ctx.Err(), out)
	// The module table Thonny reads through builtins.help('modules') is the
	// board's (sim/runtime/rom/_boot.py).
	assert.Contains(t, string(out), "STEP builtin modules ok")
	for _, step := range []string{"connect", "list", "save main.py", "open main.py", "download", "upload", "run", "interrupt",
		"soft reboot", "import uploaded", "help modules", "disconnect"} {
		assert.Contains(t, string(out), "STEP "+step+" ok", "driver output:\n%s", out)
	}
	t.Logf("Thonny's back-end on %s:\n%s", sc.path, out)

	// Thonny let go of the board in the friendly REPL, as it found it.
	port, err := serial.Open(sc.path, &serial.Mode{BaudRate: 115200})
	require.NoError(t, err)
	defer port.Close()
	_, err = port.Write([]byte("print(6*7)\r"))
	require.NoError(t, err)
	readUntil(t, port, "42\r\n>>> ", 20*time.Second)

	var got []byte
	require.Eventually(t, func() bool {
		got, err = os.ReadFile(filepath.Join(flash, "main.py"))
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "main.py saved by Thonny reaches the board's flash within 10 s")
	assert.Contains(t, string(got), "print('hello from main.py')")
	got, err = os.ReadFile(filepath.Join(flash, "lib", "util.py"))
	require.NoError(t, err, "the folder uploaded by Thonny is on the board's flash")
	assert.Equal(t, "def answer():\n    return 42\n", string(got))
	if !hadRootMain {
		_, err := os.Stat(rootMain)
		assert.True(t, os.IsNotExist(err), "Thonny's save wrote nothing to the host's root directory")
	}
}

// Thonny's helper (mp_back.py, class __thonny_helper) imports modules in a
// class body; MicroPython then asks each for __set_name__, which a board
// module must answer as a C module does (no such attribute), not with an
// error. Needs no thonny.
func TestBoardModulesInAClassBody(t *testing.T) {
	b := startSim(t)
	l, err := link.Open(b.Port(), link.Options{})
	require.NoError(t, err)
	defer l.Close()
	repl := board.NewREPL(l, board.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := repl.Exec(ctx, "class H:\n    import builtins, sys, os, time, gc, micropython, machine, network, socket, select, esp\nprint(H.sys.platform, H.os.sep)\n")
	require.NoError(t, err)
	assert.Equal(t, "esp8266 /", strings.TrimSpace(string(out)))
}

// Thonny's port list (pyserial's comports(), which Thonny's front end
// checks a configured port against) shows the port the way sim/README.md
// tells a user without root to set it up: a link in /dev, made once, to a
// path of theirs where hil sim --link puts its link to the pty. Making the
// /dev link needs root; skipped otherwise.
func TestThonnyListsTheLinkedPort(t *testing.T) {
	requireThonny(t, "thonny.plugins.micropython.mp_front")
	devLink := fmt.Sprintf("/dev/ttyUSB-hil-test%d", os.Getpid())
	userLink := filepath.Join(t.TempDir(), "ttyUSB-hil0")
	if err := os.Symlink(userLink, devLink); err != nil {
		t.Skipf("cannot write in /dev (%v): the link's place in serial-port lists needs root once", err)
	}
	t.Cleanup(func() { os.Remove(devLink) })
	sc := startSimCommand(t, "--link", userLink)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, debianPython, "-c",
		"from thonny.plugins.micropython.mp_front import list_serial_ports, get_port_info\n"+
			"print([p.device for p in list_serial_ports()])\nget_port_info("+fmt.Sprintf("%q", devLink)+")").CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "'"+devLink+"'", "Thonny's port list")
	port, err := serial.Open(devLink, &serial.Mode{BaudRate: 115200})
	require.NoError(t, err)
	_, err = port.Write([]byte("print(6*7)\r"))
	require.NoError(t, err)
	readUntil(t, port, "42", 20*time.Second)
	port.Close()
	require.NoError(t, sc.stop())
	_, err = os.Lstat(userLink)
	assert.True(t, os.IsNotExist(err), "hil sim's link is gone after the run")
}

// picocom, the terminal people use for a serial board, works on the
// linked port: a typed line runs and its output comes back.
func TestPicocomOnTheLinkedPort(t *testing.T) {
	picocom, err := exec.LookPath("picocom")
	if err != nil {
		t.Skip("picocom is not installed (apt-get install picocom)")
	}
	link := filepath.Join(t.TempDir(), "ttyUSB-hil0")
	sc := startSimCommand(t, "--link", link)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// -x: exit after that many ms without input from the board.
	cmd := exec.CommandContext(ctx, picocom, "-q", "-b", "115200", "-x", "1500", sc.path)
	cmd.Stdin = strings.NewReader("print(6*7)\r")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "42\r\n>>> ", "picocom's output:\n%s", out)
}
