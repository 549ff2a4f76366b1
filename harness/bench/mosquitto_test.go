package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/fleet"
)

func needMosquitto(t testing.TB) {
	t.Helper()
	if _, err := MosquittoBinary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI installs mosquitto (.ci/run): %v", err) // a skip there would hide the comparison
		}
		t.Skip(err)
	}
}

func TestMosquittoCleanRunLosesNothing(t *testing.T) {
	needMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := RunMosquitto(ctx, Options{Devices: 50, Rate: 200, Duration: time.Second})
	require.NoError(t, err)
	assert.Equal(t, 50, res.Connected)
	assert.Greater(t, res.Commands, int64(100))
	assert.Equal(t, res.Commands, res.Replied, "every command replied")
	assert.Zero(t, res.Lost, "lost: %v %v", res.LostBy, res.LostSample)
	assert.Zero(t, res.Wrong, "replies with the wrong LED state")
	assert.Greater(t, res.P99ms, 0.0)
	assert.Greater(t, res.MemPerDeviceKB, 0.0)
	assert.Greater(t, res.LoginsPS, 0.0)
}

// A device that resets while a command is pending, and one that falls
// silent: both commands are lost, each with its reason, and every other
// command is replied.
func TestLostCommandsHaveReasons(t *testing.T) {
	needMosquitto(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var dropped, silent string
	res, err := RunMosquitto(ctx, Options{Devices: 20, Rate: 100, Duration: time.Second, Timeout: 3 * time.Second,
		AfterLogin: func(fc FleetControl) {
			ids := fc.DeviceIDs()
			dropped, silent = ids[3], ids[7]
			require.NoError(t, fc.Inject(dropped, fleet.DropOnCommand))
			require.NoError(t, fc.Inject(silent, fleet.Silent))
		}})
	require.NoError(t, err)
	assert.Equal(t, int64(2), res.Lost, "lost: %v %v", res.LostBy, res.LostSample)
	assert.Equal(t, int64(1), res.LostBy[LostDropped], "%v", res.LostBy)
	assert.Equal(t, int64(1), res.LostBy[LostTimeout], "%v", res.LostBy)
	assert.Equal(t, res.Commands, res.Replied+res.Lost, "every command accounted for")
	byDevice := map[string]string{}
	for _, l := range res.LostSample {
		byDevice[l.Device] = l.Reason
	}
	assert.Equal(t, LostDropped, byDevice[dropped])
	assert.Equal(t, LostTimeout, byDevice[silent])
}

func pahoClient(t *testing.T, addr, id, user, pass string, onMsg paho.MessageHandler) (paho.Client, error) {
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetUsername(user).SetPassword(pass).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetDefaultPublishHandler(onMsg).
		SetConnectTimeout(10 * time.Second)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, fmt.Errorf("connect of %s timed out", id)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

// The generated password file and ACL give each device exactly the
// rights of a OneNET device on its own topics: it cannot read another
// device's command topic nor write another device's reply topic, and a
// wrong key is refused.
func TestMosquittoAuthAndACL(t *testing.T) {
	needMosquitto(t)
	key, ctrlPass := randomSecret(), randomSecret()
	m, err := StartMosquitto(context.Background(), MosquittoOptions{
		Users:      []MosquittoUser{{BenchProductID, key}, {"ctl", ctrlPass}},
		Controller: "ctl", CommandPrefix: CommandPrefix, ReplyPrefix: ReplyPrefix, NoDelay: true,
	})
	require.NoError(t, err)
	defer m.Close()
	a, b := deviceID(1), deviceID(2)

	_, err = pahoClient(t, m.Addr, a, BenchProductID, "wrong-key", nil)
	require.Error(t, err, "a wrong key must be refused")

	var mu sync.Mutex
	var seenByA, seenByCtl []string
	gotA := make(chan struct{}, 1)
	gotCtl := make(chan struct{}, 1)
	devA, err := pahoClient(t, m.Addr, a, BenchProductID, key, func(_ paho.Client, msg paho.Message) {
		mu.Lock()
		seenByA = append(seenByA, msg.Topic())
		mu.Unlock()
		if msg.Topic() == CommandPrefix+a {
			gotA <- struct{}{}
		}
	})
	require.NoError(t, err)
	ctl, err := pahoClient(t, m.Addr, "controller", "ctl", ctrlPass, func(_ paho.Client, msg paho.Message) {
		mu.Lock()
		seenByCtl = append(seenByCtl, msg.Topic())
		mu.Unlock()
		if msg.Topic() == ReplyPrefix+a {
			gotCtl <- struct{}{}
		}
	})
	require.NoError(t, err)
	tok := ctl.Subscribe(ReplyPrefix+"+", 0, nil)
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())

	// A may subscribe to its own topic; B's is refused or never delivered.
	tok = devA.Subscribe(CommandPrefix+a, 0, nil)
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())
	tok = devA.Subscribe(CommandPrefix+b, 0, nil)
	require.True(t, tok.WaitTimeout(10*time.Second))

	// Publish B's command first, then A's: once A has its own, B's (which
	// the broker handled earlier) would have arrived too.
	for _, topic := range []string{CommandPrefix + b, CommandPrefix + a} {
		tok := ctl.Publish(topic, 1, false, "on")
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}
	select {
	case <-gotA:
	case <-time.After(10 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("device A never received its own command; saw %v", seenByA)
	}
	// Same for writing: A writes B's reply topic, then its own.
	for _, topic := range []string{ReplyPrefix + b, ReplyPrefix + a} {
		tok := devA.Publish(topic, 1, false, "1")
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}
	select {
	case <-gotCtl:
	case <-time.After(10 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("controller never received A's reply; saw %v", seenByCtl)
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{CommandPrefix + a}, seenByA, "A must not read B's command topic")
	assert.Equal(t, []string{ReplyPrefix + a}, seenByCtl, "A must not write B's reply topic")
}

// HOST:PORT mode: any broker that gives the controller cmd/# and rsp/+
// and each device its own topics; here, a private Mosquitto.
func TestExternalBrokerByAddress(t *testing.T) {
	needMosquitto(t)
	key, ctrlPass := randomSecret(), randomSecret()
	m, err := StartMosquitto(context.Background(), MosquittoOptions{
		Users:      []MosquittoUser{{BenchProductID, key}, {"ctl", ctrlPass}},
		Controller: "ctl", CommandPrefix: CommandPrefix, ReplyPrefix: ReplyPrefix, NoDelay: true,
	})
	require.NoError(t, err)
	defer m.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := RunExternal(ctx, Options{Devices: 10, Rate: 50, Duration: 500 * time.Millisecond},
		External{Addr: m.Addr, ProductID: BenchProductID, Key: key, ControllerUser: "ctl", ControllerPassword: ctrlPass, PID: m.PID()})
	require.NoError(t, err)
	assert.Equal(t, m.Addr, res.Broker)
	assert.Equal(t, 10, res.Connected)
	assert.Positive(t, res.Commands)
	assert.Zero(t, res.Lost, "%v", res.LostBy)
	assert.Positive(t, res.MemPerDeviceKB)

	_, err = RunExternal(ctx, Options{Devices: 1, Rate: 50, Duration: 100 * time.Millisecond},
		External{Addr: m.Addr, ProductID: BenchProductID, Key: key, ControllerUser: "ctl", ControllerPassword: "wrong"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "controller login")
	assert.NotContains(t, err.Error(), "wrong", "no password in errors")
}
