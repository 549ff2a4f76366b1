package link

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClassifyAndPickBoard(t *testing.T) {
	ports := []PortInfo{
		Classify(PortInfo{Name: "/dev/ttyS0"}),
		Classify(PortInfo{Name: "/dev/ttyUSB0", IsUSB: true, VID: "1a86", PID: "7523", Product: "USB Serial"}),
		Classify(PortInfo{Name: "/dev/ttyACM0", IsUSB: true, VID: "2341", PID: "0043", Product: "Arduino Uno"}),
	}
	assert.False(t, ports[0].LooksLikeESP8266())
	assert.Equal(t, "CH340", ports[1].Chip)
	assert.False(t, ports[2].LooksLikeESP8266())

	got, err := PickBoard(ports)
	require.NoError(t, err)
	assert.Equal(t, "/dev/ttyUSB0", got.Name)

	_, err = PickBoard(ports[2:])
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1A86:7523")
	assert.Contains(t, err.Error(), "/dev/ttyACM0 (2341:0043)")

	two := append(ports, Classify(PortInfo{Name: "/dev/ttyUSB1", IsUSB: true, VID: "10C4", PID: "EA60"}))
	_, err = PickBoard(two)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "2 ESP8266-looking boards")
	assert.Equal(t, "CP210x", two[3].Chip)
}

func TestPortsListsThisMachine(t *testing.T) {
	ports, err := Ports()
	require.NoError(t, err)
	for _, p := range ports {
		assert.NotEmpty(t, p.Name)
	}
}
