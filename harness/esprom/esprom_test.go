package esprom

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/internal/esp8266"
)

func TestCheckImageAgainstTheBoard(t *testing.T) {
	img := esp8266.SampleImage("v1.27.0", 0x20000)
	_, err := CheckImage(img, 0, Info{FlashSize: 4 << 20})
	require.NoError(t, err)
	_, err = CheckImage(img, 0, Info{FlashSize: 1 << 20})
	assert.ErrorContains(t, err, "the image's header is for a 4096 KB flash; the board has 1024 KB")
	_, err = CheckImage(img, 0x3F0000, Info{FlashSize: 4 << 20})
	assert.ErrorContains(t, err, "past the board's 4096 KB flash")
}
