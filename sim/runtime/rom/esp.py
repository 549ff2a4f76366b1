from _hilc import c
from micropython import const

SLEEP_NONE = const(0)
SLEEP_LIGHT = const(1)
SLEEP_MODEM = const(2)


def osdebug(*a):
    pass


def flash_size():
    return 4194304


def flash_id():
    return 1458400


def flash_user_start():
    return 1048576


def sleep_type(*t):
    return SLEEP_MODEM


def deepsleep(us=0, *a):
    c("reset")


def freemem():
    import gc
    return gc.mem_free()


def check_fw():
    return True
