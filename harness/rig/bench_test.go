package rig

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/onenet-hil/hil/harness/report"
	"github.com/onenet-hil/hil/harness/scenario"
)

// BenchmarkEchoLatency measures command-to-echo latency on the virtual
// board: a $creq "toggle" pushed by the broker until its "HIL led" line is
// read from the serial port, one command at a time, as the runner does.
// Report the figure with -benchtime=1000x:
//
//	go test -run XXX -bench EchoLatency -benchtime 1000x ./harness/rig
func BenchmarkEchoLatency(b *testing.B) {
	for _, c := range []struct {
		name     string
		lineRate bool
	}{{"unpaced", false}, {"linerate", true}} {
		b.Run(c.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			r, err := New(ctx, Options{LineRate: c.lineRate})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			if err := r.Begin(ctx, scenario.Setup{Profile: "hil"}); err != nil {
				b.Fatal(err)
			}
			ser := r.Serial()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sent := time.Now()
				if err := r.Send(ctx, scenario.Creq, []byte("toggle"), scenario.SendOptions{}); err != nil {
					b.Fatal(err)
				}
				for {
					wctx, stop := context.WithTimeout(ctx, 10*time.Second)
					l, err := ser.Next(wctx)
					stop()
					if err != nil {
						b.Fatalf("command %d: no echo: %v; last lines: %v", i, err, r.Link().Tail(10))
					}
					if strings.HasPrefix(l.Text, "HIL led ") {
						lat = append(lat, l.At.Sub(sent))
						break
					}
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(report.Percentile(lat, 50))/1e6, "p50-ms")
			b.ReportMetric(float64(report.Percentile(lat, 99))/1e6, "p99-ms")
			b.ReportMetric(float64(report.Percentile(lat, 100))/1e6, "max-ms")
		})
	}
}
