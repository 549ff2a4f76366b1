package dut

import (
	"context"
	"fmt"

	"github.com/onenet-hil/hil/harness/board"
	"github.com/onenet-hil/hil/harness/link"
)

// serialBoard is a real board on a serial port (or anything that answers
// like one: a virtual board's pty opened as a port).
type serialBoard struct {
	link *link.Link
}

// resettableSerial is a serial board whose port has modem lines: the
// ESP8266 auto-reset circuit makes RTS its power cycle.
type resettableSerial struct{ *serialBoard }

func openSerial(_ context.Context, spec Spec) (Board, error) {
	port := spec.Port
	if port == "" {
		return nil, fmt.Errorf("a serial board needs a port")
	}
	if port == "auto" {
		p, err := link.FindBoard()
		if err != nil {
			return nil, fmt.Errorf("port auto: %w", err)
		}
		port = p.Name
	}
	l, err := link.Open(port, linkOptions(spec))
	if err != nil {
		return nil, err
	}
	b := &serialBoard{link: l}
	// The probe leaves both lines off, the "run" state (RTS on would hold
	// the chip in reset; DTR on alone would start the bootloader at the
	// next reset).
	if l.HasModemLines() {
		return resettableSerial{b}, nil
	}
	return b, nil
}

func (b *serialBoard) Link() *link.Link { return b.link }

func (b *serialBoard) Describe() string { return "board on " + b.link.Name() }

func (b *serialBoard) Close() error { return b.link.Close() }

func (b resettableSerial) PowerCycle(ctx context.Context) error { return board.HardReset(ctx, b.link) }
