package broker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/onenet-hil/hil/internal/seqlog"
)

// EventKind says what happened.
type EventKind int

const (
	Connected         EventKind = iota + 1 // CONNACK 0 sent
	Refused                                // login refused: Code is the CONNACK code, 0xFF = closed without CONNACK
	Disconnected                           // a device's current connection ended (device offline)
	Kicked                                 // a connection was closed by the server (duplicate login or Kick)
	Subscribed                             // one filter of a SUBSCRIBE: Code 0x00 granted, 0x80 refused
	Published                              // a message on a custom topic (from a device, or from the harness when DeviceID is "")
	CommandSent                            // $creq pushed to the device
	CommandReplied                         // $crsp received
	DatapointReceived                      // one data point stored from $dp (the type Datapoint holds it)
	DatapointRejected                      // a malformed $dp payload (Reason says why)
	CommandExpired                         // a kept command's timeout passed before delivery
	PublishDropped                         // a message to a client was dropped: its outbound queue was full
)

var kindNames = map[EventKind]string{
	Connected: "connected", Refused: "refused", Disconnected: "disconnected", Kicked: "kicked",
	Subscribed: "subscribed", Published: "published", CommandSent: "command-sent",
	CommandReplied: "command-replied", DatapointReceived: "datapoint", DatapointRejected: "datapoint-rejected",
	CommandExpired: "command-expired", PublishDropped: "publish-dropped",
}

func (k EventKind) String() string {
	if s, ok := kindNames[k]; ok {
		return s
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// NoConnack is the Event.Code of a login closed without any CONNACK.
const NoConnack byte = 0xFF

// Event is one thing the broker saw. Seq orders events (see Feed.Mark).
type Event struct {
	Seq       uint64
	Time      time.Time
	Kind      EventKind
	DeviceID  string
	ProductID string
	Topic     string
	Payload   []byte // at most eventPayloadMax bytes, a copy
	// PayloadLen is the size of the payload the event is about (Payload
	// holds only its beginning when it is longer than eventPayloadMax).
	PayloadLen int
	Code       byte
	Reason     string
	CmdUUID    string

	// topicPrefix, when set, makes the feed's copy of the event have the
	// Topic topicPrefix+CmdUUID, built in the copy (not one string more
	// per command). The feed's events never have it.
	topicPrefix string
}

func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s #%d %s", e.Time.Format("15:04:05.000"), e.Seq, e.Kind)
	if e.DeviceID != "" {
		fmt.Fprintf(&b, " device=%s", e.DeviceID)
	}
	if e.ProductID != "" {
		fmt.Fprintf(&b, " product=%s", e.ProductID)
	}
	if e.Topic != "" {
		fmt.Fprintf(&b, " topic=%s", e.Topic)
	}
	if e.CmdUUID != "" {
		fmt.Fprintf(&b, " cmd=%s", e.CmdUUID)
	}
	if e.Kind == Refused || e.Kind == Subscribed {
		fmt.Fprintf(&b, " code=0x%02x", e.Code)
	}
	if e.Payload != nil {
		fmt.Fprintf(&b, " payload=%q", shorten(e.Payload, 64))
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " reason=%q", e.Reason)
	}
	return b.String()
}

// detached is e with every field its own copy, cut to the feed's bounds:
// an event must never keep a packet buffer (or its string views) alive.
// The copies share one allocation (the strings are never written again;
// Payload's capacity ends at its length, so an append cannot reach them).
func (e Event) detached() Event {
	var pre string
	if e.topicPrefix != "" && e.Topic == "" {
		pre = e.topicPrefix
		e.Topic = e.CmdUUID // the prefix goes in front of it in the copy
	}
	e.topicPrefix = ""
	fields := [...]struct {
		s   *string
		max int
	}{{&e.DeviceID, eventIDMax}, {&e.ProductID, eventIDMax}, {&e.CmdUUID, eventIDMax}, {&e.Topic, eventTextMax}, {&e.Reason, eventTextMax}}
	var p []byte
	if e.Payload != nil {
		if e.PayloadLen == 0 {
			e.PayloadLen = len(e.Payload)
		}
		p = e.Payload[:min(len(e.Payload), eventPayloadMax)]
	}
	n := len(p) + len(pre)
	for _, f := range fields {
		k, cut := clipAt(*f.s, f.max)
		n += len(k) + len(cut)
	}
	buf := make([]byte, 0, n)
	for _, f := range fields {
		k, cut := clipAt(*f.s, f.max)
		start := len(buf)
		if f.s == &e.Topic {
			buf = append(buf, pre...)
		}
		buf = append(append(buf, k...), cut...)
		if len(buf) > start {
			*f.s = unsafe.String(&buf[start], len(buf)-start)
		}
	}
	if e.Payload != nil {
		start := len(buf)
		buf = append(buf, p...)
		e.Payload = buf[start:len(buf):len(buf)]
	}
	return e
}

// clipAt is s's first n bytes at most (cut on a UTF-8 boundary) and, when
// s was cut, the mark "...".
func clipAt(s string, n int) (keep, mark string) {
	if len(s) <= n {
		return s, ""
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i], "..."
}

// clip copies s, keeping its first n bytes (cut on a UTF-8 boundary) and
// marking a cut with "...".
func clip(s string, n int) string {
	k, mark := clipAt(s, n)
	return strings.Clone(k) + mark
}

func shorten(p []byte, n int) string {
	if len(p) > n {
		return string(p[:n]) + "..."
	}
	return string(p)
}

// Feed keeps the recent events and lets Go code wait for one. It is a
// sequenced log (internal/seqlog) plus live subscribers.
type Feed struct {
	log *seqlog.Log[Event]

	mu    sync.Mutex // the subscribers; also orders emits, so they see events in sequence
	subs  map[int]chan Event
	subID int
}

const feedKeep = 4096

func newFeed() *Feed {
	return &Feed{log: seqlog.New(feedKeep, 1, func(e *Event, seq int64) { e.Seq = uint64(seq) }),
		subs: map[int]chan Event{}}
}

func (f *Feed) emit(e Event) Event {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e = e.detached()
	f.mu.Lock()
	e = f.log.Append(e)
	for _, ch := range f.subs {
		select {
		case ch <- e:
		default: // a slow subscriber loses events rather than stalling the broker
		}
	}
	f.mu.Unlock()
	return e
}

// Subscribe returns a channel of every later event (buffered; a reader that
// falls more than 1024 events behind misses some) and a cancel func.
func (f *Feed) Subscribe() (<-chan Event, func()) { return f.SubscribeN(1024) }

// SubscribeN is Subscribe with a buffer of n events, for a subscriber that
// must not miss events while it (or the whole process, in a GC pause) is
// slow: a load generator counting every reply.
func (f *Feed) SubscribeN(n int) (<-chan Event, func()) {
	if n < 1 {
		n = 1
	}
	ch := make(chan Event, n)
	// Touch the buffer once, so that its pages are resident from here on:
	// what a subscriber costs shows when it subscribes, not as growth of
	// the broker's memory later (hil bench reads that around a
	// 65,536-event, 11 MB subscription).
	for range n {
		ch <- Event{}
	}
	for range n {
		<-ch
	}
	f.mu.Lock()
	f.subID++
	id := f.subID
	f.subs[id] = ch
	f.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, id)
			f.mu.Unlock()
		})
	}
}

// Mark is a point in the feed: the Seq of the last event before it.
// WaitAfter and Since consider only events after it.
type Mark uint64

// After is the point just after event e.
func After(e Event) Mark { return Mark(e.Seq) }

// Mark returns the current point of the feed. Take it BEFORE the action
// whose effect you then wait for, so nothing can slip in between.
func (f *Feed) Mark() Mark { return Mark(f.log.Mark() - 1) }

// Last returns up to n of the most recent events, oldest first.
func (f *Feed) Last(n int) []Event { return f.log.Last(n) }

// Since returns, without waiting, the kept events after mark, oldest
// first (events that fell out of the feed's memory are not there).
func (f *Feed) Since(mark Mark) []Event {
	evs, _ := f.log.Since(int64(mark) + 1)
	return evs
}

// WaitAfter returns the first event after mark that matches, waiting until
// ctx ends. The error lists the last events seen.
func (f *Feed) WaitAfter(ctx context.Context, mark Mark, match func(Event) bool) (Event, error) {
	e, _, err := f.log.Wait(ctx, int64(mark)+1, match)
	if err != nil {
		return Event{}, f.waitError(err)
	}
	return e, nil
}

// WaitFor is WaitAfter from the moment of the call: only for events caused
// after it. To wait for the effect of an action, take f.Mark() before the
// action and use WaitAfter.
func (f *Feed) WaitFor(ctx context.Context, match func(Event) bool) (Event, error) {
	return f.WaitAfter(ctx, f.Mark(), match)
}

func (f *Feed) waitError(cause error) error {
	var b strings.Builder
	last := f.Last(20)
	if len(last) == 0 {
		b.WriteString(" (none)")
	}
	for _, e := range last {
		b.WriteString("\n  ")
		b.WriteString(e.String())
	}
	return fmt.Errorf("broker: waiting for event: %w; last events:%s", cause, b.String())
}

// Matchers for WaitFor/WaitAfter.

// Is matches events of kind k for device id ("" = any device).
func Is(k EventKind, deviceID string) func(Event) bool {
	return func(e Event) bool { return e.Kind == k && (deviceID == "" || e.DeviceID == deviceID) }
}

// ForCommand matches events of kind k about command uuid.
func ForCommand(k EventKind, uuid string) func(Event) bool {
	return func(e Event) bool { return e.Kind == k && e.CmdUUID == uuid }
}
