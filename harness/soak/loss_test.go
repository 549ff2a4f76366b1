package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/onenet"
	"github.com/onenet-hil/hil/harness/scenario"
)

// TestSendReasonIsTyped: a send error is classified by its type (through
// any wrapping), never by its text: an error that only says "EOF" or
// "device not online" says nothing.
func TestSendReasonIsTyped(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("creq: %w: 503367129", broker.ErrOffline), LostOffline},
		{fmt.Errorf("send: %w", &onenet.APIError{Op: "POST /cmds", Code: broker.ErrnoNotOnline, Msg: "device not online"}), LostOffline},
		{&onenet.APIError{Op: "POST /datapoint/synccmds", Studio: true, Code: broker.StudioNotOnline, Msg: "device not online"}, LostOffline},
		{&onenet.APIError{Op: "POST /cmds", Code: broker.ErrnoAuthFailed, Msg: "auth failed"}, ""},
		{&onenet.APIError{Op: "POST /cmds", Code: broker.StudioNotOnline, Msg: "a legacy errno, not studio's code"}, ""},
		{fmt.Errorf("restart: %w", broker.ErrClosed), LostUnreachable},
		{fmt.Errorf("POST /cmds: %w", &url.Error{Op: "Post", URL: "http://127.0.0.1:1/cmds", Err: refused}), LostUnreachable},
		{fmt.Errorf("POST /cmds: %w", &url.Error{Op: "Post", URL: "http://127.0.0.1:1/cmds", Err: io.EOF}), LostUnreachable},
		{fmt.Errorf("publish: %w", syscall.ECONNRESET), LostUnreachable},
		{errors.New("controller login: read tcp: EOF"), ""},
		{errors.New("POST /cmds: errno 10: device not online"), ""},
		{errors.New("publish on the custom topic: not sent in time"), ""},
	} {
		assert.Equal(t, c.want, sendReason(c.err), "%v", c.err)
	}
}

// levelPin is a pin that reads a fixed level.
type levelPin int

func (p levelPin) Level() (int, error) { return int(p), nil }

func (p levelPin) Await(ctx context.Context, level int) (int, error) {
	if int(p) == level {
		return level, nil
	}
	<-ctx.Done()
	return int(p), ctx.Err()
}

// TestJudgeSharesTheRunnersChecker: an echo is judged as the runner
// judges it (same words), and the model follows the board after a
// mismatch so that one fault is one mismatch.
func TestJudgeSharesTheRunnersChecker(t *testing.T) {
	res := newResult(1)
	s := &state{res: &res, check: scenario.Checker{Profile: echo.HIL, Platform: scenario.Legacy, Pin: levelPin(1)}}
	const via = " via=$creq/1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	ctx := context.Background()

	s.judge(ctx, "command 1 (on via creq)", scenario.Creq, "on", echo.HIL.Parse("HIL led state=1 cmd=on"+via))
	s.judge(ctx, "command 2 (junk via topic)", scenario.Topic, "junk", echo.HIL.Parse("HIL ignored payload=b'junk' via=TurnipRobot"))
	assert.Equal(t, 1, res.Applied)
	assert.Equal(t, 1, res.Ignored)
	assert.Zero(t, res.Mismatches, res.Details)

	s.judge(ctx, "command 3 (toggle via creq)", scenario.Creq, "toggle", echo.HIL.Parse("HIL led state=1 cmd=toggle"+via))
	require.Equal(t, 1, res.Mismatches)
	assert.Contains(t, res.Details[0], "command 3 (toggle via creq): model expects LED=0 after toggle (from 1), echo says state=1")
	assert.Equal(t, 1, s.model.Level, "the model follows the board")

	s.judge(ctx, "command 4 (on via http)", scenario.HTTP, "on", echo.HIL.Parse("HIL led state=1 cmd=on via=TurnipRobot"))
	require.Equal(t, 2, res.Mismatches)
	assert.Contains(t, res.Details[1], "sent via http on legacy, so it must arrive on the platform's command topic")
	assert.Equal(t, 1, res.Applied, "a mismatch is not applied")
}
