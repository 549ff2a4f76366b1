package soak

import (
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/harness/onenet"
	"github.com/onenet-hil/hil/harness/scenario"
)

// sendReason names why the platform refused a send, from the error's type
// alone; "" when its type says nothing (the caller then asks the broker).
func sendReason(err error) string {
	var api *onenet.APIError
	switch {
	case errors.Is(err, broker.ErrOffline):
		return LostOffline
	case errors.As(err, &api) && api.Code == notOnline(api.Studio):
		return LostOffline
	case errors.Is(err, broker.ErrClosed), unreachable(err):
		return LostUnreachable
	}
	return ""
}

// notOnline is OneNET's code for "device not online" on the legacy API
// (an errno) or Studio's (a code).
func notOnline(studio bool) int {
	if studio {
		return broker.StudioNotOnline
	}
	return broker.ErrnoNotOnline
}

// unreachable: the platform's listener refused or dropped the connection
// (a broker restart closes them all).
func unreachable(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// refusalReason explains a refused send: by the error's type, else by the
// broker's view of the device around the send (a refusal while the device
// was offline is OneNET's "device not online", whatever the error looks
// like), else the refusal itself.
func (s *state) refusalReason(err error, online bool, mark broker.Mark) string {
	if r := sendReason(err); r != "" {
		return r
	}
	if !online || !s.br.Online(s.o.Device) || s.endedSince(mark) {
		return LostOffline
	}
	return "refused: " + firstLine(s.mask.Mask(err.Error()))
}

// lossReason explains a command the broker accepted and the board never
// echoed; "" when nothing does.
func (s *state) lossReason(ch scenario.Channel, online, subscribed bool, mark broker.Mark) string {
	switch {
	case s.endedSince(mark):
		return LostInFlight
	case !online:
		return LostOffline
	case ch == scenario.Topic && !subscribed:
		return LostNoSubscribe
	}
	return ""
}

// endedSince reports whether the device's connection ended after mark, as
// far as the broker's feed tells now.
func (s *state) endedSince(mark broker.Mark) bool {
	for _, e := range s.br.Events().Since(mark) {
		if e.DeviceID == s.o.Device && (e.Kind == broker.Disconnected || e.Kind == broker.Kicked) {
			return true
		}
	}
	return false
}

// subscribedAt follows the broker's feed up to mark and reports whether
// the device's session then had subscribed to a custom topic. The feed is
// read incrementally (scanned), a few events per command.
func (s *state) subscribedAt(mark broker.Mark) bool {
	for _, e := range s.br.Events().Since(s.scanned) {
		if e.Seq > uint64(mark) {
			break // later events are for the next call
		}
		s.scanned = broker.After(e)
		if e.DeviceID != s.o.Device {
			continue
		}
		switch e.Kind {
		case broker.Connected, broker.Disconnected, broker.Kicked:
			s.subscribed = false
		case broker.Subscribed:
			if customTopic(e.Topic) && e.Code == 0 {
				s.subscribed = true
			}
		}
	}
	return s.subscribed
}

// customTopic: OneNET's own topics ($creq, $dp, Studio's $sys/...) start
// with '$'; the custom topic the harness publishes commands on does not.
func customTopic(t string) bool { return t != "" && !strings.HasPrefix(t, "$") }
