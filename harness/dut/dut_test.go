package dut

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/sim"
)

func TestLookupChoosesTheKindByPort(t *testing.T) {
	name, k, err := Lookup(Spec{})
	require.NoError(t, err)
	assert.Equal(t, KindVirtual, name)
	assert.True(t, k.Sandboxed)
	name, k, err = Lookup(Spec{Port: "/dev/ttyUSB0"})
	require.NoError(t, err)
	assert.Equal(t, KindSerial, name)
	assert.False(t, k.Sandboxed)
	_, _, err = Lookup(Spec{Kind: "jtag"})
	assert.ErrorContains(t, err, `unknown board kind "jtag" (known: serial, virtual)`)
}

func TestVirtualBoardHasEveryCapability(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, Spec{Redirects: map[string]string{"183.230.40.39:6002": "127.0.0.1:1"}})
	require.NoError(t, err)
	defer b.Close()
	c := Discover(b)
	assert.NotNil(t, c.PowerCycle)
	assert.NotNil(t, c.WiFi)
	assert.NotNil(t, c.Pins)
	require.NotNil(t, c.Sandbox)
	assert.Equal(t, map[string]string{"183.230.40.39:6002": "127.0.0.1:1"}, c.Sandbox.Redirects())
	assert.Contains(t, b.Describe(), "virtual board (/dev/pts/")
	assert.NotNil(t, Sim(b))
	_, err = b.Link().Write([]byte("\r\n"))
	require.NoError(t, err)
	_, err = b.Link().ReadUntil(ctx, []byte(">>> "), 10*time.Second)
	require.NoError(t, err, "the board's REPL answers on its link")
}

// A serial board on a port without modem lines (a pty) cannot power
// cycle, has no pins or Wi-Fi to control and is no sandbox.
func TestSerialBoardOnAPtyHasNoCapabilities(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	v, err := sim.Start(ctx, sim.Options{})
	require.NoError(t, err)
	defer v.Close()
	b, err := Open(ctx, Spec{Port: v.Port()})
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, Caps{}, Discover(b))
	assert.Equal(t, "board on "+v.Port(), b.Describe())
	assert.Nil(t, Sim(b))
}

func TestOpenRefusesAPortForAVirtualBoardAndNoPortForASerialOne(t *testing.T) {
	_, err := Open(context.Background(), Spec{Kind: KindVirtual, Port: "/dev/ttyUSB0"})
	assert.ErrorContains(t, err, "a virtual board makes its own port")
	_, err = Open(context.Background(), Spec{Kind: KindSerial})
	assert.ErrorContains(t, err, "a serial board needs a port")
}
