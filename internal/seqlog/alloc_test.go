package seqlog

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Once full, Append allocates nothing while no one waits (the broker's
// feed appends two events per command), and a waiter still wakes.
func TestAppendAllocatesNothingOnceFull(t *testing.T) {
	l := newLog(4)
	for range 4 {
		l.Append(item{v: "x"})
	}
	assert.Zero(t, testing.AllocsPerRun(100, func() { l.Append(item{v: "y"}) }))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan item, 1)
	from := l.Mark()
	go func() {
		it, _, err := l.Wait(ctx, from, func(it item) bool { return it.v == "z" })
		if err == nil {
			got <- it
		}
		close(got)
	}()
	l.Append(item{v: "z"})
	it, ok := <-got
	require.True(t, ok, "the waiter saw the item before its context ended")
	assert.Equal(t, "z", it.v)
	assert.Equal(t, from, it.seq)
}
