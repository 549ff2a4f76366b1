# Run once per boot, before boot.py: the ESP8266's modules in place of the
# VM's, the flash at /, MicroPython's own sys.path. Leaves nothing behind
# in __main__.
def _hil_boot(limit):
    import sys, os, builtins
    import _hilc, machine, network, socket, select, esp, _time, _os, _gc, _sys, _micropython, _builtins, _vfs
    for n, m in (("time", _time), ("os", _os), ("gc", _gc), ("sys", _sys), ("select", select), ("socket", socket),
                 ("micropython", _micropython)):
        m.__name__ = n
        sys.modules[n] = m
        sys.modules["u" + n] = m
    _vfs.__name__ = "vfs"
    sys.modules["vfs"] = _vfs  # no uvfs on the board
    _open = builtins.open
    wrapped = _os._w(_open)
    builtins.open = wrapped
    _os.open = wrapped
    os.umount("/")
    os.mount(os.VfsPosix("/flash"), "/")
    os.chdir("/")
    sys.path[:] = ["", ".frozen", "/lib", "/"]
    _hilc.limit = limit
    _help = builtins.help

    def help(*a):
        # The ESP8266's text (kept by the host: not on the board's heap).
        if a and a[0] != "modules":
            return _help(*a)
        _hilc.c("help", a[0] if a else "")

    builtins.help = help

    def input(prompt=""):
        # A line typed on the serial line, echoed by the host.
        return _hilc.c("input", str(prompt))

    builtins.input = input

    # An attribute of the builtins module stays the VM's own after
    # builtins.x = ... (that reaches bare names only), so `import builtins`
    # gets a copy with the board's open, help and input: Thonny calls
    # builtins.help('modules') and builtins.open.
    for n in dir(builtins):
        if n[:2] != "__":
            setattr(_builtins, n, getattr(builtins, n))
    _builtins.open, _builtins.help, _builtins.input = wrapped, help, input
    _builtins.__name__ = "builtins"
    sys.modules["builtins"] = _builtins
