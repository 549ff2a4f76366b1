# sys as the ESP8266 has it; everything else is the VM's own.
import sys as _s

platform = "esp8266"
path = _s.path
modules = _s.modules
argv = _s.argv
byteorder = _s.byteorder
exit = _s.exit
implementation = _s.implementation
maxsize = _s.maxsize
print_exception = _s.print_exception
stdout = _s.stdout
stderr = _s.stderr
version = _s.version
version_info = _s.version_info


class _Bin:
    # The serial line's input, as bytes: reads block in the host.
    def read(self, n=-1):
        from _hilc import c
        import binascii
        return binascii.unhexlify(c("stdin", n if n > 0 else 256))

    def readinto(self, buf, n=-1):
        d = self.read(len(buf) if n < 0 else n)
        buf[: len(d)] = d
        return len(d)

    def fileno(self):
        return -1


class _In:
    buffer = _Bin()

    def read(self, n=-1):
        return self.buffer.read(n).decode()

    def readline(self):
        b = b""
        while not b.endswith(b"\n"):
            b += self.buffer.read(1)
        return b.decode()

    def fileno(self):
        return -1


stdin = _In()


# The rest of the VM's sys (ps1, ps2), copied. Not a module __getattr__:
# that answers every lookup, also the VM's own of __set_name__ on each
# value of a class body, with an AttributeError that breaks the class
# (Thonny's helper holds sys in its class body).
for _n in dir(_s):
    if _n[0] != "_" and _n not in globals():
        globals()[_n] = getattr(_s, _n)
del _n
