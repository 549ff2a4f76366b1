# A small MQTT 3.1.1 client with umqtt.simple's API, written for OneNET's
# legacy service (it pushes $creq/... without any SUBSCRIBE) and the
# ESP8266's heap. Its larger half (the packet codec, connect and the reader)
# is mqttio.py: MicroPython holds a module's whole parse tree while it
# compiles it, and one 6.7 KB module needed 22 KB of the board's 38 KB.
import time
from mqttio import MQTTException, _b, _s, _put, _hdr, _read, _len, connect, _in


class MQTTClient:
    timeout = 10  # seconds: TCP connect, the rest of a packet, an ack
    max_msg = 1024  # incoming payloads are cut to this many bytes
    # The methods mqttio.py defines.
    _read = _read
    _len = _len
    connect = connect
    _in = _in

    def __init__(self, client_id, server, port=0, user=None, password=None,
                 keepalive=0, ssl=False, ssl_params=None):
        if ssl:
            raise ValueError("no ssl")
        self.client_id = _b(client_id)
        self.server = server
        self.port = port or 1883
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.sock = None
        self.cb = None
        self.pid = 0
        self.pings = 0  # PINGREQs not yet answered
        self.last_tx = time.ticks_ms()
        self.ack = b""
        self.buf = bytearray(9)  # a PUBLISH's fixed header and topic length

    def set_callback(self, f):
        self.cb = f

    def _send(self, b):
        self.sock.write(b)
        self.last_tx = time.ticks_ms()

    def disconnect(self):
        try:
            self._send(b"\xe0\0")
        finally:
            self.sock.close()
            self.sock = None

    def ping(self):
        self._send(b"\xc0\0")
        self.pings += 1

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return bytes((self.pid >> 8, self.pid & 255))

    def publish(self, topic, msg, retain=False, qos=0):
        if qos not in (0, 1):
            raise ValueError("qos")
        t = _b(topic)
        m = _b(msg)
        n = 2 + len(t) + len(m)
        if qos:
            n += 2
        # Header, topic and payload go out as they are: no copies on the heap.
        b = self.buf
        i = _put(b, 0x30 | qos << 1 | bool(retain), n)
        b[i] = len(t) >> 8
        b[i + 1] = len(t) & 255
        self._send(memoryview(b)[:i + 2])
        self._send(t)
        if qos:
            pid = self._next_pid()
            self._send(pid)
        self._send(m)
        if qos:
            self._ack(0x40, pid)

    def subscribe(self, topic, qos=0):
        t = _b(topic)
        pid = self._next_pid()
        self._send(_hdr(0x82, 5 + len(t)) + pid + _s(t) + bytes((qos,)))
        if self._ack(0x90, pid)[2] == 0x80:
            raise MQTTException(0x80)

    def _ack(self, op, pid):
        # Waits for the ack of pid; packets arriving meanwhile are handled.
        t0 = time.ticks_ms()
        while True:
            self.sock.settimeout(self.timeout)
            if self._in(self.sock.read(1)) == op and self.ack[:2] == pid:
                return self.ack
            if time.ticks_diff(time.ticks_ms(), t0) > self.timeout * 1000:
                raise OSError(110)

    def wait_msg(self):
        # Blocks for the next packet; a PUBLISH goes to the callback (None is
        # returned), any other packet's type byte is returned.
        self.sock.setblocking(True)
        return self._in(self.sock.read(1))

    def check_msg(self):
        # Like wait_msg, but returns None at once when nothing has arrived.
        self.sock.setblocking(False)
        try:
            b = self.sock.read(1)
        except OSError as e:
            if e.args[0] != 11:  # EAGAIN
                raise
            b = None
        if b is None:
            self.sock.settimeout(self.timeout)
            return None
        return self._in(b)
