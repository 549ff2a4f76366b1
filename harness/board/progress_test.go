package board

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestProgressBarOnTerminalPlainLogElsewhere(t *testing.T) {
	m, tty, err := pty.Open()
	require.NoError(t, err)
	defer m.Close()
	defer tty.Close()

	p := newProgress(tty, 3000, 2, 1)
	require.NotNil(t, p.bar, "a terminal gets a progress bar")
	p.file(0, "main.py", 1000)
	p.add(1000)
	p.file(1, "config.json", 2000)
	p.add(2000)
	p.done(3000, time.Second)
	tty.Close()

	var seen bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(seen.String(), "uploaded 3000 bytes") {
		require.NoError(t, m.SetReadDeadline(time.Now().Add(5*time.Second)))
		n, err := m.Read(buf)
		seen.Write(buf[:n])
		if err != nil {
			break
		}
	}
	assert.Contains(t, seen.String(), "[1/2] main.py")
	assert.Contains(t, seen.String(), "3.0 kB", "the bar counts bytes")
	assert.Contains(t, seen.String(), "uploaded 3000 bytes in 1s (3000 B/s)")

	var plain bytes.Buffer
	p = newProgress(&plain, 3000, 2, 1)
	assert.Nil(t, p.bar, "a pipe or file gets log lines")
	p.file(0, "main.py", 1000)
	p.add(1000)
	p.done(3000, time.Second)
	assert.Equal(t, "flash: 2 file(s) to upload (3000 bytes), 1 unchanged\n"+
		"flash: [1/2] main.py (1000 bytes)\n"+
		"flash: uploaded 3000 bytes in 1s (3000 B/s)\n", plain.String())
}
