package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/onenet-hil/hil/harness/fleet"
)

func osPid() int { return os.Getpid() }

// BenchProductID is the product every simulated device belongs to.
const BenchProductID = "100001"

// deviceID numbers the fleet like OneNET device IDs.
func deviceID(i int) string { return strconv.Itoa(600000000 + i) }

func randomSecret() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// mqttTarget is a broker reached only over MQTT: the private Mosquitto or
// any address. Devices log in as their product with the product key.
type mqttTarget struct {
	label          string
	address        string
	productKey     string
	ctrlUser       string
	ctrlPass       string
	pid            int // 0: not measurable
	mosq           *Mosquitto
	productID      string
	controllerName string
}

func (t *mqttTarget) name() string    { return t.label }
func (t *mqttTarget) addr() string    { return t.address }
func (t *mqttTarget) inProcess() bool { return false }

func (t *mqttTarget) devices(n int) []fleet.Device {
	d := make([]fleet.Device, n)
	for i := range d {
		d[i] = fleet.Device{ID: deviceID(i), ProductID: t.productID, Password: t.productKey}
	}
	return d
}

func (t *mqttTarget) connect(ctx context.Context, path Path, l *ledger) (sender, error) {
	if path != PathTopic {
		return nil, fmt.Errorf("%s: %w (only %q)", t.label, errNoReplyPath, PathTopic)
	}
	c, err := dialController(ctx, t.address, t.controllerName, t.ctrlUser, t.ctrlPass, CommandPrefix, ReplyPrefix,
		func(key string, payload []byte, at time.Time) { l.reply(key, payload, at, true) },
		l.controllerLost)
	if err != nil {
		return nil, err
	}
	return mqttSender{c}, nil
}

type mqttSender struct{ c *mqttController }

func (s mqttSender) send(id string, payload []byte) (string, error) { return s.c.send("", id, payload) }
func (s mqttSender) workers() int                                   { return 1 } // one connection, in order
func (s mqttSender) byDevice() bool                                 { return true }
func (s mqttSender) close()                                         { s.c.close() }

func (t *mqttTarget) memory() (int64, int64) {
	if t.pid == 0 {
		return 0, -1
	}
	return fleet.ProcRSSKB(t.pid), -1
}

func (t *mqttTarget) rss() int64 {
	r, _ := t.memory()
	return r
}

func (t *mqttTarget) runtimeStats() (RuntimeStats, bool) { return RuntimeStats{}, false }

func (t *mqttTarget) cpu() time.Duration {
	if t.pid == 0 {
		return 0
	}
	d, _ := ProcCPU(t.pid)
	return d
}

func (t *mqttTarget) close() error {
	if t.mosq != nil {
		return t.mosq.Close()
	}
	return nil
}

// RunMosquitto starts a private Mosquitto (TCP_NODELAY on, a password file
// with the product's key and the bench's controller, an ACL giving each
// device read on cmd/{its id} and write on rsp/{its id}), measures it and
// stops it.
func RunMosquitto(ctx context.Context, o Options) (*Result, error) {
	t := &mqttTarget{label: "mosquitto", productID: BenchProductID, productKey: randomSecret(),
		ctrlUser: "hil-bench", ctrlPass: randomSecret(), controllerName: "hil-bench-controller"}
	m, err := StartMosquitto(ctx, MosquittoOptions{
		Users:      []MosquittoUser{{t.productID, t.productKey}, {t.ctrlUser, t.ctrlPass}},
		Controller: t.ctrlUser, CommandPrefix: CommandPrefix, ReplyPrefix: ReplyPrefix, NoDelay: true,
	})
	if err != nil {
		return nil, err
	}
	t.mosq, t.address, t.pid = m, m.Addr, m.PID()
	defer t.close()
	res, err := run(ctx, t, o)
	if res != nil {
		res.MemMethod = "broker process VmRSS (/proc/PID/status) after the fleet logged in minus before, per device"
		res.CPUMethod = "broker process utime+stime (/proc/PID/stat) during the load phase / wall time"
	}
	return res, err
}

// External describes a broker the bench does not start: devices log in
// as ProductID with Key; the controller (which must be allowed to publish
// cmd/# and subscribe rsp/+) as ControllerUser.
type External struct {
	Addr               string
	ProductID, Key     string
	ControllerUser     string
	ControllerPassword string
	PID                int // the broker's process id, to measure it; 0 = not measured
}

// RunExternal measures a broker at an address.
func RunExternal(ctx context.Context, o Options, e External) (*Result, error) {
	t := &mqttTarget{label: e.Addr, address: e.Addr, productID: e.ProductID, productKey: e.Key,
		ctrlUser: e.ControllerUser, ctrlPass: e.ControllerPassword, pid: e.PID, controllerName: "hil-bench-controller"}
	res, err := run(ctx, t, o)
	if res != nil {
		if e.PID == 0 {
			res.MemMethod = "not measured (no broker PID)"
			res.CPUMethod = "not measured (no broker PID)"
		} else {
			res.MemMethod = "broker process VmRSS delta, per device"
			res.CPUMethod = "broker process utime+stime during the load phase / wall time"
		}
	}
	return res, err
}
