package board

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/onenet-hil/hil/harness/link"
)

// ResetMode is how a board is reset into its application.
type ResetMode int

const (
	// ResetAuto: hard reset through RTS, or a soft reset where the port
	// has no modem lines (a pty).
	ResetAuto ResetMode = iota
	// ResetHard pulses the EN pin through RTS (the auto-reset circuit).
	ResetHard
	// ResetSoft is Ctrl-D at the friendly prompt: boot.py and main.py run
	// again, the chip and its Wi-Fi are not restarted.
	ResetSoft
	// ResetMachine runs machine.reset() on the board.
	ResetMachine
)

func (m ResetMode) String() string {
	switch m {
	case ResetAuto:
		return "auto"
	case ResetHard:
		return "hard"
	case ResetSoft:
		return "soft"
	case ResetMachine:
		return "machine"
	}
	return fmt.Sprintf("ResetMode(%d)", int(m))
}

// ParseResetMode reads "auto", "hard", "soft" or "machine".
func ParseResetMode(s string) (ResetMode, error) {
	for _, m := range []ResetMode{ResetAuto, ResetHard, ResetSoft, ResetMachine} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("unknown reset mode %q (want auto, hard, soft or machine)", s)
}

// ResetHold is how long RTS holds the chip in reset.
const ResetHold = 100 * time.Millisecond

// HardReset pulses RTS with DTR off (DTR on with RTS off would pull GPIO0
// low and start the ROM bootloader instead): RTS on, hold, RTS off. A port
// without modem lines returns an error wrapping link.ErrNoModemLines.
func HardReset(ctx context.Context, l *link.Link) error {
	if err := l.SetDTR(false); err != nil {
		return fmt.Errorf("hard reset: %w", err)
	}
	if err := l.SetRTS(true); err != nil {
		return fmt.Errorf("hard reset: %w", err)
	}
	select {
	case <-time.After(ResetHold):
	case <-ctx.Done():
	}
	if err := l.SetRTS(false); err != nil {
		return fmt.Errorf("hard reset: release: %w", err)
	}
	return ctx.Err()
}

// Reset restarts the board's application and returns the way it used.
func (r *REPL) Reset(ctx context.Context, mode ResetMode) (ResetMode, error) {
	switch mode {
	case ResetAuto, ResetHard:
		r.mu.Lock()
		err := HardReset(ctx, r.link)
		r.inRaw = false
		r.mu.Unlock()
		if err == nil {
			return ResetHard, nil
		}
		if mode == ResetHard || !errors.Is(err, link.ErrNoModemLines) {
			return ResetHard, err
		}
		return ResetSoft, r.SoftReboot(ctx)
	case ResetSoft:
		return ResetSoft, r.SoftReboot(ctx)
	case ResetMachine:
		// The pause lets the board's answer leave its UART before it resets.
		return ResetMachine, r.ExecNoFollow(ctx, "import machine,time\ntime.sleep_ms(100)\nmachine.reset()")
	}
	return mode, fmt.Errorf("unknown reset mode %v", mode)
}
