# The LED controller: OneNET login, on/off/toggle from commands ($creq
# pushes, or Studio's $sys/{pid}/{name}/cmd/request/+), the custom topic and
# (Studio) thing/property/set of "led", one "HIL ..." line per event on the
# serial port (the grammar is in firmware/README.md). Secrets are never printed.
import gc
import json
import time
import select
import sys
import appboot
from mqtt import MQTTClient, MQTTException

VERSION = "1.0.0"
WIFI_S = 20  # seconds to wait for Wi-Fi
BACKOFF = 1000  # first reconnect delay, ms (config.json "backoff_ms")
CAP = 30000  # backoff cap, ms
DP = (b'\x03\x00\x09{"led":0}', b'\x03\x00\x09{"led":1}')  # $dp type 3
RSP = (b'{"led":0}', b'{"led":1}')
TPP = '{"id":"%d","params":{"led":{"value":%s}}}'  # Studio thing/property/post
CMDS = {b"on": 1, b"off": 0, b"toggle": 2}
WHY = {-1: "closed", -2: "dns", -3: "dns", 103: "aborted", 104: "reset",
       110: "timeout", 111: "connrefused", 113: "unreachable"}

cfg = None
led = None
state = 0
client = None
sta = None
st = False  # platform "studio"
req, rsp, dpt = b"$creq/", b"$crsp/", b"$dp"  # command, reply, data topics
pst = None  # Studio thing/property/set
n = 0  # Studio property post id
pl = None  # the session's poll object
pinged = 0  # when the last PINGREQ went out (ticks_ms)
up = False  # the last session reached "mqtt up"
wup = False  # the last Wi-Fi echo was "wifi up"
sleep = time.sleep_ms  # the tests replace it


class Down(Exception):
    # args[0]: the reason word for "HIL mqtt down".
    pass


def echo(s):
    print("HIL " + s)


def load():
    appboot.load(sys.modules[__name__])


def boot():
    # LED off first, then the boot line, then Wi-Fi with a bounded wait.
    appboot.boot(sys.modules[__name__])


def wifi():
    return appboot.wifi(sys.modules[__name__])


def txt(b):
    # A topic as a bare word when it is one, else as a bytes literal.
    for c in b:
        if c < 33 or c > 126:
            return repr(b)
    return b.decode()


def on_msg(topic, msg):
    global state, n
    c = CMDS.get(msg)
    i = None
    if topic == pst:  # {"id":"3","params":{"led":true}}
        try:
            j = json.loads(msg)
            v = j["params"]["led"]
            if type(v) is bool:
                i = j["id"]
                c = int(v)
                msg = (b"off", b"on")[c]
        except Exception:
            pass
    if c is None:
        echo("ignored payload=%r via=%s" % (msg[:128], txt(topic)))
        # Answered all the same: OneNET sends an unanswered qos=1 command
        # again at every login until its timeout.
        if client and topic.startswith(req):
            client.publish(rsp + memoryview(topic)[len(req):], RSP[state])
        return
    state = 1 - state if c == 2 else c
    led.value(state)
    echo("led state=%d cmd=%s via=%s" % (state, msg.decode(), txt(topic)))
    m = client
    if m:
        if topic.startswith(req):
            m.publish(rsp + memoryview(topic)[len(req):], RSP[state])
        if i is not None:
            m.publish(pst + b"_reply", '{"id":%s,"code":200}' % json.dumps(i))
        if st:
            n += 1
            m.publish(dpt, TPP % (n, ("false", "true")[state]))
        else:
            m.publish(dpt, DP[state])


def why(e):
    if isinstance(e, Down):
        return e.args[0]
    if isinstance(e, MemoryError):
        return "memory"
    if isinstance(e, MQTTException):
        return "protocol"
    if isinstance(e, KeyError):
        return "config"
    if isinstance(e, OSError):
        a = e.args[0] if e.args else 0
        if isinstance(a, str) and "timed out" in a:
            return "timeout"
        return WHY.get(a, "oserror")
    return "error"


def login():
    # Connects and subscribes: the client, or None when the login is
    # refused. serve() and the harness's heap probe (one tick per request)
    # share it.
    global client, up, st, req, rsp, dpt, pst, pl, pinged
    st = cfg.get("platform") == "studio"
    b = cfg["broker"]
    host = b["host"]
    port = b.get("port", 1883 if st else 6002)
    subs = [cfg["topic"]] if cfg.get("topic") else []
    if st:  # the platform's replies are subscribed to only when rejected
        p = "$sys/%s/%s/" % (cfg["product_id"], cfg["device_id"])
        req = (p + "cmd/request/").encode()
        rsp = (p + "cmd/response/").encode()
        dpt = (p + "thing/property/post").encode()
        pst = (p + "thing/property/set").encode()
        subs = [p + "cmd/request/+", p + "cmd/response/+/rejected",
                pst] + subs
    else:
        req, rsp, dpt, pst = b"$creq/", b"$crsp/", b"$dp", None
    c = MQTTClient(cfg["device_id"], host, port, cfg["product_id"],
                   cfg["token"] if st else cfg["key"], cfg.get("keepalive", 60))
    c.set_callback(on_msg)
    try:
        c.connect()
    except MQTTException as e:
        if isinstance(e.args[0], int):
            echo("mqtt refused rc=%d" % e.args[0])
            return None
        raise
    client = c
    try:
        for t in subs:
            try:
                c.subscribe(t)
            except MQTTException as e:
                if e.args[0] == 0x80:
                    raise Down("suback")
                raise
    except Exception:
        close(c)
        raise
    echo("mqtt up broker=%s:%d" % (host, port))
    up = True
    pl = select.poll()
    pl.register(c.sock, select.POLLIN)
    pinged = 0
    return c


def tick(c):
    # One round of the session: a message if one comes within a second,
    # then the Wi-Fi and keepalive checks. Raises when the session ends.
    global pinged
    if pl.poll(1000):
        c.check_msg()
        gc.collect()
    if not sta.isconnected():
        raise Down("wifi")
    ka = c.keepalive * 500  # ping after half the keepalive idle
    if ka:
        now = time.ticks_ms()
        if c.pings:
            if time.ticks_diff(now, pinged) > ka:
                raise Down("keepalive")
        elif time.ticks_diff(now, c.last_tx) >= ka:
            c.ping()
            pinged = now


def close(c):
    global client
    client = None
    try:
        c.sock.close()
    except Exception:
        pass


def serve():
    # One session: returns when the login is refused, raises when it ends.
    c = login()
    if c is None:
        return
    try:
        while True:
            tick(c)
    finally:
        close(c)


def main():
    # Runs until Ctrl-C (KeyboardInterrupt is not an Exception, so it passes).
    global up, wup
    if led is None:
        boot()
    d = 0
    while True:
        up = False
        try:
            if cfg is None:
                try:
                    load()
                except Exception:
                    raise Down("config")
            if sta.isconnected() and not wup:  # it came back by itself
                wifi()
            if sta.isconnected() or wifi():
                serve()
        except Exception as e:
            lost = wup and not sta.isconnected()
            echo("mqtt down reason=" + why(e))
            if lost:
                wup = False
                echo("wifi down reason=lost")
        if up or not d:
            d = (cfg or {}).get("backoff_ms", BACKOFF)
        gc.collect()
        sleep(d)
        d = min(d * 2, CAP)
