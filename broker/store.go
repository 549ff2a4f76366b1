package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// The durable state of a broker with Options.DataDir, in two bolt files:
// Mochi's storage hook keeps its sessions and inflight messages in
// sessionsFile; ours keeps the commands (kept ones and the history) and
// the data points in storeFile. Both are 0600 in a 0700 directory.
const (
	storeFile        = "onenet.db"
	sessionsFile     = "sessions.db"
	storeOpenTimeout = 2 * time.Second // another broker holding the files
)

var (
	bucketCmds   = []byte("cmds")   // uuid -> cmdRecord (JSON)
	bucketPoints = []byte("points") // device \x00 stream \x00 seq (8 bytes, big-endian) -> pointRecord (JSON)
)

// store writes the broker's state to bolt from one goroutine that groups
// whatever changed since its last transaction into the next (one fsync for
// many changes). A caller that must not answer before its change is on
// disk (a kept command, an acknowledged data point) waits for the
// transaction that carries it.
type store struct {
	db   *bbolt.DB
	cmds *cmdBook
	log  *slog.Logger

	mu      sync.Mutex
	cond    *sync.Cond
	dirty   map[*command]struct{}
	ops     []dpOp
	next    uint64 // the transaction that will carry changes made now
	written uint64 // the last transaction committed (or failed)
	failed  error  // a transaction failed: the store takes nothing more
	closing bool
	exited  bool // the writer has stopped: nothing more is written
	kick    chan struct{}
	stopped chan struct{}
}

// dpOp is a data point to store (put) or to delete.
type dpOp struct {
	put    bool
	dev    string
	stream string
	p      point
}

type cmdRecord struct {
	Seq      uint64    `json:"seq"`
	UUID     string    `json:"uuid"`
	Device   string    `json:"device"`
	Product  string    `json:"product"`
	Payload  []byte    `json:"payload"`
	QoS      int       `json:"qos"`
	Status   int       `json:"status"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	Sent     time.Time `json:"sent,omitzero"`
	Replied  time.Time `json:"replied,omitzero"`
	Response []byte    `json:"response,omitempty"`
	Keep     bool      `json:"keep,omitempty"`
}

type pointRecord struct {
	At     int64  `json:"at"` // unix nanoseconds
	Value  any    `json:"v,omitempty"`
	Binary []byte `json:"b,omitempty"` // a type 2 (binary) value
}

// openStore opens (or creates) the store in dir and loads what it kept.
func (b *Broker) openStore(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("broker: data directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("broker: data directory: %w", err)
	}
	path := filepath.Join(dir, storeFile)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: storeOpenTimeout})
	if err != nil {
		return fmt.Errorf("broker: store %s: %w", path, err)
	}
	s := &store{db: db, cmds: b.cmds, log: b.log, dirty: map[*command]struct{}{}, next: 1,
		kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketCmds, bucketPoints} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		b.store = s
		err = b.load()
	}
	if err != nil {
		_ = db.Close()
		b.store = nil
		return fmt.Errorf("broker: store %s: %w", path, err)
	}
	go s.run()
	return nil
}

// load rebuilds the kept commands, the history and the data points. Kept
// commands go back into their devices' queues in their order (over the
// bounds if the bounds were lowered: nothing accepted is dropped); a
// command that was waiting for a CONNACK when the process died was never
// acknowledged and is dropped.
func (b *Broker) load() error {
	var recs []cmdRecord
	var drop [][]byte
	type devPoints struct {
		d   *devState
		pts map[string][]point
	}
	err := b.store.db.View(func(tx *bbolt.Tx) error {
		err := tx.Bucket(bucketCmds).ForEach(func(k, v []byte) error {
			var r cmdRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("command %s: %w", k, err)
			}
			if r.Status == CmdCreated && !r.Keep {
				drop = append(drop, bytes.Clone(k))
				return nil
			}
			recs = append(recs, r)
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketPoints).ForEach(func(k, v []byte) error {
			dev, st, seq, ok := splitPointKey(k)
			if !ok {
				return fmt.Errorf("data point key %q", k)
			}
			var r pointRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("data point %q: %w", k, err)
			}
			_, pid, _ := b.reg.Device(dev)
			d := b.device(dev, pid)
			s := d.streams[st]
			if s == nil {
				s = &stream{name: st}
				d.streams[st] = s
			}
			val := r.Value
			if r.Binary != nil {
				val = r.Binary
			}
			p := point{seq: seq, at: time.Unix(0, r.At), v: val, size: pointOverhead + valueSize(val)}
			s.pts = append(s.pts, p) // keys are sorted: a stream's points come in seq order
			d.nPoints++
			d.ptBytes += p.size
			d.pointSeq = max(d.pointSeq, seq)
			return nil
		})
	})
	if err != nil {
		return err
	}
	slices.SortFunc(recs, func(a, c cmdRecord) int { return cmpU64(a.Seq, c.Seq) })
	var forgotten []*command
	for _, r := range recs {
		d := b.device(r.Device, r.Product)
		cmd := &command{seq: r.Seq, keep: r.Keep, dev: d, info: CommandInfo{
			UUID: r.UUID, DeviceID: d.id, ProductID: d.pid, Payload: r.Payload, QoS: r.QoS, Status: r.Status,
			Created: r.Created, Expires: r.Expires, Sent: r.Sent, Replied: r.Replied, Response: r.Response,
		}}
		b.cmdSeq.Store(max(b.cmdSeq.Load(), r.Seq))
		b.cmds.add(cmd)
		held := r.Status == CmdSent && cmd.resend() // sent again at the next login until answered
		if r.Status == CmdCreated || held {
			n := int64(len(cmd.info.Payload))
			cmd.queued = true
			if held {
				cmd.awaiting = true
				d.unacked = append(d.unacked, cmd)
			} else {
				d.queue = append(d.queue, cmd)
			}
			d.pendN++
			d.pendB += n
			b.pendN.Add(1)
			b.pendB.Add(n)
			continue
		}
		forgotten = append(forgotten, b.cmds.finish(cmd)...)
	}
	// Bounds on what was loaded (they may have been lowered since).
	l := b.limits
	var ops []dpOp
	points := 0
	b.devs.Range(func(_, v any) bool {
		d := v.(*devState)
		for _, st := range d.streams {
			for len(st.pts) > l.PointsPerStream {
				ops = b.dropFrontLocked(d, st, ops)
			}
		}
		for d.ptBytes > l.PointBytesPerDevice && d.nPoints > 1 {
			ops = b.dropFrontLocked(d, d.oldestStreamLocked(), ops)
		}
		points += d.nPoints
		return true
	})
	err = b.store.db.Update(func(tx *bbolt.Tx) error {
		for _, k := range drop {
			if err := tx.Bucket(bucketCmds).Delete(k); err != nil {
				return err
			}
		}
		for _, cmd := range forgotten {
			if err := tx.Bucket(bucketCmds).Delete([]byte(cmd.info.UUID)); err != nil {
				return err
			}
		}
		return applyPointOps(tx, ops)
	})
	if err != nil {
		return err
	}
	b.log.Info("broker store loaded", "data", b.dataDir, "kept_commands", b.pendN.Load(),
		"history", len(recs)-int(b.pendN.Load())-len(forgotten), "datapoints", points,
		"dropped_unacknowledged_commands", len(drop), "dropped_over_bounds", len(forgotten)+len(ops))
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func pointKey(dev, stream string, seq uint64) []byte {
	k := make([]byte, 0, len(dev)+len(stream)+10)
	k = append(k, dev...)
	k = append(k, 0)
	k = append(k, stream...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

func splitPointKey(k []byte) (dev, stream string, seq uint64, ok bool) {
	if len(k) < 10 {
		return "", "", 0, false
	}
	seq = binary.BigEndian.Uint64(k[len(k)-8:])
	rest := k[:len(k)-8]
	if rest[len(rest)-1] != 0 {
		return "", "", 0, false
	}
	rest = rest[:len(rest)-1]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return "", "", 0, false
	}
	return string(rest[:i]), string(rest[i+1:]), seq, true
}

func applyPointOps(tx *bbolt.Tx, ops []dpOp) error {
	bk := tx.Bucket(bucketPoints)
	for _, op := range ops {
		k := pointKey(op.dev, op.stream, op.p.seq)
		if !op.put {
			if err := bk.Delete(k); err != nil {
				return err
			}
			continue
		}
		r := pointRecord{At: op.p.at.UnixNano()}
		if bin, ok := op.p.v.([]byte); ok {
			r.Binary = bin
		} else {
			r.Value = op.p.v
		}
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("data point %s/%s: %w", op.dev, op.stream, err)
		}
		if err := bk.Put(k, v); err != nil {
			return err
		}
	}
	return nil
}

// persist records that cmd changed; the next transaction writes it.
func (b *Broker) persist(cmd *command) {
	if b.store != nil {
		b.store.mark(cmd)
	}
}

// persistSync is persist, returning once the change is on disk.
func (b *Broker) persistSync(cmd *command) error {
	if b.store == nil {
		return nil
	}
	if err := b.store.wait(b.store.mark(cmd)); err != nil {
		return fmt.Errorf("%w: %v", ErrStore, err)
	}
	return nil
}

// mark queues a command's change and returns the transaction that will
// carry it.
func (s *store) mark(cmd *command) uint64 {
	s.mu.Lock()
	s.dirty[cmd] = struct{}{}
	g := s.next
	s.mu.Unlock()
	s.signal()
	return g
}

// addOps queues data point changes (in the caller's order).
func (s *store) addOps(ops []dpOp) uint64 {
	s.mu.Lock()
	s.ops = append(s.ops, ops...)
	g := s.next
	s.mu.Unlock()
	s.signal()
	return g
}

func (s *store) signal() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// storeWait bounds how long a change waits for its commit: a disk that
// stalls longer makes the change fail instead of hanging its caller (a
// device's read loop, an HTTP handler).
const storeWait = 30 * time.Second

// wait returns once transaction g is committed, or its error.
func (s *store) wait(g uint64) error {
	deadline := time.Now().Add(storeWait)
	wake := time.AfterFunc(storeWait, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer wake.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.written < g && s.failed == nil && !s.exited {
		if !time.Now().Before(deadline) {
			return fmt.Errorf("store: a change not committed within %s (the disk stalls?)", storeWait)
		}
		s.cond.Wait()
	}
	if s.failed == nil && s.written < g {
		return errors.New("store closed")
	}
	return s.failed
}

// run is the store's writer: each round takes every change made since the
// last one and commits them in one transaction.
func (s *store) run() {
	defer close(s.stopped)
	defer func() {
		s.mu.Lock()
		s.exited = true
		s.cond.Broadcast()
		s.mu.Unlock()
	}()
	for {
		<-s.kick
		s.mu.Lock()
		dirty, ops, g, closing := s.dirty, s.ops, s.next, s.closing
		s.dirty, s.ops = map[*command]struct{}{}, nil
		s.next++
		s.mu.Unlock()
		var err error
		if len(dirty) > 0 || len(ops) > 0 {
			err = s.commit(dirty, ops)
		}
		s.mu.Lock()
		s.written = g
		if err != nil && s.failed == nil {
			// From here on nothing more is kept: a command to be kept is
			// refused (errno 1) and a data point disconnects its device.
			s.failed = err
			s.log.Error("broker store failed: nothing more is kept", "error", err.Error())
		}
		s.cond.Broadcast()
		more := len(s.dirty) > 0 || len(s.ops) > 0
		s.mu.Unlock()
		if closing && !more {
			return
		}
		if more || closing {
			s.signal()
		}
	}
}

func (s *store) commit(dirty map[*command]struct{}, ops []dpOp) error {
	type rec struct {
		key []byte
		val []byte // nil = delete
	}
	recs := make([]rec, 0, len(dirty))
	for cmd := range dirty {
		r, del := s.cmds.record(cmd)
		if del {
			recs = append(recs, rec{key: []byte(cmd.info.UUID)})
			continue
		}
		if r == nil {
			continue // a command not yet worth keeping (waiting for a CONNACK)
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		recs = append(recs, rec{key: []byte(r.UUID), val: v})
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		bk := tx.Bucket(bucketCmds)
		for _, r := range recs {
			var err error
			if r.val == nil {
				err = bk.Delete(r.key)
			} else {
				err = bk.Put(r.key, r.val)
			}
			if err != nil {
				return err
			}
		}
		return applyPointOps(tx, ops)
	})
}

// record is what the store keeps of cmd now: nil and true to delete it
// (forgotten), nil and false to write nothing yet.
func (k *cmdBook) record(cmd *command) (*cmdRecord, bool) {
	s := k.shard(cmd.info.UUID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cmd.gone {
		return nil, true
	}
	i := cmd.info
	if i.Status == CmdCreated && !cmd.keep {
		return nil, false
	}
	return &cmdRecord{Seq: cmd.seq, UUID: i.UUID, Device: i.DeviceID, Product: i.ProductID, Payload: i.Payload,
		QoS: i.QoS, Status: i.Status, Created: i.Created, Expires: i.Expires, Sent: i.Sent, Replied: i.Replied,
		Response: i.Response, Keep: cmd.keep}, false
}

// close writes what is left and closes the file.
func (s *store) close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		<-s.stopped
		return nil
	}
	s.closing = true
	s.mu.Unlock()
	s.signal()
	<-s.stopped
	err := s.db.Close()
	s.mu.Lock()
	ferr := s.failed
	s.mu.Unlock()
	return errors.Join(ferr, err)
}

// storeSummary counts what the broker holds (what Close keeps or drops).
type storeSummary struct {
	pending, history, points int
}

func (b *Broker) summary() storeSummary {
	s := storeSummary{pending: int(b.pendN.Load())}
	s.history = b.cmds.count() - s.pending
	b.devs.Range(func(_, v any) bool {
		d := v.(*devState)
		d.mu.Lock()
		s.points += d.nPoints
		d.mu.Unlock()
		return true
	})
	return s
}
