package fleet

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

	"github.com/onenet-hil/hil/broker"
)

// The test binary doubles as the fleet's child process for StartRemote.
func TestMain(m *testing.M) {
	if os.Getenv("HIL_FLEET_TEST_WORKER") == "1" {
		if err := Serve(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const product = "386427"

type env struct {
	b       *broker.Broker
	devices []Device
}

// startBroker runs the OneNET stand-in with n fleet devices and one
// observer device ("observer", key "obs-key") for paho.
func startBroker(t *testing.T, n int) env {
	t.Helper()
	reg := broker.NewRegistry()
	require.NoError(t, reg.AddProduct(broker.Product{ID: product, Name: "fleet-test", MasterKey: "master"}))
	require.NoError(t, reg.AddDevice(product, broker.Device{ID: "900000000", Title: "observer", AuthInfo: "obs-key"}))
	e := env{}
	for i := range n {
		d := Device{ID: fmt.Sprint(500000000 + i), ProductID: product, Password: fmt.Sprintf("auth-%d", i)}
		require.NoError(t, reg.AddDevice(product, broker.Device{ID: d.ID, Title: "sim", AuthInfo: d.Password}))
		e.devices = append(e.devices, d)
	}
	b, err := broker.New(broker.Options{Registry: reg, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { b.Close() })
	e.b = b
	return e
}

func observer(t *testing.T, addr string, onMsg paho.MessageHandler) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("900000000").SetUsername(product).
		SetPassword("obs-key").SetProtocolVersion(4).SetAutoReconnect(false).SetDefaultPublishHandler(onMsg)
	c := paho.NewClient(o)
	tok := c.Connect()
	require.True(t, tok.WaitTimeout(15*time.Second), "observer connect timed out")
	require.NoError(t, tok.Error())
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func lastEvents(b *broker.Broker) string { return fmt.Sprint(b.Events().Last(10)) }

// A fleet device follows on/off/toggle on its custom topic and answers
// with the new state on its reply topic; anything else is ignored. The
// replies are read by paho, an independent client.
func TestDeviceFollowsLEDCommandsOnItsTopic(t *testing.T) {
	e := startBroker(t, 2)
	f, err := Start(context.Background(), Options{Addr: e.b.MQTTAddr(), Devices: e.devices, CommandPrefix: "cmd/", ReplyPrefix: "rsp/"})
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, 2, f.Logins().Connected, "%v", f.Logins().Failed)

	id := e.devices[1].ID
	replies := make(chan string, 16)
	obs := observer(t, e.b.MQTTAddr(), func(_ paho.Client, m paho.Message) { replies <- m.Topic() + "=" + string(m.Payload()) })
	tok := obs.Subscribe("rsp/"+id, 0, nil)
	require.True(t, tok.WaitTimeout(10*time.Second))
	require.NoError(t, tok.Error())

	sequence := []string{"on", "toggle", "bogus", "toggle", "off", "on"}
	want := []string{"1", "0", "1", "0", "1"}
	for _, cmd := range sequence {
		tok := obs.Publish("cmd/"+id, 0, false, cmd)
		require.True(t, tok.WaitTimeout(10*time.Second))
		require.NoError(t, tok.Error())
	}
	for i, w := range want {
		select {
		case got := <-replies:
			assert.Equal(t, "rsp/"+id+"="+w, got, "reply %d", i)
		case <-time.After(10 * time.Second):
			t.Fatalf("reply %d never came; broker events: %s", i, lastEvents(e.b))
		}
	}
	c := f.Counters()
	assert.Equal(t, int64(5), c.Commands)
	assert.Equal(t, int64(5), c.Replies)
	assert.Equal(t, int64(1), c.Ignored)
}

// $creq pushes need no subscription; the answer is $crsp with the uuid.
func TestDeviceAnswersCreqOnCrsp(t *testing.T) {
	e := startBroker(t, 1)
	f, err := Start(context.Background(), Options{Addr: e.b.MQTTAddr(), Devices: e.devices})
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, 1, f.Logins().Connected, "%v", f.Logins().Failed)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, step := range []struct{ cmd, want string }{{"toggle", "1"}, {"toggle", "0"}, {"on", "1"}} {
		mark := e.b.Events().Mark()
		id, err := e.b.SendCommand(e.devices[0].ID, []byte(step.cmd), broker.CommandOptions{})
		require.NoError(t, err)
		ev, err := e.b.Events().WaitAfter(ctx, mark, broker.ForCommand(broker.CommandReplied, id))
		require.NoError(t, err, "no $crsp for %s", step.cmd)
		assert.Equal(t, step.want, string(ev.Payload), "after %s", step.cmd)
	}
}

func TestRefusedLoginIsReportedWithItsCode(t *testing.T) {
	e := startBroker(t, 2)
	e.devices[1].Password = "wrong"
	f, err := Start(context.Background(), Options{Addr: e.b.MQTTAddr(), Devices: e.devices})
	require.NoError(t, err)
	defer f.Close()
	lg := f.Logins()
	assert.Equal(t, 1, lg.Connected)
	require.Len(t, lg.Failed, 1)
	assert.Equal(t, e.devices[1].ID, lg.Failed[0].Device)
	assert.Contains(t, lg.Failed[0].Reason, "return code 4")
	assert.NotContains(t, lg.Failed[0].Reason, "wrong", "the password never appears")
}

// A device whose connection ends says so, with the reason.
func TestDropsAreReported(t *testing.T) {
	e := startBroker(t, 2)
	drops := make(chan Event, 4)
	f, err := Start(context.Background(), Options{Addr: e.b.MQTTAddr(), Devices: e.devices,
		OnEvent: func(ev Event) { drops <- ev }})
	require.NoError(t, err)
	defer f.Close()
	require.Equal(t, 2, f.Logins().Connected)

	require.NoError(t, f.Drop(e.devices[0].ID))
	require.NoError(t, e.b.Kick(e.devices[1].ID))
	got := map[string]string{}
	for range 2 {
		select {
		case ev := <-drops:
			assert.Equal(t, Dropped, ev.Kind)
			got[ev.Device] = ev.Reason
		case <-time.After(10 * time.Second):
			t.Fatalf("drops seen: %v; broker events: %s", got, lastEvents(e.b))
		}
	}
	assert.Contains(t, got[e.devices[0].ID], "fault injection")
	assert.Contains(t, got[e.devices[1].ID], "closed by the broker")
	assert.Equal(t, int64(2), f.Counters().Dropped)
}

// The same fleet in a child process: it logs in, answers, reports its
// usage and its drops to the parent.
func TestRemoteFleet(t *testing.T) {
	e := startBroker(t, 3)
	t.Setenv("HIL_FLEET_TEST_WORKER", "1")
	var mu sync.Mutex
	drops := make(chan Event, 4)
	r, err := StartRemote(context.Background(), []string{os.Args[0]}, Options{Addr: e.b.MQTTAddr(), Devices: e.devices,
		OnEvent: func(ev Event) { mu.Lock(); defer mu.Unlock(); drops <- ev }})
	require.NoError(t, err)
	defer r.Close()
	require.Equal(t, 3, r.Logins().Connected, "%v", r.Logins().Failed)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	mark := e.b.Events().Mark()
	id, err := e.b.SendCommand(e.devices[2].ID, []byte("on"), broker.CommandOptions{})
	require.NoError(t, err)
	ev, err := e.b.Events().WaitAfter(ctx, mark, broker.ForCommand(broker.CommandReplied, id))
	require.NoError(t, err)
	assert.Equal(t, "1", string(ev.Payload))

	u, c, err := r.Usage(10 * time.Second)
	require.NoError(t, err)
	assert.Greater(t, u.RSSKB, int64(0))
	assert.Equal(t, int64(1), c.Replies)

	require.NoError(t, r.Inject(e.devices[0].ID, DropOnCommand))
	mark = e.b.Events().Mark()
	_, err = e.b.SendCommand(e.devices[0].ID, []byte("off"), broker.CommandOptions{})
	require.NoError(t, err)
	select {
	case ev := <-drops:
		assert.Equal(t, e.devices[0].ID, ev.Device)
		assert.Contains(t, ev.Reason, "fault injection")
	case <-time.After(10 * time.Second):
		t.Fatalf("no drop reported; broker events: %s", lastEvents(e.b))
	}
	_, err = e.b.Events().WaitAfter(ctx, mark, broker.Is(broker.Disconnected, e.devices[0].ID))
	require.NoError(t, err, "the broker saw the device go")
	require.NoError(t, r.Close())
}
