package broker

import (
	"fmt"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/google/uuid"
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
// command for an offline device is kept only when QoS is 1 or Timeout > 0.
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

type command struct {
	info CommandInfo
}

// maxKeptCommands bounds the command history (GET /cmds/{uuid}): a fleet
// at 5,000 commands/s would otherwise grow it by 75,000 entries every 15 s
// for as long as the broker runs.
const maxKeptCommands = 100_000

// remember records cmd for Command and GET /cmds, forgetting the oldest
// commands past maxKeptCommands. A command still waiting for its device is
// kept (moved to the back) until it has expired (the caller holds b.mu).
func (b *Broker) remember(cmd *command) {
	b.cmds[cmd.info.UUID] = cmd
	b.cmdOrder = append(b.cmdOrder, cmd.info.UUID)
	now := time.Now()
	for scanned := 0; len(b.cmds) > maxKeptCommands && len(b.cmdOrder) > 0 && scanned < len(b.cmdOrder); scanned++ {
		id := b.cmdOrder[0]
		b.cmdOrder = b.cmdOrder[1:]
		old, ok := b.cmds[id]
		if !ok {
			continue // already gone
		}
		if b.isPending(old) && (old.info.Expires.IsZero() || now.Before(old.info.Expires)) {
			b.cmdOrder = append(b.cmdOrder, id) // still valid for its device's next login
			continue
		}
		delete(b.cmds, id)
	}
	if len(b.cmdOrder) > 2*len(b.cmds)+64 {
		// UUIDs of commands removed elsewhere: drop them from the order.
		kept := b.cmdOrder[:0:0]
		for _, id := range b.cmdOrder {
			if _, ok := b.cmds[id]; ok {
				kept = append(kept, id)
			}
		}
		b.cmdOrder = kept
	}
}

// isPending tells whether cmd is queued for its device's next login.
func (b *Broker) isPending(cmd *command) bool {
	for _, p := range b.pending[cmd.info.DeviceID] {
		if p == cmd {
			return true
		}
	}
	return false
}

// SendCommand pushes payload to the device on $creq/{uuid} (QoS 0, no
// subscription needed). An offline device gets ErrOffline unless the
// command is to be kept (QoS 1 or Timeout > 0): then it is delivered at the
// device's next login while still valid.
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
	now := time.Now()
	cmd := &command{info: CommandInfo{
		UUID: uuid.NewString(), DeviceID: deviceID, ProductID: pid, Payload: clone(payload),
		QoS: opts.QoS, Status: CmdCreated, Created: now,
	}}
	if opts.Timeout > 0 {
		cmd.info.Expires = now.Add(opts.Timeout)
	}
	keep := opts.QoS == 1 || opts.Timeout > 0
	b.mu.Lock()
	c := b.conns[deviceID]
	switch {
	case c != nil && c.ready:
	case c != nil || keep:
		// Logging in right now (CONNACK not yet out) or kept for later:
		// sessionEstablished delivers it.
		b.remember(cmd)
		b.pending[deviceID] = append(b.pending[deviceID], cmd)
		b.mu.Unlock()
		return cmd.info.UUID, nil
	default:
		b.mu.Unlock()
		return "", fmt.Errorf("%w: %s", ErrOffline, deviceID)
	}
	b.remember(cmd)
	b.mu.Unlock()
	if err := b.writeCommand(c, cmd); err != nil {
		b.mu.Lock()
		if keep {
			b.pending[deviceID] = append(b.pending[deviceID], cmd)
			b.mu.Unlock()
			return cmd.info.UUID, nil
		}
		delete(b.cmds, cmd.info.UUID)
		b.mu.Unlock()
		return "", fmt.Errorf("%w: %s (%v)", ErrOffline, deviceID, err)
	}
	return cmd.info.UUID, nil
}

// writeCommand sends a command the way the device's protocol expects:
// legacy $creq written to its connection alone (no subscription needed),
// studio $sys/{pid}/{name}/cmd/request/{uuid} to its subscription.
func (b *Broker) writeCommand(c *conn, cmd *command) error {
	topic := "$creq/" + cmd.info.UUID
	var err error
	if c.studio {
		topic = sysPrefix(c.productID, c.deviceID) + "cmd/request/" + cmd.info.UUID
		err = b.srv.Publish(internalSys(topic), cmd.info.Payload, false, 0)
	} else {
		err = c.cl.WritePacket(packets.Packet{
			FixedHeader: packets.FixedHeader{Type: packets.Publish},
			TopicName:   topic,
			Payload:     cmd.info.Payload,
		})
	}
	if err != nil {
		return err
	}
	b.mu.Lock()
	if cmd.info.Status < CmdSent {
		cmd.info.Status = CmdSent
		cmd.info.Sent = time.Now()
	}
	b.mu.Unlock()
	b.emit(Event{Kind: CommandSent, DeviceID: cmd.info.DeviceID, ProductID: cmd.info.ProductID,
		Topic: topic, Payload: clone(cmd.info.Payload), CmdUUID: cmd.info.UUID})
	return nil
}

// deliverKept sends a kept command at login, unless its timeout passed.
func (b *Broker) deliverKept(c *conn, cmd *command) {
	b.mu.Lock()
	expired := b.expireLocked(cmd, time.Now())
	b.mu.Unlock()
	if expired {
		b.emit(Event{Kind: CommandExpired, DeviceID: cmd.info.DeviceID, ProductID: cmd.info.ProductID, CmdUUID: cmd.info.UUID})
		return
	}
	if err := b.writeCommand(c, cmd); err != nil {
		b.mu.Lock()
		b.pending[cmd.info.DeviceID] = append(b.pending[cmd.info.DeviceID], cmd)
		b.mu.Unlock()
	}
}

func (b *Broker) expireLocked(cmd *command, now time.Time) bool {
	if cmd.info.Status == CmdCreated && !cmd.info.Expires.IsZero() && now.After(cmd.info.Expires) {
		cmd.info.Status = CmdTimedOut
		return true
	}
	return cmd.info.Status == CmdTimedOut
}

// Command returns the state of a command.
func (b *Broker) Command(uuid string) (CommandInfo, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cmd, ok := b.cmds[uuid]
	if !ok {
		return CommandInfo{}, false
	}
	b.expireLocked(cmd, time.Now())
	info := cmd.info
	info.Desc = statusDesc[info.Status]
	info.Payload = clone(info.Payload)
	if info.Response != nil {
		info.Response = clone(info.Response)
	}
	return info, true
}

// storeReply records a device's answer; false if the command is unknown
// or was sent to another device.
func (b *Broker) storeReply(deviceID, productID, id string, payload []byte) bool {
	b.mu.Lock()
	cmd, ok := b.cmds[id]
	if !ok || cmd.info.DeviceID != deviceID {
		b.mu.Unlock()
		b.log.Warn("reply to an unknown command ignored", "device", deviceID, "cmd", id)
		return false
	}
	cmd.info.Status = CmdReplied
	cmd.info.Replied = time.Now()
	cmd.info.Response = clone(payload)
	b.mu.Unlock()
	b.emit(Event{Kind: CommandReplied, DeviceID: deviceID, ProductID: productID, Topic: "$crsp/" + id, Payload: clone(payload), CmdUUID: id})
	return true
}
