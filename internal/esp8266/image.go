package esp8266

import (
	"encoding/binary"
	"fmt"
	"regexp"
)

// ImageMagic is the first byte of an ESP8266 (v1) firmware image.
const ImageMagic = 0xE9

// Segment is one load segment of an image.
type Segment struct {
	Addr   uint32 // where the ROM loads it
	Offset int    // of its data in the image
	Len    int
}

// Image is a firmware image checked the way the ESP8266 ROM checks it at
// boot: the header at offset 0 (magic 0xE9, segment count, SPI flash
// mode, size and frequency, entry point), each segment's address and
// length, then the checksum byte (the XOR of every segment's data seeded
// 0xEF) in the last byte of the 16-byte line after the last segment. What
// follows (a MicroPython image's irom0 text, flashed at 0x9000 in one
// combined file) is not checked by the ROM.
type Image struct {
	Data      []byte
	Segments  []Segment
	Entry     uint32
	FlashMode byte
	// FlashSize is the flash size the image's header names, in bytes (0:
	// a code this package does not know).
	FlashSize int
	Checksum  byte // stored at ChecksumAt
	// ChecksumAt is the offset of the checksum byte.
	ChecksumAt int
	// Version is the MicroPython version the image's banner string names
	// ("v1.27.0"), "" when the image holds no MicroPython banner.
	Version string
	// Banner is that string ("MicroPython v1.27.0 on 2025-12-10").
	Banner string
}

// flashSizes are the header's size codes (the high nibble of byte 3).
var flashSizes = map[byte]int{0: 512 << 10, 1: 256 << 10, 2: 1 << 20, 3: 2 << 20, 4: 4 << 20, 5: 2 << 20, 6: 4 << 20, 8: 8 << 20, 9: 16 << 20}

// FlashSizeCode is the header code for a flash size (the 1024+1024 maps,
// codes 5 and 6, are not chosen).
func FlashSizeCode(size int) byte {
	for _, c := range []byte{1, 0, 2, 3, 4, 8, 9} {
		if flashSizes[c] == size {
			return c
		}
	}
	return 0
}

// ESP8266 memory the ROM loads segments into: data RAM and instruction RAM.
var loadRegions = [][2]uint32{{0x3FFE8000, 0x40000000}, {0x40100000, 0x40110000}}

// maxSegments bounds the header's count (the ROM loads at most 16).
const maxSegments = 16

// bannerRE finds MicroPython's banner string, which every build holds
// whole ("MicroPython " MICROPY_GIT_TAG " on " MICROPY_BUILD_DATE).
var bannerRE = regexp.MustCompile(`MicroPython (v\d+\.\d+(?:\.\d+)?(?:-[0-9A-Za-z.+-]+)?) on (\d{4}-\d{2}-\d{2})`)

// ImageError is an image the ROM would not boot, with where and why.
type ImageError struct {
	Offset int
	Reason string
}

func (e *ImageError) Error() string {
	return fmt.Sprintf("not a bootable ESP8266 image: at offset 0x%X: %s", e.Offset, e.Reason)
}

// ParseImage checks data as the ESP8266 ROM does before it jumps to it.
func ParseImage(data []byte) (*Image, error) {
	if len(data) < 8 {
		return nil, &ImageError{0, fmt.Sprintf("%d bytes: shorter than the 8-byte header", len(data))}
	}
	if data[0] != ImageMagic {
		why := fmt.Sprintf("magic byte 0x%02X, want 0x%02X", data[0], ImageMagic)
		switch data[0] {
		case 0xEA:
			why += " (0xEA is the SDK's v2 image, booted by a second-stage bootloader, not the ROM)"
		case 0xFF:
			why += " (0xFF: erased flash)"
		}
		return nil, &ImageError{0, why}
	}
	n := int(data[1])
	if n == 0 || n > maxSegments {
		return nil, &ImageError{1, fmt.Sprintf("%d segments (want 1 to %d)", n, maxSegments)}
	}
	img := &Image{Data: data, FlashMode: data[2], FlashSize: flashSizes[data[3]>>4], Entry: binary.LittleEndian.Uint32(data[4:])}
	if img.FlashMode > 3 {
		return nil, &ImageError{2, fmt.Sprintf("SPI flash mode %d (want 0 QIO, 1 QOUT, 2 DIO or 3 DOUT)", img.FlashMode)}
	}
	off := 8
	sum := byte(ChecksumSeed)
	for i := range n {
		if off+8 > len(data) {
			return nil, &ImageError{off, fmt.Sprintf("segment %d of %d: header past the end of the file (%d bytes)", i+1, n, len(data))}
		}
		addr := binary.LittleEndian.Uint32(data[off:])
		size := int(binary.LittleEndian.Uint32(data[off+4:]))
		if !inRAM(addr, size) {
			return nil, &ImageError{off, fmt.Sprintf("segment %d of %d: load address 0x%08X, %d bytes: not in the ESP8266's RAM", i+1, n, addr, size)}
		}
		if size < 0 || off+8+size > len(data) {
			return nil, &ImageError{off, fmt.Sprintf("segment %d of %d: %d bytes at 0x%X run past the end of the file (%d bytes)", i+1, n, size, off+8, len(data))}
		}
		img.Segments = append(img.Segments, Segment{Addr: addr, Offset: off + 8, Len: size})
		for _, c := range data[off+8 : off+8+size] {
			sum ^= c
		}
		off += 8 + size
	}
	at := off | 15 // the last byte of the 16-byte line
	if at >= len(data) {
		return nil, &ImageError{at, fmt.Sprintf("no checksum byte: the file ends at 0x%X", len(data))}
	}
	img.ChecksumAt, img.Checksum = at, data[at]
	if sum != data[at] {
		return nil, &ImageError{at, fmt.Sprintf("checksum 0x%02X, the segments give 0x%02X (corrupted image)", data[at], sum)}
	}
	if m := bannerRE.FindSubmatchIndex(data); m != nil {
		img.Banner, img.Version = string(data[m[0]:m[1]]), string(data[m[2]:m[3]])
	}
	return img, nil
}

func inRAM(addr uint32, size int) bool {
	for _, r := range loadRegions {
		if addr >= r[0] && uint64(addr)+uint64(size) <= uint64(r[1]) {
			return true
		}
	}
	return false
}

// IsMicroPython reports whether the image is MicroPython: a bootable
// image that holds MicroPython's banner string.
func (img *Image) IsMicroPython() bool { return img.Version != "" }

// SegmentData is a segment to build: its load address and bytes.
type SegmentData struct {
	Addr uint32
	Data []byte
}

// BuildImage makes a bootable ESP8266 image of segments (address, data)
// for a flash of flashSize bytes, with extra appended after the checksum
// (as a combined MicroPython file has its irom0 text): for tests and the
// virtual board's tooling.
func BuildImage(entry uint32, flashSize int, segs []SegmentData, extra []byte) []byte {
	img := []byte{ImageMagic, byte(len(segs)), 0 /* QIO */, FlashSizeCode(flashSize) << 4}
	img = binary.LittleEndian.AppendUint32(img, entry)
	sum := byte(ChecksumSeed)
	for _, s := range segs {
		addr, data := s.Addr, s.Data
		img = binary.LittleEndian.AppendUint32(img, addr)
		img = binary.LittleEndian.AppendUint32(img, uint32(len(data)))
		img = append(img, data...)
		for _, c := range data {
			sum ^= c
		}
	}
	for len(img)%16 != 15 {
		img = append(img, 0)
	}
	img = append(img, sum)
	return append(img, extra...)
}

// SampleImage is a bootable ESP8266 image of about size bytes laid out like
// MicroPython's combined file (two RAM segments, then irom0 text from
// 0x9000) that holds the banner string of version ("v1.27.0"): for tests
// and for trying the virtual board. It is not a working firmware.
func SampleImage(version string, size int) []byte {
	iram := make([]byte, 0x600)
	dram := make([]byte, 0x300)
	for i := range iram {
		iram[i] = byte(i*7 + 3)
	}
	for i := range dram {
		dram[i] = byte(i*13 + 1)
	}
	img := BuildImage(0x40100004, 4<<20, []SegmentData{{0x40100000, iram}, {0x3FFE8000, dram}}, nil)
	const irom = 0x9000
	size = max(size, irom+0x1000)
	out := make([]byte, size)
	for i := range out {
		out[i] = 0xFF
	}
	copy(out, img)
	for i := irom; i < size; i++ {
		out[i] = byte(i * 31 >> 3)
	}
	copy(out[irom+0x400:], "MicroPython "+version+" on 2025-12-10; ESP module with ESP8266\x00")
	return out
}
