package esp8266

import (
	"encoding/binary"
	"fmt"
)

// Command opcodes (Espressif, "Serial Protocol": Commands). The ESP8266
// ROM has 0x02-0x0A; the others belong to the flasher stub and the newer
// chips' ROMs, and the virtual board's stub mode answers them.
const (
	CmdFlashBegin     = 0x02
	CmdFlashData      = 0x03
	CmdFlashEnd       = 0x04
	CmdMemBegin       = 0x05
	CmdMemEnd         = 0x06
	CmdMemData        = 0x07
	CmdSync           = 0x08
	CmdWriteReg       = 0x09
	CmdReadReg        = 0x0A
	CmdSPISetParams   = 0x0B
	CmdSPIAttach      = 0x0D
	CmdChangeBaudrate = 0x0F
	CmdFlashDeflBegin = 0x10
	CmdFlashDeflData  = 0x11
	CmdFlashDeflEnd   = 0x12
	CmdSPIFlashMD5    = 0x13
	CmdEraseFlash     = 0xD0
	CmdEraseRegion    = 0xD1
	CmdReadFlash      = 0xD2
	CmdRunUserCode    = 0xD3
)

// CommandName names an opcode for messages.
func CommandName(op byte) string {
	if n, ok := commandNames[op]; ok {
		return n
	}
	return fmt.Sprintf("command 0x%02X", op)
}

var commandNames = map[byte]string{
	CmdFlashBegin: "FLASH_BEGIN", CmdFlashData: "FLASH_DATA", CmdFlashEnd: "FLASH_END",
	CmdMemBegin: "MEM_BEGIN", CmdMemEnd: "MEM_END", CmdMemData: "MEM_DATA", CmdSync: "SYNC",
	CmdWriteReg: "WRITE_REG", CmdReadReg: "READ_REG", CmdSPISetParams: "SPI_SET_PARAMS",
	CmdSPIAttach: "SPI_ATTACH", CmdChangeBaudrate: "CHANGE_BAUDRATE", CmdFlashDeflBegin: "FLASH_DEFL_BEGIN",
	CmdFlashDeflData: "FLASH_DEFL_DATA", CmdFlashDeflEnd: "FLASH_DEFL_END", CmdSPIFlashMD5: "SPI_FLASH_MD5",
	CmdEraseFlash: "ERASE_FLASH", CmdEraseRegion: "ERASE_REGION", CmdReadFlash: "READ_FLASH", CmdRunUserCode: "RUN_USER_CODE",
}

// Error codes a failed command carries in its second status byte
// (Espressif, "Serial Protocol": Status bytes).
var errorNames = map[byte]string{
	0x05: "received message is invalid (parameters or length)",
	0x06: "failed to act on received message",
	0x07: "invalid CRC in message",
	0x08: "flash write error",
	0x09: "flash read error",
	0x0A: "flash read length error",
	0x0B: "deflate error",
}

// ErrorName explains a status error code.
func ErrorName(code byte) string {
	if n, ok := errorNames[code]; ok {
		return n
	}
	return fmt.Sprintf("error 0x%02X", code)
}

// Protocol constants.
const (
	// ChecksumSeed starts the XOR checksum of a data packet's payload and
	// of an image's segments.
	ChecksumSeed = 0xEF
	// FlashBlockSize is the ESP8266 ROM's FLASH_DATA block.
	FlashBlockSize = 0x400
	// SectorSize is the SPI flash's erase unit.
	SectorSize = 0x1000
	// ChipMagicReg reads a value that tells the chip family apart.
	ChipMagicReg = 0x40001000
	// ESP8266Magic is ChipMagicReg on an ESP8266.
	ESP8266Magic = 0xFFF0C101
	// EfuseBase is the ESP8266's efuse words (MAC, chip id): 0x3FF00050,
	// 0x54, 0x58, 0x5C.
	EfuseBase = 0x3FF00050
	// UARTClkDivReg is the UART's clock divider: the ROM sets it from the
	// baud rate it detected (its crystal: 26 MHz, the UART at 52 MHz).
	UARTClkDivReg = 0x60000014
	// SPI0 registers of the flash controller (user commands to the flash chip).
	SPIBase    = 0x60000200
	SPICmdReg  = SPIBase + 0x00
	SPIUsrReg  = SPIBase + 0x1C
	SPIUsr1Reg = SPIBase + 0x20
	SPIUsr2Reg = SPIBase + 0x24
	SPIW0Reg   = SPIBase + 0x40
	// SPI register bits.
	SPICmdUsr     = 1 << 18
	SPIUsrCommand = 1 << 31
	SPIUsrMISO    = 1 << 28
	SPIUsrMOSI    = 1 << 27
	// SPI flash commands.
	FlashRDID = 0x9F
)

// ChipNames maps ChipMagicReg values to the chip they belong to.
var ChipNames = map[uint32]string{
	ESP8266Magic: "ESP8266",
	0x00F01D83:   "ESP32",
	0x000007C6:   "ESP32-S2",
	0x00000009:   "ESP32-S3",
	0x6921506F:   "ESP32-C3",
	0x1B31506F:   "ESP32-C3",
	0x6F51306F:   "ESP32-C2",
	0x7C41A06F:   "ESP32-C2",
	0x0DA1806F:   "ESP32-C6",
}

// Checksum is the XOR of data seeded with ChecksumSeed.
func Checksum(data []byte) byte {
	c := byte(ChecksumSeed)
	for _, b := range data {
		c ^= b
	}
	return c
}

// Request builds a command packet (before SLIP framing): direction 0x00,
// opcode, payload length, checksum (used by the data commands), payload.
func Request(op byte, payload []byte, checksum uint32) []byte {
	p := make([]byte, 8, 8+len(payload))
	p[1] = op
	binary.LittleEndian.PutUint16(p[2:], uint16(len(payload)))
	binary.LittleEndian.PutUint32(p[4:], checksum)
	return append(p, payload...)
}

// Words packs 32-bit little-endian words.
func Words(w ...uint32) []byte {
	b := make([]byte, 4*len(w))
	for i, v := range w {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

// Response is a decoded answer: direction 0x01, the opcode it answers, the
// value word (READ_REG's result) and the data, which ends with the status
// bytes (2 on the ESP8266's ROM and the stub).
type Response struct {
	Op     byte
	Value  uint32
	Data   []byte // without the status bytes
	Status byte
	Error  byte
}

// ParseResponse decodes an answer packet.
func ParseResponse(p []byte) (Response, bool) {
	if len(p) < 8 || p[0] != 0x01 {
		return Response{}, false
	}
	size := int(binary.LittleEndian.Uint16(p[2:]))
	data := p[8:]
	if size < len(data) {
		data = data[:size]
	}
	r := Response{Op: p[1], Value: binary.LittleEndian.Uint32(p[4:])}
	if len(data) >= 2 {
		r.Status, r.Error = data[len(data)-2], data[len(data)-1]
		r.Data = data[:len(data)-2]
	}
	return r, true
}

// Reply builds an answer packet (the board's side).
func Reply(op byte, value uint32, data []byte, status, code byte) []byte {
	body := append(append([]byte(nil), data...), status, code)
	p := make([]byte, 8, 8+len(body))
	p[0], p[1] = 0x01, op
	binary.LittleEndian.PutUint16(p[2:], uint16(len(body)))
	binary.LittleEndian.PutUint32(p[4:], value)
	return append(p, body...)
}

// SyncPayload is SYNC's body: 0x07 0x07 0x12 0x20 and 32 bytes of 0x55,
// from which the ROM also detects the baud rate.
func SyncPayload() []byte {
	p := []byte{0x07, 0x07, 0x12, 0x20}
	for range 32 {
		p = append(p, 0x55)
	}
	return p
}

// EraseSize is what FLASH_BEGIN must ask the ESP8266 ROM to erase so that
// it erases size bytes from offset: the ROM erases the sectors up to the
// next 64 KB block boundary once more than asked (its erase-size quirk),
// so the request is corrected for it.
func EraseSize(offset, size uint32) uint32 {
	const perBlock = 16
	n := (size + SectorSize - 1) / SectorSize
	head := perBlock - (offset/SectorSize)%perBlock
	if n < head {
		head = n
	}
	if n < 2*head {
		return (n + 1) / 2 * SectorSize
	}
	return (n - head) * SectorSize
}

// ROMErased is how many bytes the ESP8266 ROM erases from offset when
// FLASH_BEGIN asks for size: the quirk EraseSize corrects.
func ROMErased(offset, size uint32) uint32 {
	const perBlock = 16
	r := (size + SectorSize - 1) / SectorSize
	head := perBlock - (offset/SectorSize)%perBlock
	if r < head {
		return 2 * r * SectorSize
	}
	return (r + head) * SectorSize
}

// FlashSizeFromID is the flash's size in bytes from its JEDEC id (the
// RDID answer as the W0 register holds it: manufacturer in the low byte,
// the capacity byte third), 0 when unknown.
func FlashSizeFromID(id uint32) int {
	c := (id >> 16) & 0xFF
	if c < 0x12 || c > 0x19 {
		return 0
	}
	return 1 << c
}

// MAC is the station MAC from the ESP8266's efuse words 0, 1 and 3.
func MAC(e0, e1, e3 uint32) ([6]byte, error) {
	var oui [3]byte
	switch {
	case e3 != 0:
		oui = [3]byte{byte(e3 >> 16), byte(e3 >> 8), byte(e3)}
	case (e1>>16)&0xFF == 0:
		oui = [3]byte{0x18, 0xFE, 0x34}
	case (e1>>16)&0xFF == 1:
		oui = [3]byte{0xAC, 0xD0, 0x74}
	default:
		return [6]byte{}, fmt.Errorf("unknown OUI in efuses (0x%08X)", e1)
	}
	return [6]byte{oui[0], oui[1], oui[2], byte(e1 >> 8), byte(e1), byte(e0 >> 24)}, nil
}

// ChipID is the ESP8266's chip id from efuse words 0 and 1.
func ChipID(e0, e1 uint32) uint32 { return e0>>24 | (e1&0xFFFFFF)<<8 }
