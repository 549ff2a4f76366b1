// Package testutil holds what tests in several packages need: a Buffer
// that goroutines write while the test reads (and waits on) it, and
// HoldSockets, which pushes the next descriptors above select()'s 1024 the
// way a broker serving a fleet does. Import it from _test.go files only.
package testutil

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Buffer is a bytes.Buffer that several goroutines may write (a logger, a
// link's reader, a child process's output) while the test reads it. The
// zero Buffer is ready to use.
type Buffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // a token after each write
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.signal() <- struct{}{}:
	default:
	}
	return b.b.Write(p)
}

// String is what has been written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Bytes is a copy of what has been written so far.
func (b *Buffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.b.Bytes())
}

// signal is the write notification channel; b.mu must be held.
func (b *Buffer) signal() chan struct{} {
	if b.changed == nil {
		b.changed = make(chan struct{}, 1)
	}
	return b.changed
}

// WaitFor waits until the buffer contains substr, at most timeout; then it
// fails the test (Fatalf, so call it from the test's goroutine) and shows
// what the buffer holds.
func (b *Buffer) WaitFor(t testing.TB, substr string, timeout time.Duration) {
	t.Helper()
	b.mu.Lock()
	changed := b.signal()
	b.mu.Unlock()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for !strings.Contains(b.String(), substr) {
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("%q did not show within %s; got:\n%s", substr, timeout, b.String())
			return
		}
	}
}

// HoldSockets opens n loopback TCP listeners, so that what the test opens
// next gets descriptors above n: a process that also serves a fleet of
// devices holds thousands of sockets, and a serial port opened there lies
// beyond the 1024 descriptors select() can watch. The sockets close at the
// end of the test, or earlier when release is called.
func HoldSockets(t testing.TB, n int) (release func()) {
	t.Helper()
	socks := make([]net.Listener, 0, n)
	release = sync.OnceFunc(func() {
		for _, s := range socks {
			s.Close()
		}
	})
	t.Cleanup(release)
	for range n {
		s, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("holding %d sockets: socket %d: %v", n, len(socks)+1, err)
		}
		socks = append(socks, s)
	}
	return release
}
