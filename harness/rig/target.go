package rig

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/harness/dut"
	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/harness/onenet"
	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/scenario"
)

// send delivers payload through ch: creq is the platform's command push
// ($creq/{uuid}, or studio's $sys/.../cmd/request/{uuid}), topic an MQTT
// publish on the custom topic from the controller device, http OneNET's
// POST /cmds (studio: the synchronous command API), property studio's
// set-device-property of led (on true, off false).
func (r *Rig) send(ctx context.Context, ch scenario.Channel, payload []byte, opt scenario.SendOptions) error {
	switch ch {
	case scenario.Creq:
		o := broker.CommandOptions{QoS: opt.QoS}
		if opt.QoS == 1 { // OneNET keeps only a command with a timeout
			o.Timeout = onenet.KeepTimeout * time.Second
		}
		_, err := r.br.SendCommand(DeviceID, payload, o)
		return err
	case scenario.Topic:
		if opt.QoS != 0 {
			return errors.New("a custom-topic publish is never kept for an offline device: qos 1 needs channel creq or http")
		}
		return r.publish(ctx, payload)
	case scenario.HTTP:
		if r.Platform() == scenario.Studio { // the synchronous command API
			if opt.QoS != 0 {
				return errors.New("OneNET Studio's synchronous command API keeps nothing for an offline device: qos 1 is legacy only")
			}
			return r.syncCmd(ctx, payload)
		}
		return r.postCmd(ctx, payload, opt.QoS)
	case scenario.Property:
		if r.Platform() != scenario.Studio {
			return errors.New("the legacy platform has no thing model: channel property is OneNET Studio's")
		}
		return r.setProperty(ctx, payload)
	}
	return fmt.Errorf("rig: unknown channel %q", ch)
}

// setProperty is OneNET Studio's POST /thingmodel/set-device-property of
// led over a real HTTP connection, authorised with the product token. It
// answers once the board sent its set_reply; a timeout (the board got it
// and did not answer) counts as delivered: the runner checks the echo.
func (r *Rig) setProperty(ctx context.Context, payload []byte) error {
	v, ok := map[string]bool{"on": true, "off": false}[string(payload)]
	if !ok {
		return fmt.Errorf("channel property sends on or off (led true or false), not %q", payload)
	}
	body := fmt.Sprintf(`{"product_id":%q,"device_name":%q,"params":{"led":%t}}`, r.creds.ProductID, DeviceID, v)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+r.br.HTTPAddr()+"/thingmodel/set-device-property", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("authorization", r.creds.ProductToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: time.Until(deadline(ctx, 10*time.Second))}).Do(req)
	if err != nil {
		return r.mask.MaskError(fmt.Errorf("set-device-property: %w", err))
	}
	defer resp.Body.Close()
	var out struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out); err != nil {
		return fmt.Errorf("set-device-property: HTTP %d, not an answer: %w", resp.StatusCode, err)
	}
	if out.Code != broker.StudioOK && out.Code != broker.StudioTimeout {
		return r.mask.MaskError(fmt.Errorf("set-device-property: code %d %s", out.Code, out.Msg))
	}
	return nil
}

// postCmd is OneNET's POST /cmds over a real HTTP connection.
func (r *Rig) postCmd(ctx context.Context, payload []byte, qos int) error {
	c := onenet.Client{BaseURL: "http://" + r.br.HTTPAddr(), APIKey: r.creds.MasterKey}
	_, err := c.SendCommand(ctx, DeviceID, payload, qos)
	if err != nil {
		return r.mask.MaskError(err)
	}
	return nil
}

// syncWait is the synchronous command API's timeout (its minimum): the
// firmware answers on/off/toggle at once and never answers junk, so junk
// costs this much per send.
const syncWait = time.Second

// syncCmd is OneNET Studio's POST /datapoint/synccmds over a real HTTP
// connection, authorised with a product-level token. It answers when the
// device replies; "command timeout" (the device got it and did not answer,
// as for junk) counts as delivered: the runner checks the echo either way.
func (r *Rig) syncCmd(ctx context.Context, payload []byte) error {
	c := onenet.Client{BaseURL: "http://" + r.br.HTTPAddr(), Token: r.creds.ProductToken}
	rep, err := c.SyncCommand(ctx, r.creds.ProductID, DeviceID, payload, syncWait)
	if err == nil {
		return nil
	}
	if onenet.IsAPIError(err, broker.StudioTimeout) && rep.CmdUUID != "" {
		if info, ok := r.br.Command(rep.CmdUUID); ok && info.Status >= broker.CmdSent {
			return nil
		}
	}
	return r.mask.MaskError(err)
}

// Fault injects f and returns once it has taken effect as far as the
// broker can tell.
func (r *Rig) Fault(ctx context.Context, f scenario.FaultKind) error {
	if !r.canInject(f) {
		return fmt.Errorf("rig: %s cannot inject %s", r.Describe(), f)
	}
	mark := r.newMark()
	gone := func(what string) error {
		if _, err := r.br.Events().WaitAfter(ctx, mark, broker.Is(broker.Disconnected, DeviceID)); err != nil {
			return fmt.Errorf("%s: the broker did not see the device go: %w", what, err)
		}
		return nil
	}
	switch f {
	case scenario.RestartBroker:
		return r.br.Restart(ctx)
	case scenario.Kick:
		return r.kick(ctx)
	case scenario.DropConnection:
		if err := r.br.DropConnection(DeviceID); err != nil {
			return err
		}
		return gone("drop_connection")
	case scenario.PowerCycle:
		return r.caps.PowerCycle.PowerCycle(ctx)
	case scenario.WifiDown:
		if err := r.caps.WiFi.SetWiFi(false); err != nil {
			return err
		}
		return gone("wifi_down")
	case scenario.WifiUp:
		return r.caps.WiFi.SetWiFi(true)
	}
	return fmt.Errorf("rig: unknown fault %q", f)
}

// publish sends payload on the custom topic from the controller device, a
// real MQTT 3.1.1 session (made again after a broker restart ended it).
func (r *Rig) publish(ctx context.Context, payload []byte) error {
	r.mu.Lock()
	cl := r.ctrl
	r.mu.Unlock()
	if cl == nil || !cl.IsConnectionOpen() {
		var err error
		if cl, err = r.dial(ctx, r.creds.Controller, nil); err != nil {
			return fmt.Errorf("controller login: %w", err)
		}
		r.mu.Lock()
		old := r.ctrl
		r.ctrl = cl
		r.mu.Unlock()
		if old != nil {
			old.Disconnect(0)
		}
	}
	tok := cl.Publish(Topic, 0, false, payload)
	if !tok.WaitTimeout(time.Until(deadline(ctx, 10*time.Second))) {
		return fmt.Errorf("publish on the custom topic: not sent in time: %w", os.ErrDeadlineExceeded)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("publish on the custom topic: %w", err)
	}
	return nil
}

// dial logs in to the platform's listener as device d with MQTT 3.1.1
// (paho) and d's password on the platform; local, when set, receives the
// connection's source address.
func (r *Rig) dial(ctx context.Context, d Device, local *atomic.Value) (paho.Client, error) {
	p := r.Platform()
	addr, keepalive := r.listener(p), time.Duration(0)
	if p == scenario.Studio {
		keepalive = 60 * time.Second // studio refuses keepalive 0
	}
	if h, p, err := net.SplitHostPort(addr); err == nil && (h == "0.0.0.0" || h == "::" || h == "") {
		addr = net.JoinHostPort("127.0.0.1", p)
	}
	// One bound for the whole login: paho's own connect timeout and the
	// dial both end with it, so a CONNACK that comes late cannot leave a
	// stray login (with the device's own key) behind to kick the board later.
	limit := time.Until(deadline(ctx, 10*time.Second))
	dctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(d.ID).SetUsername(r.creds.ProductID).SetPassword(d.Password(p)).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false).
		SetKeepAlive(keepalive).SetConnectTimeout(limit).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			var d net.Dialer
			c, err := d.DialContext(dctx, "tcp", u.Host)
			if err == nil && local != nil {
				local.Store(c.LocalAddr().String())
			}
			return c, err
		})
	cl := paho.NewClient(opts)
	tok := cl.Connect()
	if !tok.WaitTimeout(limit) {
		cancel()
		// paho ends its attempt at ConnectTimeout (the same limit); wait for
		// that, bounded, then make sure the client is down.
		tok.WaitTimeout(2 * time.Second)
		cl.Disconnect(0)
		return nil, fmt.Errorf("no CONNACK within %s: %w", limit.Round(time.Millisecond), os.ErrDeadlineExceeded)
	}
	if err := tok.Error(); err != nil {
		return nil, r.mask.MaskError(err)
	}
	return cl, nil
}

// kick logs in a second time with the device's own credentials (a real
// MQTT 3.1.1 client over TCP), which makes OneNET close the board's
// connection, then leaves. The intruder's own events are kept out of
// AwaitBroker, so `expect: {broker: connected}` afterwards means the
// board's new login.
func (r *Rig) kick(ctx context.Context) error {
	var local atomic.Value // the intruder's source address, set by the dialer
	cl, err := r.dial(ctx, r.creds.Board, &local)
	if err != nil {
		return fmt.Errorf("kick: duplicate login: %w", err)
	}
	r.mu.Lock()
	mark := r.mark
	r.mu.Unlock()
	// The intruder's login, told apart by its source address.
	in, err := r.br.Events().WaitAfter(ctx, mark, func(e broker.Event) bool {
		return e.Kind == broker.Connected && e.DeviceID == DeviceID && e.Reason == "from "+fmt.Sprint(local.Load())
	})
	if err != nil {
		cl.Disconnect(0)
		return fmt.Errorf("kick: the broker did not report the duplicate login: %w", err)
	}
	r.mu.Lock()
	r.intruder[in.Seq] = true
	r.mu.Unlock()
	cl.Disconnect(0)
	// Its end: offline (disconnected), or already replaced by the board's
	// next login (kicked); either belongs to the intruder.
	end, err := r.br.Events().WaitAfter(ctx, broker.After(in), func(e broker.Event) bool {
		return e.DeviceID == DeviceID && (e.Kind == broker.Disconnected || e.Kind == broker.Kicked)
	})
	if err != nil {
		return fmt.Errorf("kick: the duplicate login did not end: %w", err)
	}
	r.mu.Lock()
	r.intruder[end.Seq] = true
	r.mu.Unlock()
	return nil
}

func deadline(ctx context.Context, def time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(def)
}

// Serial returns the board's serial lines from the last Begin on.
func (r *Rig) Serial() scenario.Serial { return serialLines{r} }

type serialLines struct{ r *Rig }

// Next returns the line at the cursor (waiting for it) and moves on; an
// ended ctx leaves the cursor where it was, so no line is lost.
func (s serialLines) Next(ctx context.Context) (report.Line, error) {
	r := s.r
	r.mu.Lock()
	from := r.cursor
	r.mu.Unlock()
	ln, err := r.link.Next(ctx, from)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return report.Line{}, ctx.Err()
	case errors.Is(err, link.ErrLinesLost):
		// Said once: the reader goes on from the oldest line kept.
		r.mu.Lock()
		r.cursor = ln.Seq
		r.mu.Unlock()
		return report.Line{}, fmt.Errorf("serial: %w", err)
	default:
		return report.Line{}, fmt.Errorf("serial: %w", r.mask.MaskError(err))
	}
	r.mu.Lock()
	r.cursor = ln.Seq + 1
	r.mu.Unlock()
	return report.Line{At: ln.Time, Text: ln.Text}, nil
}

// ledPin is the LED's pin on a board whose pins can be read.
type ledPin struct{ pins dut.PinReader }

func (p ledPin) Level() (int, error) { return p.pins.Pin(LEDPin), nil }

func (p ledPin) Await(ctx context.Context, level int) (int, error) {
	if err := p.pins.WaitPin(ctx, LEDPin, level); err != nil {
		return p.pins.Pin(LEDPin), err
	}
	return level, nil
}

// kindName maps the broker's event kinds to the scenario file's words.
var kindName = map[broker.EventKind]string{
	broker.Connected: "connected", broker.Refused: "refused", broker.Disconnected: "disconnected", broker.Kicked: "kicked",
}

// match selects the device's events of kind want, leaving out those of
// the harness's own duplicate login (Fault(kick)).
func (r *Rig) match(want scenario.BrokerEvent) func(broker.Event) bool {
	return func(e broker.Event) bool {
		if e.DeviceID != DeviceID || kindName[e.Kind] != want.Kind {
			return false
		}
		if want.Kind == "refused" && want.RC >= 0 && int(e.Code) != want.RC {
			return false
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		return !r.intruder[e.Seq]
	}
}

// AwaitBroker waits for want about the device, counting only events since
// the last Begin or Fault.
func (r *Rig) AwaitBroker(ctx context.Context, want scenario.BrokerEvent) error {
	if !slices.Contains(slices.Collect(maps.Values(kindName)), want.Kind) {
		return fmt.Errorf("rig: unknown broker event %q", want.Kind)
	}
	r.mu.Lock()
	mark := r.mark
	r.mu.Unlock()
	_, err := r.br.Events().WaitAfter(ctx, mark, r.match(want))
	return err
}

// newMark starts a fault: AwaitBroker looks only after this point.
func (r *Rig) newMark() broker.Mark {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mark = r.br.Events().Mark()
	clear(r.intruder)
	return r.mark
}
