package testutil

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBufferTakesWritesFromManyGoroutines(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				fmt.Fprintf(&b, "%d\n", i)
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, 800, strings.Count(b.String(), "\n"))
	got := b.Bytes()
	got[0] = 'x'
	assert.NotEqual(t, got, b.Bytes(), "Bytes is a copy")
}

func TestWaitForSeesALaterWrite(t *testing.T) {
	var b Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, s := range []string{"booting ", "still ", "ready\n"} {
			b.Write([]byte(s))
		}
	}()
	b.WaitFor(t, "ready", 10*time.Second)
	<-done
	assert.Equal(t, "booting still ready\n", b.String())
}

// fatalRecorder is a testing.TB whose Fatalf only records.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
}

func TestWaitForIsBounded(t *testing.T) {
	var b Buffer
	b.Write([]byte("something else"))
	rec := &fatalRecorder{TB: t}
	start := time.Now()
	b.WaitFor(rec, "ready", 50*time.Millisecond)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Contains(t, rec.msg, `"ready" did not show within 50ms`)
	assert.Contains(t, rec.msg, "something else", "the failure shows what came")
}

func TestHoldSocketsPushesDescriptorsAbove1024(t *testing.T) {
	release := HoldSockets(t, 1100)
	f, err := os.Open(os.DevNull)
	require.NoError(t, err)
	fd := f.Fd()
	require.NoError(t, f.Close())
	assert.Greater(t, fd, uintptr(1100))
	release()
	release() // again: a no-op, as is the cleanup
	f, err = os.Open(os.DevNull)
	require.NoError(t, err)
	defer f.Close()
	assert.Less(t, f.Fd(), uintptr(1024), "released")
}
