package board

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/sim"
	"github.com/stretchr/testify/require"
)

// testCtx bounds a whole test; single steps have their own bounds.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// startBoard runs a virtual board with the given flash files and opens its
// port through the link; the REPL is not entered yet.
func startBoard(t testing.TB, opts sim.Options, files map[string]string) (*sim.Board, *link.Link, *REPL) {
	t.Helper()
	if opts.FlashDir == "" {
		opts.FlashDir = t.TempDir()
	}
	for name, body := range files {
		p := filepath.Join(opts.FlashDir, name)
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	}
	b, err := sim.Start(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { closeBoard(t, b) })
	l, err := link.Open(b.Port(), link.Options{LogPath: filepath.Join(opts.FlashDir, "..", filepath.Base(opts.FlashDir)+"-serial.log")})
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return b, l, NewREPL(l, Options{Step: 10 * time.Second})
}

// closeBoard closes the virtual board with a bound: a Close that hangs must
// not hang the test run (seen with the pty relay blocked in read).
func closeBoard(t testing.TB, b *sim.Board) {
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Logf("sim.Board.Close did not return within 10 s")
	}
}
