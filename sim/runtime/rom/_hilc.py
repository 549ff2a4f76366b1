# The bridge to the board's hardware, which is the harness (Go): every
# call blocks the VM until the host answers. Kept small: this code lives
# in the board's heap, which the ESP8266's ROM modules do not.
from _hil import call
import binascii

limit = 0  # the heap's total on this VM; set at boot
board = 0  # the ESP8266's heap total
base = 0  # what these modules hold on the heap after boot


out = []  # sends not yet handed to the host: (socket id, bytes)


def flush():
    # One call for what a program sent in pieces (umqtt writes a packet in
    # four): they reach the host before anything else does.
    global out
    if out:
        o = out
        out = []
        for s, d in o:
            r = call("sock_send", s, binascii.hexlify(d).decode())
            if type(r) is str:
                if r[0] == "!":
                    raise OSError(int(r[1:]))
                if r[0] == "^":
                    raise KeyboardInterrupt


def c(op, *a):
    if out:
        flush()
    r = call(op, *a)
    if type(r) is int:
        return r
    k = r[0]
    if k == "=":
        return r[1:]
    if k == "^":
        raise KeyboardInterrupt
    if k == "~":
        raise SystemExit
    raise OSError(int(r[1:]))
