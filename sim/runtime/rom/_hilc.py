# The bridge to the board's hardware, which is the harness (Go): every
# call blocks the VM until the host answers. Kept small: this code lives
# in the board's heap, which the ESP8266's ROM modules do not.
from _hil import call
import binascii

limit = 0  # the heap's total on this VM; set at boot
board = 0  # the ESP8266's heap total
base = 0  # what these modules hold on the heap after boot
g = None  # the VM's own gc module (set at boot; the board's is the _gc double)


hi = 0  # the heap at the end of the last ex, before its collection
grew = 0  # the last ex made the VM add a heap area
main = None  # __main__'s globals, where the REPL runs code (set at boot)


def ex(src, name):
    # Runs code as the REPL does, and reads the heap before the collection
    # that this VM runs only once the call returns to the host.
    global hi, grew
    t = g.mem_alloc() + g.mem_free()
    try:
        exec(compile(src, name, "exec"), main)
    finally:
        hi = g.mem_alloc()
        # A heap area added during the request: it held more than the heap
        # at some point, with no collection (the VM runs none mid-request).
        if hi + g.mem_free() > t:
            grew = 1


def exf(path):
    # Runs a flash file (boot.py, main.py). The board reads the file as it
    # compiles it; here the text is on the heap too, so it is left out.
    global hi, grew
    s = open(path).read()
    try:
        ex(s, path)
    finally:
        hi -= (len(s) + 16) // 16 * 16


def heapnow(c):
    # The harness's heap reading between requests (host.mjs heapAtTop).
    # With c: flush the sends, return the request's high mark, and ask for
    # the collection that this VM runs when the call returns. Allocates
    # nothing.
    global hi, grew
    if c:
        a = max(hi, g.mem_alloc())
        if grew:
            a = -a  # the request outgrew the heap before any collection
        hi = grew = 0  # before the flush: a Ctrl-C there must not carry them on
        g.collect()
        try:
            flush()
        except OSError:
            pass
        return a
    return g.mem_alloc()


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
    if k == "E":
        raise EOFError
    raise OSError(int(r[1:]))
