package scenario

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/report"
)

// sent is what the runner and the soak hand the checker for payload p
// sent via ch with the LED at before.
func sent(p string, ch Channel, before int) *Sent {
	m := Model{Level: before}
	after, _ := m.Apply(p)
	return &Sent{Desc: "send " + p + " via " + string(ch), Payload: p, Channel: ch, Before: before, After: after}
}

func TestCheckerEchoHIL(t *testing.T) {
	c := &Checker{Profile: echo.HIL, Platform: Legacy}
	parse := func(line string) echo.Event { return echo.HIL.Parse(line) }
	const creq = "via=$creq/1b4e28ba-2fa1-11d2-883f-0016d3cca427"

	done, level, err := c.Echo(sent("toggle", Creq, 0), parse("HIL led state=1 cmd=toggle "+creq))
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, 1, level)

	done, level, err = c.Echo(sent("junk", Topic, 1), parse("HIL ignored payload=b'junk' via=TurnipRobot"))
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, report.Unknown, level, "an ignored echo says no level")

	for _, tc := range []struct {
		s    *Sent
		line string
		want string
	}{
		{sent("toggle", Creq, 1), "HIL led state=1 cmd=toggle " + creq, "model expects LED=0 after toggle (from 1), echo says state=1"},
		{sent("on", Creq, 0), "HIL led state=0 cmd=off " + creq, "echo is for cmd=off but the command in flight is on (order lost?)"},
		{sent("on", Creq, 0), "HIL ignored payload=b'on' " + creq, "expected an LED echo for on, got"},
		{sent("junk", Creq, 0), "HIL led state=1 cmd=on " + creq, "expected the board to ignore junk (junk), got"},
		{sent("on", HTTP, 0), "HIL led state=1 cmd=on via=TurnipRobot",
			`sent via http on legacy, so it must arrive on the platform's command topic $creq/{uuid}, but the board got it on topic "TurnipRobot"`},
		{sent("on", Topic, 0), "HIL led state=1 cmd=on " + creq, "sent via topic on legacy, so it must arrive on the custom topic"},
	} {
		done, _, err := c.Echo(tc.s, parse(tc.line))
		assert.False(t, done, tc.line)
		assert.ErrorContains(t, err, tc.want, tc.line)
	}

	studio := &Checker{Profile: echo.HIL, Platform: Studio}
	_, _, err = studio.Echo(sent("on", Creq, 0), parse("HIL led state=1 cmd=on "+creq))
	assert.ErrorContains(t, err, "sent via creq on studio, so it must arrive on the platform's command topic $sys/{pid}/{name}/cmd/request/{uuid}")
	done, _, err = studio.Echo(sent("on", Creq, 0), parse("HIL led state=1 cmd=on via=$sys/386427/503367129/cmd/request/1b4e"))
	require.NoError(t, err)
	assert.True(t, done)
}

// The tutorial prints a receipt first, then the level for on and off only.
func TestCheckerEchoTutorialReceipt(t *testing.T) {
	c := &Checker{Profile: echo.Tutorial, Platform: Legacy}
	parse := echo.Tutorial.Parse

	on := sent("on", Topic, 0)
	done, _, err := c.Echo(on, parse("(b'TurnipRobot', b'on')"))
	require.NoError(t, err)
	assert.False(t, done, "the level follows the receipt")
	done, level, err := c.Echo(on, parse("1"))
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, 1, level)

	toggle := sent("toggle", Topic, 1)
	done, level, err = c.Echo(toggle, parse("(b'TurnipRobot', b'toggle')"))
	require.NoError(t, err)
	assert.True(t, done, "no level follows a toggle's receipt")
	assert.Equal(t, report.Unknown, level)

	_, _, err = c.Echo(sent("off", Topic, 1), parse("0"))
	assert.ErrorContains(t, err, "expected the board to print the receipt of off, got \"0\"")
}

func TestCheckerPin(t *testing.T) {
	ctx := context.Background()
	none := &Checker{Profile: echo.HIL, Platform: Legacy}
	got, err := none.CheckPin(ctx, sent("on", Creq, 0), 1, time.Second)
	require.NoError(t, err, "no pin: nothing to cross-check")
	assert.Equal(t, report.Unknown, got)

	pin := &fakePin{changed: make(chan struct{}), blocked: make(chan struct{}, 1)}
	c := &Checker{Profile: echo.HIL, Platform: Legacy, Pin: pin}

	// The pin lags the echo: the check waits for it, within the grace (the
	// pin comes up only once the check is seen waiting).
	done := make(chan struct{})
	go func() {
		defer close(done)
		got, err = c.CheckPin(ctx, sent("on", Creq, 0), 1, 10*time.Second)
	}()
	select {
	case <-pin.blocked:
	case <-done:
		t.Fatalf("CheckPin returned before the pin came up: %d, %v", got, err)
	case <-time.After(10 * time.Second):
		t.Fatal("CheckPin never waited for the pin")
	}
	pin.set(1)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("CheckPin did not end when the pin came up (grace 10 s)")
	}
	require.NoError(t, err)
	assert.Equal(t, 1, got)

	// It stays wrong: the message names who disagrees.
	_, err = c.CheckPin(ctx, sent("off", Creq, 1), 0, 50*time.Millisecond)
	assert.ErrorContains(t, err, "echo and pin disagree after send off via creq: echo says LED=0, GPIO pin reads 1")
	_, err = c.CheckPin(ctx, sent("junk", Creq, 0), report.Unknown, 50*time.Millisecond)
	assert.ErrorContains(t, err, "echo and pin disagree after send junk via creq: echo says ignored (LED stays 0), GPIO pin reads 1")
	tut := &Checker{Profile: echo.Tutorial, Platform: Legacy, Pin: pin}
	_, err = tut.CheckPin(ctx, sent("off", Topic, 1), report.Unknown, 50*time.Millisecond)
	assert.ErrorContains(t, err, "model expects LED=0 after send off via topic, GPIO pin reads 1")
}
