package scenario

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/report"
)

// fakeBoard is an in-process stand-in for a board behind the broker, used
// ONLY to test the runner's own logic (matching, model checks, timeouts,
// pin comparison). It prints what the hil firmware or the tutorial's
// mqtt.py would print, synchronously, and can be told to misbehave. The
// real wiring (broker, virtual board, firmware) is tested in scenarios/.
type fakeBoard struct {
	mu       sync.Mutex
	lines    chan report.Line
	virtual  bool
	pin      *fakePin
	profile  string
	led      int
	online   bool
	held     []string // qos 1 commands for an offline device
	received int      // payloads delivered so far
	broker   []BrokerEvent
	faults   []FaultKind
	setups   []Setup

	// misbehaviour, by 1-based delivery number (0: never)
	wrongStateAt int      // echo the opposite state
	silentAt     int      // print nothing
	swapAt       int      // echo deliveries n and n+1 in the wrong order
	rebootAt     int      // reboot instead of handling it
	pinStuck     bool     // the pin never changes
	wrongVia     bool     // echo creq pushes as if they came on the topic
	pushVia      string   // echo creq pushes on this topic ("": the platform's)
	platform     Platform // "": not said (legacy)
	noFault      map[FaultKind]bool
	skip         func(*Scenario) string // the target's own skip reasons
	swapped      *string
}

func newFakeBoard(virtual bool) *fakeBoard {
	b := &fakeBoard{lines: make(chan report.Line, 1<<14), virtual: virtual, profile: "hil"}
	if virtual {
		b.pin = &fakePin{changed: make(chan struct{})}
	}
	return b
}

func (b *fakeBoard) Describe() string {
	if b.virtual {
		return "fake virtual board"
	}
	return "fake real board"
}
func (b *fakeBoard) Platform() Platform {
	if b.platform == "" {
		return Legacy
	}
	return b.platform
}

// refusedRC is the code the fake's broker gives wrong credentials.
func (b *fakeBoard) refusedRC() int {
	if b.platform == Studio {
		return 5
	}
	return 4
}
func (b *fakeBoard) Capabilities() Capabilities {
	c := Capabilities{Virtual: b.virtual, Skip: b.skip}
	for _, f := range Faults {
		if !b.noFault[f] && (b.virtual || !f.VirtualOnly()) {
			c.Faults = append(c.Faults, f)
		}
	}
	if b.pin != nil { // a typed nil would not compare equal to nil
		c.Pin = b.pin
	}
	c.Heap = b
	return c
}

// ProbeHeap answers as the rig does: figures, then the firmware boots again
// (its soft reset) and logs in.
func (b *fakeBoard) ProbeHeap(_ context.Context, commands int) (report.Heap, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.online = false
	b.boot(false)
	return report.Heap{Size: 37552, Boot: 20000, Login: 18000, Command: 17000, Live: 12000, Commands: commands, Method: "peak"}, nil
}
func (b *fakeBoard) Serial() Serial { return fakeSerial{b.lines} }

func (b *fakeBoard) print(s string) {
	b.lines <- report.Line{At: time.Now(), Text: s}
}

func (b *fakeBoard) setLED(v int) {
	b.led = v
	if b.pin != nil && !b.pinStuck {
		b.pin.set(v)
	}
}

// boot is the board starting: LED off, Wi-Fi, login.
func (b *fakeBoard) boot(wrongCreds bool) {
	b.setLED(0)
	b.print("\xff\x00ets Jan  8 2013,rst cause:2, boot mode:(3,6)")
	if b.profile == "tutorial" {
		b.print("connecting to network...")
		b.print("network config: ('10.0.0.2', '255.255.255.0', '10.0.0.1', '10.0.0.1')")
		if wrongCreds {
			b.print("Traceback (most recent call last):")
			b.print("MQTTException: 4")
			b.broker = append(b.broker, BrokerEvent{Kind: "refused", RC: 4})
			return
		}
		b.print("Connected to 127.0.0.1, subscribed to b'TurnipRobot' topic")
		b.online = true
		return
	}
	b.print("HIL boot fw=0.1.0 id=503367129")
	b.print("HIL wifi up ip=10.0.0.2")
	if wrongCreds {
		b.print(fmt.Sprintf("HIL mqtt refused rc=%d", b.refusedRC()))
		b.broker = append(b.broker, BrokerEvent{Kind: "refused", RC: b.refusedRC()})
		return
	}
	b.print("HIL mqtt up broker=127.0.0.1:6002")
	b.broker = append(b.broker, BrokerEvent{Kind: "connected", RC: -1})
	b.online = true
}

func (b *fakeBoard) Begin(_ context.Context, s Setup) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setups = append(b.setups, s)
	b.profile = s.Profile
	b.boot(s.WrongCredentials)
	return nil
}

func (b *fakeBoard) Send(_ context.Context, ch Channel, payload []byte, opt SendOptions) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.online {
		if opt.QoS == 1 {
			b.held = append(b.held, string(payload))
			return nil
		}
		return fmt.Errorf("device not online (errno 10)")
	}
	via := "TurnipRobot"
	if ch != Topic && !b.wrongVia {
		via = "$creq/1b4e28ba-2fa1-11d2-883f-0016d3cca427"
		if b.platform == Studio {
			via = "$sys/386427/503367129/cmd/request/1b4e28ba-2fa1-11d2-883f-0016d3cca427"
		}
		if ch == Property {
			via = "$sys/386427/503367129/thing/property/set"
		}
		if b.pushVia != "" {
			via = b.pushVia
		}
	}
	b.deliver(string(payload), via)
	return nil
}

// deliver is the firmware handling one message.
func (b *fakeBoard) deliver(p, via string) {
	b.received++
	n := b.received
	switch n {
	case b.silentAt:
		return
	case b.rebootAt:
		b.boot(false)
		return
	}
	switch p {
	case "on":
		b.setLED(1)
	case "off":
		b.setLED(0)
	case "toggle":
		b.setLED(1 - b.led)
	}
	state := b.led
	if n == b.wrongStateAt {
		state = 1 - state
	}
	var out []string
	if b.profile == "tutorial" {
		out = append(out, fmt.Sprintf("(%s, %s)", echo.Quote([]byte(via)), echo.Quote([]byte(p))))
		if p == "on" || p == "off" {
			out = append(out, fmt.Sprint(state))
		}
	} else if echo.IsCommand(p) {
		out = append(out, echo.Format(echo.Event{Kind: echo.LED, State: state, Cmd: p, Via: via}))
	} else {
		out = append(out, echo.Format(echo.Event{Kind: echo.Ignored, Payload: p, Via: via}))
	}
	text := strings.Join(out, "\n")
	if n == b.swapAt {
		b.swapped = &text
		return
	}
	for _, l := range strings.Split(text, "\n") {
		b.print(l)
	}
	if b.swapped != nil {
		for _, l := range strings.Split(*b.swapped, "\n") {
			b.print(l)
		}
		b.swapped = nil
	}
}

func (b *fakeBoard) Fault(_ context.Context, f FaultKind) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = append(b.faults, f)
	switch f {
	case RestartBroker, Kick, DropConnection:
		gone := "disconnected"
		if f == Kick {
			gone = "kicked"
		}
		b.broker = append(b.broker, BrokerEvent{Kind: gone, RC: -1}, BrokerEvent{Kind: "connected", RC: -1})
		b.print("HIL mqtt down reason=closed")
		b.print("HIL mqtt up broker=127.0.0.1:6002")
	case PowerCycle:
		b.online = false
		b.boot(false)
	case WifiDown:
		b.online = false
		b.print("HIL mqtt down reason=ECONNRESET")
		b.print("HIL wifi down reason=lost")
	case WifiUp:
		b.print("HIL wifi up ip=10.0.0.2")
		b.print("HIL mqtt up broker=127.0.0.1:6002")
		b.online = true
		for _, p := range b.held {
			b.deliver(p, "$creq/held")
		}
		b.held = nil
	}
	return nil
}

func (b *fakeBoard) AwaitBroker(_ context.Context, want BrokerEvent) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.broker {
		if e.Kind == want.Kind && (want.RC < 0 || e.RC == want.RC) {
			return nil
		}
	}
	return fmt.Errorf("not seen; broker events: %v", b.broker)
}

type fakeSerial struct{ lines chan report.Line }

func (s fakeSerial) Next(ctx context.Context) (report.Line, error) {
	select {
	case l := <-s.lines:
		return l, nil
	case <-ctx.Done():
		return report.Line{}, ctx.Err()
	}
}

// fakePin broadcasts every change by closing and replacing a channel.
type fakePin struct {
	mu      sync.Mutex
	level   int
	changed chan struct{}
	blocked chan struct{} // when set, told each time Await starts waiting
}

func (p *fakePin) set(v int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.level != v {
		p.level = v
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

func (p *fakePin) Level() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level, nil
}

func (p *fakePin) Await(ctx context.Context, level int) (int, error) {
	for {
		p.mu.Lock()
		got, ch := p.level, p.changed
		p.mu.Unlock()
		if got == level {
			return got, nil
		}
		if p.blocked != nil {
			select {
			case p.blocked <- struct{}{}:
			default:
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return got, ctx.Err()
		}
	}
}
