# Test double of the board's socket module: an in-memory TCP peer. `plan`
# holds one entry per connect(): bytes the "broker" has already sent, or an
# exception connect() raises. Tests append to a socket's rx to push more.
plan = []
conns = []


class socket:
    def __init__(self, *a):
        self.rx = bytearray()  # bytes from the peer; read() consumes from pos
        self.pos = 0
        self.tx = bytearray()
        self.addr = None
        self.timeout = None  # None: blocking forever, 0: non-blocking
        self.timeouts = []
        self.closed = False
        self.eof = False
        conns.append(self)

    def settimeout(self, t):
        self.timeout = t
        self.timeouts.append(t)

    def setblocking(self, f):
        self.timeout = None if f else 0

    def connect(self, a):
        self.addr = a
        p = plan.pop(0) if plan else b""
        if isinstance(p, BaseException):
            raise p
        self.rx.extend(p)

    def write(self, b):
        if self.closed:
            raise OSError(9)
        self.tx.extend(b)
        return len(b)

    def pending(self):
        return len(self.rx) - self.pos

    def read(self, n):
        if not self.pending():
            if self.eof:
                return b""
            if self.timeout == 0:
                return None
            if self.timeout is None:
                # Would block for ever: a person presses Ctrl-C.
                raise KeyboardInterrupt
            raise OSError(110)
        # Allocates only what it returns, so heap figures are the firmware's.
        b = bytes(memoryview(self.rx)[self.pos:self.pos + n])
        self.pos += len(b)
        if self.pos == len(self.rx):
            self.rx = bytearray()
            self.pos = 0
        return b

    def close(self):
        self.closed = True


def getaddrinfo(host, port, *a):
    return [(2, 1, 0, "", (host, port))]
