// The virtual board's CPU: MicroPython's own VM (the npm package
// @micropython/micropython-webassembly-pyscript, a 32-bit VM like the
// ESP8266's) in a Node.js process that the Go side (package sim) drives.
// Go is the hardware: the serial line and the REPL protocol, the flash, the
// pins, Wi-Fi, sockets, time, reset and power. This process only runs code.
//
// Protocol: one JSON object per line, Go -> here on fd 0, here -> Go on fd 1
// (fd 2: diagnostics). Bytes travel as strings of code points 0..255.
//
//   Go -> VM  {t:"boot", heap, files:{path:data}, dirs:[path], modules}   start the VM
//                                      (dirs: every directory of the flash, empty ones too)
//             {t:"exec", src}          run src as the raw REPL does
//             {t:"file", path}         run a flash file as boot.py/main.py run
//             {t:"char", c}            one byte into the friendly REPL
//             {t:"replinit"}           print the banner and the first prompt
//   VM -> Go  {t:"out", d}             serial output
//             {t:"call", op, a}        a hardware call; the VM blocks until
//                                      Go answers {t:"ret", v} / {t:"ret", err} / {t:"ret", intr:1} / {t:"ret", eof:1}
//             {t:"fs", w:[[p,d]...], rm:[p...], dirs:[p...]}  flash changes to keep
//                                      (rm: removed files, then removed directories, deepest first)
//             {t:"done", exc, raw}     the request ended: exc = the exception's type, "" when none;
//                                      raw = the REPL is now in raw mode
//
// The VM must not reach the host: the runner starts node with
// --disallow-code-generation-from-strings and the permission model (no
// child processes, no writes, reads only of this file and the package),
// and the globals that reach the host (process, fetch, WebAssembly, ...)
// are removed from globalThis before any board code runs; MicroPython's
// `js` module sees only what is left.
import fs from "node:fs";
import { pathToFileURL } from "node:url";

const proc = globalThis.process;
const { loadMicroPython } = await import(pathToFileURL(proc.argv[2]).href);
const encoder = new TextEncoder();

// ---- the pipe to Go

let inbuf = Buffer.alloc(0); // bytes: a UTF-8 sequence may be split between reads
const chunk = new Uint8Array(65536);
function readMsg() {
  for (;;) {
    const nl = inbuf.indexOf(10);
    if (nl >= 0) {
      const line = inbuf.subarray(0, nl).toString("utf8");
      inbuf = inbuf.subarray(nl + 1);
      return JSON.parse(line);
    }
    let n;
    try {
      n = fs.readSync(0, chunk, 0, chunk.length, null);
    } catch (e) {
      if (e.code === "EAGAIN") continue;
      throw e;
    }
    if (n === 0) proc.exit(0); // Go closed the pipe: the board is off
    inbuf = Buffer.concat([inbuf, chunk.subarray(0, n)]);
  }
}

function send(msg) {
  const b = encoder.encode(JSON.stringify(msg) + "\n");
  let off = 0;
  while (off < b.length) {
    try {
      off += fs.writeSync(1, b, off, b.length - off);
    } catch (e) {
      if (e.code !== "EAGAIN") throw e;
    }
  }
}

// ---- serial output: the board's HAL turns "\n" into "\r\n"

let out = [];
let flushing = false;
let lastOut = 0;
let recent = ""; // the last output, to see the raw REPL's banner
function putByte(c) {
  if (c === 10 && lastOut !== 13) out.push(13);
  out.push(c);
  lastOut = c;
  // A line goes out at once, as from the board's UART: a loop that prints
  // and never calls the host must still be seen.
  if (c === 10 || out.length >= 8192) flush();
}
// put takes what the VM's stdout gives: bytes (a Uint8Array) or one byte.
function put(c) {
  if (typeof c === "number") putByte(c);
  else for (const b of c) putByte(b);
}
function putText(s) {
  for (const c of encoder.encode(s)) putByte(c);
}
// putRaw sends bytes as they are: sys.stdout.buffer's writes, which the
// board's HAL does not cook (mp_hal_stdout_tx_strn, not _cooked). mpremote's
// mount protocol is binary on that stream.
function putRaw(hex) {
  flush();
  let s = "";
  for (let i = 0; i + 1 < hex.length; i += 2) s += String.fromCharCode(parseInt(hex.slice(i, i + 2), 16));
  if (s === "") return;
  lastOut = s.charCodeAt(s.length - 1);
  stripLead = false;
  recent = (recent + s).slice(-64);
  send({ t: "out", d: s });
}
// romFrame is a traceback line of the ESP8266 modules' doubles: the board's
// modules are C and add no frames.
const romFrame = /^  File "\/rom\/[^"]*", line \d+, in [^\r\n]*\r?\n/gm;
// withoutRomFrames drops those, and the header when no frame is left (an
// error the compiler raised: the board prints the bare exception).
function withoutRomFrames(tb) {
  const t = tb.replace(romFrame, "");
  const head = "Traceback (most recent call last):\n";
  return t.startsWith(head) && !t.startsWith(head + "  File ") ? t.slice(head.length) : t;
}
function flush() {
  if (out.length === 0 || flushing) return;
  flushing = true;
  let s = "";
  for (let i = 0; i < out.length; i += 8192) s += String.fromCharCode(...out.slice(i, i + 8192));
  out = [];
  s = s.replace(romFrame, "");
  s = s.replaceAll(portName, boardName);
  if (stripLead) {
    if (s.startsWith("\r\n")) s = s.slice(2);
    stripLead = false;
  }
  recent = (recent + s).slice(-64);
  send({ t: "out", d: s });
  flushing = false;
}


// The port's banner names the port; the board's names the ESP8266.
const portName = "JS with Emscripten";
const boardName = "ESP module with ESP8266";
let stripLead = false; // drop the line end that starts the next output
function banner(run, noLead) {
  flush();
  stripLead = noLead;
  run();
  flush();
  stripLead = false;
}

// ---- flash: the VM's /flash directory, mirrored by Go on the host

const FLASH = "/flash";
let mp;
let snapshot = new Map(); // path -> data of the files Go has
let dirSnapshot = new Set(); // the directories Go has (empty ones too)

function walk(dir, files, dirs) {
  for (const name of mp.FS.readdir(dir)) {
    if (name === "." || name === "..") continue;
    const p = dir + "/" + name;
    const st = mp.FS.stat(p);
    if (mp.FS.isDir(st.mode)) {
      dirs.push(p.slice(FLASH.length + 1));
      walk(p, files, dirs);
    } else if (mp.FS.isFile(st.mode)) {
      files.set(p.slice(FLASH.length + 1), p);
    }
  }
}

// syncFlashSoon keeps the host's flash in step while a program runs (a
// power cycle must find what it wrote): at every call into the host, when
// a file's size or time changed (a stat per file; no file is read).
let lastSig = "";
function syncFlashSoon() {
  const sig = [];
  const sign = (dir) => {
    for (const name of mp.FS.readdir(dir)) {
      if (name === "." || name === "..") continue;
      const p = dir + "/" + name;
      const st = mp.FS.stat(p);
      sig.push(p, st.size, st.mtime.getTime());
      if (mp.FS.isDir(st.mode)) sign(p);
    }
  };
  sign(FLASH);
  const s = sig.join("\0");
  if (s !== lastSig) {
    lastSig = s;
    syncFlash();
  }
}

// syncFlash tells Go what changed on the flash since the last time.
function syncFlash() {
  const files = new Map();
  const dirs = [];
  walk(FLASH, files, dirs);
  const w = [];
  const rm = [];
  for (const [rel, p] of files) {
    const data = mp.FS.readFile(p);
    let s = "";
    for (let i = 0; i < data.length; i += 8192) s += String.fromCharCode(...data.subarray(i, i + 8192));
    if (snapshot.get(rel) !== s) {
      w.push([rel, s]);
      snapshot.set(rel, s);
    }
  }
  for (const rel of snapshot.keys()) {
    if (!files.has(rel)) {
      rm.push(rel);
      snapshot.delete(rel);
    }
  }
  // A directory removed on the flash goes too (after its files, the deepest
  // first: Go removes each as an empty directory).
  const now = new Set(dirs);
  const gone = [...dirSnapshot].filter((d) => !now.has(d)).sort().reverse();
  const added = dirs.some((d) => !dirSnapshot.has(d));
  rm.push(...gone);
  dirSnapshot = now;
  if (w.length || rm.length || added) send({ t: "fs", w, rm, dirs });
}

// ---- hardware calls

// call is the VM's one way out: a request to Go, answered before the VM
// goes on. The Python side (esp8266.py) turns {err} into OSError and
// {intr} into KeyboardInterrupt.
function call(op, ...args) {
  if (op === "raw") {
    putRaw(String(args[0]));
    return "=";
  }
  flush();
  if (op === "flash") {
    syncFlash();
    return "";
  }
  if (op === "reset") syncFlash();
  else syncFlashSoon();
  send({ t: "call", op, a: args.map((a) => (a === undefined ? null : a)) });
  for (;;) {
    const m = readMsg();
    if (m.t !== "ret") continue; // nothing else can arrive while the VM waits
    if (m.intr) return "^";
    if (m.eof) return "E";
    if (m.err !== undefined && m.err !== null) return "!" + m.err;
    if (typeof m.v === "number") return m.v;
    return "=" + (m.v ?? "");
  }
}

// ---- the heap

// heapAtTop measures the heap between requests: this VM collects garbage
// only at its top level (during a run it grows the heap instead), so only
// here can live data be told from garbage. It returns the live bytes of the
// board's code; the live total when that outgrew the heap (where the
// ESP8266 raises MemoryError for sure); and the request's peak: what the
// board's code held before the collection, its live data plus everything
// the request allocated. The board collects during a run, so its own peak
// is at most that.
let heapNow = null; // _hilc.heapnow: calling it from here allocates nothing
let exPy = null; // _hilc.ex: runs code and reads the heap before the collection
let exFile = null; // _hilc.exf: the same for a flash file
function heapAtTop() {
  try {
    let pre = heapNow(1); // the collection it asks for runs as the call returns
    const over = pre < 0; // a heap area was added during the request
    pre = Math.abs(pre);
    const a = heapNow(0);
    return [Math.max(0, a - residue), a > limit ? a : 0, Math.max(0, pre - residue), over];
  } catch (err) {
    pyError(err); // Ctrl-C during the last flush: the board's code saw it
    return [0, 0, 0, false];
  }
}

// ---- requests

// pyError turns what a run threw into a Python error: a JS error that
// escaped the VM (board code poking at JS through the js module, say) is
// the board's exception too, not the end of this process.
let crash = ""; // a JS error that escaped the VM: its state is not to be trusted any more
function pyError(e) {
  if (e && e.name === "PythonError") return e;
  crash = e && e.message ? e.message : String(e);
  return { name: "PythonError", type: "JsException", message: "" };
}

// traceback prints a Python exception as the board does, without the
// frames of the harness's own wrapper (_hilc.exf).
function traceback(e) {
  let text = withoutRomFrames(e.message);
  putText(text.endsWith("\n") ? text : text + "\n");
}

// exec runs src as the raw REPL does; the traceback goes back in the done
// message, since the raw REPL frames it apart from the output.
let tb = "";
function exec(src) {
  try {
    exPy(src, "<stdin>");
    return "";
  } catch (err) {
    const e = pyError(err);
    if (e.type === "SystemExit") return "SystemExit";
    tb = withoutRomFrames(e.message.endsWith("\n") ? e.message : e.message + "\n");
    return e.type;
  }
}

function runFile(path) {
  try {
    mp.FS.stat(FLASH + "/" + path);
  } catch {
    return "";
  }
  try {
    exFile(path);
    return "";
  } catch (err) {
    const e = pyError(err);
    if (e.type === "SystemExit") return "SystemExit";
    if (e.message) traceback(e);
    return e.type;
  }
}

let raw = false;
let replReady = false; // the VM's friendly REPL has been started (replInit)
// replChar reports a forced exit of the VM's REPL (PYEXEC_FORCED_EXIT: an
// unhandled SystemExit, or Ctrl-D on an empty line), after which the board
// soft-reboots (ports/esp8266/main.c).
function replChar(c) {
  let ret = 0;
  try {
    ret = mp.replProcessChar(c);
  } catch (err) {
    pyError(err);
  }
  flush();
  // Ctrl-A on an empty line: the VM's REPL has entered raw mode; the raw
  // REPL itself is Go's (it has raw-paste, which this build lacks).
  if (c === 1 && recent.endsWith("raw REPL; CTRL-B to exit\r\n>")) raw = true;
  return ret & 0x100 ? "SystemExit" : "";
}

// The globals through which code could reach the host: gone while board
// code runs (MicroPython's `js` module is globalThis).
const hostGlobals = [
  "process", "fetch", "Request", "Response", "Headers", "FormData", "WebSocket", "EventSource",
  "WebAssembly", "global", "require", "module", "Worker", "SharedArrayBuffer", "Atomics",
  // console's streams hold libuv handles (pipes, net.Socket) that reach the host's sockets.
  "console", "BroadcastChannel", "MessageChannel", "MessagePort",
];
function removeGlobals() {
  for (const k of hostGlobals) {
    try {
      delete globalThis[k];
    } catch {
      globalThis[k] = undefined;
    }
  }
}
let booted = false;

// boot loads the VM with a heap of m.heap bytes for the board's code plus
// what the ESP8266's modules cost here (they are C in the board's ROM, but
// MicroPython bytecode on this VM's heap): measured once on a scratch VM.
let romCost = -1;
let limit = 0; // the heap's total: a second area beyond it is a MemoryError
let residue = 0; // what the ESP8266's modules hold after boot
async function boot(m) {
  if (m.romCost > 0) romCost = m.romCost; // measured by an earlier process
  if (romCost < 0) {
    const scratch = await loadMicroPython({ heapsize: 1 << 20, linebuffer: false, stdout: () => {}, stderr: () => {} });
    scratch.registerJsModule("_hil", { call: () => 0 });
    scratch.FS.mkdir("/rom");
    scratch.FS.mkdir("/flash");
    for (const [name, src] of Object.entries(m.rom)) scratch.FS.writeFile("/rom/" + name, src);
    scratch.runPython(
      "import sys\nsys.path[:] = ['/rom']\nimport _boot\n_boot._hil_boot(0)\ndel sys.modules['_boot']\n" +
        "del _boot, sys\n",
    );
    scratch.runPython("import gc\ngc.collect()\n_cost = gc.mem_alloc()\n");
    romCost = scratch.globals.get("_cost");
  }
  snapshot = new Map();
  dirSnapshot = new Set(m.dirs || []);
  raw = false;
  replReady = false;
  // One VM per process: the loader needs the globals, and a process where
  // board code has run must never get them back (a callback it left in
  // the event loop would run during this await).
  if (booted) throw new Error("a second boot in one process");
  booted = true;
  mp = await loadMicroPython({
    heapsize: m.heap + romCost,
    linebuffer: false,
    stdout: (c) => put(c),
    stderr: (c) => put(c),
  });
  removeGlobals();
  mp.registerJsModule("_hil", { call });
  mp.FS.mkdir(FLASH);
  const dirs = Object.keys(m.files).map((p) => p.split("/").slice(0, -1).join("/")).filter((d) => d);
  for (const d of [...new Set([...dirs, ...(m.dirs || [])])].sort()) {
    let acc = FLASH;
    for (const part of d.split("/")) {
      acc += "/" + part;
      try {
        mp.FS.mkdir(acc);
      } catch {}
    }
  }
  for (const [p, data] of Object.entries(m.files)) {
    const b = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) b[i] = data.charCodeAt(i);
    mp.FS.writeFile(FLASH + "/" + p, b);
    snapshot.set(p, data);
  }
  mp.runPython("import gc\n_t = gc.mem_alloc() + gc.mem_free() - 134217728\ndel gc\n");
  limit = mp.globals.get("_t");
  mp.runPython("del _t\n");
  mp.FS.mkdir("/rom");
  for (const [name, src] of Object.entries(m.rom)) mp.FS.writeFile("/rom/" + name, src);
  mp.runPython(
    "import sys\nsys.path[:] = ['/rom']\nimport _boot\n_boot._hil_boot(" + limit + ")\n" +
      "del sys.modules['_boot']\ndel _boot, sys\n",
  );
  // Measured on its own, once the boot script's code is garbage.
  mp.runPython("import _hilc, _gc, __main__\n_hilc.g = _gc._g\n_hilc.main = __main__.__dict__\ndel _hilc, _gc, __main__\n");
  const hilc = mp.pyimport("_hilc");
  heapNow = hilc.heapnow;
  exPy = hilc.ex;
  exFile = hilc.exf;
  heapNow(1);
  residue = heapNow(0);
  mp.runPython(`import _hilc\n_hilc.base = ${residue}\n_hilc.board = ${limit - romCost}\ndel _hilc\n`);
}

async function main() {
  for (;;) {
    const m = readMsg();
    let exc = "";
    switch (m.t) {
      case "boot":
        await boot(m);
        break;
      case "exec":
        exc = exec(m.src);
        break;
      case "file":
        exc = runFile(m.path);
        break;
      case "char":
        raw = false;
        exc = replChar(m.c);
        break;
      case "replinit":
        // After a soft reboot the banner follows "MPY: soft reboot" on its
        // own line; only a power-on starts it with a line end.
        raw = false;
        replReady = true;
        banner(() => mp.replInit(), !m.lead);
        break;
      case "banner":
        // Ctrl-B from the raw REPL: the friendly banner. A VM booted in raw
        // mode has no friendly REPL yet; its first one prints the same.
        raw = false;
        if (replReady) {
          banner(() => mp.replProcessChar(2), false);
        } else {
          replReady = true;
          banner(() => mp.replInit(), false);
        }
        break;
      default:
        continue;
    }
    flush();
    let live = 0;
    let grew = 0;
    let peak = 0;
    let over = false;
    // A typed character runs nothing; Enter, Ctrl-D (paste) and Ctrl-C may.
    const ran = m.t !== "char" || m.c === 13 || m.c === 4 || m.c === 3;
    if (mp && !crash && ran) {
      syncFlashSoon();
      [live, grew, peak, over] = heapAtTop();
    }
    if (crash) {
      send({ t: "done", crash });
      crash = "";
      continue;
    }
    send({ t: "done", exc, raw, tb, limit: limit - romCost, rom: residue, live, grew, peak, over, romCost });
    tb = "";
  }
}

main().catch((e) => {
  try {
    fs.writeSync(2, "vm: " + (e && e.stack ? e.stack : String(e)) + "\n");
  } catch {}
  proc.exit(3);
});
