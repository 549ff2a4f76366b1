package rig

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/scenario"
)

// TestSoakShort plays a few seconds of random commands with faults every
// half second: every command is accounted for, nothing disagrees, and
// faults of each kind were injected and cost commands.
func TestSoakShort(t *testing.T) {
	r := newRig(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := r.Soak(ctx, SoakOptions{Duration: 8 * time.Second, Seed: 7, FaultEvery: 500 * time.Millisecond})
	require.NoError(t, err, "figures so far:\n%s\nlast serial lines: %v", res, r.Link().Tail(20))
	t.Log("\n" + res.String())
	assert.True(t, res.Accounted(), "every command applied, ignored or lost:\n%s", res)
	assert.Zero(t, res.Mismatches, "%s", res)
	assert.Greater(t, res.Applied, 20, "%s", res)
	assert.Greater(t, res.Ignored, 0, "%s", res)
	for _, ch := range scenario.Channels {
		assert.Positive(t, res.ByChan[ch], "channel %s used", ch)
	}
	faults := 0
	for _, n := range res.Faults {
		faults += n
	}
	assert.GreaterOrEqual(t, faults, 3, "%s", res)
}

// TestSoakCountsOfflineCommandsLost: with the device kept offline (Wi-Fi
// down) every command is reported lost as OneNET would: refused on $creq
// and POST /cmds, unsubscribed on the custom topic.
func TestSoakCountsOfflineCommandsLost(t *testing.T) {
	r := newRig(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	begin(t, r, scenario.Setup{Scenario: "soak-offline", Profile: "hil"})
	s := &soak{r: r, o: SoakOptions{EchoTimeout: 5 * time.Second}, res: &SoakResult{Lost: map[string]int{}, ByChan: map[scenario.Channel]int{}},
		cursor: r.link.Mark()}
	assert.True(t, s.subscribedAt(r.br.Events().Mark()), "logged in and subscribed to the custom topic")
	require.NoError(t, r.Fault(ctx, scenario.WifiDown))
	assert.False(t, s.subscribedAt(r.br.Events().Mark()), "offline: no subscription")
	for _, ch := range scenario.Channels {
		mark := r.br.Events().Mark()
		s.res.Commands++
		err := r.Send(ctx, ch, []byte("on"), scenario.SendOptions{})
		if ch == scenario.Topic {
			require.NoError(t, err, "a publish on the custom topic is accepted by the broker")
			_, seen, err := s.echo(ctx, mark, false)
			require.NoError(t, err)
			assert.False(t, seen)
			s.lost(s.lossReason(ch, false, false, mark))
			continue
		}
		require.Error(t, err, "channel %s: a QoS 0 command for an offline device is refused", ch)
		s.lost(sendReason(err))
	}
	assert.Equal(t, map[string]int{LostOffline: 3}, s.res.Lost)
	assert.True(t, s.res.Accounted())
}

func TestSoakRefusesFaultsItCannotModel(t *testing.T) {
	r := newRig(t, Options{})
	_, err := r.Soak(context.Background(), SoakOptions{Duration: time.Second, Faults: []scenario.FaultKind{scenario.PowerCycle}})
	require.ErrorContains(t, err, "fault power_cycle: want restart_broker, kick or drop_connection")
}
