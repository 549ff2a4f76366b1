package bench

import (
	"fmt"
	"math"
	"sort"
	"sync"
	"time"
)

// Lost-command reasons: every command sent ends either replied or lost
// with exactly one of these.
const (
	LostTimeout    = "timeout"            // no reply within Options.Timeout
	LostDropped    = "connection dropped" // the device's connection ended while the command was pending
	LostRefused    = "publish refused"    // the broker (or its API) refused the command
	LostController = "controller dropped" // the bench's own connection to the broker ended
	LostQueueFull  = "queue full"         // the broker dropped it: the device's outbound queue was full
)

// LostCommand is one lost command, as an example in the result.
type LostCommand struct {
	Device string `json:"device"`
	Reason string `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

type pending struct {
	busy bool      // picked by the generator, reply not yet in
	sent time.Time // zero until the send started
	key  string    // reply key: device id (topic path) or command uuid
	want byte      // expected reply: '1' or '0'
}

type early struct {
	payload string
	at      time.Time
}

// ledger accounts for every command: sent, replied (with its round trip)
// or lost (with its reason).
type ledger struct {
	mu       sync.Mutex
	ids      []string
	idIndex  map[string]int
	byKey    map[string]int // command uuid -> device, for $creq and HTTP
	early    map[string]early
	pend     []pending
	led      []bool // the model: each device's LED after its last command
	dead     []bool // the device's connection is gone: send it nothing more
	next     int    // round-robin cursor
	seq      []uint8
	samples  []time.Duration
	commands int64
	replied  int64
	wrong    int64 // replied with a state other than the model's
	late     int64 // replies that came after their command was counted lost
	unknown  int64 // replies matching no command at all
	inflight int
	lost     map[string]int64
	examples []LostCommand
	first    time.Time
	last     time.Time
	drained  chan struct{} // signalled when inflight falls to zero
}

func newLedger(ids []string) *ledger {
	l := &ledger{
		ids: ids, idIndex: make(map[string]int, len(ids)), byKey: map[string]int{}, early: map[string]early{},
		pend: make([]pending, len(ids)), led: make([]bool, len(ids)), dead: make([]bool, len(ids)),
		seq: make([]uint8, len(ids)), lost: map[string]int64{}, drained: make(chan struct{}, 1),
	}
	for i, id := range ids {
		l.idIndex[id] = i
	}
	return l
}

// commandCycle is what each device is sent, in turn: every LED command and
// both toggle directions.
var commandCycle = []string{"on", "toggle", "toggle", "off", "toggle", "off"}

// pick chooses the next idle, connected device and marks it busy. ok is
// false when every device is busy or gone.
func (l *ledger) pick() (dev int, cmd string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.ids)
	for range n {
		i := l.next
		l.next = (l.next + 1) % n
		if l.dead[i] || l.pend[i].busy {
			continue
		}
		cmd = commandCycle[int(l.seq[i])%len(commandCycle)]
		l.seq[i]++
		var after bool
		switch cmd {
		case "on":
			after = true
		case "toggle":
			after = !l.led[i]
		}
		l.led[i] = after
		want := byte('0')
		if after {
			want = '1'
		}
		l.pend[i] = pending{busy: true, want: want}
		l.inflight++
		return i, cmd, true
	}
	return 0, "", false
}

// sending stamps the command's start and counts it; false means the
// device went away since pick and the command is not to be sent.
func (l *ledger) sending(dev int, at time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.pend[dev].busy {
		return false
	}
	l.pend[dev].sent = at
	l.commands++
	if l.first.IsZero() {
		l.first = at
	}
	return true
}

// sent records the reply key of a command the broker accepted; a reply
// that raced ahead of it is settled now.
func (l *ledger) sent(dev int, key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := &l.pend[dev]
	if !p.busy {
		return // already settled (dropped meanwhile)
	}
	p.key = key
	if key != l.ids[dev] {
		if e, ok := l.early[key]; ok {
			delete(l.early, key)
			l.settleLocked(dev, e.payload, e.at)
			return
		}
		l.byKey[key] = dev
	}
}

// refused settles a command the broker would not take.
func (l *ledger) refused(dev int, reason, detail string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pend[dev].busy {
		l.loseLocked(dev, reason, detail)
	}
}

// reply settles the command a reply answers. key is a device id (custom
// topic path) or a command uuid ($creq, HTTP).
func (l *ledger) reply(key string, payload []byte, at time.Time, byDevice bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var dev int
	var ok bool
	if byDevice {
		dev, ok = l.idIndex[key]
	} else if dev, ok = l.byKey[key]; ok {
		delete(l.byKey, key)
	} else {
		// The uuid is not registered yet: the reply beat SendCommand's
		// return. Keep it for sent().
		if len(l.early) < 100000 {
			l.early[key] = early{payload: string(payload), at: at}
		} else {
			l.unknown++
		}
		return
	}
	if !ok {
		l.unknown++
		return
	}
	if !l.pend[dev].busy || l.pend[dev].sent.IsZero() {
		l.late++
		return
	}
	l.settleLocked(dev, string(payload), at)
}

func (l *ledger) settleLocked(dev int, payload string, at time.Time) {
	p := &l.pend[dev]
	l.samples = append(l.samples, at.Sub(p.sent))
	l.replied++
	if len(payload) != 1 || payload[0] != p.want {
		l.wrong++
	}
	if at.After(l.last) {
		l.last = at
	}
	l.clearLocked(dev)
}

func (l *ledger) clearLocked(dev int) {
	l.pend[dev] = pending{}
	l.inflight--
	if l.inflight == 0 {
		select {
		case l.drained <- struct{}{}:
		default:
		}
	}
}

func (l *ledger) loseLocked(dev int, reason, detail string) {
	if l.pend[dev].sent.IsZero() {
		l.commands++ // lost before it was stamped: still a command
	}
	if k := l.pend[dev].key; k != "" && k != l.ids[dev] {
		delete(l.byKey, k)
	}
	l.lost[reason]++
	if len(l.examples) < 10 {
		l.examples = append(l.examples, LostCommand{Device: l.ids[dev], Reason: reason, Detail: detail})
	}
	l.clearLocked(dev)
}

// dropped marks a device gone; its pending command is lost.
func (l *ledger) dropped(id, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	dev, ok := l.idIndex[id]
	if !ok {
		return
	}
	l.dead[dev] = true
	if l.pend[dev].busy {
		l.loseLocked(dev, LostDropped, reason)
	}
}

// queueFull loses the device's pending command: the broker dropped the
// message to it (its outbound queue was full). The device stays usable.
func (l *ledger) queueFull(id, detail string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if dev, ok := l.idIndex[id]; ok && l.pend[dev].busy {
		l.loseLocked(dev, LostQueueFull, detail)
	}
}

// controllerLost loses every pending command: their replies cannot arrive.
func (l *ledger) controllerLost(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := range l.pend {
		l.dead[i] = true
		if l.pend[i].busy {
			l.loseLocked(i, LostController, reason)
		}
	}
}

// expire loses commands older than timeout; with force, every pending one.
func (l *ledger) expire(now time.Time, timeout time.Duration, force bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight == 0 {
		return
	}
	for i := range l.pend {
		p := &l.pend[i]
		if p.busy && (force || (!p.sent.IsZero() && now.Sub(p.sent) > timeout)) {
			// Its LED state is unknown now: command it no more.
			l.dead[i] = true
			l.loseLocked(i, LostTimeout, fmt.Sprintf("no reply within %v", timeout))
		}
	}
}

// snapshot returns the running totals.
func (l *ledger) snapshot() (commands, replied, lost int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.lost {
		lost += n
	}
	return l.commands, l.replied, lost
}

// Latency is a round-trip distribution in milliseconds.
type Latency struct {
	P50, P90, P99, Max float64
}

func percentiles(s []time.Duration) Latency {
	if len(s) == 0 {
		return Latency{}
	}
	s = append([]time.Duration(nil), s...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) float64 {
		// nearest rank: the smallest sample with at least q of all at or below it
		i := min(max(int(math.Ceil(q*float64(len(s))))-1, 0), len(s)-1)
		return ms(s[i])
	}
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
