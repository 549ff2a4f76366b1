package broker

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// stream is one datastream of a device: its points in arrival order.
type stream struct {
	name    string
	created time.Time // when its first point arrived
	pts     []point
}

type point struct {
	seq  uint64 // the device's arrival order (and the point's store key)
	at   time.Time
	v    any
	size int64
}

// pointOverhead is what a stored point costs beside its value.
const pointOverhead = 64

// valueSize estimates the memory a data point's value holds.
func valueSize(v any) int64 {
	switch x := v.(type) {
	case string:
		return 16 + int64(len(x))
	case []byte:
		return 24 + int64(len(x))
	case map[string]any:
		n := int64(48)
		for k, e := range x {
			n += 16 + int64(len(k)) + valueSize(e)
		}
		return n
	case []any:
		n := int64(24)
		for _, e := range x {
			n += valueSize(e)
		}
		return n
	}
	return 16
}

// errTooManyStreams: a $dp would add datastreams past the device's bound.
var errTooManyStreams = errors.New("datastream limit")

// storeDatapoints stores a device's $dp. A payload that is refused
// (malformed, or past a bound) is not stored and returns the reason: the
// caller closes the connection without a PUBACK, as OneNET drops a device
// that uploads illegal data (broker/README.md, "What OneNET does").
func (b *Broker) storeDatapoints(c *conn, deviceID, productID string, payload []byte) error {
	recs, err := ParseDP(payload)
	if err == nil {
		err = b.storeRecords(c, deviceID, productID, recs)
	}
	if err != nil {
		b.emit(Event{Kind: DatapointRejected, DeviceID: deviceID, ProductID: productID, Topic: "$dp", Payload: payload, Reason: err.Error()})
	}
	return err
}

// storeRecords keeps the points of one message of a device, all or none:
// a message that would pass Limits.StreamsPerDevice is refused whole. Past
// PointsPerStream or PointBytesPerDevice the oldest points go. With a
// store, the points are on disk when it returns (so the PUBACK Mochi sends
// next acknowledges kept data); if the store fails the device is
// disconnected instead of acknowledged.
func (b *Broker) storeRecords(c *conn, deviceID, productID string, recs []DPRecord) error {
	d := b.device(deviceID, productID)
	now := time.Now()
	l := b.limits
	d.mu.Lock()
	var added map[string]bool
	for _, r := range recs {
		if _, ok := d.streams[r.Stream]; !ok && !added[r.Stream] {
			if added == nil {
				added = map[string]bool{}
			}
			added[r.Stream] = true
		}
	}
	if len(d.streams)+len(added) > l.StreamsPerDevice {
		have := len(d.streams)
		d.mu.Unlock()
		return fmt.Errorf("%w: the device has %d datastreams, %d more would pass the limit of %d",
			errTooManyStreams, have, len(added), l.StreamsPerDevice)
	}
	var ops []dpOp
	for i, r := range recs {
		if r.At.IsZero() {
			recs[i].At = now
		}
		st := d.streams[r.Stream]
		if st == nil {
			st = &stream{name: strings.Clone(r.Stream), created: now}
			d.streams[st.name] = st
		}
		d.pointSeq++
		p := point{seq: d.pointSeq, at: recs[i].At, v: r.Value, size: pointOverhead + valueSize(r.Value)}
		st.pts = append(st.pts, p)
		d.nPoints++
		d.ptBytes += p.size
		if b.store != nil {
			ops = append(ops, dpOp{put: true, dev: d.id, stream: st.name, p: p})
		}
		if len(st.pts) > l.PointsPerStream {
			ops = b.dropFrontLocked(d, st, ops)
		}
	}
	for d.ptBytes > l.PointBytesPerDevice && d.nPoints > 1 {
		ops = b.dropFrontLocked(d, d.oldestStreamLocked(), ops)
	}
	var gen uint64
	if b.store != nil {
		gen = b.store.addOps(ops) // under d.mu: the device's ops reach the store in order
	}
	d.mu.Unlock()
	if b.store != nil {
		if err := b.store.wait(gen); err != nil {
			b.log.Error("data points not stored", "device", d.id, "error", err.Error())
			if c != nil {
				reason := "store failed: " + err.Error()
				c.setReason(reason)
				c.cl.Stop(errors.New(reason)) // no PUBACK for data not kept
			}
			return nil
		}
	}
	for _, r := range recs {
		v := fmt.Sprint(r.Value)
		if p, ok := r.Value.([]byte); ok {
			v = fmt.Sprintf("(%d bytes of binary)", len(p))
		}
		b.emit(Event{Kind: DatapointReceived, DeviceID: d.id, ProductID: d.pid, Topic: r.Stream, Payload: []byte(v), Time: now})
	}
	return nil
}

// dropFrontLocked drops the oldest point of st (and st itself once empty).
func (b *Broker) dropFrontLocked(d *devState, st *stream, ops []dpOp) []dpOp {
	p := st.pts[0]
	st.pts[0] = point{}
	st.pts = st.pts[1:]
	d.nPoints--
	d.ptBytes -= p.size
	if len(st.pts) == 0 {
		delete(d.streams, st.name)
	}
	if b.store != nil {
		ops = append(ops, dpOp{dev: d.id, stream: st.name, p: p})
	}
	return ops
}

// oldestStreamLocked is the stream holding the device's oldest point:
// O(streams), only when the device is at its byte bound.
func (d *devState) oldestStreamLocked() *stream {
	var best *stream
	for _, st := range d.streams {
		if best == nil || st.pts[0].seq < best.pts[0].seq {
			best = st
		}
	}
	return best
}

// Datapoints returns a copy of every datastream of a device.
func (b *Broker) Datapoints(deviceID string) map[string][]Datapoint {
	out := map[string][]Datapoint{}
	d := b.lookupDev(deviceID)
	if d == nil {
		return out
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, st := range d.streams {
		pts := make([]Datapoint, len(st.pts))
		for i, p := range st.pts {
			pts[i] = Datapoint{At: p.at, Value: p.v}
		}
		out[name] = pts
	}
	return out
}

// storedPoint is a copy of one stored point with its arrival number (the
// index of a binary value).
type storedPoint struct {
	Seq   uint64
	At    time.Time
	Value any
}

// streamPoints copies the points of a device's datastreams (all, or those
// in want), each stream in arrival order.
func (b *Broker) streamPoints(deviceID string, want map[string]bool) map[string][]storedPoint {
	out := map[string][]storedPoint{}
	d := b.lookupDev(deviceID)
	if d == nil {
		return out
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for name, st := range d.streams {
		if len(want) > 0 && !want[name] {
			continue
		}
		pts := make([]storedPoint, len(st.pts))
		for i, p := range st.pts {
			pts[i] = storedPoint{Seq: p.seq, At: p.at, Value: p.v}
		}
		out[name] = pts
	}
	return out
}

// streamInfo is a datastream's creation time and newest point.
type streamInfo struct {
	ID      string
	Created time.Time
	Last    storedPoint
}

// streamInfos lists a device's datastreams by id.
func (b *Broker) streamInfos(deviceID string) []streamInfo {
	d := b.lookupDev(deviceID)
	if d == nil {
		return nil
	}
	d.mu.Lock()
	out := make([]streamInfo, 0, len(d.streams))
	for name, st := range d.streams {
		p := st.pts[len(st.pts)-1]
		created := st.created
		if created.IsZero() {
			created = st.pts[0].at // loaded from the store
		}
		out = append(out, streamInfo{ID: name, Created: created, Last: storedPoint{Seq: p.seq, At: p.at, Value: p.v}})
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// binaryPoint finds a stored binary value by its arrival number.
func (b *Broker) binaryPoint(deviceID, streamID string, seq uint64) ([]byte, bool) {
	d := b.lookupDev(deviceID)
	if d == nil {
		return nil, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.streams[streamID]
	if st == nil {
		return nil, false
	}
	i := sort.Search(len(st.pts), func(i int) bool { return st.pts[i].seq >= seq })
	if i == len(st.pts) || st.pts[i].seq != seq {
		return nil, false
	}
	v, ok := st.pts[i].v.([]byte)
	return bytes.Clone(v), ok
}
