package esp8266

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSLIPRoundTrip(t *testing.T) {
	p := []byte{0x00, 0xC0, 0x01, 0xDB, 0xDC, 0xC0, 0xDB}
	enc := SLIPEncode(p)
	assert.Equal(t, []byte{0xC0, 0x00, 0xDB, 0xDC, 0x01, 0xDB, 0xDD, 0xDC, 0xDB, 0xDC, 0xDB, 0xDD, 0xC0}, enc)
	var d SLIPDecoder
	// Boot noise before, the packet in two pieces, a second packet sharing nothing.
	got := d.Feed(append([]byte("garbage\r\n"), enc[:5]...))
	assert.Empty(t, got)
	got = d.Feed(append(enc[5:], SLIPEncode([]byte("OHAI"))...))
	require.Len(t, got, 2)
	assert.Equal(t, p, got[0])
	assert.Equal(t, []byte("OHAI"), got[1])
	assert.Zero(t, d.Errors)
}

// The ROM's erase quirk and its correction: what FLASH_BEGIN asks for, the
// ROM erases at least the bytes wanted and never past the next 64 KB
// block's worth more than needed.
func TestEraseSizeCorrectsTheROMQuirk(t *testing.T) {
	for _, offset := range []uint32{0, 0x1000, 0x9000, 0xF000, 0x10000} {
		for size := uint32(1); size <= 0x60000; size += 0xFFF {
			got := ROMErased(offset, EraseSize(offset, size))
			sectors := (size + SectorSize - 1) / SectorSize * SectorSize
			require.GreaterOrEqual(t, got, sectors, "offset 0x%X size 0x%X: the ROM erased 0x%X", offset, size, got)
			require.LessOrEqual(t, got, sectors+SectorSize, "offset 0x%X size 0x%X: the ROM erased 0x%X", offset, size, got)
		}
	}
}

func TestMACAndChipIDFromEfuses(t *testing.T) {
	mac, err := MAC(0xC3000000, 0x0000A1B2, 0)
	require.NoError(t, err)
	assert.Equal(t, "18:fe:34:a1:b2:c3", macString(mac))
	mac, err = MAC(0xC3000000, 0x0001A1B2, 0)
	require.NoError(t, err)
	assert.Equal(t, "ac:d0:74:a1:b2:c3", macString(mac))
	mac, err = MAC(0xC3000000, 0x0000A1B2, 0x00123456)
	require.NoError(t, err)
	assert.Equal(t, "12:34:56:a1:b2:c3", macString(mac))
	_, err = MAC(0, 0x00050000, 0)
	assert.ErrorContains(t, err, "unknown OUI")
	assert.Equal(t, uint32(0x00A1B2C3), ChipID(0xC3000000, 0x0000A1B2))
	assert.Equal(t, 4<<20, FlashSizeFromID(0x1640EF))
	assert.Equal(t, 1<<20, FlashSizeFromID(0x1440C8))
	assert.Zero(t, FlashSizeFromID(0xFFFFFF))
}

func TestParseImage(t *testing.T) {
	img := SampleImage("v1.22.2", 0x10000)
	got, err := ParseImage(img)
	require.NoError(t, err)
	assert.Equal(t, "v1.22.2", got.Version)
	assert.Equal(t, "MicroPython v1.22.2 on 2025-12-10", got.Banner)
	assert.Equal(t, 4<<20, got.FlashSize)
	require.Len(t, got.Segments, 2)
	assert.Equal(t, uint32(0x40100000), got.Segments[0].Addr)
	assert.Equal(t, 0x91F, got.ChecksumAt)

	bad := bytes.Clone(img)
	bad[0x10] ^= 1
	_, err = ParseImage(bad)
	assert.ErrorContains(t, err, "at offset 0x91F: checksum")
	bad = bytes.Clone(img)
	bad[8+3] = 0x50 // segment 1 loads at 0x50100000
	_, err = ParseImage(bad)
	assert.ErrorContains(t, err, "load address 0x50100000, 1536 bytes: not in the ESP8266's RAM")
	_, err = ParseImage(bytes.Repeat([]byte{0xFF}, 64))
	assert.ErrorContains(t, err, "(0xFF: erased flash)")
	_, err = ParseImage([]byte{0xE9})
	assert.ErrorContains(t, err, "shorter than the 8-byte header")

	plain, err := ParseImage(bytes.ReplaceAll(img, []byte("MicroPython"), []byte("Other")))
	require.NoError(t, err)
	assert.False(t, plain.IsMicroPython())
}

func FuzzParseImage(f *testing.F) {
	f.Add(SampleImage("v1.27.0", 0x9800))
	f.Add([]byte{0xE9, 1, 0, 0x40, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := ParseImage(data)
		if err == nil && (img.ChecksumAt >= len(data) || len(img.Segments) == 0) {
			t.Fatalf("accepted an image with no checksum or segments: %+v", img)
		}
	})
}

func FuzzSLIPDecoder(f *testing.F) {
	f.Add(SLIPEncode([]byte{1, 2, 0xC0, 0xDB}))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d SLIPDecoder
		for _, p := range d.Feed(data) {
			var e SLIPDecoder
			again := e.Feed(SLIPEncode(p))
			if len(again) != 1 || !bytes.Equal(again[0], p) {
				t.Fatalf("packet %x does not survive encoding", p)
			}
		}
	})
}

func macString(m [6]byte) string {
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}
