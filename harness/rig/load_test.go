package rig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/harness/fleet"
	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/scenario"
	"github.com/onenet-hil/hil/internal/testutil"
	"github.com/onenet-hil/hil/sim"
)

// fdsTo lists this process's descriptors open on path.
func fdsTo(t *testing.T, path string) map[int]bool {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	out := map[int]bool{}
	for _, e := range ents {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && target == path {
			n, _ := strconv.Atoi(e.Name())
			out[n] = true
		}
	}
	return out
}

// With 2,000 simulated devices logged in to the same broker, a real-board
// style session (a serial port opened through go.bug.st/serial, the
// rig's normal path, here the virtual board's pty) still flashes and plays
// the scenarios; the port's descriptors are above 1024, where a select()
// based read would corrupt memory or fail (harness/link reads through the
// runtime's poller instead).
func TestTwoThousandDevicesAndASerialSessionAboveFD1024(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 connections")
	}
	const devices = 2000
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b, err := sim.Start(ctx, sim.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { b.Close() })
	simFDs := fdsTo(t, b.Port())

	// Hold the low descriptors, as a fleet's sockets would, so that the
	// port opens above 1024.
	release := testutil.HoldSockets(t, 1100)
	r := newRig(t, Options{Port: b.Port(), WiFiSSID: "lab", WiFiPassword: wifiSecret,
		BrokerHost: "127.0.0.1", BrokerListen: "127.0.0.1:0"})
	release()
	var portFDs []int
	for fd := range fdsTo(t, b.Port()) {
		if !simFDs[fd] {
			portFDs = append(portFDs, fd)
		}
	}
	require.NotEmpty(t, portFDs, "the link's descriptors on %s", b.Port())
	for _, fd := range portFDs {
		assert.GreaterOrEqual(t, fd, 1024, "serial port descriptor")
	}
	t.Logf("serial port descriptors: %v", portFDs)

	// 2,000 devices of the product, logged in to the rig's broker.
	devs := make([]fleet.Device, devices)
	for i := range devs {
		id := fmt.Sprintf("7%08d", i)
		key := fmt.Sprintf("fleet-key-%d", i)
		require.NoError(t, r.Broker().Registry().AddDevice(ProductID, broker.Device{ID: id, Title: "fleet", AuthInfo: key}))
		devs[i] = fleet.Device{ID: id, ProductID: ProductID, Password: key}
	}
	fl, err := fleet.Start(ctx, fleet.Options{Addr: r.Broker().MQTTAddr(), Devices: devs, Concurrency: 32, LoginTimeout: 60 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { fl.Close() })
	require.Equal(t, devices, fl.Logins().Connected, "failed logins: %v", fl.Logins().Failed)

	// The session: flash, then every scenario a real board can play.
	// A broker restart ends every session, the fleet's too: those
	// scenarios go last.
	all, err := scenario.LoadDir("../../scenarios")
	require.NoError(t, err)
	var scs, restarts []*scenario.Scenario
	for _, sc := range all {
		if slices.Contains(sc.FaultsUsed(), scenario.RestartBroker) {
			restarts = append(restarts, sc)
		} else {
			scs = append(scs, sc)
		}
	}
	require.NotEmpty(t, restarts)
	play := func(scs []*scenario.Scenario) int {
		run := (&scenario.Runner{Target: r}).Run(ctx, scs)
		passed := 0
		for _, sc := range run.Scenarios {
			switch sc.Status {
			case report.Pass:
				passed++
			case report.Skip:
			default:
				t.Errorf("%s: %s: %s", sc.Name, sc.Status, sc.Reason)
			}
		}
		return passed
	}
	passed := play(scs)
	assert.GreaterOrEqual(t, passed, 8, "scenarios played on the real-board path")
	t.Logf("%d scenarios passed with %d devices connected", passed, devices)

	// The fleet was there all along, and still answers: a $creq to each.
	assert.Zero(t, fl.Counters().Dropped, "no fleet device lost its connection")
	mark := r.Broker().Events().Mark()
	for _, d := range devs {
		_, err := r.Broker().SendCommand(d.ID, []byte("toggle"), broker.CommandOptions{})
		require.NoError(t, err, d.ID)
	}
	replied := 0
	_, err = r.Broker().Events().WaitAfter(ctx, mark, func(e broker.Event) bool {
		if e.Kind == broker.CommandReplied && e.DeviceID != DeviceID {
			replied++
		}
		return replied == devices
	})
	require.NoError(t, err, "%d of %d fleet devices replied", replied, devices)

	// Last, the broker restarts (the fleet's sessions end with them).
	assert.Equal(t, len(restarts), play(restarts), "broker restart scenarios")
}
