package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

// hil sim -h has a usage line like the other commands, not Go's default.
func TestSimHelpHasUsageLine(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runMain([]string{"sim", "-h"}, &out, &errOut)
	assert.Equal(t, 0, code)
	assert.Regexp(t, `^usage: hil sim \[--flash DIR\]`, errOut.String())
	assert.Contains(t, errOut.String(), "-redirect")
	assert.NotContains(t, errOut.String(), "Usage of sim")
}

// --redirect only leads to this machine: a target elsewhere (here the real
// OneNET) is refused before any board starts.
func TestSimRefusesRedirectToAnotherHost(t *testing.T) {
	for _, target := range []string{"183.230.40.39:6002", "192.168.1.20:6002", "localhost:6002"} {
		var out, errOut bytes.Buffer
		code := runMain([]string{"sim", "--redirect", "183.230.40.39:6002=" + target}, &out, &errOut)
		assert.Equal(t, 2, code, target)
		assert.Contains(t, errOut.String(), "must be a loopback IPv4 address and port", target)
		assert.Empty(t, out.String(), "no board, no port path")
	}
}
