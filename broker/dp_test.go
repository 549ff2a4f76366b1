package broker

import (
	"encoding/binary"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDPTypes(t *testing.T) {
	at := time.Date(2015, 3, 22, 22, 31, 12, 0, cst)
	t.Run("type 1", func(t *testing.T) {
		recs, err := ParseDP(dpPayload(1, `{"datastreams":[{"id":"temperature","datapoints":[{"at":"2015-03-22 22:31:12","value":36.5},{"value":"hot"}]}]}`))
		require.NoError(t, err)
		assert.Equal(t, []DPRecord{{Stream: "temperature", At: at, Value: 36.5}, {Stream: "temperature", Value: "hot"}}, recs)
	})
	t.Run("type 3", func(t *testing.T) {
		recs, err := ParseDP(dpPayload(3, `{"temperature":22.5,"led":"on"}`))
		require.NoError(t, err)
		assert.Equal(t, []DPRecord{{Stream: "led", Value: "on"}, {Stream: "temperature", Value: 22.5}}, recs)
	})
	t.Run("type 4", func(t *testing.T) {
		recs, err := ParseDP(dpPayload(4, `{"temperature":{"2015-03-22 22:31:12":22.5}}`))
		require.NoError(t, err)
		assert.Equal(t, []DPRecord{{Stream: "temperature", At: at, Value: 22.5}}, recs)
	})
	t.Run("type 5", func(t *testing.T) {
		recs, err := ParseDP(dpPayload(5, `,;temperature,2015-03-22 22:31:12,22.5;102;pm2.5,89;10`))
		require.NoError(t, err)
		assert.Equal(t, []DPRecord{
			{Stream: "temperature", At: at, Value: 22.5}, {Stream: "temperature", Value: 102.0},
			{Stream: "pm2.5", Value: 89.0}, {Stream: "pm2.5", Value: 10.0},
		}, recs)
	})
	t.Run("type 2", func(t *testing.T) {
		p := dpPayload(2, `{"ds_id":"image","at":"2015-03-22 22:31:12","desc":"jpg"}`)
		p = binary.BigEndian.AppendUint32(p, 3)
		p = append(p, 0xFF, 0xD8, 0xFF)
		recs, err := ParseDP(p)
		require.NoError(t, err)
		assert.Equal(t, []DPRecord{{Stream: "image", At: at, Value: []byte{0xFF, 0xD8, 0xFF}}}, recs)
	})
}

// dpTimed builds a type 6 or 7 payload with the time flag and the six
// time bytes of at (China Standard Time).
func dpTimed(typ byte, at time.Time, rest []byte) []byte {
	at = at.In(cst)
	p := []byte{typ | 0x80, byte(at.Year() - 2000), byte(at.Month()), byte(at.Day()), byte(at.Hour()), byte(at.Minute()), byte(at.Second())}
	return append(p, rest...)
}

func type7Record(id uint16, v float32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, id), math.Float32bits(v))
}

func TestParseDPTypes6And7(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, cst)
	body := `,;temperature,22.5;23;pm2.5,2015-03-22 22:31:12,89`
	t.Run("type 6 without time", func(t *testing.T) {
		recs, err := ParseDP(dpPayload(6, body))
		require.NoError(t, err)
		assert.Equal(t, []DPRecord{
			{Stream: "temperature", Value: 22.5}, {Stream: "temperature", Value: 23.0},
			{Stream: "pm2.5", At: time.Date(2015, 3, 22, 22, 31, 12, 0, cst), Value: 89.0},
		}, recs)
	})
	t.Run("type 6 with time (0x86)", func(t *testing.T) {
		p := dpTimed(6, at, dpPayload(0, body)[1:])
		require.Equal(t, byte(0x86), p[0])
		recs, err := ParseDP(p)
		require.NoError(t, err)
		assert.Equal(t, []DPRecord{
			{Stream: "temperature", At: at, Value: 22.5}, {Stream: "temperature", At: at, Value: 23.0},
			{Stream: "pm2.5", At: time.Date(2015, 3, 22, 22, 31, 12, 0, cst), Value: 89.0},
		}, recs, "a record's own time wins over the header's")
	})
	t.Run("type 7 without time", func(t *testing.T) {
		recs, err := ParseDP(append([]byte{7}, append(type7Record(1, 22.5), type7Record(65535, -0.25)...)...))
		require.NoError(t, err)
		assert.Equal(t, []DPRecord{{Stream: "1", Value: 22.5}, {Stream: "65535", Value: -0.25}}, recs)
	})
	t.Run("type 7 with time (0x87)", func(t *testing.T) {
		recs, err := ParseDP(dpTimed(7, at, type7Record(2, 1.5)))
		require.NoError(t, err)
		assert.Equal(t, []DPRecord{{Stream: "2", At: at, Value: 1.5}}, recs)
	})
}

func TestParseDPRefusesMalformed(t *testing.T) {
	for name, p := range map[string][]byte{
		"empty":             nil,
		"short length":      {3, 0},
		"length too long":   {3, 0, 9, '{', '}'},
		"trailing bytes":    append(dpPayload(3, `{"a":1}`), 'x'),
		"unknown type":      dpPayload(9, `{"a":1}`),
		"bad json":          dpPayload(3, `{"a":`),
		"no points":         dpPayload(3, `{}`),
		"null value":        dpPayload(3, `{"a":null}`),
		"empty stream id":   dpPayload(3, `{"":1}`),
		"bad time type 4":   dpPayload(4, `{"a":{"yesterday":1}}`),
		"bad time type 1":   dpPayload(1, `{"datastreams":[{"id":"a","datapoints":[{"at":"x","value":1}]}]}`),
		"type 1 no value":   dpPayload(1, `{"datastreams":[{"id":"a","datapoints":[{"at":"2015-03-22 22:31:12"}]}]}`),
		"type 5 same seps":  dpPayload(5, `;;a;1`),
		"type 5 bare first": dpPayload(5, `,;12`),
		"type 5 4 fields":   dpPayload(5, `,;a,b,c,d`),
		"type 2 no binary":  dpPayload(2, `{"ds_id":"i"}`),
		"type 2 short bin":  append(binary.BigEndian.AppendUint32(dpPayload(2, `{"ds_id":"i"}`), 5), 1),
		"time flag type 3":  append([]byte{0x83, 24, 1, 2, 3, 4, 5}, dpPayload(3, `{"a":1}`)[1:]...),
		"reserved bit":      append([]byte{0x43}, dpPayload(3, `{"a":1}`)[1:]...),
		"short time":        {0x87, 24, 1, 2},
		"not a date":        append([]byte{0x87, 24, 2, 30, 0, 0, 0}, type7Record(1, 1)...),
		"type 7 empty":      {7},
		"type 7 partial":    append(type7Record(1, 1), 0)[0:5],
		"type 7 NaN":        append([]byte{7}, type7Record(1, float32(math.NaN()))...),
		"type 6 no length":  {6, 0},
	} {
		t.Run(name, func(t *testing.T) {
			recs, err := ParseDP(p)
			assert.Error(t, err)
			assert.Nil(t, recs)
		})
	}
}

// FuzzParseDP: no input may panic or yield records without a stream id; the
// seed corpus is in testdata/fuzz/FuzzParseDP.
func FuzzParseDP(f *testing.F) {
	f.Add(dpPayload(1, `{"datastreams":[{"id":"t","datapoints":[{"value":1}]}]}`))
	f.Add(dpPayload(3, `{"temperature":22.5}`))
	f.Add(dpPayload(4, `{"t":{"2015-03-22 22:31:12":1}}`))
	f.Add(dpPayload(5, `,;t,1;2`))
	f.Add(dpPayload(6, `,;t,1;2`))
	f.Add(dpTimed(7, time.Date(2024, 1, 2, 3, 4, 5, 0, cst), type7Record(1, 2.5)))
	f.Fuzz(func(t *testing.T, p []byte) {
		recs, err := ParseDP(p)
		if err != nil {
			if recs != nil {
				t.Fatalf("records with an error: %v", recs)
			}
			return
		}
		if len(recs) == 0 {
			t.Fatal("no error and no records")
		}
		for _, r := range recs {
			if r.Stream == "" || r.Value == nil {
				t.Fatalf("bad record %+v", r)
			}
		}
	})
}
