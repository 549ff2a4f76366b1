package broker

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// An event's fields are its own: overwriting the packet buffer its
// strings and payload came from changes nothing in the feed, and an
// append to Payload cannot reach the strings beside it.
func TestEventFieldsAreCopiesOfThePacket(t *testing.T) {
	b := startBroker(t, nil)
	pkt := []byte("503367129|led/state|on")
	view := func(i, j int) string { return unsafe.String(&pkt[i], j-i) } // as Mochi decodes strings
	mark := b.Events().Mark()
	b.emit(Event{Kind: Published, DeviceID: view(0, 9), ProductID: DemoProductID, Topic: view(10, 19), Payload: pkt[20:]})
	for i := range pkt {
		pkt[i] = 'x'
	}
	evs := b.Events().Since(mark)
	require.Len(t, evs, 1)
	e := evs[0]
	assert.Equal(t, "503367129", e.DeviceID)
	assert.Equal(t, "led/state", e.Topic)
	assert.Equal(t, "on", string(e.Payload))
	assert.Equal(t, 2, e.PayloadLen)
	assert.Equal(t, len(e.Payload), cap(e.Payload), "an append to Payload reallocates")
	_ = append(e.Payload, "zzzzzzzzzzzzzzzzzzzz"...)
	assert.Equal(t, "503367129", b.Events().Since(mark)[0].DeviceID)
	assert.Equal(t, "led/state", b.Events().Since(mark)[0].Topic)
}

// The feed's bounds: ids, text and payload cut (on a UTF-8 boundary) and
// marked; an empty payload stays non-nil, no payload stays nil.
func TestEventFieldsAreCut(t *testing.T) {
	b := startBroker(t, nil)
	mark := b.Events().Mark()
	long := strings.Repeat("é", eventTextMax) // two bytes each: the cut falls inside one
	b.emit(Event{Kind: Refused, DeviceID: strings.Repeat("d", eventIDMax+1), Topic: long, Reason: "r",
		Payload: []byte(strings.Repeat("p", eventPayloadMax+10))})
	b.emit(Event{Kind: Published, DeviceID: DemoDeviceID, Topic: "t", Payload: []byte{}})
	b.emit(Event{Kind: Connected, DeviceID: DemoDeviceID})
	evs := b.Events().Since(mark)
	require.Len(t, evs, 3)
	assert.Equal(t, strings.Repeat("d", eventIDMax)+"...", evs[0].DeviceID)
	assert.Equal(t, strings.Repeat("é", eventTextMax/2)+"...", evs[0].Topic)
	assert.Len(t, evs[0].Payload, eventPayloadMax)
	assert.Equal(t, eventPayloadMax+10, evs[0].PayloadLen)
	assert.NotNil(t, evs[1].Payload)
	assert.Empty(t, evs[1].Payload)
	assert.Nil(t, evs[2].Payload)
}

// Recording an event without a secret in it costs one allocation (its
// copies), and a secret is still masked.
func TestEmitAllocatesOnce(t *testing.T) {
	b := startBroker(t, nil)
	payload := []byte("toggle")
	e := Event{Kind: Published, DeviceID: DemoDeviceID, ProductID: DemoProductID, Topic: "led/state", Payload: payload}
	b.emit(e) // the feed's ring grows on its first events
	if !raceOn {
		assert.LessOrEqual(t, testing.AllocsPerRun(200, func() { b.emit(e) }), 1.0)
	}
	mark := b.Events().Mark()
	b.emit(Event{Kind: Published, DeviceID: DemoDeviceID, Topic: "led/state", Payload: []byte("key=" + DemoMasterKey)})
	assert.Equal(t, "key=****", string(b.Events().Since(mark)[0].Payload))
}

// A command reply's topic is made in the event's copy ($crsp/ and the
// uuid), not as one more string per reply.
func TestReplyTopicIsBuiltInTheCopy(t *testing.T) {
	b := startBroker(t, nil)
	mark := b.Events().Mark()
	b.emit(Event{Kind: CommandReplied, DeviceID: DemoDeviceID, CmdUUID: "5b1f7a2e", topicPrefix: "$crsp/", Payload: []byte("1")})
	e := b.Events().Since(mark)[0]
	assert.Equal(t, "$crsp/5b1f7a2e", e.Topic)
	assert.Equal(t, "5b1f7a2e", e.CmdUUID)
	assert.Empty(t, e.topicPrefix, "the feed's events compare as before")
}
