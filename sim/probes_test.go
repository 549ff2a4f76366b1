package sim

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// probe is one entry of testdata/probes.yaml (the file's header describes the fields).
type probe struct {
	Name            string   `yaml:"name"`
	Source          string   `yaml:"source"`
	Note            string   `yaml:"note"`
	Code            string   `yaml:"code"`
	Stdout          *string  `yaml:"stdout"`
	StdoutContains  []string `yaml:"stdout_contains"`
	Error           string   `yaml:"error"`
	Stderr          *string  `yaml:"stderr"`
	After           string   `yaml:"after"`
	InterruptAfter  string   `yaml:"interrupt_after"`
	Cleanup         string   `yaml:"cleanup"`
	KnownDifference string   `yaml:"known_difference"`
	Board           string   `yaml:"board"`
	Bug             string   `yaml:"bug"`
}

// docsPrefix is where every expectation comes from: MicroPython's documentation of the version
// the virtual board runs.
const docsPrefix = "https://docs.micropython.org/en/v1.27.0/"

func loadProbes(t *testing.T) []probe {
	t.Helper()
	data, err := os.ReadFile("testdata/probes.yaml")
	require.NoError(t, err)
	var probes []probe
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&probes), "testdata/probes.yaml")
	require.GreaterOrEqual(t, len(probes), 30, "the suite has 30 probes or more")
	seen := map[string]bool{}
	for i, p := range probes {
		where := fmt.Sprintf("probe %d (%q)", i, p.Name)
		require.NotEmpty(t, p.Name, where)
		require.False(t, seen[p.Name], "%s: name used twice", where)
		seen[p.Name] = true
		require.True(t, strings.HasPrefix(p.Source, docsPrefix), "%s: source must name a page under %s", where, docsPrefix)
		require.NotEmpty(t, strings.TrimSpace(p.Code), where)
		require.True(t, p.Stdout != nil || len(p.StdoutContains) > 0 || p.Error != "" || p.Stderr != nil,
			"%s: expects nothing", where)
		require.False(t, p.KnownDifference != "" && p.Board == "", "%s: a known difference says what the ESP8266 prints (board:)", where)
		require.False(t, p.KnownDifference != "" && p.Bug != "", "%s: a known difference of the VM or a bug of the harness, not both", where)
	}
	return probes
}

// probeServers are the loopback peers the socket probes talk to.
type probeServers struct {
	echo, reset, closed int
}

func startProbeServers(t *testing.T) probeServers {
	t.Helper()
	listen := func(serve func(net.Conn)) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go serve(conn)
			}
		}()
		return ln.Addr().(*net.TCPAddr).Port
	}
	var s probeServers
	s.echo = listen(func(conn net.Conn) {
		defer conn.Close()
		if _, err := conn.Write([]byte("hello\n")); err == nil {
			_, _ = bufio.NewReader(conn).ReadString('\n') // "bye\n" (or the board gone)
		}
	})
	s.reset = listen(func(conn net.Conn) {
		_ = conn.(*net.TCPConn).SetLinger(0) // close sends RST
		conn.Close()
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s.closed = ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close()) // nothing listens there now
	return s
}

func (s probeServers) expand(code string) string {
	return strings.NewReplacer("{ECHO_PORT}", strconv.Itoa(s.echo), "{RESET_PORT}", strconv.Itoa(s.reset),
		"{CLOSED_PORT}", strconv.Itoa(s.closed)).Replace(code)
}

// rawResult is what one raw-REPL block produced.
type rawResult struct {
	stdout, stderr string
	after          string // between the block's last \x04 and the next ">"
}

// runRaw runs code as pyboard.py does in plain raw mode (code, Ctrl-D, "OK", output, \x04,
// traceback, \x04, ">"), sending Ctrl-C once the output shows interruptAfter. "\r\n" comes back
// as "\n".
func (c *serialConn) runRaw(code, interruptAfter string) rawResult {
	c.t.Helper()
	for i := 0; i < len(code); i += 256 {
		c.write(code[i:min(i+256, len(code))])
	}
	c.write("\x04")
	require.Equal(c.t, "OK", string(c.take(2)))
	var out string
	if interruptAfter != "" {
		out = string(c.expect(strings.ReplaceAll(interruptAfter, "\n", "\r\n")))
		c.write("\x03")
	}
	out += string(c.expect("\x04"))
	errOut := string(c.expect("\x04"))
	after := string(c.expect(">"))
	lf := func(s string) string { return strings.ReplaceAll(strings.TrimSuffix(s, "\x04"), "\r\n", "\n") }
	return rawResult{stdout: lf(out), stderr: lf(errOut), after: strings.TrimSuffix(lf(after), ">")}
}

// check compares a result with the probe's expectations and returns what differs.
func (p probe) check(r rawResult) []string {
	var diffs []string
	if p.Stdout != nil && r.stdout != *p.Stdout {
		diffs = append(diffs, fmt.Sprintf("stdout %q, want %q", r.stdout, *p.Stdout))
	}
	for _, s := range p.StdoutContains {
		if !strings.Contains(r.stdout, s) {
			diffs = append(diffs, fmt.Sprintf("stdout %q does not contain %q", r.stdout, s))
		}
	}
	switch {
	case p.Stderr != nil && r.stderr != *p.Stderr:
		diffs = append(diffs, fmt.Sprintf("traceback %q, want %q", r.stderr, *p.Stderr))
	case p.Error != "" && !strings.Contains(r.stderr, p.Error):
		diffs = append(diffs, fmt.Sprintf("traceback %q does not contain %q", r.stderr, p.Error))
	case p.Stderr == nil && p.Error == "" && r.stderr != "":
		diffs = append(diffs, fmt.Sprintf("unexpected traceback %q", r.stderr))
	}
	if r.after != p.After {
		diffs = append(diffs, fmt.Sprintf("after the block %q, want %q", r.after, p.After))
	}
	return diffs
}

// TestProbes runs testdata/probes.yaml through the raw REPL of one virtual board: what a firmware
// author would try, each expectation from MicroPython's documentation of v1.27 and the ESP8266
// port. A known difference of the VM is asserted as the VM's behaviour; a probe marked bug must
// fail until the bug is fixed (then the mark goes).
func TestProbes(t *testing.T) {
	probes := loadProbes(t)
	servers := startProbeServers(t)
	_, c := startBoard(t, Options{})
	c.expect(banner)
	c.enterRaw()
	t0 := time.Now()
	var known, bugs []string
	var fixed []string
	for _, p := range probes {
		r := c.runRaw(servers.expand(p.Code), p.InterruptAfter)
		if p.Cleanup != "" {
			c.runRaw(p.Cleanup, "")
		}
		// Each probe starts from empty globals, as after a reset (but without one: the suite
		// runs on one board).
		c.runRaw("for _k in list(globals()):\n    if _k != '__name__':\n        del globals()[_k]\ndel _k\n", "")
		diffs := p.check(r)
		switch {
		case p.Bug != "" && len(diffs) == 0:
			fixed = append(fixed, p.Name)
			t.Errorf("probe %s passes now: its bug is fixed; remove the probe's bug: mark (%s)", p.Name, p.Bug)
		case p.Bug != "":
			bugs = append(bugs, p.Name)
			t.Logf("known bug, probe %s: %s\n\tboard (from %s): as expected above\n\tvirtual board: %s",
				p.Name, p.Bug, p.Source, strings.Join(diffs, "; "))
		case len(diffs) > 0:
			t.Errorf("probe %s (expected from %s):\n\t%s\n\tcode:\n%s", p.Name, p.Source,
				strings.Join(diffs, "\n\t"), p.Code)
		case p.KnownDifference != "":
			known = append(known, p.Name)
		}
	}
	t.Logf("%d probes in %v: %d pass, %d of them known differences of the VM (%s); %d known bugs of the virtual board (%s)",
		len(probes), time.Since(t0).Round(time.Millisecond), len(probes)-len(bugs)-len(fixed), len(known),
		strings.Join(known, ", "), len(bugs), strings.Join(bugs, ", "))
	// The board is still well: the REPL answers.
	assert.Equal(t, "2\n", c.runRaw("print(1 + 1)", "").stdout)
}
