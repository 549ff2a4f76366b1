package sim

import "time"

// paceChunk is the largest piece moved at once when pacing (2.8 ms of line time at 115200 baud),
// small enough that bytes trickle like on a UART.
const paceChunk = 32

// idleSlack is how late a write may come and still keep the line's schedule.
const idleSlack = 10 * time.Millisecond

// pacer holds a direction of the serial line to its bit rate. A nil pacer does not pace.
type pacer struct {
	perByte time.Duration
	next    time.Time // when the line is free again
}

// wait blocks until n more bytes would have left the wire. Only one goroutine uses a pacer.
func (p *pacer) wait(n int) {
	if p == nil {
		return
	}
	// A line idle for a while starts afresh; a late wake-up from the last sleep does not count as
	// idle, or the oversleeps would add up and slow the line down.
	if now := time.Now(); now.Sub(p.next) > idleSlack {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(n) * p.perByte)
	if d := time.Until(p.next); d > 0 {
		time.Sleep(d) // pacing, not synchronisation
	}
}

// chunks splits p into pieces of at most n bytes.
func chunks(p []byte, n int) [][]byte {
	var out [][]byte
	for len(p) > n {
		out = append(out, p[:n])
		p = p[n:]
	}
	if len(p) > 0 {
		out = append(out, p)
	}
	return out
}
