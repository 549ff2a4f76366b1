package bench

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/fleet"
)

func TestEmbeddedPathsLoseNothing(t *testing.T) {
	for _, p := range []Path{PathTopic, PathCreq, PathHTTP} {
		t.Run(string(p), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res, err := RunEmbedded(ctx, Options{Devices: 30, Rate: 150, Duration: time.Second, Path: p})
			require.NoError(t, err)
			assert.Equal(t, 30, res.Connected)
			assert.Greater(t, res.Commands, int64(75))
			assert.Equal(t, res.Commands, res.Replied, "every command replied")
			assert.Zero(t, res.Lost, "lost: %v %v", res.LostBy, res.LostSample)
			assert.Zero(t, res.Wrong, "replies with the wrong LED state")
			assert.Zero(t, res.Late+res.Unknown, "late or unmatched replies")
			assert.Greater(t, res.P99ms, 0.0)
		})
	}
}

// On our broker a $creq command to a device that resets is lost as
// "connection dropped"; one to a device whose connection is gone before
// the send is refused by the broker (device offline).
func TestEmbeddedLostCommandsHaveReasons(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var dropped string
	res, err := RunEmbedded(ctx, Options{Devices: 10, Rate: 50, Duration: time.Second, Path: PathCreq,
		AfterLogin: func(fc FleetControl) {
			dropped = fc.DeviceIDs()[4]
			require.NoError(t, fc.Inject(dropped, fleet.DropOnCommand))
		}})
	require.NoError(t, err)
	assert.Equal(t, int64(1), res.Lost, "lost: %v %v", res.LostBy, res.LostSample)
	assert.Equal(t, int64(1), res.LostBy[LostDropped], "%v", res.LostBy)
	require.NotEmpty(t, res.LostSample)
	assert.Equal(t, dropped, res.LostSample[0].Device)
	assert.Equal(t, res.Commands, res.Replied+res.Lost)
}
