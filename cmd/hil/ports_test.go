package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/onenet-hil/hil/harness/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPortsCommandRuns(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runMain([]string{"ports"}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	s := out.String()
	assert.True(t, strings.HasPrefix(s, "PORT") || s == "no serial ports found\n", s)
}

func TestPrintPortsMarksESP8266(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, printPorts(&out, []link.PortInfo{
		link.Classify(link.PortInfo{Name: "/dev/ttyUSB0", IsUSB: true, VID: "1A86", PID: "7523", SerialNumber: "", Product: "USB2.0-Serial"}),
		link.Classify(link.PortInfo{Name: "/dev/ttyS0"}),
	}))
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3)
	assert.Contains(t, lines[1], "/dev/ttyUSB0")
	assert.Contains(t, lines[1], "1A86:7523")
	assert.Contains(t, lines[1], "USB2.0-Serial")
	assert.Contains(t, lines[1], "* ESP8266? (CH340)")
	assert.NotContains(t, lines[2], "ESP8266")
}

func TestPortsRejectsArguments(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, 2, runMain([]string{"ports", "extra"}, &out, &errOut))
	assert.Contains(t, errOut.String(), `unexpected argument "extra"`)
}
