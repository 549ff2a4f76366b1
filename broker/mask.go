package broker

import (
	"unsafe"

	"github.com/onenet-hil/hil/internal/secret"
)

// maskerAt is the masker built for one version of the registry.
type maskerAt struct {
	ver uint64
	m   *secret.Masker
}

// masker masks every master key, access key, auth_info and device key of
// the registry (Registry.secrets says which are left out), rebuilt when
// the registry changes.
func (b *Broker) masker() *secret.Masker {
	v := b.reg.version()
	if cur := b.mask.Load(); cur != nil && cur.ver == v {
		return cur.m
	}
	b.maskMu.Lock()
	defer b.maskMu.Unlock()
	if cur := b.mask.Load(); cur != nil && cur.ver == v {
		return cur.m
	}
	m := &maskerAt{ver: v, m: secret.NewMasker(b.reg.secrets()...)}
	b.mask.Store(m)
	return m.m
}

// A field is masked on its first bytes only, up to maskSlack past what the
// feed keeps of it: a secret that straddles the feed's cut is masked
// whole, and a 64 KB topic costs no more than a short one.
const (
	maskSlack = 512
	maskSpan  = eventPayloadMax + maskSlack
)

// cut keeps s's first n bytes (the feed marks the cut later).
func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// maskEvent masks the secrets in every field of e: a device that types its
// key into the wrong CONNECT field, a topic or a payload must not put it
// into the feed or the log.
//
// Fields the broker itself made are passed as they are, because masking
// them cannot change them: the ids of every event but refused are a
// registered device's and product's (Registry.secrets leaves out any
// secret found inside an id), a CmdUUID is the broker's own uuid, and so
// is the topic of a command event ($creq/{uuid}, or studio's request topic
// of a registered device). What a client typed (a refused login's ids, a
// topic it published to, a payload, a reason quoting it) is always masked.
func (b *Broker) maskEvent(e Event) Event {
	m := b.masker()
	if e.Kind == Refused {
		e.DeviceID = m.Mask(cut(e.DeviceID, eventIDMax+maskSlack))
		e.ProductID = m.Mask(cut(e.ProductID, eventIDMax+maskSlack))
	}
	switch e.Kind {
	case CommandSent, CommandReplied, CommandExpired:
	default:
		if e.Topic != "" {
			e.Topic = m.Mask(cut(e.Topic, eventTextMax+maskSlack))
		}
	}
	if e.Reason != "" {
		e.Reason = m.Mask(cut(e.Reason, eventTextMax+maskSlack))
	}
	if e.Payload != nil {
		if e.PayloadLen == 0 {
			e.PayloadLen = len(e.Payload)
		}
		p := e.Payload
		if len(p) > maskSpan {
			p = p[:maskSpan]
		}
		e.Payload = p
		// Masked in place of a copy: a payload without a secret comes back
		// as the same bytes, which the feed copies once (detached).
		if len(p) > 0 {
			if ms := m.Mask(unsafe.String(&p[0], len(p))); len(ms) != len(p) || unsafe.StringData(ms) != &p[0] {
				e.Payload = []byte(ms)
			}
		}
	}
	return e
}
