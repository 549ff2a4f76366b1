# time as the ESP8266 has it: sleeps block the VM and wake on the host
# (and on Ctrl-C); the rest is the VM's own.
from _hilc import c
import time as _t

ticks_ms = _t.ticks_ms
ticks_us = _t.ticks_us
ticks_cpu = _t.ticks_cpu
ticks_diff = _t.ticks_diff
ticks_add = _t.ticks_add


def localtime(secs=None):
    # The board's clock is its RTC (machine.RTC().datetime sets it); no time zone.
    return _t.localtime(time() if secs is None else secs)


gmtime = localtime
mktime = _t.mktime


def sleep(s):
    c("sleep", int(s * 1000))


def sleep_ms(ms):
    c("sleep", ms)


def sleep_us(us):
    c("sleep_us", us)


def time():
    return c("time")


def time_ns():
    return c("time") * 1000000000
