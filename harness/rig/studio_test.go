package rig

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/scenario"
	"github.com/onenet-hil/hil/internal/testutil"
	"github.com/onenet-hil/hil/sim"
)

const sysCmd = `\$sys/` + ProductID + `/` + DeviceID + `/cmd/request/[0-9a-f-]{36}`

// On studio the board logs in with a token on the studio listener; each
// channel reaches it the studio way, and no key or token reaches the log.
func TestStudioChannelsKickAndSecrets(t *testing.T) {
	log := &testutil.Buffer{}
	r := newRig(t, Options{Platform: scenario.Studio, WiFiPassword: wifiSecret, SerialLog: log})
	assert.Equal(t, scenario.Studio, r.Platform())
	assert.Contains(t, r.Describe(), ", OneNET Studio")
	c := r.config(false)
	assert.Equal(t, firmware.Studio, c.Platform)
	assert.Empty(t, c.Key, "studio logs in with the token alone")
	assert.Equal(t, VirtualBackoffMS, c.BackoffMS)

	mark := r.Broker().Events().Mark()
	begin(t, r, scenario.Setup{Profile: "hil"})
	next(t, r, `^HIL mqtt up broker=127\.0\.0\.1:`+strconv.Itoa(r.port(scenario.Studio))+`$`)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	// The board subscribed to its $sys command topic on the studio listener.
	sub, err := r.Broker().Events().WaitAfter(ctx, mark, func(e broker.Event) bool {
		return e.Kind == broker.Subscribed && e.DeviceID == DeviceID
	})
	require.NoError(t, err)
	assert.Contains(t, sub.String(), "$sys/"+ProductID+"/"+DeviceID+"/cmd/request/+")

	require.NoError(t, r.Send(ctx, scenario.Creq, []byte("on"), scenario.SendOptions{}))
	next(t, r, `^HIL led state=1 cmd=on via=`+sysCmd+`$`)
	require.NoError(t, r.Send(ctx, scenario.Topic, []byte("toggle"), scenario.SendOptions{}))
	next(t, r, `^HIL led state=0 cmd=toggle via=`+Topic+`$`)
	// The sync API answers once the board replied on cmd/response.
	mark = r.Broker().Events().Mark()
	require.NoError(t, r.Send(ctx, scenario.HTTP, []byte("on"), scenario.SendOptions{}))
	rep, err := r.Broker().Events().WaitAfter(ctx, mark, broker.Is(broker.CommandReplied, DeviceID))
	require.NoError(t, err, "Send returned, so the reply is in")
	assert.JSONEq(t, `{"led":1}`, string(rep.Payload))
	next(t, r, `^HIL led state=1 cmd=on via=`+sysCmd+`$`)
	// Junk is answered too, with the LED as it was.
	mark = r.Broker().Events().Mark()
	require.NoError(t, r.Send(ctx, scenario.HTTP, []byte("blink"), scenario.SendOptions{}))
	rep, err = r.Broker().Events().WaitAfter(ctx, mark, broker.Is(broker.CommandReplied, DeviceID))
	require.NoError(t, err, "Send returned, so the reply is in")
	assert.JSONEq(t, `{"led":1}`, string(rep.Payload))
	next(t, r, `^HIL ignored payload=b'blink' via=`+sysCmd+`$`)
	assert.ErrorContains(t, r.Send(ctx, scenario.HTTP, []byte("on"), scenario.SendOptions{QoS: 1}), "qos 1 is legacy only")

	// A duplicate login with the device's token kicks the board.
	require.NoError(t, r.Fault(ctx, scenario.Kick))
	next(t, r, `^HIL mqtt down reason=`)
	require.NoError(t, awaitBroker(r, scenario.BrokerEvent{Kind: "kicked", RC: -1}, wait))
	require.NoError(t, awaitBroker(r, scenario.BrokerEvent{Kind: "connected", RC: -1}, wait))
	next(t, r, `^HIL mqtt up`)
	require.NoError(t, r.Send(ctx, scenario.Creq, []byte("off"), scenario.SendOptions{}))
	next(t, r, `^HIL led state=0 cmd=off via=`+sysCmd+`$`)

	require.NoError(t, r.Begin(ctx, scenario.Setup{Profile: "hil"}))
	next(t, r, `^HIL mqtt up`)
	assert.ErrorContains(t, r.Begin(ctx, scenario.Setup{Profile: "tutorial"}), "the tutorial profile is legacy only")

	for _, s := range append([]string{wifiSecret}, r.creds.Secrets()...) {
		assert.NotContains(t, log.String(), s)
		assert.Equal(t, "****", r.Masker().Mask(s))
	}
}

// Wrong credentials on studio: a token signed with another key, CONNACK 5.
func TestStudioWrongTokenIsRefusedWithCode5(t *testing.T) {
	r := newRig(t, Options{Platform: scenario.Studio})
	begin(t, r, scenario.Setup{Profile: "hil", WrongCredentials: true})
	next(t, r, `^HIL mqtt refused rc=5$`)
	require.NoError(t, awaitBroker(r, scenario.BrokerEvent{Kind: "refused", RC: 5}, wait))
	assert.Error(t, awaitBroker(r, scenario.BrokerEvent{Kind: "refused", RC: 4}, 200*time.Millisecond))
}

// One virtual board serves both platforms: SetPlatform, then Begin flashes
// the other config.json.
func TestSetPlatformSwitchesTheVirtualBoard(t *testing.T) {
	r := newRig(t, Options{})
	assert.Equal(t, scenario.Legacy, r.Platform())
	assert.ErrorContains(t, r.SetPlatform("onenet"), `platform "onenet": want legacy or studio`)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for i, p := range []scenario.Platform{scenario.Studio, scenario.Legacy, scenario.Studio} {
		mark := r.Broker().Events().Mark()
		require.NoError(t, r.SetPlatform(p))
		if i > 0 {
			// The controller logged in on the other listener leaves; the
			// next topic send logs in on this platform's.
			_, err := r.Broker().Events().WaitAfter(ctx, mark, broker.Is(broker.Disconnected, ControllerID))
			require.NoError(t, err)
		}
		assert.Equal(t, p, r.Platform())
		begin(t, r, scenario.Setup{Profile: "hil"})
		port := r.port(scenario.Legacy)
		via := `\$creq/[0-9a-f-]{36}`
		if p == scenario.Studio {
			port, via = r.port(scenario.Studio), sysCmd
		}
		next(t, r, `^HIL mqtt up broker=127\.0\.0\.1:`+strconv.Itoa(port)+`$`)
		require.NoError(t, r.Send(ctx, scenario.Creq, []byte("on"), scenario.SendOptions{}))
		next(t, r, `^HIL led state=1 cmd=on via=`+via+`$`)
		require.NoError(t, r.Send(ctx, scenario.Topic, []byte("off"), scenario.SendOptions{}))
		next(t, r, `^HIL led state=0 cmd=off via=`+Topic+`$`)
	}
}

func TestFromEnvPlatform(t *testing.T) {
	t.Setenv(EnvPlatform, "studio")
	o, err := FromEnv()
	require.NoError(t, err)
	assert.Equal(t, scenario.Studio, o.Platform)
	t.Setenv(EnvPlatform, "")
	o, err = FromEnv()
	require.NoError(t, err)
	assert.Equal(t, scenario.Legacy, o.Platform)
	t.Setenv(EnvPlatform, "mqtts")
	_, err = FromEnv()
	assert.EqualError(t, err, `HIL_PLATFORM: platform "mqtts": want legacy or studio`)
}

// The real-board path on studio: the studio listener binds where the board
// dials (BrokerListen), the firmware keeps its own 1 s backoff, and the
// platform cannot be switched.
func TestRealBoardPathOnStudio(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	b, err := sim.Start(ctx, sim.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	r := newRig(t, Options{Port: b.Port(), Platform: scenario.Studio, WiFiSSID: "lab", WiFiPassword: wifiSecret,
		BrokerHost: "127.0.0.1", BrokerListen: "127.0.0.1:0"})
	assert.Equal(t, "board on "+b.Port()+", OneNET Studio", r.Describe())
	assert.Zero(t, r.config(false).BackoffMS, "a real board keeps the firmware's default")
	assert.ErrorContains(t, r.SetPlatform(scenario.Legacy), "a real board runs the platform it was set up for (studio)")
	cj, err := r.config(false).JSON()
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(cj, &m))
	assert.Equal(t, map[string]any{"host": "127.0.0.1", "port": float64(r.port(scenario.Studio))}, m["broker"])
	assert.NotContains(t, m, "backoff_ms")

	ok, err := scenario.Parse("ok.yaml", []byte("name: ok\nchannel: http\nsteps:\n  - send: on\n  - expect: {led: 1}\n  - fault: kick\n  - send: toggle\n    channel: creq\n  - send: off\n    channel: topic\n"))
	require.NoError(t, err)
	run := (&scenario.Runner{Target: r}).Run(ctx, []*scenario.Scenario{ok})
	require.Len(t, run.Scenarios, 1)
	assert.Equal(t, report.Pass, run.Scenarios[0].Status, run.Scenarios[0].Reason)
}
