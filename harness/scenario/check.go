package scenario

import (
	"context"
	"fmt"
	"time"

	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/report"
)

// Checker is the one judgement of a command's outcome, shared by the
// runner and the soak: does the board's echo (parsed by the profile) agree
// with the LED model's prediction and the platform's command topic, and
// does the GPIO pin then agree with both.
type Checker struct {
	Profile  echo.Profile
	Platform Platform
	// Pin reads the LED's GPIO pin; nil where it cannot be read.
	Pin Pin
}

// Sent is one command whose echo is awaited, with the model's prediction.
type Sent struct {
	// Desc names the command in messages ("send on via creq").
	Desc    string
	Payload string
	Channel Channel
	// Before and After are the model's LED levels around the command.
	Before, After int

	receipt bool // its Received echo was seen (profiles that print one first)
}

// Command reports whether the payload is an LED command (the model's
// definition: on, off or toggle).
func (s *Sent) Command() bool { return echo.IsCommand(s.Payload) }

// Echo judges ev, the next command echo on the serial line, as an echo of
// s. done is true once s's last echo has been seen, with level the LED
// level it reported (report.Unknown when the profile prints none); false
// when ev was the receipt a profile prints first and the result follows.
// An echo that disagrees is an error saying how.
func (c *Checker) Echo(s *Sent, ev echo.Event) (done bool, level int, err error) {
	if err := c.checkVia(s, ev); err != nil {
		return false, report.Unknown, err
	}
	conf := c.Profile.Confirms(s.Payload)
	if conf.Receipt && !s.receipt {
		if ev.Kind != echo.Received || ev.Payload != s.Payload {
			return false, report.Unknown, fmt.Errorf("expected the board to print the receipt of %s, got %q", ShowPayload(s.Payload), ev.Line)
		}
		s.receipt = true
		return conf.Result == echo.Other, report.Unknown, nil
	}
	switch conf.Result {
	case echo.LED:
		if ev.Kind != echo.LED {
			return false, report.Unknown, fmt.Errorf("expected an LED echo for %s, got %q", ShowPayload(s.Payload), ev.Line)
		}
		if ev.Cmd != "" && ev.Cmd != s.Payload {
			return false, report.Unknown, fmt.Errorf("echo is for cmd=%s but the command in flight is %s (order lost?): %q", ev.Cmd, s.Payload, ev.Line)
		}
		if ev.State != s.After {
			return false, report.Unknown, fmt.Errorf("model expects LED=%d after %s (from %d), echo says state=%d: %q",
				s.After, s.Payload, s.Before, ev.State, ev.Line)
		}
		return true, ev.State, nil
	case echo.Ignored:
		if ev.Kind != echo.Ignored || ev.Payload != s.Payload {
			what := "a command"
			if !s.Command() {
				what = "junk"
			}
			return false, report.Unknown, fmt.Errorf("expected the board to ignore %s (%s), got %q", ShowPayload(s.Payload), what, ev.Line)
		}
		return true, report.Unknown, nil
	}
	return false, report.Unknown, fmt.Errorf("unexpected echo %q after %s", ev.Line, ShowPayload(s.Payload))
}

// checkVia: a command push (creq, http) must arrive on the platform's
// command topic ($creq/{uuid}, or studio's $sys/.../cmd/request/{uuid}), a
// topic publish on another topic.
func (c *Checker) checkVia(s *Sent, ev echo.Event) error {
	if ev.Via == "" {
		return nil
	}
	if s.Channel == Property || c.Platform.PropertyTopic(ev.Via) {
		if s.Channel != Property || !c.Platform.PropertyTopic(ev.Via) {
			return fmt.Errorf("sent via %s on %s, so it must arrive on %s, but the board got it on topic %q: %q",
				s.Channel, c.Platform, viaName(s.Channel, c.Platform), ev.Via, ev.Line)
		}
		return nil
	}
	if (s.Channel == Topic) == c.Platform.CommandTopic(ev.Via) {
		want := "the platform's command topic " + c.Platform.commandTopicName()
		if s.Channel == Topic {
			want = "the custom topic"
		}
		return fmt.Errorf("sent via %s on %s, so it must arrive on %s, but the board got it on topic %q: %q",
			s.Channel, c.Platform, want, ev.Via, ev.Line)
	}
	return nil
}

// CheckPin cross-checks the pin once s is complete and nothing later is in
// flight: it waits up to grace (the pin may lag the echo) for the pin to
// read the model's level, and otherwise says who disagrees. echoLevel is
// what the echo said (report.Unknown: nothing). It returns the level read;
// report.Unknown and no error when there is no pin.
func (c *Checker) CheckPin(ctx context.Context, s *Sent, echoLevel int, grace time.Duration) (int, error) {
	if c.Pin == nil {
		return report.Unknown, nil
	}
	pctx, cancel := context.WithTimeout(ctx, grace)
	got, err := c.Pin.Await(pctx, s.After)
	cancel()
	if got == s.After {
		return got, nil
	}
	switch {
	case echoLevel != report.Unknown:
		return got, fmt.Errorf("echo and pin disagree after %s: echo says LED=%d, GPIO pin reads %d (%v)", s.Desc, echoLevel, got, err)
	case !s.Command() && c.Profile.Confirms(s.Payload).Result == echo.Ignored:
		return got, fmt.Errorf("echo and pin disagree after %s: echo says ignored (LED stays %d), GPIO pin reads %d (%v)", s.Desc, s.After, got, err)
	}
	return got, fmt.Errorf("model expects LED=%d after %s, GPIO pin reads %d (%v)", s.After, s.Desc, got, err)
}

// viaName names the topic a send through ch arrives on.
func viaName(ch Channel, p Platform) string {
	switch ch {
	case Topic:
		return "the custom topic"
	case Property:
		return "the property set topic $sys/{pid}/{name}/thing/property/set"
	}
	return "the platform's command topic " + p.commandTopicName()
}
