# A small MQTT 3.1.1 client with umqtt.simple's API, written for OneNET's
# legacy service (it pushes $creq/... without any SUBSCRIBE) and ~30 KB of heap.
import socket
import time


class MQTTException(Exception):
    # args[0]: the CONNACK return code (1..5), 0x80 for a refused SUBSCRIBE,
    # or a word for a broken packet.
    pass


def _b(s):
    return s.encode() if isinstance(s, str) else s


def _s(s):
    # An MQTT string: 2-byte big-endian length, then the bytes.
    return bytes((len(s) >> 8, len(s) & 255)) + s


def _put(b, op, n):
    # Fixed header into b: type and flags, then the remaining length (1..4
    # bytes). Returns its size.
    if n > 268435455:
        raise ValueError("too long")
    b[0] = op
    i = 1
    while True:
        d = n & 127
        n >>= 7
        b[i] = d | 128 if n else d
        i += 1
        if not n:
            return i


def _hdr(op, n):
    b = bytearray(5)
    return b[:_put(b, op, n)]


class MQTTClient:
    timeout = 10  # seconds: TCP connect, the rest of a packet, an ack
    max_msg = 1024  # incoming payloads are cut to this many bytes

    def __init__(self, client_id, server, port=0, user=None, password=None,
                 keepalive=0, ssl=False, ssl_params=None):
        if ssl:
            raise ValueError("no ssl")
        self.client_id = _b(client_id)
        self.server = server
        self.port = port or 1883
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.sock = None
        self.cb = None
        self.pid = 0
        self.pings = 0  # PINGREQs not yet answered
        self.last_tx = time.ticks_ms()
        self.ack = b""
        self.buf = bytearray(9)  # a PUBLISH's fixed header and topic length

    def set_callback(self, f):
        self.cb = f

    def _send(self, b):
        self.sock.write(b)
        self.last_tx = time.ticks_ms()

    def _read(self, n):
        b = b""
        while len(b) < n:
            r = self.sock.read(n - len(b))
            if not r:
                raise OSError(-1)  # peer closed
            b = b + r if b else r
        return b

    def _len(self):
        n = sh = 0
        while True:
            d = self._read(1)[0]
            n |= (d & 127) << sh
            if not d & 128:
                return n
            sh += 7
            if sh > 21:
                raise MQTTException("length")

    def connect(self, clean_session=True, timeout=None):
        t = self.timeout if timeout is None else timeout
        a = socket.getaddrinfo(self.server, self.port)[0][-1]
        self.sock = socket.socket()
        try:
            self.sock.settimeout(t)
            self.sock.connect(a)
            p = bytearray(b"\0\4MQTT\4\0\0\0")
            p[7] = 2 if clean_session else 0
            p[8] = self.keepalive >> 8
            p[9] = self.keepalive & 255
            p += _s(self.client_id)
            if self.user is not None:
                p[7] |= 128
                p += _s(_b(self.user))
            if self.pswd is not None:
                p[7] |= 64
                p += _s(_b(self.pswd))
            self._send(_hdr(0x10, len(p)) + p)
            r = self._read(4)
            if r[0] != 0x20 or r[1] != 2:
                raise MQTTException("connack")
            if r[3]:
                raise MQTTException(r[3])
        except BaseException:
            self.sock.close()
            self.sock = None
            raise
        self.pings = 0
        return r[2] & 1

    def disconnect(self):
        try:
            self._send(b"\xe0\0")
        finally:
            self.sock.close()
            self.sock = None

    def ping(self):
        self._send(b"\xc0\0")
        self.pings += 1

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return bytes((self.pid >> 8, self.pid & 255))

    def publish(self, topic, msg, retain=False, qos=0):
        if qos not in (0, 1):
            raise ValueError("qos")
        t = _b(topic)
        m = _b(msg)
        n = 2 + len(t) + len(m)
        if qos:
            n += 2
        # Header, topic and payload go out as they are: no copies on the heap.
        b = self.buf
        i = _put(b, 0x30 | qos << 1 | bool(retain), n)
        b[i] = len(t) >> 8
        b[i + 1] = len(t) & 255
        self._send(memoryview(b)[:i + 2])
        self._send(t)
        if qos:
            pid = self._next_pid()
            self._send(pid)
        self._send(m)
        if qos:
            self._ack(0x40, pid)

    def subscribe(self, topic, qos=0):
        t = _b(topic)
        pid = self._next_pid()
        self._send(_hdr(0x82, 5 + len(t)) + pid + _s(t) + bytes((qos,)))
        if self._ack(0x90, pid)[2] == 0x80:
            raise MQTTException(0x80)

    def _ack(self, op, pid):
        # Waits for the ack of pid; packets arriving meanwhile are handled.
        t0 = time.ticks_ms()
        while True:
            self.sock.settimeout(self.timeout)
            if self._in(self.sock.read(1)) == op and self.ack[:2] == pid:
                return self.ack
            if time.ticks_diff(time.ticks_ms(), t0) > self.timeout * 1000:
                raise OSError(110)

    def wait_msg(self):
        # Blocks for the next packet; a PUBLISH goes to the callback (None is
        # returned), any other packet's type byte is returned.
        self.sock.setblocking(True)
        return self._in(self.sock.read(1))

    def check_msg(self):
        # Like wait_msg, but returns None at once when nothing has arrived.
        self.sock.setblocking(False)
        try:
            b = self.sock.read(1)
        except OSError as e:
            if e.args[0] != 11:  # EAGAIN
                raise
            b = None
        if b is None:
            self.sock.settimeout(self.timeout)
            return None
        return self._in(b)

    def _in(self, b):
        if not b:
            raise OSError(-1)
        self.sock.settimeout(self.timeout)
        op = b[0]
        n = self._len()
        if op & 0xF0 != 0x30:
            self.ack = self._read(n) if n else b""
            if op == 0xD0:
                self.pings = 0
            return op
        q = op & 6
        if q == 4:
            raise MQTTException("qos2")
        tl = self._read(2)
        tl = tl[0] << 8 | tl[1]
        topic = self._read(tl)
        n -= tl + 2
        if q:
            pid = self._read(2)
            n -= 2
        if n < 0:
            raise MQTTException("length")
        k = min(n, self.max_msg)
        msg = self._read(k)
        n -= k
        while n:
            n -= len(self._read(min(n, 64)))
        if q:
            self._send(b"\x40\2" + pid)
        if self.cb:
            self.cb(topic, msg)
        return None
