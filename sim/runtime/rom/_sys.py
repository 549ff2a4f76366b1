# sys as the ESP8266 has it; everything else is the VM's own.
import sys as _s
import io as _io
import binascii as _ba  # imported here: at call time, import would search sys.path (a mounted host dir)
from _hilc import c as _c

platform = "esp8266"
path = _s.path
modules = _s.modules
argv = _s.argv
byteorder = _s.byteorder
exit = _s.exit
implementation = _s.implementation
maxsize = _s.maxsize
print_exception = _s.print_exception
version = _s.version
version_info = _s.version_info


class _Bin(_io.IOBase):
    # The serial line as bytes (the board's one FileIO object, sys.stdin.buffer
    # and sys.stdout.buffer): reads block in the host; writes go out as they
    # are, where the text streams turn "\n" into "\r\n" (mpremote's mount
    # protocol is binary on it).
    def read(self, n=-1):
        if n == 0:
            return b""
        return _ba.unhexlify(_c("stdin", n if n > 0 else 256))

    def readinto(self, buf, n=-1):
        d = self.read(len(buf) if n < 0 else n)
        buf[: len(d)] = d
        return len(d)

    def write(self, buf, n=-1):
        if type(buf) is str:
            buf = buf.encode()
        m = memoryview(buf)
        if 0 <= n < len(m):
            m = m[:n]
        if len(m):
            _c("raw", _ba.hexlify(m).decode())
        return len(m)

    def flush(self):
        pass

    def fileno(self):
        return -1

    def __repr__(self):
        return "<io.FileIO 0>"


_buf = _Bin()


class _Out(_io.IOBase):
    # sys.stdout and sys.stderr: the VM's text stream, with the board's buffer.
    buffer = _buf

    def __init__(self, s):
        self._s = s

    def write(self, s):
        return self._s.write(s)

    def flush(self):
        pass

    def __repr__(self):
        return repr(self._s)


stdout = _Out(_s.stdout)
stderr = _Out(_s.stderr)


class _In:
    buffer = _buf

    def read(self, n=-1):
        return self.buffer.read(n).decode()

    def readline(self):
        b = b""
        while not b.endswith(b"\n"):
            b += self.buffer.read(1)
        return b.decode()

    def fileno(self):
        return -1

    def __repr__(self):
        return "<io.TextIOWrapper 0>"


stdin = _In()


# The rest of the VM's sys (ps1, ps2), copied. Not a module __getattr__:
# that answers every lookup, also the VM's own of __set_name__ on each
# value of a class body, with an AttributeError that breaks the class
# (Thonny's helper holds sys in its class body).
for _n in dir(_s):
    if _n[0] != "_" and _n not in globals():
        globals()[_n] = getattr(_s, _n)
del _n
