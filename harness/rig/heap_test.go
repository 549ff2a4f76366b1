package rig

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/scenario"
)

const heapScenario = "name: heap\nsteps:\n  - send: on\n  - expect: {led: 1}\n  - heap: 40\n  - send: toggle\n  - expect: {led: 1}\n"

func runHeap(t *testing.T, r *Rig) report.Scenario {
	t.Helper()
	sc, err := scenario.Parse("heap.yaml", []byte(heapScenario))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	return (&scenario.Runner{Target: r}).RunScenario(ctx, sc)
}

// The firmware fits the 28 KB heap that issue 16 sets as its budget, and
// the board is back in service after the measurement.
func TestHeapStepMeasuresTheFirmwareOnA28KHeap(t *testing.T) {
	r := newRig(t, Options{Heap: 28 * 1024})
	res := runHeap(t, r)
	require.Equal(t, report.Pass, res.Status, res.Reason)
	require.NotNil(t, res.Heap)
	h := *res.Heap
	assert.Equal(t, "peak", h.Method)
	assert.Equal(t, 40, h.Commands)
	assert.InDelta(t, 28*1024-1000, h.Size, 1000, "the board's heap: %+v", h)
	for name, v := range map[string]int{"boot": h.Boot, "login": h.Login, "command": h.Command, "live": h.Live} {
		assert.Greater(t, v, 2048, "%s: %+v", name, h)
		assert.Less(t, v, h.Size, "%s: %+v", name, h)
	}
	assert.Less(t, h.Live, h.Command, "live after the last command is below that command's peak: %+v", h)
}

// A firmware change that keeps 1 KB per command runs out of the ESP8266's
// heap: the heap step fails with the MemoryError, as the board would.
func TestHeapStepFailsALeakingFirmwareWithMemoryError(t *testing.T) {
	r := newRig(t, Options{})
	r.patch = func(files map[string][]byte) {
		app := string(files["app.py"])
		const at = "def on_msg(topic, msg):\n    global state, n\n"
		require.Contains(t, app, at)
		files["app.py"] = []byte(strings.Replace(app, at, "LEAK = []\n\n\n"+at+"    LEAK.append(bytearray(1024))\n", 1))
	}
	res := runHeap(t, r)
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "MemoryError in the firmware's command")
	require.NotNil(t, res.Heap, "the figures up to the failure are kept")
	assert.Greater(t, res.Heap.Commands, 10, "it failed only once the leak filled the heap: %+v", *res.Heap)
}

// A firmware whose app.py grew by 6 KB of source no longer compiles on a
// 28 KB heap: the boot step fails, as the ESP8266's import would.
func TestHeapStepFailsAFirmwareTooBigToCompile(t *testing.T) {
	r := newRig(t, Options{Heap: 28 * 1024})
	r.patch = func(files map[string][]byte) {
		var b strings.Builder
		b.WriteString("\n\ndef unused(x):\n")
		for i := range 200 {
			fmt.Fprintf(&b, "    x = x + %d\n", i)
		}
		b.WriteString("    return x\n")
		files["app.py"] = append(files["app.py"], b.String()...)
	}
	res := runHeap(t, r)
	require.Equal(t, report.Fail, res.Status)
	assert.Contains(t, res.Reason, "MemoryError in the firmware's boot.py: compiling its modules needed more than the board's")
}
