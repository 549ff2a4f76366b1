package main

import (
	"bytes"
	"regexp"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every registered command parses its command line alike (parseFlags): a
// bad flag or a stray argument is exit status 2 with the command's usage
// line on stderr and nothing run; -h is exit status 0 with the usage line.
func TestEveryCommandParsesFlagsAlike(t *testing.T) {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	require.Subset(t, names, []string{"bench", "broker", "flash", "ports", "run", "sim", "soak", "token", "version"})
	for _, name := range names {
		usageLine := regexp.MustCompile(`(?m)^usage: hil ` + regexp.QuoteMeta(name) + `\b`)
		for _, c := range []struct {
			args []string
			code int
			want string
		}{
			{[]string{"--no-such-flag"}, 2, "flag provided but not defined: -no-such-flag"},
			{[]string{"stray"}, 2, "hil " + name + `: unexpected argument "stray"`},
			{[]string{"stray", "two"}, 2, "hil " + name + `: unexpected arguments ["stray" "two"]`},
			{[]string{"-h"}, 0, ""},
			{[]string{"--help"}, 0, ""},
		} {
			var out, errOut bytes.Buffer
			code := runMain(append([]string{name}, c.args...), &out, &errOut)
			assert.Equal(t, c.code, code, "hil %s %v: stderr:\n%s", name, c.args, errOut.String())
			assert.Regexp(t, usageLine, errOut.String(), "hil %s %v", name, c.args)
			assert.Contains(t, errOut.String(), c.want, "hil %s %v", name, c.args)
			assert.NotContains(t, errOut.String(), "Usage of", "hil %s %v: the flag package's default usage", name, c.args)
			assert.Empty(t, out.String(), "hil %s %v: nothing runs", name, c.args)
		}
	}
}

// A stray argument after good flags is still refused.
func TestRunStrayArgumentAfterFlags(t *testing.T) {
	good := runDir(t, map[string]string{"a.yaml": runPass})
	var stdout, stderr bytes.Buffer
	code := runMain([]string{"run", "--scenarios", good, "extra"}, &stdout, &stderr)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr.String(), `hil run: unexpected argument "extra"`)
	assert.Contains(t, stderr.String(), "usage: hil run")
	assert.NotContains(t, stdout.String(), "SCENARIO", "nothing ran")
}
