package sim

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The VM collects only between requests, so the board's heap is read there:
// Live after the collection, Peak before it.
func TestHeapLiveAndPeakPerRequest(t *testing.T) {
	b, c := startBoard(t, Options{})
	c.expect(banner)
	c.enterRaw()

	base := b.Heap()
	// The ESP8266's 38 KB less the collector's own tables.
	require.InDelta(t, DefaultHeap-1000, base.Size, 1000, "the board's heap is the ESP8266's")

	// 20 KB kept: live.
	c.mustExec("keep = bytearray(20000)")
	h := b.Heap()
	assert.InDelta(t, 20000, h.Live-base.Live, 1500, "live after keeping 20 KB: %+v", h)

	// 30 KB of garbage in one request: the peak shows it, live does not.
	c.mustExec("del keep")
	b.ResetHeap()
	c.mustExec("for i in range(30):\n    g = bytearray(1000)\ndel g")
	h = b.Heap()
	assert.Greater(t, h.Peak, 30000, "peak of a request that made 30 KB of garbage: %+v", h)
	assert.Less(t, h.Live, 4000, "live once the garbage is collected: %+v", h)
	assert.False(t, h.Exceeded, "garbage alone is no MemoryError: %+v", h)

	// 60 KB of garbage in one request is more than the heap with no
	// collection: Over, still no MemoryError.
	b.ResetHeap()
	c.mustExec("for i in range(60):\n    g = bytearray(1000)\ndel g")
	h = b.Heap()
	assert.True(t, h.Over, "a request that held 60 KB before its collection: %+v", h)
	assert.False(t, h.Exceeded, "%+v", h)

	// Live data past the heap: a MemoryError, as on the board.
	out, errOut := c.execPlain("big = bytearray(50000)")
	assert.Empty(t, out)
	assert.Contains(t, errOut, "MemoryError: memory allocation failed")
	h = b.Heap()
	assert.True(t, h.Exceeded, "50 KB live on a 38 KB heap: %+v", h)
	require.Error(t, b.HeapError())
	assert.Contains(t, b.HeapError().Error(), "MemoryError")
}
