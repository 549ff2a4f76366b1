from _hilc import c
from micropython import const
import binascii as _ba

PWRON_RESET = const(0)
WDT_RESET = const(1)
SOFT_RESET = const(4)
DEEPSLEEP_RESET = const(5)
HARD_RESET = const(6)
DEEPSLEEP = const(4)

_PINS = (0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16)


class Pin:
    IN = const(0)
    OUT = const(1)
    OPEN_DRAIN = const(2)
    PULL_UP = const(1)
    IRQ_RISING = const(1)
    IRQ_FALLING = const(2)

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        if id not in _PINS:
            raise ValueError("invalid pin")
        self._id = id
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if mode != -1:
            c("pin_mode", self._id, mode)
        if value is not None:
            self.value(value)

    def value(self, *v):
        if v:
            c("pin", self._id, 1 if v[0] else 0)
            return None
        return c("pin", self._id, -1)

    def __call__(self, *v):
        return self.value(*v)

    def on(self):
        c("pin", self._id, 1)

    def off(self):
        c("pin", self._id, 0)

    def irq(self, handler=None, trigger=3, hard=False):
        return None

    def __repr__(self):
        return "Pin(%d)" % self._id


class WDT:
    def __init__(self, id=0, timeout=5000):
        c("wdt", timeout)

    def feed(self):
        c("wdt", 0)


class RTC:
    def datetime(self, *t):
        import time
        if t:
            t = t[0]
            if len(t) != 8:
                raise ValueError("requested length 8 but object has length %d" % len(t))
            c("rtc_set", t[0], t[1], t[2], t[4], t[5], t[6])
            return None
        y, m, d, hh, mm, ss, wd, _ = time.localtime()
        return (y, m, d, wd, hh, mm, ss, 0)


def reset():
    c("reset")


def soft_reset(*a):
    # sys.exit, as ports/esp8266 (extmod/modmachine.c) has it: the REPL soft-reboots
    # on the SystemExit; out of main.py it ends the program, caught it is nothing.
    raise SystemExit(*a)


def reset_cause():
    return c("cause")


def unique_id():
    return _ba.unhexlify(c("unique_id"))


def freq(*f):
    if f:
        if f[0] not in (80000000, 160000000):
            raise ValueError("frequency can only be either 80Mhz or 160MHz")
        c("freq", f[0])
        return None
    return c("freq", 0)


def idle():
    c("sleep_us", 0)


def lightsleep(ms=0):
    c("sleep", ms)


def deepsleep(ms=0):
    c("reset")


def disable_irq():
    return 0


def enable_irq(state=0):
    pass


def time_pulse_us(pin, level, timeout_us=1000000):
    return -2
