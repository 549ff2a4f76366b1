// Package esp8266 holds the ESP8266's formats that both sides of its ROM
// bootloader need, written from Espressif's documentation ("Serial
// Protocol", "Firmware Image Format"): SLIP framing, the command and
// answer packets with their opcodes, status codes and XOR checksum seeded
// 0xEF, the ROM's erase-size quirk, the efuse layout of the MAC, the flash
// controller's registers, and the v1 firmware image (magic 0xE9, segments,
// checksum) with the MicroPython banner string inside it.
//
// harness/esprom (the flasher) and sim (the virtual board's ROM) use it;
// it depends on nothing of the project's.
package esp8266
