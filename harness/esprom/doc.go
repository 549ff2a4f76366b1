// Package esprom is the harness's flasher for the ESP8266's ROM
// bootloader, written from Espressif's documentation of its serial
// protocol (the formats are internal/esp8266's): it starts the bootloader
// with the DTR/RTS sequence of the boards' auto-reset circuit ("Entering
// the Bootloader"), syncs, identifies the chip (refusing anything but an
// ESP8266, by name), reads the MAC from the efuses and the SPI flash's id
// through the flash controller's registers, and writes an image with
// FLASH_BEGIN (its erase size corrected for the ROM's quirk), 0x400-byte
// FLASH_DATA blocks with their checksums and FLASH_END, within the
// documented timeouts; then it resets into the image and waits for the
// MicroPython banner.
//
// It uses only the ROM's own commands: no flasher stub is uploaded, so
// nothing of esptool's runs on the chip. What the ESP8266 ROM lacks
// (CHANGE_BAUDRATE, SPI_FLASH_MD5) is tried and reported, never assumed:
// the line stays at the fastest rate the ROM answers SYNC at.
//
// Flash checks the image before anything is erased: esp8266.ParseImage
// (magic, segments, checksum, the MicroPython banner string), then the
// board's flash size.
package esprom
