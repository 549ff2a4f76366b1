package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUsageListsCommands(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runMain(nil, &out, &errOut)
	assert.Equal(t, 0, code)
	assert.Contains(t, out.String(), "version")
}

func TestUnknownCommandFails(t *testing.T) {
	var out, errOut bytes.Buffer
	code := runMain([]string{"nonsense"}, &out, &errOut)
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut.String(), `unknown command "nonsense"`)
}
