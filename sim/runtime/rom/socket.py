import _hilc
from _hilc import c
from micropython import const
import binascii

AF_INET = const(2)
AF_INET6 = const(10)
SOCK_STREAM = const(1)
SOCK_DGRAM = const(2)
SOCK_RAW = const(3)
SOL_SOCKET = const(1)
SO_REUSEADDR = const(4)
IPPROTO_IP = const(0)
IPPROTO_TCP = const(6)
IPPROTO_UDP = const(17)
IP_ADD_MEMBERSHIP = const(1024)


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    if isinstance(host, bytes):
        host = host.decode()
    h, p = c("resolve", host, port).split(":")
    return [(AF_INET, SOCK_STREAM, 0, "", (h, int(p)))]


class socket:
    # Reads come through a read-ahead buffer (the ESP8266 keeps received
    # packets outside the heap; here one bridge call brings what has come),
    # and the timeout travels with each read.
    def __init__(self, af=AF_INET, type=SOCK_STREAM, proto=IPPROTO_TCP):
        self._s = c("sock_new", type)
        self._t = -1
        self._b = b""

    def connect(self, addr):
        c("sock_connect", self._s, addr[0], addr[1])

    def bind(self, addr):
        c("sock_bind", self._s, addr[0], addr[1])

    def listen(self, n=2):
        c("sock_listen", self._s, n)

    def accept(self):
        raise OSError(95)

    def send(self, data):
        # Kept until the program's next call into the host (or 512 bytes).
        o = _hilc.out
        if o and o[-1][0] == self._s:
            o[-1] = (self._s, o[-1][1] + bytes(data))
        else:
            o.append((self._s, bytes(data)))
        if len(o[-1][1]) >= 512:
            _hilc.flush()
        return len(data)

    write = send

    def sendall(self, data):
        mv = memoryview(data)
        while mv:
            mv = mv[self.send(mv):]

    def _fill(self, n, line=0):
        return binascii.unhexlify(c("sock_recv", self._s, max(n, 256), line, self._t))

    def recv(self, n):
        b = self._b
        if not b:
            b = self._fill(n)
        self._b = b[n:]
        return b[:n]

    def read(self, n=-1):
        # As the board's stream read: n bytes, or fewer at the end of the
        # stream, or what came before a timeout; None when non-blocking and
        # nothing is there.
        if n < 0:
            b = self._b
            self._b = b""
            while True:
                d = self._fill(1024)
                if not d:
                    return b
                b += d
        b = b""
        while len(b) < n:
            try:
                d = self.recv(n - len(b))
            except OSError as e:
                if b and e.errno in (11, 110):
                    return b
                if e.errno == 11:
                    return None
                raise
            if not d:
                break
            b += d
        return b

    def readinto(self, buf, n=-1):
        if n < 0:
            n = len(buf)
        d = self.read(n)
        if d is None:
            return None
        buf[: len(d)] = d
        return len(d)

    def readline(self):
        b = self._b
        while b"\n" not in b:
            d = self._fill(256, 1)
            if not d:
                break
            b += d
        i = b.find(b"\n") + 1 or len(b)
        self._b = b[i:]
        return b[:i]

    def recvfrom(self, n):
        return self.recv(n), ("0.0.0.0", 0)

    def sendto(self, data, addr):
        return len(data)

    def setblocking(self, flag):
        self._t = -1 if flag else 0

    def settimeout(self, t):
        self._t = -1 if t is None else int(t * 1000)

    def setsockopt(self, level, opt, val):
        pass

    def makefile(self, mode="rb", buffering=0):
        return self

    def fileno(self):
        return self._s

    def close(self):
        if self._s >= 0:
            c("sock_close", self._s)
            self._s = -1

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def __repr__(self):
        return "<socket>"
