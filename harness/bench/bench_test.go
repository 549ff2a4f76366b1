package bench

import (
	"context"
	"testing"
	"time"
)

// BenchmarkRoundTrip runs a small fleet against each broker; b.N commands
// are sent at 500/s and the round trip percentiles are reported as
// metrics. `hil bench` is the full-size measurement.
func BenchmarkRoundTrip(b *testing.B) {
	for _, c := range []struct {
		name string
		run  func(context.Context, Options) (*Result, error)
		path Path
	}{
		{"embedded/topic", RunEmbedded, PathTopic},
		{"embedded/creq", RunEmbedded, PathCreq},
		{"embedded/http", RunEmbedded, PathHTTP},
		{"mosquitto/topic", RunMosquitto, PathTopic},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.name == "mosquitto/topic" {
				needMosquitto(b)
			}
			const rate = 500
			d := max(time.Duration(b.N)*time.Second/rate, 200*time.Millisecond)
			b.ResetTimer()
			res, err := c.run(context.Background(), Options{Devices: 200, Rate: rate, Duration: d, Path: c.path})
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if res.Lost > 0 {
				b.Errorf("lost %d commands: %v", res.Lost, res.LostBy)
			}
			b.ReportMetric(res.P50ms, "p50-ms")
			b.ReportMetric(res.P99ms, "p99-ms")
			b.ReportMetric(res.ThroughputCPS, "cmd/s")
			b.ReportMetric(res.LoginsPS, "logins/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
