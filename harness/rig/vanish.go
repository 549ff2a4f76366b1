package rig

import (
	"context"
	"fmt"
	"time"

	"github.com/onenet-hil/hil/harness/scenario"
)

// Send delivers payload through ch (see send). A failure while the
// board's serial port has gone away says so: an unplugged board loses its
// network first, so the broker's "device not online" alone would hide
// why.
func (r *Rig) Send(ctx context.Context, ch scenario.Channel, payload []byte, opt scenario.SendOptions) error {
	err := r.send(ctx, ch, payload, opt)
	if err == nil || opt.Prompt {
		return err
	}
	return r.withPortFate(ctx, err)
}

// portGrace bounds how long a failure waits to learn whether the port
// went away with it (the link notices at its next read; on a loaded
// machine that can take a while, and this is only the failure path).
const portGrace = 3 * time.Second

// goneGrace is Gone's bound (see there): the link's reader sees a closed
// port at once, unlike a send that fails first on the network side.
const goneGrace = 250 * time.Millisecond

// withPortFate adds the serial link's end to err when the link ends
// within portGrace.
func (r *Rig) withPortFate(ctx context.Context, err error) error {
	t := time.NewTimer(portGrace)
	defer t.Stop()
	select {
	case <-r.link.Done():
		return goneAfter{err: err, gone: r.link.Err()}
	case <-t.C:
	case <-ctx.Done():
	}
	return err
}

// Gone reports the serial link's end when the board's port has gone away
// (scenario.Liveness): the runner then reports the rest as not run. It is
// asked after every failed scenario: when the link still runs it waits
// only goneGrace for it to notice a port closed a moment ago.
func (r *Rig) Gone(ctx context.Context) error {
	select {
	case <-r.link.Done():
		return r.goneErr()
	default:
	}
	t := time.NewTimer(goneGrace)
	defer t.Stop()
	select {
	case <-r.link.Done():
		return r.goneErr()
	case <-t.C:
		return nil
	case <-ctx.Done():
		return nil
	}
}

// goneAfter is a send's failure followed by the port going away: it
// matches both the failure and link.ErrGone.
type goneAfter struct{ err, gone error }

func (e goneAfter) Error() string   { return fmt.Sprintf("%v; the board is gone: %v", e.err, e.gone) }
func (e goneAfter) Unwrap() []error { return []error{e.err, e.gone} }

func (r *Rig) goneErr() error {
	if err := r.link.Err(); err != nil {
		return fmt.Errorf("the board is gone: %w", err)
	}
	return fmt.Errorf("the board is gone: serial port %s closed", r.link.Name())
}
