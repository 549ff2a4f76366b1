package mqttwire

import (
	"fmt"
	"net"
	"time"
)

// Handshake logs a connection in: it writes CONNECT and one SUBSCRIBE per
// filter, then reads until the CONNACK and every SUBACK have arrived or the
// deadline passes. A refused login is a ConnackError; a refused filter is an
// error naming it. Packets that arrive in between (a PUBLISH pushed right
// after login, for example) are returned whole in pending, in order, so the
// caller handles them before reading further.
func Handshake(conn net.Conn, deadline time.Time, connect []byte, filters []string) (pending []byte, err error) {
	out := append([]byte(nil), connect...)
	for i, f := range filters {
		out = AppendSubscribe(out, uint16(i+1), f, 0)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write(out); err != nil {
		return nil, fmt.Errorf("write CONNECT: %w", err)
	}
	buf := make([]byte, 0, 64)
	gotConnack, subacks := false, 0
	for !gotConnack || subacks < len(filters) {
		typ, _, body, n, err := Next(buf)
		if err != nil {
			return nil, err
		}
		if n == 0 {
			if len(buf) == cap(buf) {
				buf = append(buf, 0)[:len(buf)]
			}
			m, err := conn.Read(buf[len(buf):cap(buf)])
			if err != nil {
				if !gotConnack {
					return nil, fmt.Errorf("waiting for CONNACK: %w", err)
				}
				return nil, fmt.Errorf("waiting for SUBACK: %w", err)
			}
			buf = buf[:len(buf)+m]
			continue
		}
		switch {
		case typ == CONNACK && !gotConnack:
			if err := CheckConnack(body); err != nil {
				return nil, err
			}
			gotConnack = true
		case typ == SUBACK && gotConnack:
			if len(body) != 3 {
				return nil, ErrMalformed
			}
			id := int(body[0])<<8 | int(body[1])
			if id < 1 || id > len(filters) {
				return nil, fmt.Errorf("SUBACK for unknown packet id %d", id)
			}
			if body[2] == 0x80 {
				return nil, fmt.Errorf("subscription to %q refused (SUBACK 0x80)", filters[id-1])
			}
			subacks++
		case !gotConnack:
			return nil, fmt.Errorf("expected CONNACK, got packet type %d", typ)
		default:
			pending = append(pending, buf[:n]...)
		}
		buf = buf[:copy(buf, buf[n:])]
	}
	return append(pending, buf...), nil
}
