# os as the ESP8266 has it: the flash at /, MicroPython's errno numbers
# (the VM's file system speaks WASI's), uname, statvfs of a 4 MB flash.
import os as _o
import random as _random  # here: at call time, import would search sys.path (a mounted host dir)
import vfs as _vfs
from micropython import const

sep = "/"
VfsPosix = _o.VfsPosix
mount = _o.mount
umount = _o.umount
getcwd = _o.getcwd
# WASI errno -> MicroPython's
_E = {44: 2, 20: 17, 54: 20, 31: 21, 55: 39, 28: 22, 2: 13, 8: 9, 29: 5, 51: 28, 63: 1}


def _w(f):
    # Errors of the flash (the VM's VfsPosix) get MicroPython's numbers; another
    # mounted file system (mpremote mount's) raises its own, which stay as they are.
    def g(*a, **k):
        try:
            return f(*a, **k)
        except OSError as e:
            n = e.errno
            if type(_mountof(a[0] if a and type(a[0]) is str else ".")) is not VfsPosix:
                raise
            raise OSError(_E.get(n, n))
    return g


listdir = _w(_o.listdir)
_stat = _w(_o.stat)


def stat(path):
    # As the board's FAT: type bits only, no inode, device or links.
    st = _stat(path)
    return (st[0] & 0xF000, 0, 0, 0, 0, 0, st[6], st[7], st[8], st[9])


def ilistdir(path="."):
    # As the board's FAT: (name, type, 0, size).
    for e in _w(_o.ilistdir)(path):
        size = 0
        if e[1] == 0x8000:
            size = _stat((path.rstrip("/") + "/" if path not in (".", "") else "") + e[0])[6]
        yield (e[0], e[1], 0, size)


mkdir = _w(_o.mkdir)


def _lfs(first, other, errno):
    # littlefs removes whatever the path names with one call (lfs_remove): on the
    # board's flash os.remove takes an empty directory and os.rmdir a file.
    def g(path):
        try:
            return first(path)
        except OSError as e:
            if e.errno != errno or type(_mountof(path)) is not VfsPosix:
                raise
        return other(path)
    return g


rmdir = _lfs(_w(_o.rmdir), _w(_o.remove), 20)  # ENOTDIR: a file
remove = _lfs(_w(_o.remove), _w(_o.rmdir), 21)  # EISDIR: a directory
unlink = remove
rename = _w(_o.rename)
chdir = _w(_o.chdir)
open = None  # set at boot: builtins.open


def statvfs(path):
    stat(path)
    if type(_mountof(path)) is not VfsPosix:
        # Another file system mounted there (mpremote mount's RemoteFS): its
        # own statvfs, as on the board.
        return _w(_o.statvfs)(path)
    return (4096, 4096, 759, 700, 700, 0, 0, 0, 0, 255)


def _mountof(path):
    # The file system that holds path: the longest mount point above it.
    if path[:1] != "/":
        path = getcwd().rstrip("/") + "/" + path
    best, fs = "", None
    for m, p in _vfs.mount():
        if (path == p or path.startswith(p.rstrip("/") + "/")) and len(p) >= len(best):
            best, fs = p, m
    return fs


class _Uname(tuple):
    sysname = property(lambda s: s[0])
    nodename = property(lambda s: s[1])
    release = property(lambda s: s[2])
    version = property(lambda s: s[3])
    machine = property(lambda s: s[4])


def uname():
    import sys
    v = sys.version.split("; ")[1]
    return _Uname(("esp8266", "esp8266", "2.2.0-dev(9422289)", v.split(" ", 1)[1], "ESP module with ESP8266"))


def dupterm(*a):
    return None


def urandom(n):
    return bytes(_random.getrandbits(8) for _ in range(n))
