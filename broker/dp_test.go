package broker

import (
	"encoding/binary"
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
