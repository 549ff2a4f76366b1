# app.py's boot and Wi-Fi, in a module of its own: MicroPython holds a
# module's whole parse tree while it compiles it, so two small compiles need
# less of the ESP8266's heap than one large one. a is the app module.
import json
import time
import machine
import network


def load(a):
    with open("config.json") as f:
        c = json.load(f)
    if not isinstance(c, dict):
        raise ValueError("config")
    a.cfg = c


def boot(a):
    try:
        load(a)
    except Exception:  # missing or bad config.json: main() reports it
        pass
    c = a.cfg or {}
    a.led = machine.Pin(c.get("led_pin", 4), machine.Pin.OUT, value=0)
    a.state = 0
    a.echo("boot fw=%s id=%s" % (a.VERSION, c.get("device_id") or "-"))
    a.sta = network.WLAN(network.STA_IF)
    ap = network.WLAN(network.AP_IF)
    if ap.active():
        ap.active(False)
    if a.cfg:
        wifi(a)
    else:
        a.echo("wifi down reason=config")


def wifi(a):
    # Joins the configured network (bounded wait); echoes and records the result.
    a.wup = False
    sta = a.sta
    sta.active(True)
    if not sta.isconnected():
        w = a.cfg.get("wifi") or {}
        if not w.get("ssid"):
            a.echo("wifi down reason=config")
            return False
        sta.connect(w["ssid"], w.get("password", ""))
        t0 = time.ticks_ms()
        while not sta.isconnected():
            if time.ticks_diff(time.ticks_ms(), t0) > a.WIFI_S * 1000:
                break
            time.sleep_ms(100)
    if sta.isconnected():
        a.echo("wifi up ip=%s" % sta.ifconfig()[0])
        a.wup = True
        return True
    s = sta.status()
    r = "timeout"
    if s == getattr(network, "STAT_WRONG_PASSWORD", -99):
        r = "password"
    elif s == getattr(network, "STAT_NO_AP_FOUND", -99):
        r = "noap"
    elif s == getattr(network, "STAT_CONNECT_FAIL", -99):
        r = "fail"
    a.echo("wifi down reason=" + r)
    return False


