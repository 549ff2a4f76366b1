// Package esprom speaks the serial protocol of the ESP8266's ROM
// bootloader, written from Espressif's documentation of it (esptool's
// "Serial Protocol" and "Entering the Bootloader" pages): SLIP framing,
// the command packet with its XOR checksum seeded 0xEF, SYNC, READ_REG and
// WRITE_REG, FLASH_BEGIN / FLASH_DATA / FLASH_END with the ROM's 0x400-byte
// blocks and its erase-size quirk, and the DTR/RTS sequence of the
// auto-reset circuit that starts the bootloader.
//
// It uses only the ROM's own commands: no flasher stub is uploaded, so
// nothing of esptool's runs on the chip. What the ESP8266 ROM lacks
// (CHANGE_BAUDRATE, SPI_FLASH_MD5) is tried and reported, never assumed.
//
// ParseImage checks a firmware image the way the ROM checks it at boot
// (magic 0xE9, segment headers, the checksum byte) and finds the
// MicroPython version string in it; Loader.WriteFlash refuses an image
// that fails, or that is larger than the board's flash, before it erases
// anything.
package esprom
