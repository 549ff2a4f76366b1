// Firmware tests on the genuine MicroPython VM (v1.27, WebAssembly). The
// board's hardware modules (socket, select, machine, network) are replaced by
// the small doubles in fakes/; everything else is MicroPython's own.
//
// Run: node firmware/vmtest/vm.test.mjs  (go test ./firmware/... runs it too).
// HIL_FW_RENDERED=DIR adds the files in DIR (Go's rendering of the firmware
// and of the tutorial) to the compile check and runs the rendered tutorial.
// HIL_FIGURES=FILE receives the measured figures as JSON.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const here = path.dirname(fileURLToPath(import.meta.url));
const boardDir = path.join(here, "..", "board");
const tutorialDir = path.join(here, "..", "tutorial");
const fakesDir = path.join(here, "fakes");
const rendered = process.env.HIL_FW_RENDERED || "";
const figures = {};

const readDir = (dir) =>
  Object.fromEntries(
    fs.readdirSync(dir).filter((f) => f.endsWith(".py") || f.endsWith(".json"))
      .map((f) => [f, fs.readFileSync(path.join(dir, f))]),
  );
const board = readDir(boardDir);
const fakes = readDir(fakesDir);

const CFG = {
  wifi: { ssid: "lab", password: "s3cret-wifi" },
  broker: { host: "127.0.0.1", port: 6002 },
  device_id: "503367129", product_id: "386427", key: "tpy-001-secret",
  topic: "TurnipRobot", led_pin: 4, keepalive: 60,
};
const SECRETS = ["s3cret-wifi", "tpy-001-secret"];

// --- MQTT 3.1.1 encoding, written here independently of the firmware ---
const bytes = (...parts) =>
  Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));
function remLen(n) {
  const out = [];
  do {
    let d = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) d |= 0x80;
    out.push(d);
  } while (n > 0);
  return out;
}
const mstr = (s) => { const b = Buffer.from(s); return bytes([b.length >> 8, b.length & 255], b); };
const packet = (first, ...body) => { const b = bytes(...body); return bytes([first, ...remLen(b.length)], b); };
const u16 = (n) => [n >> 8, n & 255];
const CONNACK = (rc) => bytes([0x20, 2, 0, rc]);
const SUBACK = (pid, rc) => bytes([0x90, 3, ...u16(pid), rc]);
const pub = (topic, msg) => packet(0x30, mstr(topic), msg);
const pyBytes = (b) => `_h('${Buffer.from(b).toString("hex")}')`;

// One fresh VM per test, its files in /flash (the current directory). Only
// the newest VM may be used: the wasm build keeps its state in globals.
async function vm(files) {
  const out = [];
  const mp = await loadMicroPython({ stdout: (l) => out.push(l), stderr: (l) => out.push(l) });
  mp.FS.mkdir("/flash");
  for (const [name, data] of Object.entries(files)) mp.FS.writeFile("/flash/" + name, data);
  const run = (code) => {
    try {
      return mp.runPython(code);
    } catch (e) {
      if (e.name !== "PythonError") throw e;
      const err = new Error(`${e.type}: ${e.message}`);
      err.pyType = e.type;
      throw err;
    }
  };
  run("import os, binascii\nos.chdir('/flash')\ndef _h(s):\n    return binascii.unhexlify(s)\n"
    + "def _x(b):\n    return binascii.hexlify(bytes(b)).decode()\n");
  // Evaluates expr after running code, through JSON (bytes: use _x for hex).
  const get = (code, expr) => { run(code + `\nimport json\n_r = json.dumps(${expr})\n`); return JSON.parse(mp.globals.get("_r")); };
  const hil = () => out.filter((l) => l.startsWith("HIL "));
  return { mp, out, run, get, hil };
}

function firmwareVM(cfg = CFG) {
  return vm({ ...board, ...fakes, "config.json": JSON.stringify(cfg) });
}

const expectPy = (f, type) => assert.throws(f, (e) => e.pyType === type, `want ${type}`);

// --- every file compiles on MicroPython ---
test("every firmware, tutorial and fake file compiles on MicroPython", async () => {
  const sets = { board, tutorial: readDir(tutorialDir), fakes };
  if (rendered) sets.rendered = readDir(rendered);
  let n = 0;
  for (const [set, files] of Object.entries(sets)) {
    const v = await vm({});
    for (const [name, data] of Object.entries(files)) {
      if (!name.endsWith(".py")) continue;
      v.mp.FS.writeFile("/flash/src.py", data);
      assert.doesNotThrow(() => v.run(`compile(open('src.py').read(), '${set}/${name}', 'exec')`), `${set}/${name}`);
      n++;
    }
  }
  assert.ok(n >= 10, `compiled ${n} files`);
  figures.firmware_bytes = Object.values(board).reduce((s, b) => s + b.length, 0);
  figures.firmware_files = Object.keys(board).length;
});

// --- the MQTT client, byte for byte ---
test("CONNECT with OneNET credentials is byte-exact and CONNACK 0 is accepted", async () => {
  const v = await firmwareVM();
  const tx = v.get(`
import socket
from mqtt import MQTTClient
socket.plan.append(${pyBytes(CONNACK(0))})
c = MQTTClient("503367129", "127.0.0.1", 6002, "386427", "tpy-001", 60)
sp = c.connect()
s = socket.conns[0]`, "_x(s.tx)");
  const want = packet(0x10, mstr("MQTT"), [4, 0xc2, ...u16(60)], mstr("503367129"), mstr("386427"), mstr("tpy-001"));
  assert.equal(tx, want.toString("hex"));
  // The same packet, spelled out by hand once.
  assert.equal(tx, "1026" + "00044d515454" + "04" + "c2" + "003c" + "0009353033333637313239"
    + "0006333836343237" + "00077470792d303031");
  assert.deepEqual(v.get("", "[list(s.addr), s.timeouts[0], sp, s.closed]"), [["127.0.0.1", 6002], 10, 0, false]);
});

test("a refused CONNACK raises MQTTException carrying the code and closes the socket", async () => {
  const v = await firmwareVM();
  for (const rc of [1, 2, 3, 4, 5]) {
    const r = v.get(`
import socket
from mqtt import MQTTClient, MQTTException
socket.plan.append(${pyBytes(CONNACK(rc))})
c = MQTTClient("503367129", "127.0.0.1", 6002, "386427", "bad")
try:
    c.connect()
    got = None
except MQTTException as e:
    got = e.args[0]`, "[got, socket.conns[-1].closed, c.sock is None]");
    assert.deepEqual(r, [rc, true, true], `rc ${rc}`);
  }
  // A broker that never answers: the socket timeout ends the wait.
  const r = v.get(`
c = MQTTClient("503367129", "127.0.0.1", 6002, "386427", "k")
try:
    c.connect(timeout=3)
    got = None
except OSError as e:
    got = e.args[0]`, "[got, socket.conns[-1].timeouts[0], socket.conns[-1].closed]");
  assert.deepEqual(r, [110, 3, true]);
});

test("SUBSCRIBE, PUBLISH QoS 0 and 1 are byte-exact; SUBACK 0x80 is an error", async () => {
  const v = await firmwareVM();
  v.run(`
import socket
from mqtt import MQTTClient, MQTTException
socket.plan.append(${pyBytes(CONNACK(0))})
c = MQTTClient("503367129", "127.0.0.1", 6002, "386427", "tpy-001", 60)
c.connect()
s = socket.conns[0]
s.tx = bytearray()
s.rx.extend(${pyBytes(SUBACK(1, 0))})
c.subscribe("TurnipRobot")`);
  assert.equal(v.get("", "_x(s.tx)"), packet(0x82, u16(1), mstr("TurnipRobot"), [0]).toString("hex"));
  assert.equal(v.get("", "_x(s.tx)"), "82100001000b5475726e6970526f626f7400");

  // QoS 0: the $dp type-3 point the firmware uploads.
  const dp = bytes([3, 0, 9], '{"led":1}');
  v.run(`s.tx = bytearray()\nc.publish(b"$dp", ${pyBytes(dp)})`);
  assert.equal(v.get("", "_x(s.tx)"), packet(0x30, mstr("$dp"), dp).toString("hex"));

  // QoS 1 with retain: packet id 2; a PUBACK for another id and a PUBLISH
  // arriving first are handled before the right PUBACK ends the wait.
  const got = v.get(`
seen = []
c.set_callback(lambda t, m: seen.append((t, m)))
s.tx = bytearray()
s.rx.extend(_h('40020009') + ${pyBytes(pub("$creq/abc", "on"))} + _h('40020002'))
c.publish("TurnipRobot", "hello", retain=True, qos=1)`, "[_x(s.tx), s.pending(), seen[0][0].decode(), seen[0][1].decode()]");
  assert.deepEqual(got, [packet(0x33, mstr("TurnipRobot"), u16(2), "hello").toString("hex"), 0, "$creq/abc", "on"]);

  // No PUBACK at all: the socket timeout surfaces as OSError.
  expectPy(() => v.run("c.publish('t', 'x', qos=1)"), "OSError");

  // SUBACK 0x80 refuses the filter.
  const r = v.get(`
s.rx = bytearray(_h('90030004') + b'\\x80')
try:
    c.subscribe("$bad")
    got = None
except MQTTException as e:
    got = e.args[0]`, "got");
  assert.equal(r, 0x80);
});

test("remaining length: 1 to 4 bytes both ways, a 5th byte is an error", async () => {
  const v = await firmwareVM();
  for (const n of [0, 127, 128, 16383, 16384, 2097151, 2097152, 268435455]) {
    assert.equal(v.get("from mqtt import _hdr", `_x(_hdr(0x30, ${n}))`), bytes([0x30, ...remLen(n)]).toString("hex"), `encode ${n}`);
  }
  expectPy(() => v.run("_hdr(0x30, 268435456)"), "ValueError");
  // Decoding: a 300-byte and a 20000-byte payload (3-byte length, cut to
  // max_msg and drained), then a 5-byte length.
  const long = "x".repeat(20000);
  const r = v.get(`
import socket
from mqtt import MQTTClient, MQTTException
socket.plan.append(${pyBytes(CONNACK(0))})
c = MQTTClient("1", "h", 1)
c.connect()
s = socket.conns[0]
seen = []
c.set_callback(lambda t, m: seen.append((t, len(m))))
s.rx.extend(${pyBytes(pub("a", "y".repeat(300)))} + ${pyBytes(pub("b", long))})
c.wait_msg()
c.wait_msg()`, "[seen[0][1], seen[1][1], s.pending()]");
  assert.equal(pub("b", long).length - 20000 - 4, 3, "test packet has a 3-byte length");
  assert.deepEqual(r, [300, 1024, 0]);
  expectPy(() => v.run("s.rx.extend(_h('3080808080010000'))\nc.wait_msg()"), "MQTTException");
});

test("pushes without SUBSCRIBE reach the callback; QoS 1 in gets PUBACK; ping; check_msg", async () => {
  const v = await firmwareVM();
  const r = v.get(`
import socket
from mqtt import MQTTClient
socket.plan.append(${pyBytes(CONNACK(0))})
c = MQTTClient("503367129", "127.0.0.1", 6002, "386427", "k", 30)
c.connect()
s = socket.conns[0]
s.tx = bytearray()
seen = []
c.set_callback(lambda t, m: seen.append((t.decode(), m.decode())))
none = c.check_msg()
t_after = s.timeout
s.rx.extend(${pyBytes(pub("$creq/0b7a1b3c-9b5e-4a3a-8f00-0c2d7e1f2a3b", "toggle"))})
r1 = c.check_msg()
s.rx.extend(${pyBytes(packet(0x32, mstr("TurnipRobot"), u16(7), "off"))})
r2 = c.wait_msg()
puback = _x(s.tx)
s.tx = bytearray()
c.ping()
ping = _x(s.tx)
p1 = c.pings
s.rx.extend(_h('d000'))
op = c.wait_msg()
s.tx = bytearray()
c.disconnect()`, "[none, t_after, r1, r2, seen, puback, ping, p1, c.pings, op, _x(s.tx), s.closed]");
  assert.deepEqual(r, [null, 10, null, null,
    [["$creq/0b7a1b3c-9b5e-4a3a-8f00-0c2d7e1f2a3b", "toggle"], ["TurnipRobot", "off"]],
    "40020007", "c000", 1, 0, 0xd0, "e000", true]);
});

// --- the application ---
async function booted(cfg = CFG) {
  const v = await firmwareVM(cfg);
  v.run("exec(open('boot.py').read())\nimport app, socket, select, machine, network");
  return v;
}

test("boot: LED off, boot and wifi lines, no secret printed", async () => {
  const v = await booted();
  assert.deepEqual(v.hil(), ["HIL boot fw=1.0.0 id=503367129", "HIL wifi up ip=10.0.0.7"]);
  assert.deepEqual(v.get("", "[machine.levels[4], list(network.joined[0]), network.ap_active[0]]"),
    [0, ["lab", "s3cret-wifi"], false]);
  for (const s of SECRETS) assert.ok(!v.out.join("\n").includes(s));

  // Wi-Fi that refuses the password: a bounded wait, then the reason.
  const w = await firmwareVM();
  w.run("import network\nnetwork.joinable[0] = False\nimport app\napp.WIFI_S = 0\nexec(open('boot.py').read())");
  assert.deepEqual(w.hil(), ["HIL boot fw=1.0.0 id=503367129", "HIL wifi down reason=password"]);

  // No config.json, or not a JSON object: still boots, LED off, says why.
  for (const extra of [{}, { "config.json": "[1, 2]" }, { "config.json": "{\"wifi\": " }]) {
    const n = await vm({ ...board, ...fakes, ...extra });
    n.run("exec(open('boot.py').read())\nimport machine");
    assert.deepEqual(n.hil(), ["HIL boot fw=1.0.0 id=-", "HIL wifi down reason=config"]);
    assert.equal(n.get("", "machine.levels[4]"), 0);
    // main() reports it and keeps retrying (re-reading the file) until Ctrl-C.
    n.run("import app\ndef nap(s):\n    raise KeyboardInterrupt\napp.sleep = nap");
    expectPy(() => n.run("app.main()"), "KeyboardInterrupt");
    assert.equal(n.hil().at(-1), "HIL mqtt down reason=config");
  }
});

test("commands: $creq push, a toggle sequence on the custom topic, an unknown payload", async () => {
  // The firmware's resident share of the heap: after boot, less what the VM
  // and the hardware doubles hold before it.
  const v = await firmwareVM();
  const resident = v.get(`
import gc, json, socket, select, machine, network
gc.collect()
a = gc.mem_alloc()
exec(open('boot.py').read())
import app
gc.collect()`, "gc.mem_alloc() - a");
  figures.heap_resident_after_boot = resident;
  // Five modules instead of three cost about 1 KB here, and save 5 KB of
  // compile peak (firmware/README.md).
  assert.ok(resident < 17 * 1024, `the firmware holds ${resident} bytes after boot`);
  v.run(`
from mqtt import MQTTClient
socket.plan.append(${pyBytes(CONNACK(0))})
c = MQTTClient("503367129", "127.0.0.1", 6002, "386427", "k", 60)
c.set_callback(app.on_msg)
c.connect()
s = socket.conns[0]
app.client = c
s.tx = bytearray()`);
  const uuid = "$creq/5b1f7a2e-0c1d-4e5f-9a8b-7c6d5e4f3a2b";
  v.out.length = 0;
  const heap = v.get(`
import gc
s.rx.extend(${pyBytes(pub(uuid, "on"))})
gc.collect()
before = gc.mem_free()
c.check_msg()
after = gc.mem_free()`, "[before, after]");
  figures.heap_free_before_command = heap[0];
  figures.heap_free_after_command = heap[1];
  figures.heap_used_by_command = heap[0] - heap[1];
  assert.ok(heap[0] - heap[1] < 4096, `one command allocated ${heap[0] - heap[1]} bytes`);

  const crsp = "$crsp/" + uuid.slice(6);
  assert.deepEqual(v.hil(), [`HIL led state=1 cmd=on via=${uuid}`]);
  assert.equal(v.get("", "_x(s.tx)"),
    bytes(pub(crsp, '{"led":1}'), pub("$dp", bytes([3, 0, 9], '{"led":1}'))).toString("hex"));
  assert.equal(v.get("", "machine.levels[4]"), 1);

  // toggle, toggle, off, toggle, on on the custom topic: no $crsp, one $dp each.
  v.out.length = 0;
  v.run("s.tx = bytearray()\nmachine.history.clear()");
  const seq = ["toggle", "toggle", "off", "toggle", "on"];
  let want = [], tx = [], state = 1, levels = [];
  for (const cmd of seq) {
    v.run(`s.rx.extend(${pyBytes(pub("TurnipRobot", cmd))})\nc.check_msg()`);
    state = cmd === "toggle" ? 1 - state : cmd === "on" ? 1 : 0;
    want.push(`HIL led state=${state} cmd=${cmd} via=TurnipRobot`);
    tx.push(pub("$dp", bytes([3, 0, 9], `{"led":${state}}`)));
    levels.push([4, state]);
  }
  assert.deepEqual(v.hil(), want);
  assert.equal(v.get("", "_x(s.tx)"), bytes(...tx).toString("hex"));
  assert.deepEqual(v.get("", "[list(h) for h in machine.history]"), levels);

  // Anything else is ignored, with an echo, and changes nothing.
  v.out.length = 0;
  v.run("s.tx = bytearray()");
  for (const p of ["blink", "ON", "on\n", "", "it's \"q\" \\ \u00e9"]) {
    v.run(`s.rx.extend(${pyBytes(pub(uuid, p))})\nc.check_msg()`);
  }
  assert.deepEqual(v.hil(), [
    `HIL ignored payload=b'blink' via=${uuid}`,
    `HIL ignored payload=b'ON' via=${uuid}`,
    `HIL ignored payload=b'on\\n' via=${uuid}`,
    `HIL ignored payload=b'' via=${uuid}`,
    `HIL ignored payload=b'it\\'s "q" \\\\ \\xc3\\xa9' via=${uuid}`,
  ]);
  // Each push is answered all the same, with the unchanged state (OneNET
  // sends an unanswered qos=1 command again at every login).
  const answer = pub(uuid.replace("$creq/", "$crsp/"), '{"led":1}');
  assert.equal(v.get("", "_x(s.tx)"), bytes(...Array(5).fill(answer)).toString("hex"));
  assert.equal(v.get("", "machine.levels[4]"), 1);
  // A topic that is not a bare word is printed as a bytes literal.
  v.out.length = 0;
  v.run(`s.rx.extend(${pyBytes(pub("a b", "x"))})\nc.check_msg()`);
  assert.deepEqual(v.hil(), ["HIL ignored payload=b'x' via=b'a b'"]);
});

test("main: refused login and socket errors back off 1, 2, 4 ... 30 s (app.sleep gets ms); up resets it; Ctrl-C stops it", async () => {
  const v = await booted();
  v.out.length = 0;
  const uuid = "$creq/11111111-2222-3333-4444-555555555555";
  v.run(`
slept = []
app.sleep = slept.append
socket.plan.extend([${pyBytes(CONNACK(4))}, OSError(111),
    ${pyBytes(bytes(CONNACK(0), SUBACK(1, 0), pub(uuid, "on")))}])
def idle(ms):
    raise KeyboardInterrupt
select.idle = idle`);
  expectPy(() => v.run("exec(open('main.py').read())"), "KeyboardInterrupt");
  assert.deepEqual(v.hil(), [
    "HIL mqtt refused rc=4",
    "HIL mqtt down reason=connrefused",
    "HIL mqtt up broker=127.0.0.1:6002",
    `HIL led state=1 cmd=on via=${uuid}`,
  ]);
  assert.deepEqual(v.get("", "[slept, socket.conns[-1].closed, app.client]"), [[1000, 2000], true, null]);
  const sub = v.get("", "_x(socket.conns[-1].tx)");
  assert.ok(sub.includes(packet(0x82, u16(1), mstr("TurnipRobot"), [0]).toString("hex")), "subscribed to the custom topic");

  // Eight refusals: the delay doubles up to the 30 s cap.
  v.out.length = 0;
  v.run(`
slept = []
def nap(s):
    slept.append(s)
    if len(slept) == 8:
        raise KeyboardInterrupt
app.sleep = nap
socket.plan[:] = [${pyBytes(CONNACK(5))}] * 8`);
  expectPy(() => v.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(v.get("", "slept"), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  assert.equal(v.hil().length, 8);

  // After a session that was up, the delay starts again at 1 s.
  v.out.length = 0;
  v.run(`
slept = []
def nap(s):
    slept.append(s)
    if len(slept) == 3:
        raise KeyboardInterrupt
app.sleep = nap
socket.plan[:] = [${pyBytes(CONNACK(3))}, ${pyBytes(bytes(CONNACK(0), SUBACK(1, 0)))}, ${pyBytes(CONNACK(3))}]
def idle(ms):
    socket.conns[-1].eof = True
select.idle = idle`);
  expectPy(() => v.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(v.hil(), ["HIL mqtt refused rc=3", "HIL mqtt up broker=127.0.0.1:6002",
    "HIL mqtt down reason=closed", "HIL mqtt refused rc=3"]);
  assert.deepEqual(v.get("", "slept"), [1000, 1000, 2000]);
  for (const s of SECRETS) assert.ok(!v.out.join("\n").includes(s));
});

test("main: backoff_ms in config.json sets the first delay; it doubles to the 30 s cap and an up session resets it", async () => {
  const v = await booted({ ...CFG, backoff_ms: 100 });
  v.out.length = 0;
  v.run(`
slept = []
def nap(s):
    slept.append(s)
    if len(slept) == 12:
        raise KeyboardInterrupt
app.sleep = nap
socket.plan[:] = [${pyBytes(CONNACK(5))}] * 3 + [${pyBytes(bytes(CONNACK(0), SUBACK(1, 0)))}] + [${pyBytes(CONNACK(5))}] * 8
def idle(ms):
    socket.conns[-1].eof = True
select.idle = idle`);
  expectPy(() => v.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(v.get("", "slept"), [100, 200, 400, 100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600]);
  assert.deepEqual(v.hil().slice(0, 6), ["HIL mqtt refused rc=5", "HIL mqtt refused rc=5", "HIL mqtt refused rc=5",
    "HIL mqtt up broker=127.0.0.1:6002", "HIL mqtt down reason=closed", "HIL mqtt refused rc=5"]);

  // The cap holds for a short first delay too.
  v.run(`
slept = []
def nap(s):
    slept.append(s)
    if len(slept) == 11:
        raise KeyboardInterrupt
app.sleep = nap
socket.plan[:] = [${pyBytes(CONNACK(5))}] * 11`);
  expectPy(() => v.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(v.get("", "slept").slice(-3), [25600, 30000, 30000]);
});

test("main: SUBACK 0x80, Wi-Fi loss and a broker that never answers each end the session with a reason", async () => {
  const v = await booted();
  v.out.length = 0;
  v.run(`
slept = []
def nap(s):
    slept.append(s)
    if len(slept) == 3:
        raise KeyboardInterrupt
app.sleep = nap
socket.plan[:] = [${pyBytes(bytes(CONNACK(0), SUBACK(1, 0x80)))}, ${pyBytes(bytes(CONNACK(0), SUBACK(1, 0)))}]
def idle(ms):
    network.up[0] = False
select.idle = idle`);
  expectPy(() => v.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(v.hil(), [
    "HIL mqtt down reason=suback",
    "HIL mqtt up broker=127.0.0.1:6002",
    "HIL mqtt down reason=wifi",
    "HIL wifi down reason=lost",
    "HIL wifi up ip=10.0.0.7",
    "HIL mqtt down reason=timeout",
  ]);
});

test("main: Wi-Fi that comes back by itself is echoed before the next login", async () => {
  const v = await booted();
  v.out.length = 0;
  v.run(`
slept = []
def nap(s):
    slept.append(s)
    network.up[0] = True  # the ESP8266 re-joined on its own
    if len(slept) == 2:
        raise KeyboardInterrupt
app.sleep = nap
socket.plan[:] = [${pyBytes(bytes(CONNACK(0), SUBACK(1, 0)))}, ${pyBytes(bytes(CONNACK(0), SUBACK(1, 0)))}]
def idle(ms):
    if len(socket.conns) == 1:
        network.up[0] = False  # the link drops, and the connection with it
    socket.conns[-1].eof = True
select.idle = idle
joins = len(network.joined)`);
  expectPy(() => v.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(v.hil(), [
    "HIL mqtt up broker=127.0.0.1:6002",
    "HIL mqtt down reason=wifi",
    "HIL wifi down reason=lost",
    "HIL wifi up ip=10.0.0.7",
    "HIL mqtt up broker=127.0.0.1:6002",
    "HIL mqtt down reason=closed",
  ]);
  assert.equal(v.get("", "len(network.joined) - joins"), 0, "no new connect() was needed");
});

test("main: keepalive pings keep the session; an unanswered ping ends it", async () => {
  const v = await booted({ ...CFG, keepalive: 1 });
  v.out.length = 0;
  v.run(`
import time
slept = []
def nap(s):
    slept.append(s)
    raise KeyboardInterrupt
app.sleep = nap
socket.plan[:] = [${pyBytes(bytes(CONNACK(0), SUBACK(1, 0)))}]
answered = []
def idle(ms):
    s = socket.conns[-1]
    if s.tx[-2:] == b'\\xc0\\x00' and len(answered) < s.tx.count(b'\\xc0\\x00'):
        answered.append(time.ticks_ms())
        if len(answered) > 2:
            raise KeyboardInterrupt
        s.rx.extend(b'\\xd0\\x00')
    time.sleep_ms(20)
select.idle = idle`);
  expectPy(() => v.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(v.hil(), ["HIL mqtt up broker=127.0.0.1:6002"]);
  assert.deepEqual(v.get("", "[len(answered), slept]"), [3, []]);
  assert.ok(v.get("", "_x(socket.conns[-1].tx)").includes(packet(0x10, mstr("MQTT"), [4, 0xc2, 0, 1]).toString("hex").slice(4)),
    "CONNECT carries keepalive 1");

  // Nobody answers: the session ends after half the keepalive.
  v.out.length = 0;
  v.run(`
socket.plan[:] = [${pyBytes(bytes(CONNACK(0), SUBACK(1, 0)))}]
def idle(ms):
    time.sleep_ms(20)
select.idle = idle`);
  expectPy(() => v.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(v.hil(), ["HIL mqtt up broker=127.0.0.1:6002", "HIL mqtt down reason=keepalive"]);
});

// --- OneNET Studio (platform "studio") ---
// A token as `hil token` prints it (the Python vector in cmd/hil/token_test.go).
const TOKEN = "version=2018-10-31&res=products%2F386427%2Fdevices%2Fled-board_01&et=1924992000"
  + "&method=sha256&sign=%2FNonpnljXm4XL8sN71LJ42HHXxRyhXp0oEI93EhlV88%3D";
const SCFG = {
  wifi: { ssid: "lab", password: "s3cret-wifi" },
  broker: { host: "127.0.0.1", port: 1883 },
  device_id: "led-board_01", product_id: "386427",
  topic: "TurnipRobot", led_pin: 4, keepalive: 120, platform: "studio", token: TOKEN,
};
const SYS = "$sys/386427/led-board_01/";
const STUDIO_SUBS = [SYS + "cmd/request/+", SYS + "cmd/response/+/rejected", SYS + "thing/property/set", "TurnipRobot"];
const studioUp = () => bytes(CONNACK(0), ...STUDIO_SUBS.map((_, i) => SUBACK(i + 1, 0)));
const studioLogin = () => bytes(
  packet(0x10, mstr("MQTT"), [4, 0xc2, ...u16(120)], mstr("led-board_01"), mstr("386427"), mstr(TOKEN)),
  ...STUDIO_SUBS.map((t, i) => packet(0x82, u16(i + 1), mstr(t), [0])));
// The LED as the thing-model property "led" (bool), posted after every change.
const studioDP = (id, v) => pub(SYS + "thing/property/post", `{"id":"${id}","params":{"led":{"value":${v ? "true" : "false"}}}}`);
const propSet = (id, v) => pub(SYS + "thing/property/set", `{"id":"${id}","version":"1.0","params":{"led":${v}}}`);
const setReply = (id) => pub(SYS + "thing/property/set_reply", `{"id":"${id}","code":200}`);

test("studio: CONNECT carries the token, then the $sys subscriptions; byte-exact; no secret printed", async () => {
  const v = await booted(SCFG);
  v.out.length = 0;
  v.run(`
socket.plan[:] = [${pyBytes(studioUp())}]
def idle(ms):
    raise KeyboardInterrupt
select.idle = idle`);
  expectPy(() => v.run("exec(open('main.py').read())"), "KeyboardInterrupt");
  assert.deepEqual(v.hil(), ["HIL mqtt up broker=127.0.0.1:1883"]);
  const r = v.get("s = socket.conns[-1]", "[list(s.addr), _x(s.tx)]");
  assert.deepEqual(r[0], ["127.0.0.1", 1883]);
  assert.equal(r[1], studioLogin().toString("hex"));
  // The CONNECT's head spelled out by hand: 181 bytes follow (a 2-byte
  // length), clean session with user and password, keepalive 120, client id
  // "led-board_01", user "386427", then the 147-byte token.
  assert.equal(TOKEN.length, 147);
  assert.equal(r[1].slice(0, 78), "10b501" + "00044d515454" + "04" + "c2" + "0078"
    + "000c" + "6c65642d626f6172645f3031" + "0006333836343237" + "0093" + "7665"); // "ve" of version=
  assert.ok(!v.out.join("\n").includes("sign="), "the token is never printed");
  for (const s of SECRETS) assert.ok(!v.out.join("\n").includes(s));

  // No port in config.json: Studio's 1883, not the legacy 6002.
  const w = await booted({ ...SCFG, broker: { host: "10.1.2.3" } });
  w.run(`
socket.plan[:] = [${pyBytes(studioUp())}]
def idle(ms):
    raise KeyboardInterrupt
select.idle = idle`);
  expectPy(() => w.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(w.get("", "list(socket.conns[-1].addr)"), ["10.1.2.3", 1883]);
});

test("studio: cmd/request -> cmd/response with the new state, thing/property/post with rising ids; property set -> set_reply; rejections echoed", async () => {
  const v = await booted(SCFG);
  v.out.length = 0;
  const req = (id) => SYS + "cmd/request/" + id;
  const rejected = pub(SYS + "cmd/response/x9/rejected", '{"err_code":404,"err_msg":"cmd not found"}');
  v.run(`
socket.plan[:] = [${pyBytes(bytes(studioUp(), pub(req("a1b2"), "on"), pub(req("c3d4"), "toggle"),
    pub("TurnipRobot", "toggle"), pub(req("e5f6"), "blink"), rejected,
    propSet("17", "false"), propSet("18", "true"), propSet("19", "1"), pub(SYS + "thing/property/set", "{")))}]
def idle(ms):
    raise KeyboardInterrupt
select.idle = idle
machine.history.clear()`);
  expectPy(() => v.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(v.hil(), [
    "HIL mqtt up broker=127.0.0.1:1883",
    `HIL led state=1 cmd=on via=${req("a1b2")}`,
    `HIL led state=0 cmd=toggle via=${req("c3d4")}`,
    "HIL led state=1 cmd=toggle via=TurnipRobot",
    `HIL ignored payload=b'blink' via=${req("e5f6")}`,
    `HIL ignored payload=b'{"err_code":404,"err_msg":"cmd not found"}' via=${SYS}cmd/response/x9/rejected`,
    `HIL led state=0 cmd=off via=${SYS}thing/property/set`,
    `HIL led state=1 cmd=on via=${SYS}thing/property/set`,
    `HIL ignored payload=b'{"id":"19","version":"1.0","params":{"led":1}}' via=${SYS}thing/property/set`,
    `HIL ignored payload=b'{' via=${SYS}thing/property/set`,
  ]);
  const tx = v.get("", "_x(socket.conns[-1].tx)");
  assert.equal(tx, bytes(studioLogin(),
    pub(SYS + "cmd/response/a1b2", '{"led":1}'), studioDP(1, 1),
    pub(SYS + "cmd/response/c3d4", '{"led":0}'), studioDP(2, 0),
    studioDP(3, 1), // the custom topic: no response
    pub(SYS + "cmd/response/e5f6", '{"led":1}'), // junk is answered too, the LED unchanged
    setReply("17"), studioDP(4, 0),
    setReply("18"), studioDP(5, 1),
  ).toString("hex"));
  assert.ok(!tx.includes(Buffer.from("$crsp").toString("hex")) && !tx.includes(Buffer.from("$dp").toString("hex")),
    "no legacy topic on Studio (an illegal topic would disconnect the board)");
  assert.deepEqual(v.get("", "[list(h) for h in machine.history]"), [[4, 1], [4, 0], [4, 1], [4, 0], [4, 1]]);

  // One Studio command's heap: response and data point built, all garbage.
  v.run(`
from mqtt import MQTTClient
socket.plan.append(${pyBytes(CONNACK(0))})
c = MQTTClient("led-board_01", "127.0.0.1", 1883, "386427", "t", 120)
c.set_callback(app.on_msg)
c.connect()
s = socket.conns[-1]
app.client = c
s.tx = bytearray()`);
  v.out.length = 0;
  const heap = v.get(`
import gc
s.rx.extend(${pyBytes(pub(req("9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0"), "off"))})
gc.collect()
before = gc.mem_free()
c.check_msg()
after = gc.mem_free()`, "[before, after]");
  figures.heap_used_by_studio_command = heap[0] - heap[1];
  assert.ok(heap[0] - heap[1] < 4096, `one Studio command allocated ${heap[0] - heap[1]} bytes`);
  assert.deepEqual(v.hil(), [`HIL led state=0 cmd=off via=${req("9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0")}`]);
  assert.equal(v.get("", "_x(s.tx)"), bytes(
    pub(SYS + "cmd/response/9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0", '{"led":0}'), studioDP(6, 0)).toString("hex"));

  // One property set's heap: parse, set_reply and property post, all garbage.
  v.run("s.tx = bytearray()");
  v.out.length = 0;
  const heap2 = v.get(`
s.rx.extend(${pyBytes(propSet("1234567890123", "true"))})
gc.collect()
before = gc.mem_free()
c.check_msg()
after = gc.mem_free()`, "[before, after]");
  figures.heap_used_by_property_set = heap2[0] - heap2[1];
  assert.ok(heap2[0] - heap2[1] < 4096, `one property set allocated ${heap2[0] - heap2[1]} bytes`);
  assert.deepEqual(v.hil(), [`HIL led state=1 cmd=on via=${SYS}thing/property/set`]);
  assert.equal(v.get("", "_x(s.tx)"), bytes(setReply("1234567890123"), studioDP(7, 1)).toString("hex"));
});

test("studio: a refused token is echoed with its CONNACK code and retried with backoff; legacy after studio uses $creq again", async () => {
  const v = await booted(SCFG);
  v.out.length = 0;
  v.run(`
slept = []
def nap(s):
    slept.append(s)
    if len(slept) == 3:
        raise KeyboardInterrupt
app.sleep = nap
socket.plan[:] = [${pyBytes(CONNACK(5))}, ${pyBytes(CONNACK(4))}, ${pyBytes(CONNACK(2))}]`);
  expectPy(() => v.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(v.hil(), ["HIL mqtt refused rc=5", "HIL mqtt refused rc=4", "HIL mqtt refused rc=2"]);
  assert.deepEqual(v.get("", "slept"), [1000, 2000, 4000]);
  assert.ok(!v.out.join("\n").includes("sign="));

  // The same VM re-reads a legacy config.json: the legacy topics are back.
  v.out.length = 0;
  const uuid = "$creq/11111111-2222-3333-4444-555555555555";
  v.run(`
import json
app.cfg = ${JSON.stringify(JSON.stringify(CFG))}
app.cfg = json.loads(app.cfg)
socket.plan[:] = [${pyBytes(bytes(CONNACK(0), SUBACK(1, 0), pub(uuid, "on")))}]
def idle(ms):
    raise KeyboardInterrupt
select.idle = idle`);
  expectPy(() => v.run("app.main()"), "KeyboardInterrupt");
  assert.deepEqual(v.hil(), ["HIL mqtt up broker=127.0.0.1:6002", `HIL led state=1 cmd=on via=${uuid}`]);
  assert.ok(v.get("", "_x(socket.conns[-1].tx)").endsWith(bytes(pub("$crsp/" + uuid.slice(6), '{"led":1}'),
    pub("$dp", bytes([3, 0, 9], '{"led":1}'))).toString("hex")));
});

// --- the tutorial's own program on our client ---
test("the tutorial's mqtt.py runs unchanged with our client uploaded as simple.py", async () => {
  const dir = rendered || tutorialDir;
  const files = readDir(dir);
  const tut = { "boot.py": files["boot.py"], "mqtt.py": files["mqtt.py"], "main.py": files["main.py"] };
  tut["simple.py"] = rendered ? files["simple.py"] : board["mqtt.py"];
  tut["mqttio.py"] = rendered ? files["mqttio.py"] : board["mqttio.py"];
  assert.deepEqual(tut["simple.py"], board["mqtt.py"], "simple.py is our client");
  assert.deepEqual(tut["mqttio.py"], board["mqttio.py"], "with its other half");
  const ids = rendered ? JSON.parse(files["config.json"])
    : { wifi: { ssid: "winnerzr", password: "12345678" }, device_id: "deviceID", product_id: "productID", key: "APIKey", topic: "TurnipRobot" };
  const v = await vm({ ...tut, ...fakes });
  v.run(`
import socket, machine
socket.plan.append(${pyBytes(bytes(CONNACK(0), SUBACK(1, 0), pub(ids.topic, "on"), pub(ids.topic, "toggle"), pub(ids.topic, "on")))})
exec(open('boot.py').read())`);
  expectPy(() => v.run("exec(open('main.py').read())"), "KeyboardInterrupt");
  assert.deepEqual(v.out.slice(0, 8), [
    "connecting to network...",
    "network config: ('10.0.0.7', '255.255.255.0', '10.0.0.1', '10.0.0.1')",
    `Connected to 183.230.40.39, subscribed to b'${ids.topic}' topic`,
    `(b'${ids.topic}', b'on')`, "1",
    `(b'${ids.topic}', b'toggle')`,
    `(b'${ids.topic}', b'on')`, "1",
  ]);
  const r = v.get("s = socket.conns[0]\nimport network", "[list(s.addr), _x(s.tx), [list(h) for h in machine.history], list(network.joined[0])]");
  assert.deepEqual(r[3], [ids.wifi.ssid, ids.wifi.password], "joined the configured Wi-Fi");
  assert.deepEqual(r[0], ["183.230.40.39", 6002]);
  assert.equal(r[1], bytes(
    packet(0x10, mstr("MQTT"), [4, 0xc2, 0, 0], mstr(ids.device_id), mstr(ids.product_id), mstr(ids.key)),
    packet(0x82, u16(1), mstr(ids.topic), [0]),
    [0xe0, 0],
  ).toString("hex"));
  assert.deepEqual(r[2], [[4, 0], [4, 1], [4, 0], [4, 1]]);

  // A refused login ends the tutorial with the traceback line its echo profile reads.
  const w = await vm({ ...tut, ...fakes });
  w.run(`import socket\nsocket.plan.append(${pyBytes(CONNACK(4))})`);
  assert.throws(() => w.run("exec(open('main.py').read())"), (e) => e.pyType === "MQTTException" && /: 4$/.test(e.message.trim()));
});

after(() => {
  console.log("FIGURES " + JSON.stringify(figures));
  if (process.env.HIL_FIGURES) fs.writeFileSync(process.env.HIL_FIGURES, JSON.stringify(figures, null, 2));
});
