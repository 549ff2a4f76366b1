package rig

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listening returns the local addresses the kernel has in LISTEN state
// for TCP port p (IPv4 and IPv6), read from /proc/net/tcp{,6}.
func listening(t *testing.T, p int) []string {
	t.Helper()
	var out []string
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		sc.Scan() // header
		for sc.Scan() {
			fl := strings.Fields(sc.Text())
			if len(fl) < 4 || fl[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			hexIP, hexPort, ok := strings.Cut(fl[1], ":")
			if !ok {
				continue
			}
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil || int(port) != p {
				continue
			}
			out = append(out, procIP(hexIP))
		}
		fh.Close()
	}
	return out
}

// procIP decodes /proc/net/tcp's address: 32-bit words in host (little
// endian) order.
func procIP(h string) string {
	b := make(net.IP, len(h)/2)
	for i := 0; i < len(b); i += 4 {
		for j := 0; j < 4; j++ {
			v, _ := strconv.ParseUint(h[2*(i+j):2*(i+j)+2], 16, 8)
			b[i+3-j] = byte(v)
		}
	}
	return b.String()
}

// In simulation every listener of the rig binds to loopback, as the
// listeners' own addresses and the kernel's socket table both say.
func TestSimulationListensOnLoopbackOnly(t *testing.T) {
	r := newRig(t, Options{})
	addrs := map[string]string{"mqtt": r.Broker().MQTTAddr(), "http": r.Broker().HTTPAddr()}
	if s := r.Broker().StudioAddr(); s != "" {
		addrs["studio"] = s
	}
	for name, a := range addrs {
		h, p, err := net.SplitHostPort(a)
		require.NoError(t, err, name)
		ip := net.ParseIP(h)
		require.NotNil(t, ip, "%s listens on %q", name, a)
		assert.True(t, ip.IsLoopback(), "%s listens on %s", name, a)
		port, _ := strconv.Atoi(p)
		seen := listening(t, port)
		require.NotEmpty(t, seen, "%s: no LISTEN socket on port %d in /proc/net/tcp", name, port)
		for _, l := range seen {
			assert.True(t, net.ParseIP(l).IsLoopback(), fmt.Sprintf("%s: the kernel has port %d listening on %s", name, port, l))
		}
	}
}

func TestProcIP(t *testing.T) {
	assert.Equal(t, "127.0.0.1", procIP("0100007F"))
	assert.Equal(t, "0.0.0.0", procIP("00000000"))
	assert.Equal(t, "::1", procIP("00000000000000000000000001000000"))
}
