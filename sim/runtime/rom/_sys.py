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
stdin = _s.stdin
stdout = _s.stdout
stderr = _s.stderr
version = _s.version
version_info = _s.version_info


def __getattr__(name):
    return getattr(_s, name)
