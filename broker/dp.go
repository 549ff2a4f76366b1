package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Datapoint is one stored value of a datastream. Value is what JSON decoding
// gives (float64, string, bool, map, slice) or, for a type 2 upload, the
// binary body as []byte.
type Datapoint struct {
	At    time.Time
	Value any
}

// DPRecord is one parsed data point with its datastream id. A zero At means
// "no time given": the broker stamps it with the arrival time.
type DPRecord struct {
	Stream string
	At     time.Time
	Value  any
}

// OneNET shows and parses times in China Standard Time.
var cst = time.FixedZone("CST", 8*3600)

const (
	dpTimeLayout  = "2006-01-02 15:04:05"
	apiTimeLayout = "2006-01-02 15:04:05.000"
)

const maxDPStreamID = 256

// ParseDP parses a `$dp` payload. The first byte is the type (bits 0-5), a
// reserved bit (6, must be 0) and, for types 6 and 7 only, the time flag
// (bit 7): six time bytes follow it. Types 1 to 6 then carry a 2-byte
// big-endian length and that many body bytes; type 7 carries its records
// directly (broker/README.md, "What OneNET does", has each layout).
func ParseDP(p []byte) ([]DPRecord, error) {
	if len(p) < 1 {
		return nil, errors.New("$dp: empty payload, want a type byte")
	}
	typ, flags := p[0]&0x3f, p[0]&0xc0
	switch {
	case flags&0x40 != 0:
		return nil, fmt.Errorf("$dp: type byte 0x%02x: reserved bit 6 set", p[0])
	case flags&0x80 != 0 && typ != 6 && typ != 7:
		return nil, fmt.Errorf("$dp: type byte 0x%02x: the time flag is for types 6 and 7 only", p[0])
	}
	rest := p[1:]
	var at time.Time
	if flags&0x80 != 0 {
		if len(rest) < 6 {
			return nil, fmt.Errorf("$dp type %d: time flag set, %d of the 6 time bytes follow", typ, len(rest))
		}
		t, err := dpBinaryTime(rest[:6])
		if err != nil {
			return nil, fmt.Errorf("$dp type %d: %w", typ, err)
		}
		at, rest = t, rest[6:]
	}
	var recs []DPRecord
	var err error
	if typ == 7 {
		recs, err = parseType7(rest, at)
	} else {
		if len(rest) < 2 {
			return nil, fmt.Errorf("$dp: %d bytes, want at least 3 (type, 2-byte length)", len(p))
		}
		n := int(binary.BigEndian.Uint16(rest[:2]))
		if len(rest)-2 < n {
			return nil, fmt.Errorf("$dp: length field says %d bytes, only %d follow", n, len(rest)-2)
		}
		body, tail := rest[2:2+n], rest[2+n:]
		if typ != 2 && len(tail) != 0 {
			return nil, fmt.Errorf("$dp: %d bytes after the %d-byte body", len(tail), n)
		}
		switch typ {
		case 1:
			recs, err = parseType1(body)
		case 2:
			recs, err = parseType2(body, tail)
		case 3:
			recs, err = parseType3(body)
		case 4:
			recs, err = parseType4(body)
		case 5:
			recs, err = parseType5(body)
		case 6:
			recs, err = parseType5(body)
			for i := range recs {
				if recs[i].At.IsZero() {
					recs[i].At = at // the header's time, if it has one
				}
			}
		default:
			return nil, fmt.Errorf("$dp: type %d not supported (1 to 7 are)", typ)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("$dp type %d: %w", typ, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("$dp type %d: no data points", typ)
	}
	for _, r := range recs {
		if r.Stream == "" || len(r.Stream) > maxDPStreamID {
			return nil, fmt.Errorf("$dp type %d: datastream id %q: must be 1..%d bytes", typ, shorten([]byte(r.Stream), 32), maxDPStreamID)
		}
	}
	return recs, nil
}

// dpBinaryTime reads the six time bytes of types 6 and 7: year - 2000,
// month, day, hour, minute, second, China Standard Time.
func dpBinaryTime(b []byte) (time.Time, error) {
	y, mo, d, h, mi, s := 2000+int(b[0]), int(b[1]), int(b[2]), int(b[3]), int(b[4]), int(b[5])
	t := time.Date(y, time.Month(mo), d, h, mi, s, 0, cst)
	if t.Year() != y || int(t.Month()) != mo || t.Day() != d || t.Hour() != h || t.Minute() != mi || t.Second() != s {
		return time.Time{}, fmt.Errorf("time bytes % x: not a date and time (year-2000, month, day, hour, minute, second)", b)
	}
	return t, nil
}

// type 7: records of a 2-byte big-endian datastream id (stored as its
// decimal text) and a 4-byte big-endian IEEE 754 float, up to the end.
func parseType7(b []byte, at time.Time) ([]DPRecord, error) {
	if len(b)%6 != 0 {
		return nil, fmt.Errorf("%d record bytes: want 6 per record (2-byte id, 4-byte float)", len(b))
	}
	out := make([]DPRecord, 0, len(b)/6)
	for ; len(b) > 0; b = b[6:] {
		f := math.Float32frombits(binary.BigEndian.Uint32(b[2:6]))
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return nil, fmt.Errorf("datastream %d: value is not a number", binary.BigEndian.Uint16(b[:2]))
		}
		out = append(out, DPRecord{Stream: strconv.Itoa(int(binary.BigEndian.Uint16(b[:2]))), At: at, Value: float64(f)})
	}
	return out, nil
}

func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON: %v", err)
	}
	if dec.More() {
		return errors.New("bad JSON: trailing data")
	}
	return nil
}

// jsonValue turns json.Number into float64 (or keeps the text when it does
// not fit) so stored values compare simply.
func jsonValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case map[string]any:
		for k, e := range x {
			x[k] = jsonValue(e)
		}
	case []any:
		for i, e := range x {
			x[i] = jsonValue(e)
		}
	}
	return v
}

func parseAt(s string) (time.Time, error) {
	t, err := time.ParseInLocation(dpTimeLayout, s, cst)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want YYYY-MM-DD hh:mm:ss", shorten([]byte(s), 40))
	}
	return t, nil
}

// type1Doc is the type 1 JSON, in $dp and in POST /devices/{id}/datapoints:
// {"datastreams":[{"id":"t","datapoints":[{"at":"...","value":1}]}]}
type type1Doc struct {
	Datastreams []struct {
		ID         string `json:"id"`
		Datapoints []struct {
			At    string `json:"at"`
			Value any    `json:"value"`
		} `json:"datapoints"`
	} `json:"datastreams"`
}

// parseType1 reads a $dp of type 1.
func parseType1(body []byte) ([]DPRecord, error) {
	var doc type1Doc
	if err := decodeJSON(body, &doc); err != nil {
		return nil, err
	}
	var out []DPRecord
	for _, ds := range doc.Datastreams {
		for _, dp := range ds.Datapoints {
			if dp.Value == nil {
				return nil, fmt.Errorf("datastream %q: data point without value", ds.ID)
			}
			r := DPRecord{Stream: ds.ID, Value: jsonValue(dp.Value)}
			if dp.At != "" {
				t, err := parseAt(dp.At)
				if err != nil {
					return nil, err
				}
				r.At = t
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// type 2: {"ds_id":"image","at":"...","desc":...} then a 4-byte big-endian
// length and the binary value.
func parseType2(header, rest []byte) ([]DPRecord, error) {
	var h struct {
		DsID string `json:"ds_id"`
		At   string `json:"at"`
		Desc any    `json:"desc"`
	}
	if err := decodeJSON(header, &h); err != nil {
		return nil, err
	}
	if len(rest) < 4 {
		return nil, errors.New("missing 4-byte binary length after the JSON header")
	}
	n := binary.BigEndian.Uint32(rest[:4])
	if uint64(len(rest)-4) != uint64(n) {
		return nil, fmt.Errorf("binary length field says %d bytes, %d follow", n, len(rest)-4)
	}
	r := DPRecord{Stream: h.DsID, Value: append([]byte(nil), rest[4:]...)}
	if h.At != "" {
		t, err := parseAt(h.At)
		if err != nil {
			return nil, err
		}
		r.At = t
	}
	return []DPRecord{r}, nil
}

// type 3: {"temperature":22.5,"humidity":"wet"}
func parseType3(body []byte) ([]DPRecord, error) {
	var m map[string]any
	if err := decodeJSON(body, &m); err != nil {
		return nil, err
	}
	out := make([]DPRecord, 0, len(m))
	for k, v := range m {
		if v == nil {
			return nil, fmt.Errorf("datastream %q: null value", k)
		}
		out = append(out, DPRecord{Stream: k, Value: jsonValue(v)})
	}
	sortRecords(out)
	return out, nil
}

// type 4: {"temperature":{"2015-03-22 22:31:12":22.5}}
func parseType4(body []byte) ([]DPRecord, error) {
	var m map[string]map[string]any
	if err := decodeJSON(body, &m); err != nil {
		return nil, err
	}
	var out []DPRecord
	for k, pts := range m {
		for at, v := range pts {
			t, err := parseAt(at)
			if err != nil {
				return nil, fmt.Errorf("datastream %q: %w", k, err)
			}
			if v == nil {
				return nil, fmt.Errorf("datastream %q: null value", k)
			}
			out = append(out, DPRecord{Stream: k, At: t, Value: jsonValue(v)})
		}
	}
	sortRecords(out)
	return out, nil
}

// type 5: ",;temperature,2015-03-22 22:31:12,22.5;102;pm2.5,89;10". The
// first two characters are the field and record separators; a record is
// "id,value", "id,time,value", or a bare value (datastream id "" is refused).
// OneNET's "102" style bare records belong to the previous stream; that is
// how we read them too.
func parseType5(body []byte) ([]DPRecord, error) {
	if len(body) < 2 {
		return nil, errors.New("want two separator characters first")
	}
	fs, rs := string(body[0]), string(body[1])
	if fs == rs {
		return nil, errors.New("field and record separators are the same")
	}
	var out []DPRecord
	prev := ""
	for _, rec := range strings.Split(string(body[2:]), rs) {
		if rec == "" {
			continue
		}
		f := strings.Split(rec, fs)
		r := DPRecord{}
		var val string
		switch len(f) {
		case 1:
			if prev == "" {
				return nil, fmt.Errorf("record %q: a bare value needs a datastream before it", shorten([]byte(rec), 40))
			}
			r.Stream, val = prev, f[0]
		case 2:
			r.Stream, val = f[0], f[1]
		case 3:
			t, err := parseAt(f[1])
			if err != nil {
				return nil, err
			}
			r.Stream, r.At, val = f[0], t, f[2]
		default:
			return nil, fmt.Errorf("record %q: %d fields, want 1 to 3", shorten([]byte(rec), 40), len(f))
		}
		if fv, err := strconv.ParseFloat(val, 64); err == nil {
			r.Value = fv
		} else {
			r.Value = val
		}
		prev = r.Stream
		out = append(out, r)
	}
	return out, nil
}

func sortRecords(rs []DPRecord) {
	// map order is random: sort for stable storage and events.
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Stream != rs[j].Stream {
			return rs[i].Stream < rs[j].Stream
		}
		return rs[i].At.Before(rs[j].At)
	})
}
