package broker

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Command statuses as OneNET's GET /cmds/{uuid} reports them.
const (
	CmdCreated  = 1 // kept for an offline device, or not yet written
	CmdSent     = 2 // $creq written to the device
	CmdReplied  = 4 // $crsp received
	CmdTimedOut = 5 // kept, but the device did not log in before the timeout
)

var statusDesc = map[int]string{
	CmdCreated: "cmd created", CmdSent: "cmd sent", CmdReplied: "cmd response received",
	CmdTimedOut: "cmd timeout",
}

// CommandOptions are the qos and timeout parameters of POST /cmds. A
// command for an offline device is kept only when Timeout > 0 (OneNET's
// "offline command"); QoS 1 with a Timeout is also sent again at each login
// of the device, with the same uuid, until a $crsp arrives or the timeout
// passes.
type CommandOptions struct {
	QoS     int
	Timeout time.Duration
}

// CommandInfo is the state of one command.
type CommandInfo struct {
	UUID      string
	DeviceID  string
	ProductID string
	Payload   []byte
	QoS       int
	Status    int
	Desc      string
	Created   time.Time
	Expires   time.Time // zero: no expiry
	Sent      time.Time
	Replied   time.Time
	Response  []byte
}

// command is one command from SendCommand until the history forgets it.
type command struct {
	seq  uint64 // creation order
	keep bool   // a timeout: kept for an offline device
	dev  *devState

	// guarded by its cmdBook shard
	info      CommandInfo
	inHistory bool  // in the shard's FIFO (no longer kept or waiting)
	size      int64 // bytes counted in the history: payload and response
	gone      bool  // forgotten (evicted, or dropped unsent)

	// guarded by dev.mu
	queued   bool       // counted in the pending bounds (in dev.queue, taken, or awaiting)
	taken    bool       // out of the queue for a delivery in progress
	awaiting bool       // in dev.unacked: sent, to be sent again at the next login
	waiter   chan error // SendCommand waiting for the device's CONNACK (not kept)
}

// resend: a qos=1 command with a timeout is sent again at each login of
// its device until it is answered or its timeout passes.
func (cmd *command) resend() bool { return cmd.keep && cmd.info.QoS == 1 }

// resolve answers a SendCommand waiting for the CONNACK (the first answer
// wins).
func (cmd *command) resolve(err error) {
	if cmd.waiter != nil {
		select {
		case cmd.waiter <- err:
		default:
		}
	}
}

// errBrokerFull: the broker-wide bound is reached (a sweep may help).
var errBrokerFull = errors.New("broker-wide bound")

// SendCommand pushes payload to the device on $creq/{uuid} (QoS 0, no
// subscription needed). It returns nil only for a command written to the
// device's connection, or kept for its next login (Timeout > 0; with
// Options.DataDir, on disk before SendCommand returns). An offline
// device gets ErrOffline for a command that is not to be kept, a full
// queue ErrQueueFull. A device between its CONNECT and its CONNACK is
// waited for (at most twice Limits.WriteTimeout).
func (b *Broker) SendCommand(deviceID string, payload []byte, opts CommandOptions) (string, error) {
	_, pid, ok := b.reg.Device(deviceID)
	if !ok {
		return "", fmt.Errorf("%w: %s", ErrUnknownDevice, deviceID)
	}
	if len(payload) >= maxPayload {
		return "", fmt.Errorf("command of %d bytes, limit is %d", len(payload), maxPayload-1)
	}
	if opts.QoS != 0 && opts.QoS != 1 {
		return "", fmt.Errorf("command qos %d: want 0 or 1", opts.QoS)
	}
	if opts.Timeout < 0 {
		return "", fmt.Errorf("command timeout %v: must not be negative", opts.Timeout)
	}
	d := b.device(deviceID, pid)
	now := time.Now()
	cmd := &command{seq: b.cmdSeq.Add(1), keep: opts.Timeout > 0, dev: d, info: CommandInfo{
		UUID: uuid.NewString(), DeviceID: d.id, ProductID: d.pid, Payload: clone(payload),
		QoS: opts.QoS, Status: CmdCreated, Created: now,
	}}
	if opts.Timeout > 0 {
		cmd.info.Expires = now.Add(opts.Timeout)
	}
	for attempt := 0; ; attempt++ {
		d.mu.Lock()
		c := d.conn
		if c != nil && c.ready && !c.released {
			d.mu.Unlock()
			return b.sendNow(c, cmd)
		}
		if c == nil && !cmd.keep {
			d.mu.Unlock()
			return "", fmt.Errorf("%w: %s", ErrOffline, deviceID)
		}
		// Kept for the next login, or waiting for this login's CONNACK.
		err := b.enqueueLocked(d, cmd, c != nil && !cmd.keep)
		d.mu.Unlock()
		if errors.Is(err, errBrokerFull) && attempt == 0 && b.sweepAll() {
			continue
		}
		if err != nil {
			return "", err
		}
		break
	}
	if cmd.waiter != nil {
		return b.awaitConnack(d, cmd)
	}
	if err := b.persistSync(cmd); err != nil {
		b.dropQueued(d, cmd) // not kept, as the answer will say
		return "", err
	}
	return cmd.info.UUID, nil
}

// sendNow writes cmd to a device that is online. A write that fails keeps
// a command that is to be kept, and is ErrOffline for any other.
func (b *Broker) sendNow(c *conn, cmd *command) (string, error) {
	d := cmd.dev
	if cmd.resend() {
		// It may be held until it is answered: within the pending bounds.
		d.mu.Lock()
		err := b.reserveLocked(d, cmd)
		d.mu.Unlock()
		if err != nil {
			return "", err
		}
	}
	b.cmds.add(cmd)
	err := b.writeCommand(c, cmd)
	if err == nil {
		b.afterWrite(c, cmd) // written: errno 0 says so, whatever the store does
		return cmd.info.UUID, nil
	}
	if !cmd.keep {
		b.cmds.forget(cmd)
		return "", fmt.Errorf("%w: %s (%v)", ErrOffline, cmd.dev.id, err)
	}
	d.mu.Lock()
	qerr := b.enqueueLocked(d, cmd, false)
	d.mu.Unlock()
	if qerr != nil {
		b.cmds.forget(cmd)
		return "", qerr
	}
	if err := b.persistSync(cmd); err != nil {
		b.dropQueued(d, cmd)
		return "", err
	}
	b.redeliver(d, c) // a login may have come and gone between the failure and the queue
	return cmd.info.UUID, nil
}

// enqueueLocked puts cmd at the end of the device's queue within the
// bounds (the caller holds d.mu). wait: a SendCommand waits for the
// delivery (the device is between CONNECT and CONNACK).
func (b *Broker) enqueueLocked(d *devState, cmd *command, wait bool) error {
	if err := b.reserveLocked(d, cmd); err != nil {
		return err
	}
	if wait {
		cmd.waiter = make(chan error, 1)
	}
	d.queue = append(d.queue, cmd)
	b.cmds.add(cmd)
	return nil
}

// reserveLocked counts cmd in the pending bounds (once), or says which
// bound it would pass (the caller holds d.mu).
func (b *Broker) reserveLocked(d *devState, cmd *command) error {
	if cmd.queued {
		return nil
	}
	n := int64(len(cmd.info.Payload))
	l := b.limits
	if d.pendN+1 > l.PendingPerDevice || d.pendB+n > l.PendingBytesPerDevice {
		b.sweepDeviceLocked(d, time.Now())
		if d.pendN+1 > l.PendingPerDevice || d.pendB+n > l.PendingBytesPerDevice {
			return fmt.Errorf("%w: device %s holds %d commands of %d bytes, limit is %d commands or %d bytes",
				ErrQueueFull, d.id, d.pendN, d.pendB, l.PendingPerDevice, l.PendingBytesPerDevice)
		}
	}
	if c := b.pendN.Add(1); c > int64(l.PendingTotal) {
		b.pendN.Add(-1)
		return fmt.Errorf("%w: the broker holds %d kept commands, limit is %d (%w)", ErrQueueFull, c-1, l.PendingTotal, errBrokerFull)
	}
	if s := b.pendB.Add(n); s > l.PendingBytesTotal {
		b.pendB.Add(-n)
		b.pendN.Add(-1)
		return fmt.Errorf("%w: the broker holds %d bytes of kept commands, limit is %d (%w)", ErrQueueFull, s-n, l.PendingBytesTotal, errBrokerFull)
	}
	d.pendN++
	d.pendB += n
	cmd.queued = true
	return nil
}

// unqueueLocked takes cmd off the pending counts (it has left, or is
// leaving, the queue; the caller holds d.mu).
func (b *Broker) unqueueLocked(d *devState, cmd *command) {
	if !cmd.queued {
		return
	}
	n := int64(len(cmd.info.Payload))
	cmd.queued, cmd.taken = false, false
	d.pendN--
	d.pendB -= n
	b.pendN.Add(-1)
	b.pendB.Add(-n)
}

// removeLocked takes cmd out of the device's queue (rare paths: O(queue)).
func (b *Broker) removeLocked(d *devState, cmd *command) bool {
	i := slices.Index(d.queue, cmd)
	if i < 0 {
		return false
	}
	d.queue = slices.Delete(d.queue, i, i+1)
	b.unqueueLocked(d, cmd)
	return true
}

// dropQueued forgets a queued command that was not accepted after all.
func (b *Broker) dropQueued(d *devState, cmd *command) {
	d.mu.Lock()
	b.removeLocked(d, cmd)
	d.mu.Unlock()
	b.cmds.forget(cmd)
	b.persist(cmd)
}

// takeForLoginLocked hands a delivery, in creation order, the commands a
// login gets: those sent but not answered that are to be sent again, and
// the whole queue.
func (d *devState) takeForLoginLocked() []*command {
	batch := d.takeQueueLocked()
	if len(d.unacked) == 0 {
		return batch
	}
	for _, cmd := range d.unacked {
		cmd.awaiting, cmd.taken = false, true
	}
	// Concurrent sends may have appended out of order.
	slices.SortFunc(d.unacked, func(a, c *command) int { return cmpU64(a.seq, c.seq) })
	merged := make([]*command, 0, len(batch)+len(d.unacked))
	i, j := 0, 0
	for i < len(d.unacked) || j < len(batch) {
		if j == len(batch) || i < len(d.unacked) && d.unacked[i].seq < batch[j].seq {
			merged = append(merged, d.unacked[i])
			i++
		} else {
			merged = append(merged, batch[j])
			j++
		}
	}
	clear(d.unacked)
	d.unacked = d.unacked[:0]
	return merged
}

// takeQueueLocked hands the whole queue to a delivery.
func (d *devState) takeQueueLocked() []*command {
	batch := d.queue
	d.queue = nil
	for _, cmd := range batch {
		cmd.taken = true
	}
	return batch
}

// dropWaitingLocked removes from the queue the commands whose SendCommand
// waits for a CONNACK that will not come (the device went offline); the
// caller answers them ErrOffline.
func (d *devState) dropWaitingLocked(b *Broker) []*command {
	var out []*command
	kept := d.queue[:0]
	for _, cmd := range d.queue {
		if cmd.waiter != nil && !cmd.keep {
			b.unqueueLocked(d, cmd)
			b.cmds.forget(cmd)
			out = append(out, cmd)
			continue
		}
		kept = append(kept, cmd)
	}
	clear(d.queue[len(kept):])
	d.queue = kept
	return out
}

// awaitConnack waits for the delivery of a command sent while its device
// was between CONNECT and CONNACK.
func (b *Broker) awaitConnack(d *devState, cmd *command) (string, error) {
	t := time.NewTimer(2 * b.limits.WriteTimeout)
	defer t.Stop()
	select {
	case err := <-cmd.waiter:
		return b.waitAnswer(cmd, err)
	case <-t.C:
	}
	d.mu.Lock()
	removed := !cmd.taken && b.removeLocked(d, cmd)
	d.mu.Unlock()
	if removed {
		b.cmds.forget(cmd)
		return "", fmt.Errorf("%w: %s (no CONNACK within %v)", ErrOffline, d.id, 2*b.limits.WriteTimeout)
	}
	// A delivery has it: each write is bounded by the write timeout.
	t.Reset(b.limits.WriteTimeout + time.Second)
	select {
	case err := <-cmd.waiter:
		return b.waitAnswer(cmd, err)
	case <-t.C:
		return "", fmt.Errorf("%w: %s (delivery did not finish)", ErrOffline, d.id)
	}
}

func (b *Broker) waitAnswer(cmd *command, err error) (string, error) {
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, cmd.dev.id)
	}
	return cmd.info.UUID, nil
}

// deliverQueued sends what was queued for a device that has just logged in
// (or whose queue was handed back), in order; a command whose timeout
// passed is expired instead. A failed write hands the rest back.
func (b *Broker) deliverQueued(c *conn, batch []*command) {
	d := c.dev
	for i, cmd := range batch {
		now := time.Now()
		if b.cmds.status(cmd) == CmdReplied { // answered meanwhile: nothing to send
			d.mu.Lock()
			b.unqueueLocked(d, cmd)
			d.mu.Unlock()
			cmd.resolve(nil)
			b.finish(cmd)
			continue
		}
		if b.cmds.expire(cmd, now) || b.cmds.resendOver(cmd, now) {
			d.mu.Lock()
			b.unqueueLocked(d, cmd)
			d.mu.Unlock()
			b.finish(cmd)
			b.emit(Event{Kind: CommandExpired, DeviceID: d.id, ProductID: d.pid, CmdUUID: cmd.info.UUID})
			continue
		}
		if err := b.writeCommand(c, cmd); err != nil {
			b.requeue(d, batch[i:], c)
			return
		}
		cmd.resolve(nil)
		b.afterWrite(c, cmd)
	}
}

// afterWrite: a command written to its device over c is finished, or, to
// be sent again until it is answered, held in the device's unacked list.
// If the device logged in again while it was written to c, that login
// already took the unacked list: the command goes to the new session.
func (b *Broker) afterWrite(c *conn, cmd *command) {
	d := cmd.dev
	d.mu.Lock()
	if cmd.resend() && b.cmds.status(cmd) == CmdSent {
		cmd.taken = false
		again := d.conn != nil && d.conn != c
		if again {
			i := slices.IndexFunc(d.queue, func(q *command) bool { return q.seq > cmd.seq })
			if i < 0 {
				i = len(d.queue)
			}
			d.queue = slices.Insert(d.queue, i, cmd)
		} else if !cmd.awaiting {
			cmd.awaiting = true
			d.unacked = append(d.unacked, cmd)
		}
		d.mu.Unlock()
		b.persist(cmd)
		if again {
			b.redeliver(d, c)
		}
		return
	}
	b.unqueueLocked(d, cmd)
	d.mu.Unlock()
	b.finish(cmd)
}

// answered takes a command that has its reply out of the unacked list.
func (b *Broker) answered(cmd *command) {
	d := cmd.dev
	d.mu.Lock()
	if !cmd.awaiting {
		d.mu.Unlock()
		return // not held (or a delivery has it: afterWrite finishes it)
	}
	cmd.awaiting = false
	if i := slices.Index(d.unacked, cmd); i >= 0 {
		d.unacked = slices.Delete(d.unacked, i, i+1)
	}
	b.unqueueLocked(d, cmd)
	d.mu.Unlock()
	b.finish(cmd)
}

// requeue puts commands whose delivery over the connection failed back at the
// front of the queue, in order. If the device is offline by now, those only
// waiting for a CONNACK are answered; if it is online again on another
// connection, the queue is delivered there.
func (b *Broker) requeue(d *devState, rest []*command, failed *conn) {
	d.mu.Lock()
	for _, cmd := range rest {
		cmd.taken = false
	}
	d.queue = append(slices.Clip(rest), d.queue...)
	var dropped []*command
	if d.conn == nil {
		dropped = d.dropWaitingLocked(b)
	}
	d.mu.Unlock()
	for _, cmd := range dropped {
		cmd.resolve(ErrOffline)
	}
	b.redeliver(d, failed)
}

// redeliver delivers the queue if the device is online with a working
// connection other than not, the one that just failed (a command was queued after its login took the
// queue).
func (b *Broker) redeliver(d *devState, not *conn) {
	d.mu.Lock()
	c := d.conn
	if c == nil || c == not || !c.ready || c.released || c.cl.Closed() || len(d.queue) == 0 {
		d.mu.Unlock()
		return
	}
	batch := d.takeQueueLocked()
	d.mu.Unlock()
	b.deliverQueued(c, batch)
}

// writeCommand sends a command the way the device's protocol expects:
// legacy $creq written to its connection alone (no subscription needed;
// the write is bounded by Limits.WriteTimeout), studio
// $sys/{pid}/{name}/cmd/request/{uuid} to its subscription.
func (b *Broker) writeCommand(c *conn, cmd *command) error {
	topic := "$creq/" + cmd.info.UUID
	n := len(cmd.info.Payload)
	var err error
	if c.studio {
		topic = sysPrefix(c.dev.pid, c.dev.id) + "cmd/request/" + cmd.info.UUID
		err = b.srv.Publish(internalSys(topic), cmd.info.Payload, false, 0)
	} else {
		if n >= queueAccountMin {
			b.queue(c, n) // OnPacketSent takes it off again
		}
		err = c.cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish},
			TopicName:   topic,
			Payload:     cmd.info.Payload,
		})
		if err != nil && n >= queueAccountMin {
			c.queued.Add(-int64(n))
		}
		if err != nil && !errors.Is(err, mqtt.ErrConnectionClosed) {
			// Part of the packet may be on the wire: the connection is
			// broken whatever the error was.
			reason := "write failed: " + err.Error()
			c.setReason(reason)
			c.cl.Stop(errors.New(reason))
		}
	}
	if err != nil {
		return err
	}
	b.cmds.markSent(cmd)
	b.emit(Event{Kind: CommandSent, DeviceID: c.dev.id, ProductID: c.dev.pid,
		Topic: topic, Payload: cmd.info.Payload, CmdUUID: cmd.info.UUID})
	return nil
}

// finish moves a command that is no longer kept or waiting into the
// history (which may forget its oldest) and stores the change.
func (b *Broker) finish(cmd *command) {
	for _, old := range b.cmds.finish(cmd) {
		b.persist(old)
	}
	b.persist(cmd)
}

// sweepDeviceLocked expires the device's kept commands whose timeout has
// passed (the caller holds d.mu): a full queue makes room this way before
// it refuses a command. O(queue), only when the queue is full.
func (b *Broker) sweepDeviceLocked(d *devState, now time.Time) []*command {
	var out []*command
	kept := d.queue[:0]
	for _, cmd := range d.queue {
		if !cmd.taken && b.cmds.expire(cmd, now) {
			b.unqueueLocked(d, cmd)
			out = append(out, cmd)
			continue
		}
		kept = append(kept, cmd)
	}
	clear(d.queue[len(kept):])
	d.queue = kept
	held := d.unacked[:0]
	for _, cmd := range d.unacked {
		if b.cmds.resendOver(cmd, now) {
			cmd.awaiting = false
			b.unqueueLocked(d, cmd)
			out = append(out, cmd)
			continue
		}
		held = append(held, cmd)
	}
	clear(d.unacked[len(held):])
	d.unacked = held
	for _, cmd := range out {
		b.finish(cmd)
		// emit under d.mu: the feed never takes a device's lock
		b.emit(Event{Kind: CommandExpired, DeviceID: d.id, ProductID: d.pid, CmdUUID: cmd.info.UUID})
	}
	return out
}

// sweepAll expires kept commands past their timeout on every device, at
// most once a second (the broker-wide bound was reached). It reports
// whether anything was freed.
func (b *Broker) sweepAll() bool {
	now := time.Now()
	last := b.sweepAt.Load()
	if now.UnixNano()-last < int64(time.Second) || !b.sweepAt.CompareAndSwap(last, now.UnixNano()) {
		return false
	}
	freed := false
	b.devs.Range(func(_, v any) bool {
		d := v.(*devState)
		d.mu.Lock()
		if len(b.sweepDeviceLocked(d, now)) > 0 {
			freed = true
		}
		d.mu.Unlock()
		return true
	})
	return freed
}

// Command returns the state of a command.
func (b *Broker) Command(uuid string) (CommandInfo, bool) {
	return b.cmds.info(uuid)
}

// storeReply records a device's answer; false if the command is unknown,
// was sent to another device, is not (or no longer) waiting for an answer:
// the first $crsp wins.
func (b *Broker) storeReply(deviceID, productID, id string, payload []byte) bool {
	cmd, forgotten, why := b.cmds.reply(deviceID, id, payload)
	if cmd == nil {
		b.logWarn("reply ignored: "+why, "device", deviceID, "cmd", id)
		return false
	}
	for _, old := range forgotten {
		b.persist(old)
	}
	b.answered(cmd)
	b.persist(cmd)
	b.emit(Event{Kind: CommandReplied, DeviceID: cmd.dev.id, ProductID: cmd.dev.pid, topicPrefix: "$crsp/", // Topic: $crsp/{uuid}
		Payload: payload, CmdUUID: cmd.info.UUID})
	return true
}

// cmdBook is the command history, sharded by uuid so that no lock is
// shared by all commands. Each shard forgets its oldest finished commands
// past its part (1/cmdShards) of Limits.History and HistoryBytes: O(1)
// per command. Commands still kept are never forgotten (the pending
// bounds hold them).
type cmdBook struct {
	shards [cmdShards]cmdShard
	maxN   int
	maxB   int64
}

const cmdShards = 32

type cmdShard struct {
	mu    sync.Mutex
	m     map[string]*command
	fifo  []*command // finished commands, oldest first, from head
	head  int
	bytes int64
}

// historyOverhead is what a command costs beside its payload and response.
const historyOverhead = 256

func newCmdBook(maxN int, maxB int64) *cmdBook {
	k := &cmdBook{maxN: max(1, (maxN+cmdShards-1)/cmdShards), maxB: max(1, (maxB+cmdShards-1)/cmdShards)}
	for i := range k.shards {
		k.shards[i].m = map[string]*command{}
	}
	return k
}

func (k *cmdBook) shard(uuid string) *cmdShard {
	h := fnv.New32a()
	_, _ = h.Write([]byte(uuid))
	return &k.shards[h.Sum32()%cmdShards]
}

func (k *cmdBook) add(cmd *command) {
	s := k.shard(cmd.info.UUID)
	s.mu.Lock()
	s.m[cmd.info.UUID] = cmd
	s.mu.Unlock()
}

// forget drops a command that never took effect (not written, not kept).
func (k *cmdBook) forget(cmd *command) {
	s := k.shard(cmd.info.UUID)
	s.mu.Lock()
	if s.m[cmd.info.UUID] == cmd && !cmd.inHistory {
		delete(s.m, cmd.info.UUID)
		cmd.gone = true
	}
	s.mu.Unlock()
}

// finish appends cmd to its shard's history and returns the commands
// forgotten to make room.
func (k *cmdBook) finish(cmd *command) []*command {
	s := k.shard(cmd.info.UUID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if cmd.inHistory || cmd.gone {
		return nil
	}
	cmd.inHistory = true
	cmd.size = historyOverhead + int64(len(cmd.info.Payload)+len(cmd.info.Response))
	s.fifo = append(s.fifo, cmd)
	s.bytes += cmd.size
	return s.evictLocked(k)
}

func (s *cmdShard) evictLocked(k *cmdBook) []*command {
	var out []*command
	for len(s.fifo)-s.head > k.maxN || s.bytes > k.maxB && len(s.fifo)-s.head > 1 {
		old := s.fifo[s.head]
		s.fifo[s.head] = nil
		s.head++
		s.bytes -= old.size
		old.gone = true
		if s.m[old.info.UUID] == old {
			delete(s.m, old.info.UUID)
		}
		out = append(out, old)
	}
	if s.head > 64 && s.head*2 > len(s.fifo) { // compact: amortised O(1)
		n := copy(s.fifo, s.fifo[s.head:])
		clear(s.fifo[n:])
		s.fifo = s.fifo[:n]
		s.head = 0
	}
	return out
}

// expire marks a kept command whose timeout has passed, if it is not yet
// sent; it reports whether the command is (now) timed out.
func (k *cmdBook) expire(cmd *command, now time.Time) bool {
	s := k.shard(cmd.info.UUID)
	s.mu.Lock()
	defer s.mu.Unlock()
	return expireLocked(cmd, now)
}

func expireLocked(cmd *command, now time.Time) bool {
	if cmd.info.Status == CmdCreated && !cmd.info.Expires.IsZero() && now.After(cmd.info.Expires) {
		cmd.info.Status = CmdTimedOut
		return true
	}
	return cmd.info.Status == CmdTimedOut
}

func (k *cmdBook) markSent(cmd *command) {
	s := k.shard(cmd.info.UUID)
	s.mu.Lock()
	if cmd.info.Status < CmdSent {
		cmd.info.Status = CmdSent
		cmd.info.Sent = time.Now()
	}
	s.mu.Unlock()
}

func (k *cmdBook) info(uuid string) (CommandInfo, bool) {
	s := k.shard(uuid)
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd, ok := s.m[uuid]
	if !ok {
		return CommandInfo{}, false
	}
	expireLocked(cmd, time.Now())
	info := cmd.info
	info.Desc = statusDesc[info.Status]
	info.Payload = clone(info.Payload)
	if info.Response != nil {
		info.Response = clone(info.Response)
	}
	return info, true
}

// reply stores a device's answer to its own command; a bigger answer may
// make the shard forget its oldest commands (returned).
func (k *cmdBook) reply(deviceID, uuid string, payload []byte) (*command, []*command, string) {
	s := k.shard(uuid)
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd, ok := s.m[uuid]
	switch {
	case !ok || cmd.info.DeviceID != deviceID:
		return nil, nil, "unknown command"
	case cmd.info.Status == CmdReplied:
		return nil, nil, "already answered (the first $crsp wins)"
	case cmd.info.Status == CmdTimedOut:
		return nil, nil, "command timed out before it was sent"
	}
	// Status 1 too: the device may answer before the write returns and
	// the command is marked sent.
	cmd.info.Status = CmdReplied
	cmd.info.Replied = time.Now()
	if cmd.info.Sent.IsZero() {
		cmd.info.Sent = cmd.info.Replied // answered before the write returned
	}
	if cmd.inHistory {
		s.bytes += int64(len(payload) - len(cmd.info.Response))
		cmd.size += int64(len(payload) - len(cmd.info.Response))
	}
	cmd.info.Response = clone(payload)
	return cmd, s.evictLocked(k), ""
}

// status is a command's status now.
func (k *cmdBook) status(cmd *command) int {
	s := k.shard(cmd.info.UUID)
	s.mu.Lock()
	defer s.mu.Unlock()
	return cmd.info.Status
}

// resendOver: a command sent and held for its answer whose timeout has
// passed (it is not sent again; its status stays 2, sent).
func (k *cmdBook) resendOver(cmd *command, now time.Time) bool {
	s := k.shard(cmd.info.UUID)
	s.mu.Lock()
	defer s.mu.Unlock()
	return cmd.info.Status == CmdSent && !cmd.info.Expires.IsZero() && now.After(cmd.info.Expires)
}

// count is the number of commands the history holds (kept ones included).
func (k *cmdBook) count() int {
	n := 0
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// ofDevice lists the commands of a device created in [start, end], oldest
// first: O(history), for GET /cmds/history/{device_id}.
func (k *cmdBook) ofDevice(deviceID string, start, end time.Time) []CommandInfo {
	var out []CommandInfo
	var seqs []uint64
	for i := range k.shards {
		s := &k.shards[i]
		s.mu.Lock()
		for _, cmd := range s.m {
			if cmd.info.DeviceID != deviceID || cmd.info.Created.Before(start) || cmd.info.Created.After(end) {
				continue
			}
			expireLocked(cmd, time.Now())
			info := cmd.info
			info.Payload = clone(info.Payload)
			info.Response = clone(info.Response)
			out = append(out, info)
			seqs = append(seqs, cmd.seq)
		}
		s.mu.Unlock()
	}
	idx := make([]int, len(out))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmpU64(seqs[a], seqs[b]) })
	sorted := make([]CommandInfo, len(out))
	for i, j := range idx {
		sorted[i] = out[j]
	}
	return sorted
}
