package broker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tcpListener is Mochi's TCP listener plus what Mochi lacks for a
// connection that never completes a CONNECT: a deadline (Mochi sets none
// before the CONNECT, so a silent or half-sent CONNECT would hold two
// goroutines, and Server.Close, forever), a way for Close and Restart to
// end it, and a refused event saying why it ended.
type tcpListener struct {
	*listeners.TCP
	b *Broker
}

// rawConn counts what a connection sent before its CONNECT was seen, puts
// a deadline on every write and knows the broker's conn once the login got
// that far.
type rawConn struct {
	net.Conn
	b      *Broker
	read   atomic.Int64
	hooked atomic.Bool // OnPacketRead saw its first CONNECT
	conn   atomic.Pointer[conn]
}

func (c *rawConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// Write bounds every write to the client by Limits.WriteTimeout: a client
// that takes no data for that long is disconnected (Mochi sets no write
// deadline; its writer would block for ever, and with it every command to
// the device).
func (c *rawConn) Write(p []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(c.b.limits.WriteTimeout))
	n, err := c.Conn.Write(p)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if cn := c.conn.Load(); cn != nil {
				c.b.stalled(cn)
			} else {
				_ = c.Conn.Close()
			}
		}
	}
	return n, err
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	l.TCP.Serve(func(id string, nc net.Conn) error {
		c := &rawConn{Conn: nc, b: l.b}
		b := l.b
		b.mu.Lock()
		if b.state == 2 {
			// Closing: Mochi's Server.Close is about to Wait on the
			// WaitGroup that serving this connection would Add to.
			b.mu.Unlock()
			return nc.Close()
		}
		b.rawWG.Add(1)
		defer b.rawWG.Done()
		b.raw[c] = struct{}{}
		b.mu.Unlock()
		if tc, ok := nc.(*net.TCPConn); ok {
			// A fixed send buffer instead of the kernel's autotuned one
			// (megabytes on loopback): "written" then means close to
			// "on its way to the device", and a device that stops reading
			// reaches the write deadline after little data.
			_ = tc.SetWriteBuffer(sendBuffer)
		}
		_ = nc.SetDeadline(time.Now().Add(b.connectTimeout)) // Mochi replaces it after the CONNECT
		err := establish(id, c)
		// Mochi is done with the connection. If it never called
		// OnDisconnect (the CONNACK could not be written: a client that
		// reset at once, a login that lost a takeover race), the conn is
		// released here, or its client and queue would stay for ever.
		if cn := c.conn.Load(); cn != nil {
			b.release(cn, err, true)
		}
		b.mu.Lock()
		delete(b.raw, c)
		b.mu.Unlock()
		// A connection that sent nothing is a port probe, not a login.
		if err != nil && !c.hooked.Load() && c.read.Load() > 0 {
			b.emit(Event{Kind: Refused, Code: NoConnack, Reason: fmt.Sprintf("no valid CONNECT from %s (%d bytes): %s", nc.RemoteAddr(), c.read.Load(), rawReason(err))})
		}
		return err
	})
}

// sendBuffer is each client connection's socket send buffer (SO_SNDBUF;
// Linux doubles it for its own bookkeeping).
const sendBuffer = 128 << 10

func rawReason(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "CONNECT not complete within the connect timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed inside a packet"
	}
	return err.Error()
}

// closeRaw closes every connection still being served; those that logged
// in were closed by stopAll already, so this reaches the ones that never
// sent a whole CONNECT.
func (b *Broker) closeRaw() {
	b.mu.Lock()
	cs := make([]*rawConn, 0, len(b.raw))
	for c := range b.raw {
		cs = append(cs, c)
	}
	b.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
}
