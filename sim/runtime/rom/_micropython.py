# micropython as the ESP8266 has it; kbd_intr also tells the host, which
# is the one that sees Ctrl-C on the serial line.
import micropython as _m
from micropython import *
from _hilc import c


def kbd_intr(ch):
    c("kbd", ch)
