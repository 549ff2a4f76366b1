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

// BenchmarkFirmwareHeap is the firmware's heap on the virtual board (issue
// 16's budget: boot, log in and serve 10,000 commands on a 28 KB heap): one
// heap step per iteration, b.N commands, on both platforms. It reports the
// step figures in bytes (harness/rig/heap.go):
//
//	go test -run XXX -bench FirmwareHeap -benchtime 10000x ./harness/rig
func BenchmarkFirmwareHeap(b *testing.B) {
	for _, p := range []scenario.Platform{scenario.Legacy, scenario.Studio} {
		b.Run(string(p)+"/28K", func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
			defer cancel()
			r, err := New(ctx, Options{Heap: 28 * 1024, Platform: p})
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			if err := r.Begin(ctx, scenario.Setup{Profile: "hil"}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			h, err := r.ProbeHeap(ctx, b.N)
			b.StopTimer()
			if err != nil {
				b.Fatalf("%v (%s)", err, h)
			}
			b.ReportMetric(float64(h.Size), "heap-B")
			b.ReportMetric(float64(h.Boot), "boot-B")
			b.ReportMetric(float64(h.Login), "login-B")
			b.ReportMetric(float64(h.Command), "command-B")
			b.ReportMetric(float64(h.Live), "live-B")
			b.Logf("%d commands: %s", b.N, h)
		})
	}
}
