# vfs as the ESP8266 has it: the flash at / is littlefs v2 (ports/esp8266/modules/inisetup.py
# formats it so), which this VM holds as a VfsPosix over its /flash; mount() lists it as the
# board's object prints (mpremote's df shows it). Mounting and unmounting are the VM's own.
import vfs as _v

umount = _v.umount


class _Lfs2:
    def __repr__(self):
        return "<VfsLfs2>"


_flash = _Lfs2()


def mount(*a, **k):
    if a or k:
        return _v.mount(*a, **k)
    return [(_flash if type(m) is _v.VfsPosix else m, p) for m, p in _v.mount()]
