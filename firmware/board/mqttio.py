# The larger half of mqtt.py's client (see there why it is apart): the
# packet codec, and MQTTClient's connect, _read, _len and _in.
import socket


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
