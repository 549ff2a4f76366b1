# Test double of select: poll() reports a fake socket readable when it holds
# bytes; otherwise it calls `idle(ms)`, which tests replace to push data,
# drop the connection or press Ctrl-C.
import time

POLLIN = 1
polls = [0]


def _idle(ms):
    time.sleep_ms(min(ms, 20))


idle = _idle


class _Poll:
    def __init__(self):
        self.socks = []

    def register(self, s, ev=POLLIN):
        self.socks.append(s)

    def poll(self, ms=-1):
        polls[0] += 1
        r = [(s, POLLIN) for s in self.socks if s.pending() or s.eof]
        if not r:
            idle(ms)
        return r


def poll():
    return _Poll()
