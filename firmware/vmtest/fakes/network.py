# Test double of network: `up` is the Wi-Fi link; connect() brings it up
# unless `joinable` is False. Passwords given to connect() are kept in
# `joined` so tests can check they were used (and never printed).
STA_IF = 0
AP_IF = 1
STAT_IDLE = 0
STAT_CONNECTING = 1
STAT_WRONG_PASSWORD = 2
STAT_NO_AP_FOUND = 3
STAT_CONNECT_FAIL = 4
STAT_GOT_IP = 5
up = [False]
joinable = [True]
status = [STAT_IDLE]
joined = []
ap_active = [True]


class WLAN:
    def __init__(self, i):
        self.i = i

    def active(self, *a):
        if self.i == AP_IF:
            if a:
                ap_active[0] = a[0]
            return ap_active[0]
        return True

    def connect(self, ssid, pw):
        joined.append((ssid, pw))
        if joinable[0]:
            up[0] = True
            status[0] = STAT_GOT_IP
        else:
            status[0] = STAT_WRONG_PASSWORD

    def isconnected(self):
        return up[0]

    def status(self):
        return status[0]

    def ifconfig(self):
        return ("10.0.0.7", "255.255.255.0", "10.0.0.1", "10.0.0.1")
