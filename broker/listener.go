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

// rawConn counts what a connection sent before its CONNECT was seen.
type rawConn struct {
	net.Conn
	read   atomic.Int64
	hooked atomic.Bool // OnPacketRead saw its first CONNECT
}

func (c *rawConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (l *tcpListener) Serve(establish listeners.EstablishFn) {
	l.TCP.Serve(func(id string, nc net.Conn) error {
		c := &rawConn{Conn: nc}
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
		_ = nc.SetDeadline(time.Now().Add(b.connectTimeout)) // Mochi replaces it after the CONNECT
		err := establish(id, c)
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
