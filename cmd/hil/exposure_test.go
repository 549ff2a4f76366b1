package main

import (
	"bytes"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/onenet-hil/hil/broker"
)

// hil flash's embedded broker listens on the address the board is told
// to dial, not on every interface, unless --listen asks for it.
func TestFlashListensOnTheAdvertisedAddressOnly(t *testing.T) {
	assert.Equal(t, "192.168.1.20:6002", flashListenAddr("", "192.168.1.20"))
	assert.Equal(t, "127.0.0.1:6002", flashListenAddr("", "127.0.0.1"))
	assert.Equal(t, "[fe80::1]:6002", flashListenAddr("", "fe80::1"))
	assert.Equal(t, "0.0.0.0:6002", flashListenAddr("0.0.0.0:6002", "192.168.1.20"), "every interface only when asked")

	var out, errOut bytes.Buffer
	runMain([]string{"flash", "-h"}, &out, &errOut)
	assert.Contains(t, errOut.String(), "default: the --advertise address, port 6002")
	assert.NotContains(t, errOut.String(), `(default "0.0.0.0:6002")`)
}

// hil broker's listeners default to loopback; a LAN address is a flag.
func TestBrokerDefaultsAreLoopback(t *testing.T) {
	for _, a := range []string{broker.DefaultMQTTAddr, broker.DefaultHTTPAddr, broker.DefaultStudioAddr} {
		h, _, err := net.SplitHostPort(a)
		assert.NoError(t, err)
		assert.True(t, net.ParseIP(h).IsLoopback(), a)
	}
}
