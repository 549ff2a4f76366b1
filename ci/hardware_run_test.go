//go:build unix

package ci_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/internal/testutil"
)

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines before]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// deadline bounds a step at d, and ends it 30 s before the test binary's
// own -timeout so that the failure shows what was seen.
func deadline(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	dl := time.Now().Add(d)
	if tdl, ok := t.Deadline(); ok && tdl.Add(-30*time.Second).Before(dl) {
		dl = tdl.Add(-30 * time.Second)
	}
	return context.WithDeadline(context.Background(), dl)
}

// command is a child in its own process group, killed whole when ctx ends
// (a script's `go test` and its test binary with it).
func command(ctx context.Context, dir string, env []string, name string, args ...string) (*exec.Cmd, *testutil.Buffer) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	out := &testutil.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	return cmd, out
}

// run runs a command to its end within d and returns its output; a
// timeout is an error naming the bound.
func run(t *testing.T, d time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := deadline(t, d)
	defer cancel()
	cmd, out := command(ctx, dir, env, name, args...)
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: still running after %s, killed: %w", name, strings.Join(args, " "), d, err)
	}
	return out.String(), err
}

// baseEnv is this process's environment without the HIL_ variables, so
// that a developer's own rack settings do not leak into the tests.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HIL_") {
			env = append(env, kv)
		}
	}
	return env
}

// TestHardwareRunNeedsItsEnvironment: without one of its four variables the
// nightly script stops at once, naming the variable, before it makes the
// report folder or starts Go.
func TestHardwareRunNeedsItsEnvironment(t *testing.T) {
	root := repoRoot(t)
	all := map[string]string{
		"HIL_PORT":          "/dev/null",
		"HIL_WIFI_SSID":     "lab",
		"HIL_WIFI_PASSWORD": "hil-ci-unused-password",
		"HIL_BROKER_HOST":   "127.0.0.1",
	}
	for missing := range all {
		t.Run(missing, func(t *testing.T) {
			reports := filepath.Join(t.TempDir(), "reports")
			env := append(baseEnv(), "HIL_REPORT_DIR="+reports)
			for k, v := range all {
				if k != missing {
					env = append(env, k+"="+v)
				}
			}
			out, err := run(t, 30*time.Second, root, env, "bash", "ci/hardware-run.sh")
			var exit *exec.ExitError
			require.ErrorAs(t, err, &exit, "the script ran without %s:\n%s", missing, out)
			assert.Equal(t, 1, exit.ExitCode(), out)
			assert.Contains(t, out, missing+": set "+missing)
			assert.NoDirExists(t, reports, "it went on without %s", missing)
		})
	}
}

// sim is a `hil sim` child: a virtual board on a pty.
type sim struct {
	port   string
	stdout *testutil.Buffer // after the port line: one line per pin change
	stderr *testutil.Buffer
}

// startSim starts `hil sim` and reads its pty path (the first line of its
// output); the board is stopped with Ctrl-C when the test ends.
func startSim(t *testing.T, hil string) *sim {
	t.Helper()
	s := &sim{stdout: &testutil.Buffer{}, stderr: &testutil.Buffer{}}
	cmd := exec.Command(hil, "sim", "--flash", t.TempDir())
	cmd.Env = baseEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = s.stderr
	pipe, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	first := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		r := bufio.NewReader(pipe)
		line, _ := r.ReadString('\n')
		first <- line
		_, _ = io.Copy(s.stdout, r) // keep reading: a full pipe would stall the board
		done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-done:
			assert.NoError(t, err, "hil sim did not stop cleanly on Ctrl-C; stderr:\n%s", tail(s.stderr.String(), 20))
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			t.Errorf("hil sim still running 15 s after Ctrl-C, killed; stderr:\n%s", tail(s.stderr.String(), 20))
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("hil sim (pid %d) did not end after SIGKILL", cmd.Process.Pid)
			}
		}
	})
	select {
	case line := <-first:
		s.port = strings.TrimSpace(line)
	case <-time.After(30 * time.Second):
		t.Fatalf("hil sim printed no pty path in 30 s; stderr:\n%s", tail(s.stderr.String(), 20))
	}
	require.True(t, strings.HasPrefix(s.port, "/dev/"),
		"hil sim's first line is not a pty path: %q; stderr:\n%s", s.port, tail(s.stderr.String(), 20))
	return s
}

// freePort is a loopback TCP port nobody listens on now: the run's broker
// does not take 6002 or 1883, which another run or a system Mosquitto may
// hold.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

type junitResult struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

type junit struct {
	Tests    int `xml:"tests,attr"`
	Failures int `xml:"failures,attr"`
	Skipped  int `xml:"skipped,attr"`
	Suites   []struct {
		Cases []struct {
			Name    string       `xml:"name,attr"`
			File    string       `xml:"file,attr"`
			Failure *junitResult `xml:"failure"`
			Error   *junitResult `xml:"error"`
			Skipped *junitResult `xml:"skipped"`
		} `xml:"testcase"`
	} `xml:"testsuite"`
}

// TestHardwareRunOnVirtualBoard runs the nightly script, ci/hardware-run.sh,
// as the rack does — HIL_PORT, HIL_WIFI_*, HIL_BROKER_HOST, reports in
// HIL_REPORT_DIR — with a virtual board's pty (`hil sim`) as the serial
// board, once per platform of the nightly matrix.
func TestHardwareRunOnVirtualBoard(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the nightly run compiles and plays the suite (about 15 s)")
	}
	_, err := exec.LookPath("node")
	require.NoError(t, err, "the virtual board runs MicroPython on Node.js (.ci/run installs it)")
	root := repoRoot(t)
	scenarios, err := filepath.Glob(filepath.Join(root, "scenarios", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, scenarios)

	hil := filepath.Join(t.TempDir(), "hil")
	out, err := run(t, 5*time.Minute, root, baseEnv(), "go", "build", "-o", hil, "./cmd/hil")
	require.NoError(t, err, "go build ./cmd/hil:\n%s", tail(out, 40))

	for _, platform := range []string{"legacy", "studio"} {
		t.Run(platform, func(t *testing.T) {
			board := startSim(t, hil)
			reports := t.TempDir()
			secret := make([]byte, 8)
			_, _ = rand.Read(secret)
			password := "hil-ci-wifi-" + hex.EncodeToString(secret)
			env := append(baseEnv(),
				"HIL_PORT="+board.port,
				"HIL_WIFI_SSID=hil-ci-lab",
				"HIL_WIFI_PASSWORD="+password,
				"HIL_BROKER_HOST=127.0.0.1", // the virtual board reaches loopback only
				"HIL_BROKER_PORT="+freePort(t),
				"HIL_PLATFORM="+platform,
				"HIL_REPORT_DIR="+reports,
			)
			start := time.Now()
			out, err := run(t, 10*time.Minute, root, env, "bash", "ci/hardware-run.sh")
			t.Logf("ci/hardware-run.sh on %s (%s): %s", board.port, platform, time.Since(start).Round(time.Millisecond))
			// Before anything that prints the output: the password is in none of it.
			for name, data := range map[string][]byte{
				"the script's output": []byte(out),
				"hil sim's output":    board.stdout.Bytes(),
				"hil sim's stderr":    board.stderr.Bytes(),
			} {
				require.False(t, bytes.Contains(data, []byte(password)), "%s shows the Wi-Fi password", name)
			}
			require.NoError(t, err, "ci/hardware-run.sh failed; its output:\n%s\nhil sim's stderr:\n%s",
				tail(out, 80), tail(board.stderr.String(), 20))

			files, err := os.ReadDir(reports)
			require.NoError(t, err)
			for _, f := range files {
				data, err := os.ReadFile(filepath.Join(reports, f.Name()))
				require.NoError(t, err)
				assert.False(t, bytes.Contains(data, []byte(password)), "%s shows the Wi-Fi password", f.Name())
			}
			for _, name := range []string{"junit.xml", "report.json", "report.html", "serial.log", "go-test.log"} {
				fi, err := os.Stat(filepath.Join(reports, name))
				if assert.NoError(t, err, "the script's reports lack %s; it printed:\n%s", name, tail(out, 20)) {
					assert.Positive(t, fi.Size(), "%s is empty", name)
				}
			}
			assert.Contains(t, out, "reports in "+reports)
			log, err := os.ReadFile(filepath.Join(reports, "go-test.log"))
			require.NoError(t, err)
			assert.Contains(t, string(log), "--- PASS: TestScenarios")

			// The scenarios ran on our board, as a serial board.
			js, err := os.ReadFile(filepath.Join(reports, "report.json"))
			require.NoError(t, err)
			var rep struct {
				Target string `json:"target"`
			}
			require.NoError(t, json.Unmarshal(js, &rep), "report.json")
			assert.Regexp(t, "^board on "+regexp.QuoteMeta(board.port)+"($|,)", rep.Target, "report.json's target")
			assert.Regexp(t, regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d\.\d{3} pin 4 = 1$`), board.stdout.String(),
				"the board's LED pin never went high")

			data, err := os.ReadFile(filepath.Join(reports, "junit.xml"))
			require.NoError(t, err)
			var j junit
			require.NoError(t, xml.Unmarshal(data, &j), "junit.xml")
			pass, skip := 0, 0
			var failed []string
			basic := false
			for _, s := range j.Suites {
				for _, c := range s.Cases {
					switch {
					case c.Failure != nil || c.Error != nil:
						r := c.Failure
						if r == nil {
							r = c.Error
						}
						failed = append(failed, c.Name+": "+r.Message)
					case c.Skipped != nil:
						skip++
						assert.NotEmpty(t, c.Skipped.Message, "%s is skipped without a reason", c.Name)
						t.Logf("skip %s: %s", c.Name, c.Skipped.Message)
					default:
						pass++
						basic = basic || c.File == "basic_on_off.yaml"
					}
				}
			}
			t.Logf("junit.xml: %d pass, %d skip, %d fail", pass, skip, len(failed))
			assert.Empty(t, failed, "failed scenarios")
			assert.Equal(t, len(scenarios), pass+skip+len(failed), "one test case per scenario file")
			assert.Equal(t, j.Tests, pass+skip+len(failed), "junit.xml's tests= count")
			assert.Equal(t, j.Skipped, skip, "junit.xml's skipped= count")
			assert.Zero(t, j.Failures, "junit.xml's failures= count")
			assert.Greater(t, pass, skip, "most scenarios run on a serial board")
			assert.True(t, basic, "basic_on_off.yaml did not pass")
		})
	}
}

// TestFuzzScriptRuns runs scripts/fuzz.sh for 1 s per target on one small
// package (the whole set takes minutes on a cold build cache): target
// discovery, the run, the memory figure and the verdict.
func TestFuzzScriptRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: fuzz.sh builds instrumented test binaries")
	}
	if _, err := os.Stat("/usr/bin/time"); errors.Is(err, os.ErrNotExist) {
		t.Fatal("scripts/fuzz.sh needs GNU time as /usr/bin/time (Debian package time; .ci/run installs it)")
	}
	root := repoRoot(t)
	env := append(baseEnv(), "FUZZ_PACKAGES=harness/echo")
	out, err := run(t, 5*time.Minute, root, env, "bash", "scripts/fuzz.sh", "1")
	require.NoError(t, err, "scripts/fuzz.sh 1:\n%s", tail(out, 60))
	rows := regexp.MustCompile(`(?m)^harness/echo\s+(Fuzz\w+)\s+(\d+)\s+[\d.]+\s+(\d+) MB ok\b`).FindAllStringSubmatch(out, -1)
	require.NotEmpty(t, rows, "no ok row for harness/echo:\n%s", out)
	for _, r := range rows {
		mb, _ := strconv.Atoi(r[3])
		assert.Positive(t, mb, "%s: no memory figure", r[1])
	}
	assert.Contains(t, out, "total execs:")
	assert.NotContains(t, out, "FAIL")
}
