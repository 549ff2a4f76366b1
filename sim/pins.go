package sim

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// PinChange is one GPIO level change, stamped by the runtime when the firmware drove the pin.
type PinChange struct {
	Time  time.Time
	Pin   int
	Value int
}

// pinBoard tracks GPIO levels and fans changes out to subscribers without ever dropping one.
type pinBoard struct {
	mu     sync.Mutex
	levels map[int]int
	last   map[int]time.Time
	subs   map[*pinSub]struct{}
}

type pinSub struct {
	mu     sync.Mutex
	queue  []PinChange
	wake   chan struct{}
	done   chan struct{}
	out    chan PinChange
	closed bool
}

func newPinBoard() *pinBoard {
	return &pinBoard{levels: map[int]int{}, last: map[int]time.Time{}, subs: map[*pinSub]struct{}{}}
}

func (pb *pinBoard) level(n int) int {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return pb.levels[n]
}

func (pb *pinBoard) set(pin, value int, t time.Time) {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	if pb.levels[pin] == value {
		return
	}
	pb.levels[pin] = value
	pb.last[pin] = t
	for s := range pb.subs {
		s.push(PinChange{Time: t, Pin: pin, Value: value})
	}
}

// powerOff drops every pin to 0, as the GPIOs float low while the chip resets.
func (pb *pinBoard) powerOff() {
	pb.mu.Lock()
	var high []int
	for pin, v := range pb.levels {
		if v != 0 {
			high = append(high, pin)
		}
	}
	pb.mu.Unlock()
	sort.Ints(high)
	now := time.Now()
	for _, pin := range high {
		pb.set(pin, 0, now)
	}
}

func (pb *pinBoard) subscribe() (<-chan PinChange, func()) {
	s := &pinSub{wake: make(chan struct{}, 1), done: make(chan struct{}), out: make(chan PinChange)}
	pb.mu.Lock()
	pb.subs[s] = struct{}{}
	pb.mu.Unlock()
	go s.pump()
	var once sync.Once
	return s.out, func() {
		once.Do(func() {
			pb.mu.Lock()
			delete(pb.subs, s)
			pb.mu.Unlock()
			s.close()
		})
	}
}

func (pb *pinBoard) close() {
	pb.mu.Lock()
	subs := pb.subs
	pb.subs = map[*pinSub]struct{}{}
	pb.mu.Unlock()
	for s := range subs {
		s.close()
	}
}

func (pb *pinBoard) wait(ctx context.Context, pin, value int) error {
	ch, cancel := pb.subscribe()
	defer cancel()
	pb.mu.Lock()
	cur, since := pb.levels[pin], pb.last[pin]
	pb.mu.Unlock()
	if cur == value {
		return nil
	}
	for {
		select {
		case c, ok := <-ch:
			if !ok {
				return fmt.Errorf("sim: board closed while waiting for GPIO%d = %d", pin, value)
			}
			if c.Pin == pin {
				if c.Value == value {
					return nil
				}
				cur, since = c.Value, c.Time
			}
		case <-ctx.Done():
			seen := "never driven"
			if !since.IsZero() {
				seen = "since " + since.Format("15:04:05.000")
			}
			return fmt.Errorf("sim: GPIO%d is %d (%s), wanted %d: %w", pin, cur, seen, value, ctx.Err())
		}
	}
}

func (s *pinSub) push(c PinChange) {
	s.mu.Lock()
	if !s.closed {
		s.queue = append(s.queue, c)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *pinSub) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	s.mu.Unlock()
}

// pump delivers queued changes in order; the channel closes once the subscription ends.
func (s *pinSub) pump() {
	defer close(s.out)
	for {
		s.mu.Lock()
		q := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, c := range q {
			select {
			case s.out <- c:
			case <-s.done:
				return
			}
		}
		select {
		case <-s.wake:
		case <-s.done:
			return
		}
	}
}
