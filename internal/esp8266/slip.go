package esp8266

// SLIP framing (RFC 1055 as the ROM uses it): every packet starts and ends
// with 0xC0; inside, 0xC0 is sent as 0xDB 0xDC and 0xDB as 0xDB 0xDD.
const (
	slipEnd    = 0xC0
	slipEsc    = 0xDB
	slipEscEnd = 0xDC
	slipEscEsc = 0xDD
)

// SLIPEncode frames p as one SLIP packet.
func SLIPEncode(p []byte) []byte {
	out := make([]byte, 0, len(p)+len(p)/16+2)
	out = append(out, slipEnd)
	for _, c := range p {
		switch c {
		case slipEnd:
			out = append(out, slipEsc, slipEscEnd)
		case slipEsc:
			out = append(out, slipEsc, slipEscEsc)
		default:
			out = append(out, c)
		}
	}
	return append(out, slipEnd)
}

// SLIPDecoder takes bytes as they arrive and returns the packets they
// complete. Bytes outside a packet (boot output, noise) are dropped, as are
// empty packets (two 0xC0 in a row).
type SLIPDecoder struct {
	in     bool
	esc    bool
	cur    []byte
	Max    int // longest packet kept (default 64 KiB); a longer one is dropped
	Errors int // malformed escapes and overlong packets seen
}

// Drain returns the bytes of the packet in progress (after the last
// complete one: text a board printed once it left the protocol) and starts
// afresh.
func (d *SLIPDecoder) Drain() []byte {
	out := append([]byte(nil), d.cur...)
	d.in, d.esc, d.cur = false, false, nil
	return out
}

// Feed decodes p and returns the packets it completed.
func (d *SLIPDecoder) Feed(p []byte) [][]byte {
	max := d.Max
	if max == 0 {
		max = 64 << 10
	}
	var out [][]byte
	for _, c := range p {
		if !d.in {
			if c == slipEnd {
				d.in, d.esc, d.cur = true, false, d.cur[:0]
			}
			continue
		}
		switch {
		case c == slipEnd:
			if len(d.cur) > 0 {
				out = append(out, append([]byte(nil), d.cur...))
			}
			// The end of one packet may also start the next (a shared 0xC0).
			d.cur, d.esc = d.cur[:0], false
			continue
		case d.esc:
			d.esc = false
			switch c {
			case slipEscEnd:
				c = slipEnd
			case slipEscEsc:
				c = slipEsc
			default:
				d.Errors++
				d.in = false
				continue
			}
		case c == slipEsc:
			d.esc = true
			continue
		}
		if len(d.cur) >= max {
			d.Errors++
			d.in = false
			continue
		}
		d.cur = append(d.cur, c)
	}
	return out
}
