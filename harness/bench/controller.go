package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/onenet-hil/hil/harness/fleet/mqttwire"
)

// mqttController is the command sender and reply collector for a plain MQTT
// broker (Mosquitto or any address): one connection that publishes
// commands on CommandPrefix+id and is subscribed to ReplyPrefix+"+".
type mqttController struct {
	conn        net.Conn
	cmdPrefix   string
	replyPrefix string
	onReply     func(key string, payload []byte, at time.Time)
	onLost      func(reason string)
	out         []byte
	done        chan struct{}
	closing     bool
	mu          sync.Mutex
}

func dialController(ctx context.Context, addr, clientID, user, password, cmdPrefix, replyPrefix string,
	onReply func(string, []byte, time.Time), onLost func(string)) (*mqttController, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	deadline, _ := dctx.Deadline()
	pending, err := mqttwire.Handshake(conn, deadline,
		mqttwire.AppendConnect(nil, clientID, user, password, 0, true), []string{replyPrefix + "+"})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("controller login: %w", err)
	}
	c := &mqttController{conn: conn, cmdPrefix: cmdPrefix, replyPrefix: replyPrefix,
		onReply: onReply, onLost: onLost, done: make(chan struct{})}
	go c.read(pending)
	return c, nil
}

func (c *mqttController) read(pending []byte) {
	defer close(c.done)
	buf := make([]byte, 0, 64<<10)
	buf = append(buf, pending...)
	for {
		now := time.Now()
		off := 0
		for {
			typ, flags, body, n, err := mqttwire.Next(buf[off:])
			if err != nil {
				c.lost(err)
				return
			}
			if n == 0 {
				break
			}
			off += n
			if typ == mqttwire.PUBLISH {
				topic, _, payload, err := mqttwire.ParsePublish(flags, body)
				if err != nil {
					c.lost(err)
					return
				}
				if len(topic) > len(c.replyPrefix) && string(topic[:len(c.replyPrefix)]) == c.replyPrefix {
					c.onReply(string(topic[len(c.replyPrefix):]), payload, now)
				}
			}
		}
		buf = buf[:copy(buf, buf[off:])]
		if need := mqttwire.NeedBytes(buf); need > cap(buf) {
			buf = append(make([]byte, 0, need), buf...)
		}
		n, err := c.conn.Read(buf[len(buf):cap(buf)])
		if err != nil {
			c.lost(err)
			return
		}
		buf = buf[:len(buf)+n]
	}
}

func (c *mqttController) lost(err error) {
	c.mu.Lock()
	closing := c.closing
	c.mu.Unlock()
	if !closing {
		c.onLost("controller connection dropped: " + err.Error())
	}
}

// send publishes one command; the reply key is the device id.
func (c *mqttController) send(dev, deviceID string, payload []byte) (string, error) {
	c.out = mqttwire.AppendPublish(c.out[:0], c.cmdPrefix+deviceID, payload)
	if _, err := c.conn.Write(c.out); err != nil {
		return deviceID, err
	}
	return deviceID, nil
}

func (c *mqttController) close() {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	c.conn.Write(mqttwire.Disconnect)
	c.conn.Close()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
}

var errNoReplyPath = errors.New("this broker has no reply path for the chosen command path")
