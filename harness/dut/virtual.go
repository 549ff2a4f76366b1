package dut

import (
	"context"
	"errors"
	"fmt"
	"maps"

	"github.com/onenet-hil/hil/harness/link"
	"github.com/onenet-hil/hil/sim"
)

// virtualBoard is the virtual TPYBoard (package sim) on its pty. It has
// every capability.
type virtualBoard struct {
	sim      *sim.Board
	link     *link.Link
	lineRate bool
	redir    map[string]string
}

func openVirtual(ctx context.Context, spec Spec) (Board, error) {
	if spec.Port != "" {
		return nil, fmt.Errorf("a virtual board makes its own port; %s was given", spec.Port)
	}
	s, err := sim.Start(ctx, sim.Options{LineRate: spec.LineRate, Redirects: spec.Redirects, Heap: spec.Heap})
	if err != nil {
		return nil, fmt.Errorf("virtual board: %w", err)
	}
	l, err := link.Open(s.Port(), linkOptions(spec))
	if err != nil {
		s.Close()
		return nil, err
	}
	return &virtualBoard{sim: s, link: l, lineRate: spec.LineRate, redir: maps.Clone(spec.Redirects)}, nil
}

func (b *virtualBoard) Link() *link.Link { return b.link }

func (b *virtualBoard) Describe() string {
	d := "virtual board (" + b.sim.Port() + ")"
	if b.lineRate {
		d += " at 115200 baud"
	}
	return d
}

func (b *virtualBoard) Close() error {
	return errors.Join(b.link.Close(), b.sim.Close())
}

func (b *virtualBoard) PowerCycle(context.Context) error { return b.sim.PowerCycle() }

func (b *virtualBoard) SetWiFi(up bool) error { return b.sim.SetWiFi(up) }

func (b *virtualBoard) Pin(n int) int { return b.sim.Pin(n) }

func (b *virtualBoard) WaitPin(ctx context.Context, n, level int) error {
	return b.sim.WaitPin(ctx, n, level)
}

func (b *virtualBoard) Redirects() map[string]string { return maps.Clone(b.redir) }

// Sim is the virtual board behind b, for tests that look inside it.
func Sim(b Board) *sim.Board {
	if v, ok := b.(*virtualBoard); ok {
		return v.sim
	}
	return nil
}
