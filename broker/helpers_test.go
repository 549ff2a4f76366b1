package broker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

// Generous bounds: the machine is a loaded 2-core box.
const waitBound = 10 * time.Second

// Second product used by isolation tests.
const (
	otherProductID = "900001"
	otherMasterKey = "other-master-key"
	otherDeviceID  = "900001001"
	otherAuthInfo  = "other-001"
	siblingID      = "503367130"
	siblingAuth    = "tpy-002"
	disabledID     = "503367131"
)

func testRegistry(t testing.TB) *Registry {
	r := DemoRegistry()
	require.NoError(t, r.AddDevice(DemoProductID, Device{ID: siblingID, Title: "sibling", AuthInfo: siblingAuth}))
	require.NoError(t, r.AddDevice(DemoProductID, Device{ID: disabledID, Title: "off", AuthInfo: "x-1", Disabled: true}))
	require.NoError(t, r.AddProduct(Product{ID: otherProductID, Name: "Other", MasterKey: otherMasterKey,
		Devices: []Device{{ID: otherDeviceID, Title: "other-board", AuthInfo: otherAuthInfo}}}))
	return r
}

func startBroker(t testing.TB, reg *Registry) *Broker {
	t.Helper()
	if reg == nil {
		reg = testRegistry(t)
	}
	b, err := New(Options{Registry: reg, MQTTAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"})
	require.NoError(t, err)
	require.NoError(t, b.Start())
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func ctxBound(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	t.Cleanup(cancel)
	return ctx
}

// waitEvent waits for a matching event after mark, failing with the last
// events seen.
func waitEvent(t testing.TB, b *Broker, mark Mark, match func(Event) bool) Event {
	t.Helper()
	e, err := b.Events().WaitAfter(ctxBound(t), mark, match)
	require.NoError(t, err)
	return e
}

// device is a paho MQTT 3.1.1 client standing in for a board.
type device struct {
	c    paho.Client
	msgs chan paho.Message
	lost chan error
}

func deviceOptions(addr, id, user, pass string) (*paho.ClientOptions, *device) {
	d := &device{msgs: make(chan paho.Message, 4096), lost: make(chan error, 1)}
	o := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetUsername(user).SetPassword(pass).SetProtocolVersion(4).
		SetAutoReconnect(false).SetConnectRetry(false).SetCleanSession(true).
		SetKeepAlive(60 * time.Second).SetConnectTimeout(waitBound).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.msgs <- m }).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case d.lost <- err:
			default:
			}
		})
	return o, d
}

// dial connects a device and returns the CONNECT token's error.
func dial(t testing.TB, addr, id, user, pass string) (*device, error) {
	t.Helper()
	o, d := deviceOptions(addr, id, user, pass)
	d.c = paho.NewClient(o)
	tok := d.c.Connect()
	if !tok.WaitTimeout(waitBound) {
		return nil, fmt.Errorf("connect %s: no answer within %v", id, waitBound)
	}
	if tok.Error() != nil {
		return nil, tok.Error()
	}
	t.Cleanup(func() { d.c.Disconnect(0) })
	return d, nil
}

// login connects a device and waits for the broker's Connected event.
func login(t testing.TB, b *Broker, id, pass string) *device {
	t.Helper()
	_, pid, ok := b.reg.Device(id)
	require.True(t, ok, "device %s in registry", id)
	mark := b.Events().Mark()
	d, err := dial(t, b.MQTTAddr(), id, pid, pass)
	require.NoError(t, err, "login %s", id)
	waitEvent(t, b, mark, Is(Connected, id))
	return d
}

func (d *device) recv(t testing.TB, b *Broker) paho.Message {
	t.Helper()
	select {
	case m := <-d.msgs:
		return m
	case <-time.After(waitBound):
		t.Fatalf("no message within %v; last broker events:\n%s", waitBound, lastEvents(b))
		return nil
	}
}

func (d *device) waitLost(t testing.TB, b *Broker) error {
	t.Helper()
	select {
	case err := <-d.lost:
		return err
	case <-time.After(waitBound):
		t.Fatalf("connection not lost within %v; last broker events:\n%s", waitBound, lastEvents(b))
		return nil
	}
}

func (d *device) publish(t testing.TB, topic string, qos byte, payload []byte) {
	t.Helper()
	tok := d.c.Publish(topic, qos, false, payload)
	require.True(t, tok.WaitTimeout(waitBound), "publish %s not acknowledged", topic)
	require.NoError(t, tok.Error())
}

func (d *device) subscribe(t testing.TB, filters ...string) map[string]byte {
	t.Helper()
	m := map[string]byte{}
	for _, f := range filters {
		m[f] = 0
	}
	tok := d.c.SubscribeMultiple(m, nil)
	require.True(t, tok.WaitTimeout(waitBound), "no SUBACK")
	require.NoError(t, tok.Error())
	return tok.(*paho.SubscribeToken).Result()
}

func lastEvents(b *Broker) string {
	var s strings.Builder
	for _, e := range b.Events().Last(20) {
		s.WriteString("  " + e.String() + "\n")
	}
	return s.String()
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func errDeadline() error { return context.DeadlineExceeded }
