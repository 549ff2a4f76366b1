package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/stretchr/testify/require"
)

func benchRegistry(b *testing.B, n int) *Registry {
	r := DemoRegistry()
	for i := 0; i < n; i++ {
		require.NoError(b, r.AddDevice(DemoProductID, Device{ID: fmt.Sprintf("bench%04d", i), AuthInfo: fmt.Sprintf("k%d", i)}))
	}
	return r
}

// BenchmarkLogin: full MQTT 3.1.1 logins (TCP connect, CONNECT, CONNACK 0,
// DISCONNECT) by paho clients, one after another.
func BenchmarkLogin(b *testing.B) {
	const pool = 100
	br := startBroker(b, benchRegistry(b, pool))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		id := fmt.Sprintf("bench%04d", i%pool)
		o, _ := deviceOptions(br.MQTTAddr(), id, DemoProductID, fmt.Sprintf("k%d", i%pool))
		c := paho.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(waitBound) || tok.Error() != nil {
			b.Fatalf("login %s: %v\n%s", id, tok.Error(), lastEvents(br))
		}
		c.Disconnect(0)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}

// BenchmarkCommandRoundTrip: SendCommand (go) or POST /cmds (http) ->
// $creq received by a paho client -> $crsp replied -> status 4, with 1, 100
// and 1000 devices connected; commands go to the devices in turn.
func BenchmarkCommandRoundTrip(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		br := startBroker(b, benchRegistry(b, n))
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("bench%04d", i)
			o, _ := deviceOptions(br.MQTTAddr(), ids[i], DemoProductID, fmt.Sprintf("k%d", i))
			o.SetDefaultPublishHandler(func(c paho.Client, m paho.Message) {
				if uuid, ok := strings.CutPrefix(m.Topic(), "$creq/"); ok {
					c.Publish("$crsp/"+uuid, 0, false, append([]byte("ok:"), m.Payload()...))
				}
			})
			c := paho.NewClient(o)
			tok := c.Connect()
			require.True(b, tok.WaitTimeout(waitBound))
			require.NoError(b, tok.Error())
			b.Cleanup(func() { c.Disconnect(0) })
		}
		hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
		send := map[string]func(id string) (string, error){
			"go": func(id string) (string, error) {
				return br.SendCommand(id, []byte("toggle"), CommandOptions{})
			},
			"http": func(id string) (string, error) {
				req, _ := http.NewRequest("POST", "http://"+br.HTTPAddr()+"/cmds?device_id="+id, strings.NewReader("toggle"))
				req.Header.Set("api-key", DemoMasterKey)
				resp, err := hc.Do(req)
				if err != nil {
					return "", err
				}
				defer resp.Body.Close()
				raw, _ := io.ReadAll(resp.Body)
				var r struct {
					Errno int
					Error string
					Data  struct {
						UUID string `json:"cmd_uuid"`
					}
				}
				if err := json.Unmarshal(raw, &r); err != nil || r.Errno != 0 {
					return "", fmt.Errorf("POST /cmds: %s", raw)
				}
				return r.Data.UUID, nil
			},
		}
		for _, api := range []string{"go", "http"} {
			b.Run(fmt.Sprintf("api=%s/devices=%d", api, n), func(b *testing.B) {
				lat := make([]time.Duration, 0, b.N)
				var last string
				b.ResetTimer()
				start := time.Now()
				for i := 0; i < b.N; i++ {
					t0 := time.Now()
					mark := br.Events().Mark()
					uuid, err := send[api](ids[i%n])
					if err != nil {
						b.Fatal(err)
					}
					ctx, cancel := context.WithTimeout(context.Background(), waitBound)
					_, err = br.Events().WaitAfter(ctx, mark, ForCommand(CommandReplied, uuid))
					cancel()
					if err != nil {
						b.Fatal(err)
					}
					lat = append(lat, time.Since(t0))
					last = uuid
				}
				elapsed := time.Since(start)
				b.StopTimer()
				if info, _ := br.Command(last); info.Status != CmdReplied || !strings.HasPrefix(string(info.Response), "ok:") {
					b.Fatalf("last command: status %d, response %q", info.Status, info.Response)
				}
				sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "cmds/s")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			})
		}
		_ = br.Close()
	}
}
