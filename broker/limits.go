package broker

import "time"

// Limits bound what one client, one device or the whole broker can make the
// broker hold, so that no caller can grow its memory without end or stall
// another tenant. A zero field takes its default (DefaultLimits).
// README.md, "Bounds", lists each limit with what a client sees when it is
// reached.
type Limits struct {
	// Kept commands (qos=1 or timeout>0 for an offline device, or waiting
	// for a CONNACK): per device and in the whole broker, by count and by
	// payload bytes. A command past a limit is refused (ErrQueueFull,
	// errno 14); nothing already kept is dropped.
	PendingPerDevice      int
	PendingBytesPerDevice int64
	PendingTotal          int
	PendingBytesTotal     int64
	// Command history (GET /cmds/{uuid}) of commands no longer kept: the
	// oldest are forgotten past either bound.
	History      int
	HistoryBytes int64
	// Data points: datastreams per device (a $dp that would add one more
	// is rejected whole), points per datastream and bytes per device (the
	// oldest points are dropped).
	StreamsPerDevice    int
	PointsPerStream     int
	PointBytesPerDevice int64
	// ClientQueueBytes bounds the bytes of messages of queueAccountMin
	// bytes or more queued to one client and not yet written to its
	// socket; past it the client is disconnected ("slow reader").
	ClientQueueBytes int64
	// WriteTimeout bounds every write to a client's connection (a command,
	// a queued message, a CONNACK): a client that takes no data for this
	// long is disconnected and shown offline.
	WriteTimeout time.Duration
}

// DefaultLimits are the bounds of a broker whose Options.Limits are zero:
// high enough for the fleet bench (10,000 devices, one command each at a
// time) and the soak, low enough that one key holder or one device cannot
// take the machine.
var DefaultLimits = Limits{
	PendingPerDevice:      1000,
	PendingBytesPerDevice: 8 << 20,
	PendingTotal:          100_000,
	PendingBytesTotal:     128 << 20,
	History:               100_000,
	HistoryBytes:          64 << 20,
	StreamsPerDevice:      1000,
	PointsPerStream:       10_000,
	PointBytesPerDevice:   16 << 20,
	ClientQueueBytes:      8 << 20,
	WriteTimeout:          10 * time.Second,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	pick := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	pick64 := func(v *int64, def int64) {
		if *v <= 0 {
			*v = def
		}
	}
	pick(&l.PendingPerDevice, d.PendingPerDevice)
	pick64(&l.PendingBytesPerDevice, d.PendingBytesPerDevice)
	pick(&l.PendingTotal, d.PendingTotal)
	pick64(&l.PendingBytesTotal, d.PendingBytesTotal)
	pick(&l.History, d.History)
	pick64(&l.HistoryBytes, d.HistoryBytes)
	pick(&l.StreamsPerDevice, d.StreamsPerDevice)
	pick(&l.PointsPerStream, d.PointsPerStream)
	pick64(&l.PointBytesPerDevice, d.PointBytesPerDevice)
	pick64(&l.ClientQueueBytes, d.ClientQueueBytes)
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = d.WriteTimeout
	}
	return l
}

// queueAccountMin: messages from this size up count toward
// Limits.ClientQueueBytes. Smaller ones are bounded by the queue's packet
// count (Options.ClientWritesPending × 1 KiB at most), and leaving them out
// keeps the fleet's small commands free of the bookkeeping.
const queueAccountMin = 1024

// What one event of the feed keeps (the feed holds feedKeep of them): the
// payload's first eventPayloadMax bytes (Event.PayloadLen has its size),
// topic and reason up to eventTextMax, ids up to eventIDMax; all copied,
// never a reference into a packet buffer.
const (
	eventPayloadMax = 256
	eventTextMax    = 512
	eventIDMax      = 128
)
