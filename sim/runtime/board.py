"""Virtual TPYBoard v202: an ESP8266 running MicroPython v1.19.1, emulated on CPython.

Started by the Go package sim. fd 0 is the serial line from the host, fd 1 the serial line to the
host (bytes exactly as the board sends them), fd 2 diagnostics, fd 3 a control socket carrying JSON
lines (pin changes and reset requests out, Wi-Fi changes in). argv[1] is a JSON object of options.

The serial protocol follows MicroPython's shared/runtime/pyexec.c (event-driven REPL of the esp8266
port): banner, friendly REPL, raw REPL, raw-paste with window flow control, soft reboot.
Ctrl-C reaches code blocked in a system call because the input thread sends SIGINT to the main
thread itself (pthread_kill), which interrupts sleep, select and socket reads with EINTR.
"""

import binascii as _binascii
import builtins as _builtins
import codeop
import errno as _errno
import hashlib as _hashlib
import io as _io
import json as _json
import math as _math
import os as _os
import posixpath
import random as _random
import re as _re
import select as _select
import signal
import socket as _socket
import struct as _struct
import sys
import threading
import time as _time
import traceback as _traceback
import types

BANNER = b"MicroPython v1.19.1 on 2022-06-18; ESP module with ESP8266\r\nType \"help()\" for more information.\r\n"
RAW_BANNER = b"raw REPL; CTRL-B to exit\r\n"
PASTE_WINDOW = 128  # raw-paste window increment the board advertises

OPTS = _json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
FLASH = _os.path.realpath(OPTS.get("flash", "."))
# The flash holds config.json (the Wi-Fi password, the device's key): every
# file and directory the board creates on it is its owner's only (0600/0700).
_os.umask(0o077)
RAW_PASTE = bool(OPTS.get("raw_paste", True))
REDIRECTS = dict(OPTS.get("redirects") or {})  # checked below: loopback targets only
WIFI_MODE = OPTS.get("wifi_mode", "instant")  # instant | delay | never
WIFI_DELAY = float(OPTS.get("wifi_delay", 0.0))
RESET_CAUSE = int(OPTS.get("reset_cause", 0))

MAIN_THREAD = threading.main_thread().ident
BOOT_TIME = _time.monotonic()


def log(msg):
    try:
        _os.write(2, ("board: %s\n" % msg).encode("utf-8", "replace"))
    except OSError:
        pass


# ---------------------------------------------------------------- serial line


class SerialOut:
    """The UART TX: text is 'cooked' (\\n -> \\r\\n) as mp_hal_stdout_tx_strn_cooked does."""

    def __init__(self):
        self.lock = threading.Lock()
        self.buffer = self  # sys.stdout.buffer.write(b) sends raw bytes

    def raw(self, data):
        with self.lock:
            view = memoryview(bytes(data))
            while view:
                try:
                    n = _os.write(1, view)
                except InterruptedError:
                    continue
                except BrokenPipeError:
                    _os._exit(0)
                view = view[n:]
        return len(data)

    def write(self, s):
        if isinstance(s, str):
            data = s.encode("utf-8")
        else:
            data = bytes(s)
            return self.raw(data)
        self.raw(data.replace(b"\n", b"\r\n"))
        return len(s)

    def flush(self):
        pass


OUT = SerialOut()


class SerialIn:
    """The UART RX: a thread reads fd 0 into a buffer; the interrupt char raises KeyboardInterrupt."""

    def __init__(self):
        self.cv = threading.Condition()
        self.buf = bytearray()
        self.intr_char = 3
        self.running = False  # user code executing: the interrupt char is live
        self.paste = None  # raw-paste accounting: {"allowed", "received", "dropped"}

    def start(self):
        threading.Thread(target=self._run, name="serial-rx", daemon=True).start()

    def _run(self):
        while True:
            try:
                data = _os.read(0, 4096)
            except InterruptedError:
                continue
            if not data:
                _os._exit(0)  # the host side is gone
            interrupt = False
            with self.cv:
                if self.running and self.intr_char >= 0 and self.intr_char in data:
                    data = data.replace(bytes([self.intr_char]), b"")
                    interrupt = True
                if self.paste is not None:
                    data = self._account(data)
                self.buf += data
                self.cv.notify_all()
            if interrupt:
                signal.pthread_kill(MAIN_THREAD, signal.SIGINT)

    def _account(self, data):
        # A host must not send more than the windows granted so far. The real board's small
        # UART buffer would overflow; here the excess is dropped and counted.
        p = self.paste
        kept = bytearray()
        for i, b in enumerate(data):
            if b in (3, 4):
                self.paste = None  # end of the paste: no more accounting
                kept += data[i:]
                break
            if p["received"] < p["allowed"]:
                p["received"] += 1
                kept.append(b)
            else:
                p["dropped"] += 1
        return bytes(kept)

    def getbyte(self):
        with self.cv:
            while not self.buf:
                self.cv.wait()
            b = self.buf[0]
            del self.buf[0]
            return b

    def any(self):
        with self.cv:
            return len(self.buf)

    def read(self, n):
        out = bytearray()
        while len(out) < n:
            out.append(self.getbyte())
        return bytes(out)


IN = SerialIn()


class Control:
    """fd 3: JSON lines to and from the Go side."""

    def __init__(self):
        try:
            self.sock = _socket.socket(fileno=3)
        except OSError:
            self.sock = None
        self.lock = threading.Lock()

    def send(self, **msg):
        if self.sock is None:
            return
        data = (_json.dumps(msg) + "\n").encode()
        with self.lock:
            try:
                self.sock.sendall(data)
            except OSError:
                pass

    def start(self):
        if self.sock is not None:
            threading.Thread(target=self._run, name="control", daemon=True).start()

    def _run(self):
        f = self.sock.makefile("rb")
        for line in f:
            try:
                msg = _json.loads(line)
            except ValueError:
                log("bad control line %r" % line[:80])
                continue
            if msg.get("cmd") == "wifi":
                NET.set_link(bool(msg.get("up")))
        _os._exit(0)


CTL = Control()


# ---------------------------------------------------------------- exceptions

ERRNO_NAMES = {
    1: "EPERM", 2: "ENOENT", 5: "EIO", 9: "EBADF", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
    17: "EEXIST", 19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 28: "ENOSPC", 39: "ENOTEMPTY",
    95: "EOPNOTSUPP", 98: "EADDRINUSE", 103: "ECONNABORTED", 104: "ECONNRESET", 105: "ENOBUFS",
    107: "ENOTCONN", 110: "ETIMEDOUT", 111: "ECONNREFUSED", 113: "EHOSTUNREACH", 114: "EALREADY",
    115: "EINPROGRESS",
}


def _exc_name(e):
    if isinstance(e, ModuleNotFoundError):
        return "ImportError"
    if isinstance(e, OSError):
        return "OSError"
    if isinstance(e, RecursionError):
        return "RuntimeError"
    return type(e).__name__


def _exc_message(e):
    if isinstance(e, OSError) and e.args and isinstance(e.args[0], int):
        name = ERRNO_NAMES.get(e.args[0])
        return "[Errno %d] %s" % (e.args[0], name) if name else str(e.args[0])
    if isinstance(e, ModuleNotFoundError):
        return "no module named '%s'" % e.name
    if isinstance(e, NameError):
        return str(e).replace(" is not defined", " isn't defined")
    if isinstance(e, RecursionError):
        return "maximum recursion depth exceeded"
    if isinstance(e, SyntaxError):
        return "invalid syntax"
    if not e.args:
        return ""
    if len(e.args) == 1:
        return str(e.args[0])
    return str(e.args)


def format_exception(e):
    """MicroPython's mp_obj_print_exception: user frames only, oldest first."""
    lines = ["Traceback (most recent call last):\n"]
    for fn, lineno, name in _user_frames(e):
        lines.append('  File "%s", line %d, in %s\n' % (fn, lineno, name))
    if isinstance(e, SyntaxError) and e.filename is not None:
        lines.append('  File "%s", line %d\n' % (e.filename, e.lineno or 1))
    lines.append("%s: %s\n" % (_exc_name(e), _exc_message(e)))
    return "".join(lines)


def _user_frames(e):
    frames = []
    for fs in _traceback.extract_tb(e.__traceback__):
        if fs.filename == __file__ or fs.filename.startswith("<frozen") or fs.filename.startswith(sys.prefix):
            continue
        frames.append((fs.filename, fs.lineno, fs.name))
    return frames


def print_exception(e, file=None):
    (file or OUT).write(format_exception(e))


def oserr(n):
    """OSError as MicroPython raises it: args == (errno,) and .errno set."""
    e = OSError(n)
    e.errno = n
    return e


class ForcedExit(BaseException):
    """sys.exit() or machine.soft_reset(): end the program and soft-reboot."""


# ---------------------------------------------------------------- flash filesystem


class FS:
    def __init__(self):
        self.cwd = "/"

    def board_path(self, p):
        if isinstance(p, bytes):
            p = p.decode()
        if not isinstance(p, str):
            raise TypeError("can't convert %s to str" % type(p).__name__)
        p = posixpath.normpath(posixpath.join(self.cwd, p))
        if p.startswith("//"):
            p = p[1:]
        return p

    def host(self, p):
        bp = self.board_path(p)
        return _os.path.join(FLASH, bp.lstrip("/")) if bp != "/" else FLASH

    def wrap(self, fn, *a):
        try:
            return fn(*a)
        except OSError as e:
            raise oserr(e.errno or _errno.EIO) from None


FSYS = FS()


class BoardFile:
    """A file on the flash: CPython's file object minus newline translation, MicroPython errors."""

    def __init__(self, f):
        self._f = f

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __iter__(self):
        return iter(self._f)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self._f.close()

    def read(self, n=-1):
        return self._f.read(-1 if n is None else n)


def board_open(path, mode="r", buffering=-1, encoding=None, *args, **kw):
    if isinstance(path, int):
        raise oserr(_errno.EINVAL)
    host = FSYS.host(path)
    if "b" in mode:
        f = FSYS.wrap(open, host, mode)
    else:
        f = FSYS.wrap(open, host, mode, -1, "utf-8", None, "")
    return BoardFile(f)


# ---------------------------------------------------------------- emulated modules


def module(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    return m


class Pins:
    VALID = (0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16)

    def __init__(self):
        self.level = dict.fromkeys(self.VALID, 0)
        self.lock = threading.Lock()

    def set(self, n, v):
        v = 1 if v else 0
        with self.lock:
            if self.level[n] == v:
                return
            self.level[n] = v
        CTL.send(ev="pin", pin=n, value=v, t=_time.time_ns())


PINS = Pins()


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, *, value=None):
        if not isinstance(id, int) or id not in Pins.VALID:
            raise ValueError("invalid pin")
        self._id = id
        self._mode = Pin.IN
        self._pull = None
        self.init(mode, pull, value=value)

    def init(self, mode=-1, pull=-1, *, value=None):
        if mode != -1 and mode is not None:
            self._mode = mode
        if pull != -1:
            self._pull = pull
        if value is not None:
            PINS.set(self._id, value)
        if self._mode == Pin.IN and self._pull == Pin.PULL_UP:
            PINS.set(self._id, 1)

    def value(self, *v):
        if v:
            if self._mode in (Pin.OUT, Pin.OPEN_DRAIN):
                PINS.set(self._id, v[0])
            return None
        return PINS.level[self._id]

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def mode(self, *m):
        if m:
            self._mode = m[0]
            return None
        return self._mode

    def pull(self, *p):
        if p:
            self._pull = p[0]
            return None
        return self._pull

    def irq(self, handler=None, trigger=3, **kw):
        self._irq = handler
        return None

    def __repr__(self):
        return "Pin(%d)" % self._id


class WDT:
    def __init__(self, id=0, timeout=5000):
        self._timeout = timeout / 1000.0
        self._fed = _time.monotonic()
        if BOARD.watchdog is None:
            threading.Thread(target=watchdog_loop, name="wdt", daemon=True).start()
        BOARD.watchdog = self

    def feed(self):
        self._fed = _time.monotonic()

    def expired(self):
        return _time.monotonic() - self._fed > self._timeout


def machine_reset():
    # A hard reset is the Go side's job (it restarts this process); wait for it.
    CTL.send(ev="reset")
    while True:
        _time.sleep(1)


def machine_soft_reset():
    raise ForcedExit()


_freq = [80000000]


def machine_freq(*f):
    if f:
        if f[0] not in (80000000, 160000000):
            raise ValueError("frequency can only be either 80Mhz or 160MHz")
        _freq[0] = f[0]
        return None
    return _freq[0]


class RTC:
    def datetime(self, *dt):
        if dt:
            y, mo, d, wd, h, mi, s, us = dt[0]
            TIME.offset = _mktime((y, mo, d, h, mi, s, 0, 0)) - (_time.monotonic() - BOOT_TIME)
            return None
        t = _gmtime(int(TIME.now()))
        return (t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0)


machine = module(
    "machine", Pin=Pin, WDT=WDT, RTC=RTC, reset=machine_reset, soft_reset=machine_soft_reset,
    unique_id=lambda: b"\x9e\xa1\x0c\x00", freq=machine_freq, idle=lambda: _time.sleep(0.001),
    reset_cause=lambda: RESET_CAUSE,
    PWRON_RESET=0, WDT_RESET=1, SOFT_RESET=4, DEEPSLEEP_RESET=5, HARD_RESET=6, DEEPSLEEP=4,
    disable_irq=lambda: 0, enable_irq=lambda state=0: None,
)


# time: the board's RTC counts seconds from 2000-01-01 and starts at 0 on power-up.
EPOCH_2000 = 946684800


class Time:
    def __init__(self):
        self.offset = 0.0

    def now(self):
        return self.offset + (_time.monotonic() - BOOT_TIME)


TIME = Time()
TICKS_PERIOD = 1 << 30


def _gmtime(secs=None):
    if secs is None:
        secs = int(TIME.now())
    t = _time.gmtime(int(secs) + EPOCH_2000)
    return (t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, t.tm_wday, t.tm_yday)


def _mktime(t):
    import calendar

    return calendar.timegm((t[0], t[1], t[2], t[3], t[4], t[5], 0, 0, 0)) - EPOCH_2000


def _sleep(s):
    _time.sleep(max(0.0, s))


def _ticks_ms():
    return int((_time.monotonic() - BOOT_TIME) * 1000) & (TICKS_PERIOD - 1)


def _ticks_us():
    return int((_time.monotonic() - BOOT_TIME) * 1000000) & (TICKS_PERIOD - 1)


def _ticks_diff(a, b):
    return ((a - b + TICKS_PERIOD // 2) & (TICKS_PERIOD - 1)) - TICKS_PERIOD // 2


def _ticks_add(t, d):
    return (t + d) & (TICKS_PERIOD - 1)


utime = module(
    "utime", sleep=_sleep, sleep_ms=lambda ms: _sleep(ms / 1000.0), sleep_us=lambda us: _sleep(us / 1e6),
    ticks_ms=_ticks_ms, ticks_us=_ticks_us, ticks_cpu=_ticks_us, ticks_diff=_ticks_diff, ticks_add=_ticks_add,
    time=lambda: int(TIME.now()), time_ns=lambda: int(TIME.now() * 1e9), localtime=_gmtime, gmtime=_gmtime,
    mktime=_mktime,
)


# network: Wi-Fi is a state machine driven by the connect() calls and by the Go side (link up/down).
class Net:
    def __init__(self):
        self.link = bool(OPTS.get("wifi_up", True))
        self.sockets = set()
        self.lock = threading.Lock()

    def set_link(self, up):
        with self.lock:
            self.link = up
            socks = list(self.sockets)
        if not up:
            for s in socks:
                s._drop()
        log("wifi link %s" % ("up" if up else "down"))


NET = Net()


class WLAN:
    _instances = {}

    def __new__(cls, interface=0):
        if interface not in (0, 1):
            raise ValueError("invalid WLAN interface identifier")
        inst = cls._instances.get(interface)
        if inst is None:
            inst = super().__new__(cls)
            inst._if = interface
            inst._active = interface == 1
            inst._ssid = None
            inst._since = None
            cls._instances[interface] = inst
        return inst

    def active(self, *a):
        if a:
            self._active = bool(a[0])
            if not self._active:
                self._since = None
            return None
        return self._active

    def connect(self, ssid=None, password=None, *, bssid=None):
        if self._if != 0:
            raise OSError("STA required")
        if not self._active:
            raise OSError("STA must be active")
        self._ssid = ssid
        self._since = _time.monotonic()
        log("wifi connect to ssid %r (password not shown)" % (ssid,))

    def disconnect(self):
        self._since = None

    def _up(self):
        if self._if == 1:
            return self._active
        if not (self._active and self._since is not None and NET.link):
            return False
        if WIFI_MODE == "never":
            return False
        if WIFI_MODE == "delay":
            return _time.monotonic() - self._since >= WIFI_DELAY
        return True

    def isconnected(self):
        up = self._up()
        if not up:
            _time.sleep(0.001)  # busy-wait loops on the real board are slow too; spare the host CPU
        return up

    def status(self, *a):
        if a:
            if a[0] == "rssi":
                return -60
            raise ValueError("unknown status param")
        if self._if == 1:
            return 0
        if self._up():
            return 5  # STAT_GOT_IP
        if self._since is not None and self._active:
            return 1 if WIFI_MODE != "never" else 3
        return 0

    def ifconfig(self, *a):
        if a:
            return None
        if self._if == 1:
            return ("192.168.4.1", "255.255.255.0", "192.168.4.1", "208.67.222.222")
        if self._up():
            return ("192.168.1.42", "255.255.255.0", "192.168.1.1", "192.168.1.1")
        return ("0.0.0.0", "0.0.0.0", "0.0.0.0", "208.67.222.222")

    def config(self, *a, **kw):
        if kw:
            return None
        key = a[0] if a else None
        if key == "mac":
            return b"\x5c\xcf\x7f\x01\x02\x03" if self._if == 0 else b"\x5e\xcf\x7f\x01\x02\x03"
        if key == "essid":
            return (self._ssid or "") if self._if == 0 else "MicroPython-010203"
        if key == "channel":
            return 6
        if key == "hidden":
            return False
        if key in ("authmode",):
            return 0
        raise ValueError("unknown config param")

    def scan(self):
        if not self._active:
            raise OSError("STA must be active")
        if self._ssid:
            return [(self._ssid.encode(), b"\x00\x11\x22\x33\x44\x55", 6, -60, 3, 0)]
        return []


network = module(
    "network", WLAN=WLAN, STA_IF=0, AP_IF=1, STAT_IDLE=0, STAT_CONNECTING=1, STAT_WRONG_PASSWORD=2,
    STAT_NO_AP_FOUND=3, STAT_CONNECT_FAIL=4, STAT_GOT_IP=5, MODE_11B=1, MODE_11G=2, MODE_11N=3,
    AUTH_OPEN=0, AUTH_WEP=1, AUTH_WPA_PSK=2, AUTH_WPA2_PSK=3, AUTH_WPA_WPA2_PSK=4,
    phy_mode=lambda *a: 3,
)


# socket: real TCP over loopback; every other destination goes through the redirect table first and
# fails with EHOSTUNREACH before any connect when it is not in the table.
def _is_ip(host):
    try:
        _socket.inet_aton(host)
        return host.count(".") == 3
    except OSError:
        return False


def _is_loopback(host):
    return _is_ip(host) and host.startswith("127.")


def _redirect_target(target):
    """A redirect target as (host, port) when it is a loopback IPv4 literal and a port, else None."""
    h, _, p = str(target).rpartition(":")
    if not _is_loopback(h) or not p.isdigit() or not 0 < int(p) < 65536:
        return None
    return (h, int(p))


def _check_redirects():
    # Defence in depth (the Go side checks first): the board never reaches another host, so a
    # redirect to one (the real OneNET, say) stops the board before it runs anything.
    for key, target in REDIRECTS.items():
        if _redirect_target(target) is None:
            log("refusing redirect %s -> %s: the target must be a loopback IPv4 address and port "
                "(127.x.x.x:PORT)" % (key, target))
            sys.exit(2)


_check_redirects()


def _route(host, port):
    key = "%s:%d" % (host, port)
    if key in REDIRECTS:
        return _redirect_target(REDIRECTS[key])
    if _is_loopback(host):
        return (host, port)
    return None


def _sta_up():
    return WLAN(0)._up()


def getaddrinfo(host, port, af=0, type=0, proto=0, flags=0):
    if isinstance(host, bytes):
        host = host.decode()
    if host == "localhost":
        host = "127.0.0.1"
    if not _is_ip(host):
        key = "%s:%d" % (host, port)
        dest = _redirect_target(REDIRECTS.get(key, ""))
        if dest is None or not _sta_up():
            raise oserr(-2)  # lwIP: name not resolved (no DNS query leaves the board)
        host, port = dest
    return [(2, 1, 0, "", (host, port))]


class Socket:
    def __init__(self, af=2, type=1, proto=0, _sock=None):
        if _sock is None:
            _sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM if type == 2 else _socket.SOCK_STREAM)
        self._s = _sock
        self._dead = False
        with NET.lock:
            NET.sockets.add(self)

    def _drop(self):
        self._dead = True
        try:
            self._s.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass

    def _check(self):
        if self._dead:
            raise oserr(_errno.ECONNABORTED)

    def _io(self, fn, *a):
        self._check()
        try:
            r = fn(*a)
        except _socket.timeout:
            raise oserr(_errno.ETIMEDOUT) from None
        except BlockingIOError:
            raise oserr(_errno.EAGAIN) from None
        except OSError as e:
            raise oserr(e.errno or _errno.EIO) from None
        self._check()
        return r

    def connect(self, addr):
        host, port = addr[0], addr[1]
        if isinstance(host, bytes):
            host = host.decode()
        if not _sta_up():
            raise oserr(_errno.EHOSTUNREACH)
        dest = _route(host, port)
        if dest is None:
            log("refused connect to %s:%d (not loopback, not in the redirect table)" % (host, port))
            raise oserr(_errno.EHOSTUNREACH)
        return self._io(self._s.connect, dest)

    def bind(self, addr):
        host = addr[0] or "127.0.0.1"
        if host == "0.0.0.0":
            host = "127.0.0.1"
        return self._io(self._s.bind, (host, addr[1]))

    def listen(self, n=2):
        return self._io(self._s.listen, n)

    def accept(self):
        s, a = self._io(self._s.accept)
        return Socket(_sock=s), a

    def send(self, data):
        return self._io(self._s.send, data)

    def sendall(self, data):
        return self._io(self._s.sendall, data)

    # Stream methods follow py/stream.c: read(n) reads until n bytes or EOF; a non-blocking
    # socket with nothing to give returns None instead of raising EAGAIN.

    def write(self, data, n=None):
        if n is not None:
            data = data[:n]
        if self._s.gettimeout() != 0:
            self._io(self._s.sendall, data)
            return len(data)
        try:
            return self._io(self._s.send, data)
        except OSError as e:
            if e.errno == _errno.EAGAIN:
                return None
            raise

    def recv(self, n):
        return self._io(self._s.recv, n)

    def read(self, n=None):
        out = bytearray()
        while n is None or len(out) < n:
            try:
                d = self._io(self._s.recv, 4096 if n is None else n - len(out))
            except OSError as e:
                if e.errno == _errno.EAGAIN:
                    return bytes(out) if out else None
                raise
            if not d:
                break
            out += d
        return bytes(out)

    def readinto(self, buf, n=None):
        n = len(buf) if n is None else n
        try:
            return self._io(self._s.recv_into, buf, n)
        except OSError as e:
            if e.errno == _errno.EAGAIN:
                return None
            raise

    def readline(self):
        out = bytearray()
        while True:
            try:
                d = self._io(self._s.recv, 1)
            except OSError as e:
                if e.errno == _errno.EAGAIN:
                    return bytes(out) if out else None
                raise
            if not d:
                break
            out += d
            if d == b"\n":
                break
        return bytes(out)

    def recvfrom(self, n):
        return self._io(self._s.recvfrom, n)

    def sendto(self, data, addr):
        dest = _route(addr[0], addr[1])
        if dest is None:
            raise oserr(_errno.EHOSTUNREACH)
        return self._io(self._s.sendto, data, dest)

    def setblocking(self, flag):
        self._s.setblocking(flag)

    def settimeout(self, t):
        self._s.settimeout(t)

    def setsockopt(self, level, opt, val):
        try:
            self._s.setsockopt(level, opt, val)
        except OSError:
            pass

    def makefile(self, mode="rb", buffering=0):
        return self

    def close(self):
        with NET.lock:
            NET.sockets.discard(self)
        self._s.close()

    def fileno(self):
        return self._s.fileno()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def __del__(self):
        try:
            self._s.close()
        except Exception:
            pass


usocket = module(
    "usocket", socket=Socket, getaddrinfo=getaddrinfo, AF_INET=2, AF_INET6=10, SOCK_STREAM=1, SOCK_DGRAM=2,
    SOCK_RAW=3, SOL_SOCKET=1, SO_REUSEADDR=4, IPPROTO_TCP=6, IPPROTO_UDP=17, IPPROTO_IP=0,
    error=OSError, timeout=OSError,
)


class Poll:
    def __init__(self):
        self._p = _select.poll()
        self._objs = {}

    def register(self, obj, mask=_select.POLLIN | _select.POLLOUT):
        fd = obj.fileno()
        self._objs[fd] = obj
        self._p.register(fd, mask)

    def modify(self, obj, mask):
        self._p.modify(obj.fileno(), mask)

    def unregister(self, obj):
        fd = obj.fileno()
        self._objs.pop(fd, None)
        try:
            self._p.unregister(fd)
        except KeyError:
            pass

    def poll(self, timeout=-1):
        res = self._p.poll(None if timeout is None or timeout < 0 else timeout)
        return [(self._objs.get(fd, fd), ev) for fd, ev in res]

    def ipoll(self, timeout=-1, flags=0):
        return iter(self.poll(timeout))


uselect = module(
    "uselect", poll=Poll, select=_select.select, POLLIN=_select.POLLIN, POLLOUT=_select.POLLOUT,
    POLLERR=_select.POLLERR, POLLHUP=_select.POLLHUP,
)


class Hash:
    def __init__(self, name, data=None):
        self._h = _hashlib.new(name)
        if data is not None:
            self._h.update(data)

    def update(self, data):
        self._h.update(data)

    def digest(self):
        return self._h.digest()


uhashlib = module(
    "uhashlib", sha1=lambda data=None: Hash("sha1", data), sha256=lambda data=None: Hash("sha256", data),
)

ujson = module(
    "ujson", dumps=lambda o, separators=None: _json.dumps(o, separators=separators),
    loads=lambda s: _json.loads(s), dump=lambda o, f, separators=None: f.write(_json.dumps(o, separators=separators)),
    load=lambda f: _json.loads(f.read()),
)

ustruct = module(
    "ustruct", pack=_struct.pack, unpack=_struct.unpack, calcsize=_struct.calcsize, pack_into=_struct.pack_into,
    unpack_from=_struct.unpack_from,
)

ubinascii = module(
    "ubinascii", hexlify=_binascii.hexlify, unhexlify=_binascii.unhexlify, a2b_base64=_binascii.a2b_base64,
    b2a_base64=_binascii.b2a_base64, crc32=_binascii.crc32,
)


def _listdir(path="."):
    return sorted(FSYS.wrap(_os.listdir, FSYS.host(path)))


def _ilistdir(path="."):
    host = FSYS.host(path)
    for name in _listdir(path):
        full = _os.path.join(host, name)
        kind = 0x4000 if _os.path.isdir(full) else 0x8000
        size = 0 if kind == 0x4000 else _os.path.getsize(full)
        yield (name, kind, 0, size)


def _stat(path):
    st = FSYS.wrap(_os.stat, FSYS.host(path))
    mode = 0x4000 if _os.path.isdir(FSYS.host(path)) else 0x8000
    mtime = int(st.st_mtime) - EPOCH_2000
    return (mode, 0, 0, 0, 0, 0, 0 if mode == 0x4000 else st.st_size, mtime, mtime, mtime)


def _mkdir(path):
    FSYS.wrap(_os.mkdir, FSYS.host(path))


def _rmdir(path):
    FSYS.wrap(_os.rmdir, FSYS.host(path))


def _remove(path):
    host = FSYS.host(path)
    if _os.path.isdir(host):
        raise oserr(_errno.EISDIR)
    FSYS.wrap(_os.remove, host)


def _rename(a, b):
    FSYS.wrap(_os.rename, FSYS.host(a), FSYS.host(b))


def _chdir(path):
    host = FSYS.host(path)
    if not _os.path.isdir(host):
        raise oserr(_errno.ENOENT)
    FSYS.cwd = FSYS.board_path(path)


class _Uname(tuple):
    sysname = property(lambda s: s[0])
    nodename = property(lambda s: s[1])
    release = property(lambda s: s[2])
    version = property(lambda s: s[3])
    machine = property(lambda s: s[4])

    def __repr__(self):
        names = ("sysname", "nodename", "release", "version", "machine")
        return "(" + ", ".join("%s=%r" % kv for kv in zip(names, self)) + ")"


def _uname():
    return _Uname(("esp8266", "esp8266", "2.2.0-dev(9422289)", "v1.19.1 on 2022-06-18", "ESP module with ESP8266"))


uos = module(
    "uos", listdir=_listdir, ilistdir=_ilistdir, stat=_stat, mkdir=_mkdir, rmdir=_rmdir, remove=_remove,
    unlink=_remove, rename=_rename, chdir=_chdir, getcwd=lambda: FSYS.cwd, uname=_uname, sync=lambda: None,
    urandom=_os.urandom, statvfs=lambda p: (4096, 4096, 860, 800, 800, 0, 0, 0, 0, 255),
    dupterm=lambda *a: None, sep="/",
)


def _mem_free():
    return 30952  # what a v1.19.1 ESP8266 reports after boot; the host's memory is not metered


gc_mod = module(
    "gc", collect=lambda: None, mem_free=_mem_free, mem_alloc=lambda: 7000, enable=lambda: None,
    disable=lambda: None, isenabled=lambda: True, threshold=lambda *a: -1,
)


def _kbd_intr(c):
    IN.intr_char = c


def _mem_info(*a):
    OUT.write("stack: 2128 out of 8192\nGC: total: 37952, used: 7000, free: 30952\n")


micropython_mod = module(
    "micropython", const=lambda x: x, opt_level=lambda *a: 0, alloc_emergency_exception_buf=lambda n: None,
    kbd_intr=_kbd_intr, mem_info=_mem_info, qstr_info=lambda *a: None, stack_use=lambda: 2128,
    schedule=lambda f, arg: f(arg), heap_lock=lambda: 0, heap_unlock=lambda: 0,
)

esp_mod = module(
    "esp", osdebug=lambda *a: None, flash_size=lambda: 4194304, flash_id=lambda: 1458400,
    flash_user_start=lambda: 0x9A000, check_fw=lambda: True, sleep_type=lambda *a: 0,
    freemem=_mem_free, meminfo=_mem_info,
    SLEEP_NONE=0, SLEEP_LIGHT=1, SLEEP_MODEM=2,
)


class StdIn:
    def __init__(self):
        self.buffer = self

    def read(self, n=-1):
        if n is None or n < 0:
            raise oserr(_errno.EINVAL)
        data = IN.read(n)
        return data if self is STDIN_BUFFER else data.decode("utf-8", "replace")

    def readline(self):
        out = bytearray()
        while True:
            b = IN.getbyte()
            out.append(b)
            if b in (10, 13):
                return out.decode("utf-8", "replace")


STDIN = StdIn()
STDIN_BUFFER = StdIn()
STDIN.buffer = STDIN_BUFFER
STDIN_BUFFER.buffer = STDIN_BUFFER


def _sys_exit(code=0):
    raise ForcedExit()


class _Impl(tuple):
    name = property(lambda s: s[0])
    version = property(lambda s: s[1])
    _mpy = property(lambda s: s[2])


usys = module(
    "usys", stdout=OUT, stderr=OUT, stdin=STDIN, exit=_sys_exit, print_exception=print_exception,
    platform="esp8266", byteorder="little", maxsize=2147483647, version="3.4.0; MicroPython v1.19.1 on 2022-06-18",
    version_info=(3, 4, 0), implementation=_Impl(("micropython", (1, 19, 1), 9733)), argv=[], path=["", ".frozen", "/lib"],
    modules={},
)

uerrno = module("uerrno", errorcode={k: v for k, v in ERRNO_NAMES.items()}, **{v: k for k, v in ERRNO_NAMES.items()})

uio = module("uio", BytesIO=_io.BytesIO, StringIO=_io.StringIO, open=board_open, IOBase=object)

urandom = module(
    "urandom", getrandbits=_random.getrandbits, seed=_random.seed, randint=_random.randint,
    randrange=_random.randrange, choice=_random.choice, random=_random.random, uniform=_random.uniform,
)

ure = module("ure", compile=_re.compile, match=_re.match, search=_re.search, sub=_re.sub)

import array as _array  # noqa: E402
import collections as _collections  # noqa: E402
import heapq as _heapq  # noqa: E402
import zlib as _zlib  # noqa: E402

ucollections = module("ucollections", namedtuple=_collections.namedtuple, OrderedDict=_collections.OrderedDict,
                      deque=_collections.deque)
uzlib = module("uzlib", decompress=lambda d, wbits=15, bufsize=0: _zlib.decompress(d, wbits))

BUILTIN_MODULES = {
    "machine": machine, "network": network, "time": utime, "socket": usocket, "select": uselect,
    "json": ujson, "struct": ustruct, "binascii": ubinascii, "hashlib": uhashlib, "os": uos, "gc": gc_mod,
    "micropython": micropython_mod, "esp": esp_mod, "sys": usys, "errno": uerrno, "io": uio,
    "random": urandom, "re": ure, "collections": ucollections, "zlib": uzlib, "math": _math,
    "array": _array, "heapq": _heapq,
}
# The u-prefixed names older code imports.
for _n in list(BUILTIN_MODULES):
    if _n not in ("machine", "network", "micropython", "esp", "gc", "math", "array"):
        BUILTIN_MODULES["u" + _n] = BUILTIN_MODULES[_n]
BUILTIN_MODULES["builtins"] = _builtins
BUILTIN_MODULES["ubuiltins"] = _builtins
BUILTIN_MODULES["cmath"] = __import__("cmath")


# ---------------------------------------------------------------- the VM: imports and execution


class VM:
    """One MicroPython VM lifetime: modules and globals live until the next soft reset."""

    def __init__(self):
        self.modules = {}
        usys.modules = self.modules
        self.builtins = dict(_builtins.__dict__)
        for k in ("exit", "quit", "copyright", "credits", "license", "breakpoint"):
            self.builtins.pop(k, None)
        self.builtins.update(__import__=self.import_, open=board_open, print=self.print_, input=self.input_,
                             help=self.help_)
        self.globals = {"__name__": "__main__", "__builtins__": self.builtins}

    def print_(self, *args, sep=" ", end="\n", file=None):
        f = OUT if file is None or file is usys.stdout else file
        f.write(sep.join(str(a) for a in args) + end)

    def input_(self, prompt=""):
        OUT.write(str(prompt))
        line = bytearray()
        while True:
            c = IN.getbyte()
            if c in (13, 10):
                OUT.raw(b"\r\n")
                return line.decode("utf-8", "replace")
            if c in (8, 127):
                if line:
                    line.pop()
                    OUT.raw(b"\x08\x1b[K")
                continue
            if c == 4 and not line:
                raise EOFError()
            line.append(c)
            OUT.raw(bytes([c]))

    def help_(self, *obj):
        if obj:
            o = obj[0]
            OUT.write("object %r is of type %s\n" % (o, type(o).__name__))
            for k in dir(o):
                if not k.startswith("__"):
                    OUT.write("  %s -- %r\n" % (k, getattr(o, k)))
            return
        OUT.write(HELP_TEXT)

    def find(self, fullname):
        """Flash root, then /lib, then built-in modules: uploaded files shadow built-ins."""
        rel = fullname.replace(".", "/")
        for base, shown in ((FLASH, ""), (_os.path.join(FLASH, "lib"), "/lib/")):
            d = _os.path.join(base, rel)
            if _os.path.isdir(d):
                init = _os.path.join(d, "__init__.py")
                return ("pkg", d, shown + rel + "/__init__.py" if _os.path.exists(init) else None, init)
            f = d + ".py"
            if _os.path.isfile(f):
                return ("file", f, shown + rel + ".py", None)
        if fullname in BUILTIN_MODULES:
            return ("builtin", BUILTIN_MODULES[fullname], None, None)
        return None

    def load(self, fullname):
        if fullname in self.modules:
            return self.modules[fullname]
        found = self.find(fullname)
        if found is None:
            e = ImportError("no module named '%s'" % fullname)
            e.name = fullname
            raise e
        kind, where, shown, init = found
        if kind == "builtin":
            self.modules[fullname] = where
            return where
        m = types.ModuleType(fullname)
        m.__dict__["__builtins__"] = self.builtins
        if kind == "pkg":
            m.__path__ = [where]
            m.__package__ = fullname
        else:
            m.__package__ = fullname.rpartition(".")[0]
        self.modules[fullname] = m
        path = where if kind == "file" else (init if shown else None)
        if path:
            m.__file__ = shown
            try:
                with open(path, "rb") as f:
                    src = f.read()
                exec(compile(src, shown, "exec", dont_inherit=True), m.__dict__)
            except BaseException:
                self.modules.pop(fullname, None)
                raise
        if "." in fullname:
            parent, _, child = fullname.rpartition(".")
            setattr(self.modules[parent], child, m)
        return m

    def import_(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level:
            pkg = (globals or {}).get("__package__") or ""
            if not pkg:
                raise ImportError("can't perform relative import")
            parts = pkg.split(".")
            if level - 1 > len(parts):
                raise ImportError("can't perform relative import")
            base = ".".join(parts[: len(parts) - (level - 1)])
            fullname = base + "." + name if name else base
        else:
            fullname = name
        parts = fullname.split(".")
        for i in range(1, len(parts) + 1):
            self.load(".".join(parts[:i]))
        leaf = self.modules[fullname]
        if fromlist:
            for attr in fromlist:
                if attr != "*" and not hasattr(leaf, attr) and hasattr(leaf, "__path__"):
                    try:
                        self.load(fullname + "." + attr)
                    except ImportError:
                        pass
            return leaf
        if level:
            return leaf
        return self.modules[parts[0]]


HELP_TEXT = """Welcome to MicroPython!

For online docs please visit http://docs.micropython.org/en/latest/esp8266/ .
For diagnostic information to include in bug reports execute 'import port_diag'.

Basic WiFi configuration:

import network
sta_if = network.WLAN(network.STA_IF); sta_if.active(True)
sta_if.scan()                             # Scan for available access points
sta_if.connect("<AP_name>", "<password>") # Connect to an AP
sta_if.isconnected()                      # Check for successful connection

Control commands:
  CTRL-A        -- on a blank line, enter raw REPL mode
  CTRL-B        -- on a blank line, enter normal REPL mode
  CTRL-C        -- interrupt a running program
  CTRL-D        -- on a blank line, do a soft reset of the board
  CTRL-E        -- on a blank line, enter paste mode

For further help on a specific object, type help(obj)
"""


class Board:
    def __init__(self):
        self.vm = None
        self.mode = "friendly"
        self.watchdog = None
        self.history = []

    # ---- executing code

    def on_sigint(self, signum, frame):
        if IN.running:
            raise KeyboardInterrupt()

    def execute(self, src, filename, mode, print_eof=False, compiled=None):
        """parse_compile_execute: returns 'ok', 'error' or 'exit' (soft reset requested)."""
        result = "ok"
        exc = None
        try:
            code = compiled or compile(src, filename, mode, dont_inherit=True)
            IN.running = True
            try:
                exec(code, self.vm.globals)
            finally:
                IN.running = False
        except ForcedExit:
            result = "exit"
        except SystemExit:
            result = "exit"
        except BaseException as e:  # noqa: B902 - everything the program raises is printed
            exc = e
            result = "error"
        if print_eof:
            OUT.raw(b"\x04")
        if exc is not None:
            print_exception(exc)
        if print_eof:
            OUT.raw(b"\x04")
        return result

    def run_file(self, name):
        host = _os.path.join(FLASH, name)
        if not _os.path.isfile(host):
            return "ok"
        with open(host, "rb") as f:
            src = f.read()
        return self.execute(src, name, "exec")

    def displayhook(self, value):
        if value is not None:
            OUT.write(repr(value) + "\n")

    # ---- the main loop

    def run(self):
        signal.signal(signal.SIGINT, self.on_sigint)
        sys.displayhook = self.displayhook
        sys.stdout = OUT
        first = True
        while True:  # one iteration per soft reset
            if not first:
                OUT.raw(b"MPY: soft reboot\r\n")
            first = False
            for s in list(NET.sockets):
                try:
                    s.close()
                except OSError:
                    pass
            self.vm = VM()
            FSYS.cwd = "/"
            if self.run_file("boot.py") != "exit" and self.mode == "friendly":
                self.run_file("main.py")
            OUT.raw(RAW_BANNER if self.mode == "raw" else b"\r\n" + BANNER)
            while True:
                step = self.raw_step if self.mode == "raw" else self.friendly_step
                if step() == "reset":
                    break

    def raw_step(self):
        """One block of the raw REPL (pyexec_raw_repl_process_char); 'reset' asks for a soft reset."""
        OUT.raw(b">")
        line = bytearray()
        while True:
            c = IN.getbyte()
            if c == 1:
                if RAW_PASTE and len(line) == 2 and line[0] == 5:
                    if line[1] != ord("A"):
                        OUT.raw(b"R\x00")
                        return None
                    return "reset" if self.raw_paste() == "exit" else None
                OUT.raw(RAW_BANNER)  # Ctrl-A resets the raw REPL (old firmware: also for \x05A\x01)
                return None
            if c == 2:
                self.mode = "friendly"
                OUT.raw(b"\r\n" + BANNER)
                return None
            if c == 3:
                line = bytearray()
            elif c == 4:
                break
            else:
                line.append(c)
        OUT.raw(b"OK")
        if not line:
            OUT.raw(b"\r\n")
            return "reset"
        if self.execute(bytes(line), "<stdin>", "exec", print_eof=True) == "exit":
            return "reset"
        return None

    def raw_paste(self):
        # As mp_reader_new_stdin: the window size implies one free window, the \x01 a second one.
        W = PASTE_WINDOW
        acct = {"allowed": 2 * W, "received": 0, "dropped": 0}
        with IN.cv:
            IN.paste = acct
        OUT.raw(b"R\x01" + _struct.pack("<H", W) + b"\x01")
        data = bytearray()
        remain = W
        while True:
            c = IN.getbyte()
            if c in (3, 4):
                with IN.cv:
                    IN.paste = None
                OUT.raw(b"\x04")
                break
            data.append(c)
            remain -= 1
            if remain == 0:
                with IN.cv:
                    acct["allowed"] += W  # granted before the host can see the \x01
                OUT.raw(b"\x01")
                remain = W
        if acct["dropped"]:
            log("raw-paste: the host ignored the flow-control window; %d bytes dropped" % acct["dropped"])
        if c == 3:  # Ctrl-C while receiving: KeyboardInterrupt from the reader
            OUT.raw(b"\x04")
            print_exception(KeyboardInterrupt())
            OUT.raw(b"\x04")
            return "error"
        return self.execute(bytes(data), "<stdin>", "exec", print_eof=True)

    def friendly_step(self):
        r = self.read_statement(self.history)
        if r == "reset":
            OUT.raw(b"\r\n")
            return "reset"
        if r == "raw":
            self.mode = "raw"
            OUT.raw(b"\r\n" + RAW_BANNER)
        elif r == "banner":
            OUT.raw(b"\r\n" + BANNER)
        elif r == "cancel":
            OUT.raw(b"\r\n")
        elif r[0].strip():
            src, paste = r
            if self.execute(src, "<stdin>", "exec" if paste else "single") == "exit":
                return "reset"
        return None

    def readline(self, prompt, history, initial=""):
        """readline.c on bytes (so UTF-8 typed at the prompt survives): ('line', text) or ('ctrl', c)."""
        OUT.raw(prompt)
        line = bytearray(initial.encode())
        OUT.raw(bytes(line))
        cur = len(line)
        hist_i = -1
        esc = b""
        while True:
            c = IN.getbyte()
            if esc:
                esc += bytes([c])
                if esc in (b"\x1b[", b"\x1bO") or (len(esc) > 2 and esc[-1:].isdigit()):
                    continue
                seq, esc = esc, b""
                if seq in (b"\x1b[A", b"\x1b[B") and history:
                    if seq == b"\x1b[A":
                        hist_i = min(hist_i + 1, len(history) - 1)
                    else:
                        hist_i = max(hist_i - 1, -1)
                    if cur:
                        OUT.raw(b"\x1b[%dD" % cur)
                    line = bytearray(history[hist_i].encode() if hist_i >= 0 else b"")
                    cur = len(line)
                    OUT.raw(b"\x1b[K" + bytes(line))
                elif seq == b"\x1b[D" and cur > 0:
                    cur -= 1
                    OUT.raw(b"\x08")
                elif seq == b"\x1b[C" and cur < len(line):
                    OUT.raw(bytes(line[cur : cur + 1]))
                    cur += 1
                continue
            if c == 0x1B:
                esc = b"\x1b"
                continue
            if c in (1, 2, 4, 5) and not line:
                return ("ctrl", c)
            if c == 3:
                return ("ctrl", 3)
            if c == 13:
                OUT.raw(b"\r\n")
                text = line.decode("utf-8", "replace")
                if text.strip() and (not history or history[0] != text):
                    history.insert(0, text)
                    del history[8:]
                return ("line", text)
            if c in (8, 127):
                if cur > 0:
                    del line[cur - 1]
                    cur -= 1
                    tail = bytes(line[cur:])
                    OUT.raw(b"\x08" + tail + b"\x1b[K")
                    if tail:
                        OUT.raw(b"\x1b[%dD" % len(tail))
                continue
            if c < 32:
                continue  # other control keys (Tab, LF, ...) do nothing here
            line.insert(cur, c)
            cur += 1
            tail = bytes(line[cur:])
            OUT.raw(bytes([c]) + tail)
            if tail:
                OUT.raw(b"\x1b[%dD" % len(tail))

    def read_statement(self, history):
        kind, v = self.readline(b">>> ", history)
        if kind == "ctrl":
            return {1: "raw", 2: "banner", 3: "cancel", 4: "reset", 5: None}.get(v) or self.paste_mode()
        text = v
        while self.needs_more(text):
            last = text.split("\n")[-1]
            indent = (len(last) - len(last.lstrip(" "))) // 4
            if last.rstrip().endswith(":"):
                indent += 1
            if not last.strip():
                indent = 0
            kind, v = self.readline(b"... ", history, "    " * indent)
            if kind == "ctrl":
                if v == 3:
                    return "cancel"
                if v == 4:
                    OUT.raw(b"\r\n")
                    break
                continue
            text += "\n" + v
            if not v.strip():
                break
        return (text + "\n", False)

    @staticmethod
    def needs_more(text):
        if not text.strip():
            return False
        try:
            return codeop.compile_command(text, "<stdin>", "single") is None
        except (SyntaxError, ValueError, OverflowError):
            return False

    def paste_mode(self):
        OUT.raw(b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== ")
        buf = bytearray()
        while True:
            c = IN.getbyte()
            if c == 3:
                return "cancel"
            if c == 4:
                OUT.raw(b"\r\n")
                return (buf.decode("utf-8", "replace"), True)
            if c == 13:
                buf.append(10)
                OUT.raw(b"\r\n=== ")
                continue
            buf.append(c)
            OUT.raw(bytes([c]))


BOARD = Board()


def boot_garbage():
    # The ROM log at 74880 baud read at 115200: deterministic noise with a few readable bytes.
    rnd = _random.Random(74880)
    noise = bytes(rnd.choice(b"\x00\x80\x8c\x9c\xe0\xf0\xfc\x12\x02\x0c\x8e\x92\xec\x72\x6c\x63\x70")
                  for _ in range(96))
    return noise + b"\r\n"


def watchdog_loop():
    while True:
        _time.sleep(0.1)
        wd = BOARD.watchdog
        if wd is not None and wd.expired():
            log("watchdog timeout: resetting")
            CTL.send(ev="reset", cause="wdt")
            return


def main():
    IN.start()
    CTL.start()
    CTL.send(ev="up")
    if OPTS.get("boot_garbage"):
        OUT.raw(boot_garbage())
    BOARD.run()


if __name__ == "__main__":
    main()
