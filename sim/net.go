package sim

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// network is the board's Wi-Fi and its sockets. Sockets are real TCP
// connections, and only to loopback: an address in the redirect table goes
// to its loopback target, a loopback address as it is, anything else fails
// with EHOSTUNREACH before any packet or DNS query leaves the board.
type network struct {
	b *Board

	mu        sync.Mutex
	link      bool // the access point is there (SetWiFi)
	staActive bool
	apActive  bool
	ssid      string
	since     time.Time // connect() called; zero: not connecting
	socks     map[int]*vsock
	nextID    int
}

func newNetwork(b *Board, up bool) *network {
	return &network{b: b, link: up, apActive: true, socks: map[int]*vsock{}, nextID: 1}
}

// vsock is one socket of the board.
type vsock struct {
	mu      sync.Mutex
	conn    net.Conn
	timeout time.Duration // <0: blocking; 0: non-blocking
	buf     []byte
	eof     bool
	err     error
	dead    bool          // Wi-Fi went away under it
	notify  chan struct{} // closed and replaced when buf, eof or err change
}

// sta reports whether the station has an IP now.
func (n *network) staUpLocked() bool {
	if !n.staActive || n.since.IsZero() || !n.link {
		return false
	}
	switch n.b.opts.WiFi.Mode {
	case WiFiNever:
		return false
	case WiFiDelay:
		return time.Since(n.since) >= n.b.opts.WiFi.Delay
	}
	return true
}

func (n *network) setLink(up bool) {
	n.mu.Lock()
	n.link = up
	var socks []*vsock
	if !up {
		for _, s := range n.socks {
			socks = append(socks, s)
		}
	}
	n.mu.Unlock()
	for _, s := range socks {
		s.drop()
	}
	n.b.logf("wifi link %s", map[bool]string{true: "up", false: "down"}[up])
}

// reboot forgets the interfaces' state (the chip restarted); the access
// point stays as it is.
func (n *network) reboot() {
	n.mu.Lock()
	n.staActive, n.apActive, n.ssid, n.since = false, true, "", time.Time{}
	n.mu.Unlock()
	n.closeAll()
}

func (n *network) closeAll() {
	n.mu.Lock()
	socks := n.socks
	n.socks = map[int]*vsock{}
	n.mu.Unlock()
	for _, s := range socks {
		s.close()
	}
}

func (n *network) wlan(l *life, op string, a args) reply {
	n.mu.Lock()
	defer n.mu.Unlock()
	iface := a.int(0)
	switch op {
	case "wlan_active":
		if v := a.int(1); v >= 0 {
			if iface == 0 {
				n.staActive = v == 1
				if !n.staActive {
					n.since = time.Time{}
				}
			} else {
				n.apActive = v == 1
			}
		}
		if iface == 0 {
			return ok(btoi(n.staActive))
		}
		return ok(btoi(n.apActive))
	case "wlan_connect":
		if !n.staActive {
			return oserr(eIO) // "STA must be active"
		}
		n.ssid = a.str(0)
		n.since = time.Now()
		n.b.logf("wifi connect to ssid %q (password not shown)", n.ssid)
		return ok(nil)
	case "wlan_disconnect":
		n.since = time.Time{}
		return ok(nil)
	case "wlan_isconnected":
		if iface == 1 {
			return ok(btoi(n.apActive))
		}
		up := n.staUpLocked()
		if !up {
			// A busy-wait on isconnected() is slow on the board too: spare the host.
			n.mu.Unlock()
			time.Sleep(time.Millisecond)
			n.mu.Lock()
		}
		return ok(btoi(up))
	case "wlan_status":
		switch {
		case n.staUpLocked():
			return ok(5) // STAT_GOT_IP
		case !n.since.IsZero() && n.staActive && n.b.opts.WiFi.Mode == WiFiNever:
			return ok(3) // STAT_NO_AP_FOUND
		case !n.since.IsZero() && n.staActive:
			return ok(1) // STAT_CONNECTING
		}
		return ok(0)
	case "wlan_rssi":
		return ok(-60)
	case "wlan_ifconfig":
		if iface == 1 {
			return ok("192.168.4.1,255.255.255.0,192.168.4.1,208.67.222.222")
		}
		if n.staUpLocked() {
			return ok("192.168.1.42,255.255.255.0,192.168.1.1,192.168.1.1")
		}
		return ok("0.0.0.0,0.0.0.0,0.0.0.0,208.67.222.222")
	case "wlan_config":
		switch a.str(1) {
		case "mac":
			if iface == 0 {
				return ok("5ccf7f010203")
			}
			return ok("5ecf7f010203")
		case "essid", "ssid":
			if iface == 0 {
				return ok(n.ssid)
			}
			return ok("MicroPython-010203")
		case "channel":
			return ok(6)
		}
		return oserr(eINVAL)
	}
	return oserr(eINVAL)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// route is where a connection to host:port goes, or false.
func (n *network) route(host string, port int) (string, bool) {
	key := net.JoinHostPort(host, strconv.Itoa(port))
	if t, ok := n.b.opts.Redirects[key]; ok {
		return t, true
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil && ip.IsLoopback() {
		return key, true
	}
	return "", false
}

// resolve is getaddrinfo: IP literals as they are, localhost, and names
// in the redirect table (answered with their target); nothing asks DNS.
func (n *network) resolve(host string, port int) reply {
	if host == "localhost" {
		host = "127.0.0.1"
	}
	if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
		return ok(host + ":" + strconv.Itoa(port))
	}
	n.mu.Lock()
	up := n.staUpLocked()
	n.mu.Unlock()
	if t, found := n.b.opts.Redirects[net.JoinHostPort(host, strconv.Itoa(port))]; found && up {
		return ok(t)
	}
	return oserr(lwipNotFound)
}

func (n *network) newSocket() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	id := n.nextID
	n.nextID++
	n.socks[id] = &vsock{timeout: -1, notify: make(chan struct{})}
	return id
}

func (n *network) sock(id int) *vsock {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.socks[id]
}

func (n *network) connect(l *life, id int, host string, port int) reply {
	s := n.sock(id)
	if s == nil {
		return oserr(eBADF)
	}
	n.mu.Lock()
	up := n.staUpLocked()
	n.mu.Unlock()
	target, routed := n.route(host, port)
	if !routed {
		n.b.logf("refused connect to %s:%d: not loopback and not in the redirect table (the virtual board reaches nothing else)", host, port)
		return oserr(eHOSTUNREACH)
	}
	if !up {
		return oserr(eHOSTUNREACH)
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := d.Dial("tcp4", target)
		ch <- result{c, err}
	}()
	var r result
	select {
	case r = <-ch:
	case <-l.b.in.intrChan():
		l.b.in.takeIntr()
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return l.interrupted()
	case <-l.stop:
		return l.interrupted()
	}
	if r.err != nil {
		n := errnoOf(r.err)
		if n == eCONNREFUSED {
			n = eCONNRESET // lwIP answers a refused connect with a reset
		}
		return oserr(n)
	}
	s.mu.Lock()
	s.conn = r.c
	s.mu.Unlock()
	go s.pump(r.c)
	return ok(nil)
}

// pump reads conn into the socket's buffer until it ends (also when the
// socket is closed: close sets s.conn to nil, pump keeps its own).
func (s *vsock) pump(conn net.Conn) {
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		s.mu.Lock()
		s.buf = append(s.buf, buf[:n]...)
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.eof = true
			} else if s.err == nil && !s.dead {
				s.err = err
			}
		}
		close(s.notify)
		s.notify = make(chan struct{})
		s.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (s *vsock) drop() {
	s.mu.Lock()
	s.dead = true
	c := s.conn
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

func (s *vsock) close() {
	s.mu.Lock()
	c := s.conn
	s.conn = nil
	s.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

func (n *network) send(l *life, id int, data []byte) reply {
	s := n.sock(id)
	if s == nil {
		return oserr(eBADF)
	}
	s.mu.Lock()
	c, dead := s.conn, s.dead
	to := s.timeout
	s.mu.Unlock()
	switch {
	case dead:
		return oserr(eCONNABORTED)
	case c == nil:
		return oserr(eNOTCONN)
	}
	// Written in 100 ms slices, so that Ctrl-C and a reset are seen; the
	// socket's timeout (default 30 s) bounds the whole write.
	limit := 30 * time.Second
	if to >= 0 {
		limit = max(to, time.Millisecond)
	}
	end := time.Now().Add(limit)
	written := 0
	for written < len(data) {
		if l.b.in.takeIntr() {
			return l.interrupted()
		}
		if l.stopped() {
			return l.interrupted()
		}
		slice := time.Now().Add(100 * time.Millisecond)
		if slice.After(end) {
			slice = end
		}
		_ = c.SetWriteDeadline(slice)
		w, err := c.Write(data[written:])
		written += w
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && time.Now().Before(end) {
			continue
		}
		if written == 0 {
			return oserr(errnoOf(err))
		}
		break
	}
	return ok(written)
}

// recv returns up to max bytes (hex), or with line up to and including a
// newline; "" is the end of the stream. It waits as the socket's timeout
// says: forever, not at all (EAGAIN), or that long (ETIMEDOUT).
func (n *network) recv(l *life, id, maxn int, line bool, timeoutMs int) reply {
	s := n.sock(id)
	if s == nil {
		return oserr(eBADF)
	}
	timeout := time.Duration(timeoutMs) * time.Millisecond
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		s.mu.Lock()
		if take := s.ready(maxn, line); take >= 0 {
			data := s.buf[:take]
			s.buf = s.buf[take:]
			s.mu.Unlock()
			return ok(hex.EncodeToString(data))
		}
		switch {
		case s.dead:
			s.mu.Unlock()
			return oserr(eCONNABORTED)
		case s.err != nil:
			err := s.err
			s.mu.Unlock()
			return oserr(errnoOf(err))
		case s.eof || s.conn == nil && !s.dead:
			s.mu.Unlock()
			if s.conn == nil {
				return oserr(eNOTCONN)
			}
			return ok("")
		case timeoutMs == 0:
			s.mu.Unlock()
			return oserr(eAGAIN)
		}
		notify := s.notify
		s.mu.Unlock()
		select {
		case <-notify:
		case <-deadline:
			return oserr(eTIMEDOUT)
		case <-l.b.in.intrChan():
			l.b.in.takeIntr()
			return l.interrupted()
		case <-l.stop:
			return l.interrupted()
		}
	}
}

// ready says how many buffered bytes a read may take now, or -1 to wait.
func (s *vsock) ready(maxn int, line bool) int {
	if len(s.buf) == 0 {
		return -1
	}
	if line {
		if i := bytes.IndexByte(s.buf, '\n'); i >= 0 && i < maxn {
			return i + 1
		}
		if len(s.buf) >= maxn || s.eof {
			return min(len(s.buf), maxn)
		}
		return -1
	}
	return min(len(s.buf), maxn)
}

func (n *network) setTimeout(id, ms int) reply {
	s := n.sock(id)
	if s == nil {
		return oserr(eBADF)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ms < 0 {
		s.timeout = -1
	} else {
		s.timeout = time.Duration(ms) * time.Millisecond
	}
	return ok(nil)
}

func (n *network) close(id int) {
	n.mu.Lock()
	s := n.socks[id]
	delete(n.socks, id)
	n.mu.Unlock()
	if s != nil {
		s.close()
	}
}

// poll is select.poll's poll: the ready descriptors as "fd:events,...";
// fd -1 is the serial line's input (sys.stdin).
func (n *network) poll(l *life, spec string, timeoutMs int) reply {
	want := parsePollSpec(spec)
	var deadline <-chan time.Time
	if timeoutMs >= 0 {
		t := time.NewTimer(time.Duration(timeoutMs) * time.Millisecond)
		defer t.Stop()
		deadline = t.C
	}
	for {
		var out []byte
		var waits []<-chan struct{}
		for _, w := range want {
			ev, wait := n.events(l, w[0], w[1])
			if ev != 0 {
				if len(out) > 0 {
					out = append(out, ',')
				}
				out = append(out, strconv.Itoa(w[0])+":"+strconv.Itoa(ev)...)
			}
			if wait != nil {
				waits = append(waits, wait)
			}
		}
		if len(out) > 0 || timeoutMs == 0 {
			return ok(string(out))
		}
		if r, stop := l.waitAny(waits, deadline); stop {
			return r
		}
		select {
		case <-deadline:
			return ok("")
		default:
		}
	}
}

// events are the poll events of descriptor fd now, and what to wait on.
func (n *network) events(l *life, fd, mask int) (int, <-chan struct{}) {
	const pollIn, pollOut, pollErr, pollHup = 1, 4, 8, 16
	if fd == -1 {
		l.b.in.mu.Lock()
		defer l.b.in.mu.Unlock()
		if len(l.b.in.q) > 0 {
			return mask & pollIn, nil
		}
		return 0, l.b.in.notify
	}
	s := n.sock(fd)
	if s == nil {
		return pollHup, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := 0
	if s.conn != nil && mask&pollOut != 0 {
		ev |= pollOut
	}
	if len(s.buf) > 0 || s.eof {
		ev |= mask & pollIn
	}
	if s.eof || s.dead {
		ev |= pollHup
	}
	if s.err != nil {
		ev |= pollErr
	}
	return ev, s.notify
}

// waitAny waits for one of chans, the deadline, Ctrl-C or the life's end;
// stop is set with the reply when the wait ends the call.
func (l *life) waitAny(chans []<-chan struct{}, deadline <-chan time.Time) (reply, bool) {
	any := make(chan struct{})
	done := make(chan struct{})
	defer close(done)
	for _, c := range chans {
		go func(c <-chan struct{}) {
			select {
			case <-c:
				select {
				case any <- struct{}{}:
				case <-done:
				}
			case <-done:
			}
		}(c)
	}
	select {
	case <-any:
		return reply{}, false
	case <-deadline:
		return reply{}, false
	case <-l.b.in.intrChan():
		l.b.in.takeIntr()
		return l.interrupted(), true
	case <-l.stop:
		return l.interrupted(), true
	}
}

// errnoOf maps a host network error to MicroPython's errno.
func errnoOf(err error) int {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		switch errno {
		case syscall.ECONNREFUSED:
			return eCONNREFUSED
		case syscall.ECONNRESET, syscall.EPIPE:
			return eCONNRESET
		case syscall.ETIMEDOUT:
			return eTIMEDOUT
		case syscall.EHOSTUNREACH, syscall.ENETUNREACH:
			return eHOSTUNREACH
		}
		return int(errno)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return eTIMEDOUT
	case errors.Is(err, net.ErrClosed):
		return eCONNABORTED
	}
	return eIO
}
