# gc as the ESP8266 reports it: mem_free is what is left of the board's
# heap (the wasm build adds the room it could still grow by).
import gc as _g
import _hilc

collect = _g.collect
enable = _g.enable
disable = _g.disable
isenabled = _g.isenabled
threshold = _g.threshold


def mem_alloc():
    # Less what the modules' doubles hold: the board's modules are in ROM.
    return max(0, _g.mem_alloc() - _hilc.base)


def mem_free():
    return max(0, _hilc.board - (_g.mem_alloc() - _hilc.base))
