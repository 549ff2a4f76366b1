// Drives Espressif's esptool-js (npm esptool-js) against a serial port
// given as a path (the virtual board's pty), through a minimal Web Serial
// SerialPort over the file. Used by sim/rom_esptool_test.go.
//
//   node esptool_js.mjs MODULE_DIR PORT stub|nostub IMAGE_OR_- [BAUD]
//
// Prints "chip: ...", "mac: ...", "flash id: ...", then, with an image,
// writes it at 0 (compressed with the stub, MD5-verified) and prints
// "written: N". Exit status 1 with the error on failure.
import fs from "node:fs";
import crypto from "node:crypto";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { execFileSync } from "node:child_process";

const [moduleDir, port, mode, imagePath, baud] = process.argv.slice(2);
const { ESPLoader, Transport } = await import(pathToFileURL(path.join(moduleDir, "esptool-js", "lib", "index.js")).href);

class FileSerialPort {
  constructor(p) { this.path = p; this.readable = null; this.writable = null; }
  getInfo() { return {}; }
  async setSignals() { throw new DOMException("a pty has no modem lines", "NetworkError"); }
  async open(opts) {
    // Web Serial sets the line's rate at open: here, the pty's termios.
    execFileSync("stty", ["-F", this.path, String(opts.baudRate || 115200), "raw", "-echo"]);
    const fd = fs.openSync(this.path, fs.constants.O_RDWR | fs.constants.O_NOCTTY | fs.constants.O_NONBLOCK);
    this.fd = fd;
    let stopped = false;
    this.stop = () => { stopped = true; };
    this.readable = new ReadableStream({
      pull: async (ctrl) => {
        for (;;) {
          if (stopped) { ctrl.close(); return; }
          const buf = Buffer.alloc(4096);
          let n = 0;
          try { n = fs.readSync(fd, buf, 0, buf.length, null); } catch (e) {
            if (e.code !== "EAGAIN") { ctrl.error(e); return; }
          }
          if (n > 0) { ctrl.enqueue(new Uint8Array(buf.subarray(0, n))); return; }
          await new Promise((r) => setTimeout(r, 2));
        }
      },
      cancel: () => { stopped = true; },
    });
    this.writable = new WritableStream({
      write: async (chunk) => {
        let off = 0;
        while (off < chunk.length) {
          try { off += fs.writeSync(fd, chunk, off); } catch (e) {
            if (e.code !== "EAGAIN") throw e;
            await new Promise((r) => setTimeout(r, 2));
          }
        }
      },
    });
  }
  async close() { this.stop(); fs.closeSync(this.fd); this.readable = null; this.writable = null; }
}

const out = (s) => process.stdout.write(s + "\n");
const terminal = { clean() {}, writeLine: (s) => process.stderr.write(s + "\n"), write: (s) => process.stderr.write(s) };
try {
  const transport = new Transport(new FileSerialPort(port), false);
  const loader = new ESPLoader({ transport, baudrate: Number(baud || 115200), romBaudrate: 115200, terminal });
  if (mode === "nostub") loader.runStub = async function () { this.info("--no-stub: the ROM itself"); return this.chip; };
  await loader.main("no_reset");
  out("chip: " + (await loader.chip.getChipDescription(loader)));
  out("mac: " + (await loader.chip.readMac(loader)));
  out("flash id: " + (await loader.readFlashId()).toString(16));
  out("stub: " + loader.IS_STUB);
  out("baud: " + loader.transport.baudrate);
  if (imagePath && imagePath !== "-") {
    const data = new Uint8Array(fs.readFileSync(imagePath));
    await loader.writeFlash({
      fileArray: [{ data, address: 0 }], flashMode: "keep", flashFreq: "keep", flashSize: "keep",
      eraseAll: false, compress: loader.IS_STUB,
      calculateMD5Hash: loader.IS_STUB ? (img) => crypto.createHash("md5").update(img).digest("hex") : undefined,
    });
    out("written: " + data.length);
    await loader.after("no_reset");
  }
  await transport.disconnect();
  process.exit(0);
} catch (e) {
  process.stderr.write("esptool-js: " + (e && e.stack || e) + "\n");
  process.exit(1);
}
