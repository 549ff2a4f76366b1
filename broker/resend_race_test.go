package broker

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A held qos=1 command written to a connection that a new login replaced
// meanwhile goes to the new session: that login already took the held
// list, so holding it there would keep it from the device until the next
// login. The race is staged: the command is taken back out of the held
// list, as if its write had just finished on the old connection.
func TestHeldCommandWrittenToAReplacedConnectionReachesTheNewOne(t *testing.T) {
	b := startBroker(t, nil)
	dv := login(t, b, DemoDeviceID, DemoAuthInfo)
	id, err := b.SendCommand(DemoDeviceID, []byte("on"), CommandOptions{QoS: 1, Timeout: time.Hour})
	require.NoError(t, err)
	next := func() string {
		select {
		case m := <-dv.msgs:
			return strings.TrimPrefix(m.Topic(), "$creq/")
		case <-time.After(waitBound):
			t.Fatalf("no command within %s", waitBound)
			return ""
		}
	}
	require.Equal(t, id, next(), "delivered once")

	d := b.device(DemoDeviceID, DemoProductID)
	d.mu.Lock()
	i := slices.IndexFunc(d.unacked, func(c *command) bool { return c.info.UUID == id })
	require.GreaterOrEqual(t, i, 0, "held until answered")
	cmd := d.unacked[i]
	d.unacked = slices.Delete(d.unacked, i, i+1)
	cmd.awaiting, cmd.taken = false, true
	d.mu.Unlock()

	b.afterWrite(&conn{}, cmd) // the connection it went to is not the device's any more
	assert.Equal(t, id, next(), "sent again on the current connection")
}
