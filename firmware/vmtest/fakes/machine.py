# Test double of machine: pins remember their level and every change.
levels = {}
history = []


class Pin:
    IN = 0
    OUT = 1

    def __init__(self, n, mode=-1, value=None):
        self.n = n
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return levels.get(self.n, 0)
        levels[self.n] = 1 if v else 0
        history.append((self.n, levels[self.n]))

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)


def reset():
    raise SystemExit("reset")


def unique_id():
    return b"\x01\x02\x03\x04"
