package seqlog

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type item struct {
	seq int64
	v   string
}

func newLog(keep int) *Log[item] {
	return New(keep, 1, func(it *item, seq int64) { it.seq = seq })
}

func TestAppendStampsAndSinceReadsWithoutWaiting(t *testing.T) {
	l := newLog(3)
	m := l.Mark()
	assert.Equal(t, int64(1), m)
	got := l.Append(item{v: "a"})
	assert.Equal(t, int64(1), got.seq)
	l.Append(item{v: "b"})
	items, lost := l.Since(m)
	assert.Equal(t, []item{{1, "a"}, {2, "b"}}, items)
	assert.Zero(t, lost)
	items, _ = l.Since(l.Mark())
	assert.Empty(t, items, "nothing after the mark")
}

func TestOldestFallOutAndAreCountedLost(t *testing.T) {
	l := newLog(2)
	for _, v := range []string{"a", "b", "c", "d"} {
		l.Append(item{v: v})
	}
	items, lost := l.Since(1)
	assert.Equal(t, []item{{3, "c"}, {4, "d"}}, items)
	assert.Equal(t, int64(2), lost)
	assert.Equal(t, []item{{4, "d"}}, l.Last(1))
	assert.Equal(t, []item{{3, "c"}, {4, "d"}}, l.Last(10))
	assert.Empty(t, l.Last(0))
}

func TestWaitSeesAnItemAppendedLater(t *testing.T) {
	l := newLog(8)
	m := l.Mark()
	l.Append(item{v: "before"})
	done := make(chan item, 1)
	go func() {
		it, _, err := l.Wait(context.Background(), m, func(it item) bool { return it.v == "later" })
		if err == nil {
			done <- it
		}
	}()
	l.Append(item{v: "later"})
	select {
	case it := <-done:
		assert.Equal(t, int64(2), it.seq)
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return the item appended after it started")
	}
}

func TestWaitEndsWithTheContextOrTheClose(t *testing.T) {
	l := newLog(8)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, _, err := l.Wait(ctx, l.Mark(), nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	l.Append(item{v: "kept"})
	gone := errors.New("port closed")
	l.Close(gone)
	l.Close(errors.New("second close is ignored"))
	it, seq, err := l.Wait(context.Background(), 1, nil)
	require.NoError(t, err, "items already kept stay readable after Close")
	assert.Equal(t, "kept", it.v)
	_, _, err = l.Wait(context.Background(), seq+1, nil)
	assert.ErrorIs(t, err, gone)
	assert.ErrorIs(t, l.Err(), gone)
}
