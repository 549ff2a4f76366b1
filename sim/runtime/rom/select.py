from _hilc import c
from micropython import const

POLLIN = const(1)
POLLOUT = const(4)
POLLERR = const(8)
POLLHUP = const(16)


def _fd(o):
    return o.fileno() if hasattr(o, "fileno") else -1


class _Poll:
    def __init__(self):
        self._m = {}

    def register(self, obj, mask=POLLIN | POLLOUT):
        self._m[_fd(obj)] = (obj, mask)

    def modify(self, obj, mask):
        if _fd(obj) not in self._m:
            raise OSError(2)
        self._m[_fd(obj)] = (obj, mask)

    def unregister(self, obj):
        self._m.pop(_fd(obj), None)

    def poll(self, timeout=-1):
        # A socket with read-ahead is readable without asking the host.
        ready = [(o, POLLIN) for o, m in self._m.values() if m & POLLIN and getattr(o, "_b", b"")]
        if ready:
            return ready
        q = ",".join("%d:%d" % (f, m[1]) for f, m in self._m.items())
        r = c("poll", q, timeout)
        out = []
        for part in r.split(","):
            if part:
                f, ev = part.split(":")
                out.append((self._m[int(f)][0], int(ev)))
        return out

    def ipoll(self, timeout=-1, flags=0):
        return iter(self.poll(timeout))


def poll():
    return _Poll()


def select(r, w, x, timeout=None):
    p = _Poll()
    for o in r:
        p.register(o, POLLIN)
    for o in w:
        p.register(o, POLLOUT)
    ev = p.poll(-1 if timeout is None else int(timeout * 1000))
    return ([o for o, e in ev if e & POLLIN], [o for o, e in ev if e & POLLOUT], [])
