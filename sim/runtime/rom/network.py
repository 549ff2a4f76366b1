from _hilc import c
from micropython import const

STA_IF = const(0)
AP_IF = const(1)
STAT_IDLE = const(0)
STAT_CONNECTING = const(1)
STAT_WRONG_PASSWORD = const(2)
STAT_NO_AP_FOUND = const(3)
STAT_CONNECT_FAIL = const(4)
STAT_GOT_IP = const(5)
MODE_11B = const(1)
MODE_11G = const(2)
MODE_11N = const(3)
AUTH_OPEN = const(0)

_ifs = {}


class WLAN:
    IF_STA = const(0)
    IF_AP = const(1)

    def __new__(cls, interface=STA_IF):
        if interface not in (STA_IF, AP_IF):
            raise ValueError("invalid WLAN interface identifier")
        w = _ifs.get(interface)
        if w is None:
            w = object.__new__(cls)
            w._i = interface
            _ifs[interface] = w
        return w

    def __init__(self, interface=STA_IF):
        pass

    def active(self, *a):
        return bool(c("wlan_active", self._i, (1 if a[0] else 0) if a else -1))

    def connect(self, ssid=None, key=None, *, bssid=None):
        c("wlan_connect", ssid, key)

    def disconnect(self):
        c("wlan_disconnect")

    def isconnected(self):
        return bool(c("wlan_isconnected", self._i))

    def status(self, *a):
        if a:
            return c("wlan_rssi")
        return c("wlan_status")

    def ifconfig(self, *a):
        if a:
            return None
        return tuple(c("wlan_ifconfig", self._i).split(","))

    def ipconfig(self, *a, **kw):
        if a and a[0] == "addr4":
            ip, mask = self.ifconfig()[:2]
            return (ip, mask)
        if a and a[0] == "dhcp4":
            return self._i == STA_IF
        return None

    def config(self, *a, **kw):
        if a:
            return c("wlan_config", self._i, a[0])
        return None

    def scan(self):
        return []

    def __repr__(self):
        return "<WLAN>"


def phy_mode(*m):
    return MODE_11N


def ipconfig(*a, **kw):
    if a and a[0] == "dns":
        return WLAN(STA_IF).ifconfig()[3]
    return None
