package soak

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/rig"
	"github.com/onenet-hil/hil/harness/scenario"
)

// Generous: the Python board, the broker and -race share 2 loaded cores.
const wait = 30 * time.Second

// *rig.Rig is what hil soak plays on.
var _ Target = (*rig.Rig)(nil)

func newRig(t *testing.T) *rig.Rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	r, err := rig.New(ctx, rig.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, r.Close()) })
	return r
}

// TestShort plays a few seconds of random commands with faults every
// half second: every command is accounted for, nothing disagrees, and
// faults of each kind were injected and cost commands.
func TestShort(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := Run(ctx, r, Options{Duration: 8 * time.Second, Seed: 7, FaultEvery: 500 * time.Millisecond})
	require.NoError(t, err, "figures so far:\n%s\nlast serial lines: %v", res, r.Link().Tail(20))
	t.Log("\n" + res.String())
	assert.True(t, res.Accounted(), "every command applied, ignored or lost:\n%s", res)
	assert.Zero(t, res.Mismatches, "%s", res)
	assert.Greater(t, res.Applied, 20, "%s", res)
	assert.Greater(t, res.Ignored, 0, "%s", res)
	for _, ch := range channels {
		assert.Positive(t, res.ByChan[ch], "channel %s used", ch)
	}
	faults := 0
	for _, n := range res.Faults {
		faults += n
	}
	assert.GreaterOrEqual(t, faults, 3, "%s", res)
}

// TestCountsOfflineCommandsLost: with the device kept offline (Wi-Fi
// down) every command is reported lost as OneNET would: refused on $creq
// and POST /cmds; on the custom topic accepted and delivered to nobody,
// which counts as "device offline" too (being offline explains it before
// the missing subscription does).
func TestCountsOfflineCommandsLost(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	o, err := Options{EchoTimeout: 5 * time.Second}.withDefaults()
	require.NoError(t, err)
	res := newResult(o.Seed)
	s := &state{t: r, br: r.Broker(), ser: r.Serial(), mask: r.Masker(), o: o, res: &res,
		check: scenario.Checker{Profile: echo.HIL, Platform: r.Platform(), Pin: r.Capabilities().Pin}}
	s.scanned = s.br.Events().Mark()
	bctx, bcancel := context.WithTimeout(ctx, wait)
	defer bcancel()
	require.NoError(t, r.Begin(bctx, scenario.Setup{Scenario: "soak-offline", Profile: "hil"}), "last serial lines: %v", r.Link().Tail(20))
	require.NoError(t, s.awaitLoginEcho(bctx))
	assert.True(t, s.subscribedAt(s.br.Events().Mark()), "logged in and subscribed to the custom topic")
	require.NoError(t, r.Fault(ctx, scenario.WifiDown))
	assert.False(t, s.subscribedAt(s.br.Events().Mark()), "offline: no subscription")
	for _, ch := range channels {
		mark := s.br.Events().Mark()
		online := s.br.Online(o.Device)
		s.res.Commands++
		err := r.Send(ctx, ch, []byte("on"), scenario.SendOptions{})
		if ch == scenario.Topic {
			require.NoError(t, err, "a publish on the custom topic is accepted by the broker")
			_, seen, err := s.echo(ctx, mark, online)
			require.NoError(t, err)
			assert.False(t, seen, "last serial lines: %v", r.Link().Tail(20))
			s.lost(s.lossReason(ch, online, s.subscribedAt(mark), mark))
			continue
		}
		require.Error(t, err, "channel %s: a QoS 0 command for an offline device is refused", ch)
		s.lost(s.refusalReason(err, online, mark))
	}
	assert.Equal(t, map[string]int{LostOffline: 3}, s.res.Lost)
	assert.True(t, s.res.Accounted())
}

func TestRefusesFaultsItCannotModel(t *testing.T) {
	r := newRig(t)
	_, err := Run(context.Background(), r, Options{Duration: time.Second, Faults: []scenario.FaultKind{scenario.PowerCycle}})
	require.ErrorContains(t, err, "fault power_cycle: want restart_broker, kick or drop_connection")
}

// pinless is a target whose LED pin cannot be read (a real board); the
// soak refuses it before touching anything else.
type pinless struct{ Target }

func (pinless) Capabilities() scenario.Capabilities { return scenario.Capabilities{} }
func (pinless) Describe() string                    { return "/dev/ttyUSB0" }

func TestRefusesATargetWithoutPin(t *testing.T) {
	_, err := Run(context.Background(), pinless{}, Options{Duration: time.Second})
	require.ErrorContains(t, err, "soak: needs the virtual board (it kicks, restarts and reads the pin); the target is /dev/ttyUSB0")
}
