package broker

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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

// ParseDP parses a `$dp` payload: a type byte, a 2-byte big-endian length
// and that many body bytes. Types 1, 2, 3, 4 and 5 are understood.
func ParseDP(p []byte) ([]DPRecord, error) {
	if len(p) < 3 {
		return nil, fmt.Errorf("$dp: %d bytes, want at least 3 (type, 2-byte length)", len(p))
	}
	typ := p[0]
	n := int(binary.BigEndian.Uint16(p[1:3]))
	if len(p)-3 < n {
		return nil, fmt.Errorf("$dp: length field says %d bytes, only %d follow", n, len(p)-3)
	}
	body, rest := p[3:3+n], p[3+n:]
	if typ != 2 && len(rest) != 0 {
		return nil, fmt.Errorf("$dp: %d bytes after the %d-byte body", len(rest), n)
	}
	var recs []DPRecord
	var err error
	switch typ {
	case 1:
		recs, err = parseType1(body)
	case 2:
		recs, err = parseType2(body, rest)
	case 3:
		recs, err = parseType3(body)
	case 4:
		recs, err = parseType4(body)
	case 5:
		recs, err = parseType5(body)
	default:
		return nil, fmt.Errorf("$dp: type %d not supported (1, 2, 3, 4, 5 are)", typ)
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

// type 1: {"datastreams":[{"id":"t","datapoints":[{"at":"...","value":1}]}]}
func parseType1(body []byte) ([]DPRecord, error) {
	var doc struct {
		Datastreams []struct {
			ID         string `json:"id"`
			Datapoints []struct {
				At    string `json:"at"`
				Value any    `json:"value"`
			} `json:"datapoints"`
		} `json:"datastreams"`
	}
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
