package rig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/onenet-hil/hil/broker"
	"github.com/onenet-hil/hil/firmware"
	"github.com/onenet-hil/hil/harness/board"
	"github.com/onenet-hil/hil/harness/echo"
	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/harness/scenario"
)

// Begin gets the board ready for one scenario, in four steps: sync the
// firmware of setup.Profile (only what changed); mark the serial log and
// the broker's feed; reset; wait until the board's echo (parsed through
// the profile) and the broker agree that it logged in (or, with wrong
// credentials, was refused).
func (r *Rig) Begin(ctx context.Context, setup scenario.Setup) error {
	prof, err := echo.Lookup(setup.Profile)
	if err != nil {
		return fmt.Errorf("rig: %w", err)
	}
	files, err := r.firmware(setup)
	if err != nil {
		return err
	}
	if r.caps.WiFi != nil {
		// A scenario that failed during an outage must not leave it behind.
		if err := r.caps.WiFi.SetWiFi(true); err != nil {
			return err
		}
	}
	if err := r.sync(ctx, files); err != nil {
		return r.mask.MaskError(err)
	}
	r.markScenario()
	if _, err := r.repl.Reset(ctx, board.ResetAuto); err != nil {
		return r.mask.MaskError(fmt.Errorf("rig: reset: %w", err))
	}
	return r.awaitLogin(ctx, prof, setup.WrongCredentials)
}

// firmware is what Begin puts on the board's flash for setup: the files of
// its profile and, for ours, config.json.
func (r *Rig) firmware(setup scenario.Setup) (map[string][]byte, error) {
	cfg := r.config(setup.WrongCredentials)
	switch setup.Profile {
	case "hil":
		cj, err := cfg.JSON()
		if err != nil {
			return nil, err
		}
		files := firmware.Files()
		files[board.ConfigPath] = cj
		if r.patch != nil {
			r.patch(files)
		}
		return files, nil
	case "tutorial":
		if r.Platform() == scenario.Studio {
			return nil, errors.New("rig: the tutorial profile is legacy only (its mqtt.py logs in with a key and reads $creq)")
		}
		return firmware.Tutorial(cfg), nil
	}
	return nil, fmt.Errorf("rig: no firmware for profile %q (want hil or tutorial)", setup.Profile)
}

// config is the board's config.json for this run on the current platform;
// wrong credentials are keys the broker does not know.
func (r *Rig) config(wrong bool) firmware.Config {
	p := r.Platform()
	c := firmware.Config{WiFiSSID: r.opts.WiFiSSID, WiFiPassword: r.opts.WiFiPassword,
		BrokerHost: r.boardHost, BrokerPort: r.port(p), Topic: Topic, LEDPin: LEDPin, Keepalive: 60}
	r.creds.login(&c, p, wrong)
	if r.caps.Sandbox != nil {
		c.BackoffMS = VirtualBackoffMS
	}
	if r.tweak != nil {
		r.tweak(&c)
	}
	return c
}

// port is the port of platform p's listener.
func (r *Rig) port(p scenario.Platform) int {
	_, port, _ := net.SplitHostPort(r.listener(p))
	n, _ := strconv.Atoi(port)
	return n
}

// sync makes the board's files match files. A board that does not answer
// its REPL is power-cycled once (where it can be) and tried again. The
// flash of a sandboxed board is the harness's own and is pruned; on a
// real board the user's other files (data, lib/, certificates) survive.
func (r *Rig) sync(ctx context.Context, files map[string][]byte) error {
	// A sandboxed board's heap is not a concern for the upload, and the reset
	// right after the sync restarts it anyway: no soft reset before it.
	opts := board.SyncOptions{Prune: r.caps.Sandbox != nil, Keep: []string{"webrepl_cfg.py"}, Progress: r.opts.Progress,
		NoSoftReset: r.caps.Sandbox != nil}
	_, err := board.Sync(ctx, r.repl, files, opts)
	if err == nil || ctx.Err() != nil || r.caps.PowerCycle == nil {
		return err
	}
	if perr := r.caps.PowerCycle.PowerCycle(ctx); perr != nil {
		return fmt.Errorf("%v; power cycle to recover: %v", err, perr)
	}
	if _, err2 := board.Sync(ctx, r.repl, files, opts); err2 != nil {
		return fmt.Errorf("%v; again after a power cycle: %v", err, err2)
	}
	return nil
}

// markScenario starts a scenario's view of the board: from here on every
// serial line and broker event belongs to it.
func (r *Rig) markScenario() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cursor = r.link.Mark()
	r.mark = r.br.Events().Mark()
	clear(r.intruder)
}

// awaitLogin waits, within the boot timeout, for the profile's login echo
// (or refusal) and the broker's matching event, both after the marks.
func (r *Rig) awaitLogin(ctx context.Context, prof echo.Profile, refused bool) error {
	want, kind := "login", broker.Connected
	if refused {
		want, kind = "refusal", broker.Refused
	}
	ready := echo.LoginLine(prof, refused)
	boot := time.Until(deadline(ctx, r.opts.BootTimeout))
	bctx, cancel := context.WithTimeout(ctx, boot)
	defer cancel()
	r.mu.Lock()
	from, mark := r.cursor, r.mark
	r.mu.Unlock()
	var err error
	ln, lineErr := r.link.WaitLine(bctx, from, fmt.Sprintf("the %s profile's %s echo", prof.Name(), want), boot,
		func(ln link.Line) bool { return ready(ln.Text) })
	_, brokerErr := r.br.Events().WaitAfter(bctx, mark, r.match(scenario.BrokerEvent{Kind: kindName[kind], RC: -1}))
	switch {
	case lineErr != nil && brokerErr != nil:
		err = fmt.Errorf("rig: board did not come up: %w; broker: %v", lineErr, brokerErr)
	case lineErr != nil:
		err = fmt.Errorf("rig: the broker saw the login but the board did not echo it: %w", lineErr)
	case brokerErr != nil:
		err = fmt.Errorf("rig: the board echoed %q but the broker saw no login: %w", ln.Text, brokerErr)
	default:
		return nil
	}
	return r.mask.MaskError(err)
}
