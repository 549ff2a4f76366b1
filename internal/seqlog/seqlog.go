// Package seqlog is a bounded, sequenced log that Go code can wait on: the
// serial link's line log (harness/link) and the broker's event feed
// (broker) are both one. Every item gets the next sequence number; a
// reader remembers a position (Mark) before an action and then reads or
// waits for what came after it, so nothing that happens in between is
// missed. The oldest items fall out once the log holds its limit.
package seqlog

import (
	"context"
	"sync"
)

// Log keeps the last keep items of type T. Its methods are safe for
// concurrent use.
type Log[T any] struct {
	stamp func(*T, int64)

	mu      sync.Mutex
	ring    []T // oldest first once full, starting at head
	head    int
	keep    int
	next    int64         // the sequence number of the next item
	changed chan struct{} // made by a waiter, closed (and dropped) on the next append and on Close
	err     error         // set by Close: why no more items will come
}

// New returns a log of at most keep items (at least 1) whose first item
// gets sequence number first. stamp, when not nil, writes an item's
// sequence number into it as it is appended.
func New[T any](keep int, first int64, stamp func(*T, int64)) *Log[T] {
	return &Log[T]{stamp: stamp, keep: max(keep, 1), next: first}
}

// Append stamps v with the next sequence number, keeps it and wakes every
// waiter. It returns v as stamped. It allocates nothing once the log is
// full: v is stamped in its slot, and the wake-up channel is made only
// when someone waits.
func (l *Log[T]) Append(v T) T {
	l.mu.Lock()
	defer l.mu.Unlock()
	var slot *T
	if len(l.ring) < l.keep {
		l.ring = append(l.ring, v)
		slot = &l.ring[len(l.ring)-1]
	} else {
		slot = &l.ring[l.head]
		*slot = v
		l.head = (l.head + 1) % l.keep
	}
	if l.stamp != nil {
		l.stamp(slot, l.next)
	}
	l.next++
	l.wakeLocked()
	return *slot
}

// wakeLocked wakes the waiters, if any; the next Wait makes a new channel.
func (l *Log[T]) wakeLocked() {
	if l.changed != nil {
		close(l.changed)
		l.changed = nil
	}
}

// Mark is the sequence number the next item will get: a position to read
// or wait from that excludes everything already in the log.
func (l *Log[T]) Mark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next
}

// oldestLocked is the sequence number of the oldest item kept.
func (l *Log[T]) oldestLocked() int64 { return l.next - int64(len(l.ring)) }

// atLocked is the kept item with sequence number seq.
func (l *Log[T]) atLocked(seq int64) T {
	return l.ring[(l.head+int(seq-l.oldestLocked()))%len(l.ring)]
}

// Since returns, without waiting, the kept items numbered from on, oldest
// first, and how many items numbered from on fell out of the log before
// they could be read.
func (l *Log[T]) Since(from int64) (items []T, lost int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old := l.oldestLocked(); from < old {
		lost, from = old-from, old
	}
	if from >= l.next {
		return nil, lost
	}
	items = make([]T, 0, l.next-from)
	for ; from < l.next; from++ {
		items = append(items, l.atLocked(from))
	}
	return items, lost
}

// Last returns up to n of the newest items, oldest first.
func (l *Log[T]) Last(n int) []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	items := make([]T, 0, min(max(n, 0), len(l.ring)))
	for seq := l.next - int64(cap(items)); seq < l.next; seq++ {
		items = append(items, l.atLocked(seq))
	}
	return items
}

// Wait returns the first item numbered from on that match accepts (any
// item when match is nil) and its sequence number, waiting for it until
// ctx ends (ctx.Err()) or the log is closed (the error given to Close).
// Items that fell out of the log before they were looked at are skipped.
func (l *Log[T]) Wait(ctx context.Context, from int64, match func(T) bool) (T, int64, error) {
	for {
		l.mu.Lock()
		from = max(from, l.oldestLocked())
		for ; from < l.next; from++ {
			if v := l.atLocked(from); match == nil || match(v) {
				l.mu.Unlock()
				return v, from, nil
			}
		}
		if l.changed == nil && l.err == nil {
			l.changed = make(chan struct{})
		}
		changed, err := l.changed, l.err
		l.mu.Unlock()
		var zero T
		if err != nil {
			return zero, from, err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return zero, from, ctx.Err()
		}
	}
}

// Close ends the log: waiters that have read every item get err (which
// must not be nil). Items already kept stay readable. Only the first Close
// counts.
func (l *Log[T]) Close(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
		l.wakeLocked()
	}
}

// Err is the error the log was closed with, or nil.
func (l *Log[T]) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}
