package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the JSON document of one `hil bench` run.
type Report struct {
	Time     time.Time `json:"time"`
	Machine  Machine   `json:"machine"`
	Devices  int       `json:"devices"`
	Rate     float64   `json:"rate"`
	Duration float64   `json:"duration_s"`
	Results  []*Result `json:"results"`
	// Ratio is the embedded broker's figure divided by Mosquitto's, for
	// the custom-topic path measured on both (at the first rate both ran).
	Ratio map[string]float64 `json:"ratio_embedded_to_mosquitto,omitempty"`
	// RatioByRate is the same for every rate both ran, keyed by rate.
	RatioByRate map[string]map[string]float64 `json:"ratio_by_rate,omitempty"`
	// MochiRatioByRate is the embedded broker's figure divided by bare
	// Mochi's (what our hooks cost over Mochi's floor), keyed by rate.
	MochiRatioByRate map[string]map[string]float64 `json:"ratio_embedded_to_mochi_by_rate,omitempty"`
	// HighestRate is, per "broker path", the highest rate measured with
	// p99 under 20 ms and nothing lost.
	HighestRate map[string]float64 `json:"highest_rate_p99_under_20ms,omitempty"`
}

// P99Limit is the round trip that HighestRate holds under.
const P99Limit = 20.0

// Machine says where the figures were taken.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	GOGC      string `json:"gogc,omitempty"`
	Memlimit  string `json:"gomemlimit,omitempty"`
}

// NewReport gathers results; the ratio is added when both an embedded and
// a Mosquitto result on the topic path are present.
func NewReport(o Options, results []*Result) *Report {
	r := &Report{Time: time.Now().UTC(), Devices: o.Devices, Rate: o.Rate, Duration: o.Duration.Seconds(), Results: results,
		Machine: Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), GOGC: os.Getenv("GOGC"), Memlimit: os.Getenv("GOMEMLIMIT")}}
	for _, rate := range rates(results) {
		e, m := find(results, "embedded", PathTopic, rate), find(results, "mosquitto", PathTopic, rate)
		if e == nil || m == nil {
			continue
		}
		if r.Ratio == nil {
			r.Ratio = Ratio(e, m)
			r.RatioByRate = map[string]map[string]float64{}
		}
		r.RatioByRate[fmt.Sprint(rate)] = Ratio(e, m)
	}
	for _, rate := range rates(results) {
		e, m := find(results, "embedded", PathTopic, rate), find(results, "mochi", PathTopic, rate)
		if e == nil || m == nil {
			continue
		}
		if r.MochiRatioByRate == nil {
			r.MochiRatioByRate = map[string]map[string]float64{}
		}
		r.MochiRatioByRate[fmt.Sprint(rate)] = Ratio(e, m)
	}
	if len(rates(results)) > 1 {
		r.HighestRate = map[string]float64{}
		for _, x := range results {
			k := x.Broker + " " + string(x.Path)
			if x.P99ms < P99Limit && x.Lost == 0 && x.Replied > 0 && x.Rate > r.HighestRate[k] {
				r.HighestRate[k] = x.Rate
			}
		}
	}
	return r
}

func rates(rs []*Result) []float64 {
	var out []float64
	seen := map[float64]bool{}
	for _, r := range rs {
		if !seen[r.Rate] {
			seen[r.Rate] = true
			out = append(out, r.Rate)
		}
	}
	return out
}

func find(rs []*Result, broker string, p Path, rate float64) *Result {
	for _, r := range rs {
		if r.Broker == broker && r.Path == p && r.Rate == rate {
			return r
		}
	}
	return nil
}

// WriteJSON writes the report to path.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// WriteTable prints the figures side by side, one table per rate, with
// the embedded/mosquitto ratio when both were measured.
func (r *Report) WriteTable(w io.Writer) {
	all := r.rateRuns()
	for i, rate := range rates(r.Results) {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if len(all) > 1 {
			fmt.Fprintf(w, "%.0f commands/s offered\n", rate)
		}
		r.writeRateTable(w, all[rate], r.RatioByRate[fmt.Sprint(rate)], r.MochiRatioByRate[fmt.Sprint(rate)])
	}
	for _, res := range r.Results {
		for _, n := range res.Notes {
			fmt.Fprintf(w, "note (%s %s, %.0f/s): %s\n", res.Broker, res.Path, res.Rate, n)
		}
	}
	if len(r.HighestRate) > 0 {
		keys := make([]string, 0, len(r.HighestRate))
		for k := range r.HighestRate {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "highest rate measured with p99 < %.0f ms and nothing lost:", P99Limit)
		for _, k := range keys {
			fmt.Fprintf(w, "  %s %.0f/s", k, r.HighestRate[k])
		}
		fmt.Fprintln(w)
	}
}

func (r *Report) rateRuns() map[float64][]*Result {
	m := map[float64][]*Result{}
	for _, x := range r.Results {
		m[x.Rate] = append(m[x.Rate], x)
	}
	return m
}

func (r *Report) writeRateTable(w io.Writer, results []*Result, ratio, mochiRatio map[string]float64) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"figure"}
	for _, res := range results {
		head = append(head, res.Broker+" "+string(res.Path))
	}
	var ratios []map[string]float64
	if ratio != nil {
		head = append(head, "embedded/mosquitto")
		ratios = append(ratios, ratio)
	}
	if mochiRatio != nil {
		head = append(head, "embedded/mochi")
		ratios = append(ratios, mochiRatio)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	row := func(name, ratioKey string, f func(*Result) string) {
		cells := []string{name}
		for _, res := range results {
			cells = append(cells, f(res))
		}
		for _, rt := range ratios {
			if v, ok := rt[ratioKey]; ok && ratioKey != "" {
				cells = append(cells, fmt.Sprintf("%.2f", v))
			} else {
				cells = append(cells, "")
			}
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	num := func(v float64, prec int) string { return fmt.Sprintf("%.*f", prec, v) }
	row("devices connected", "", func(x *Result) string { return fmt.Sprintf("%d/%d", x.Connected, x.Devices) })
	row("logins/s", "logins_per_s", func(x *Result) string { return num(x.LoginsPS, 0) })
	row("commands", "", func(x *Result) string { return fmt.Sprint(x.Commands) })
	row("replied", "", func(x *Result) string { return fmt.Sprint(x.Replied) })
	row("lost", "", func(x *Result) string {
		if x.Lost == 0 {
			return "0"
		}
		var parts []string
		for _, k := range sortedKeys(x.LostBy) {
			parts = append(parts, fmt.Sprintf("%s %d", k, x.LostBy[k]))
		}
		return fmt.Sprintf("%d (%s)", x.Lost, strings.Join(parts, ", "))
	})
	row("wrong LED state", "", func(x *Result) string { return fmt.Sprint(x.Wrong) })
	row("commands/s sustained", "throughput_cps", func(x *Result) string { return num(x.ThroughputCPS, 0) })
	row("round trip p50 ms", "p50_ms", func(x *Result) string { return num(x.P50ms, 2) })
	row("round trip p90 ms", "p90_ms", func(x *Result) string { return num(x.P90ms, 2) })
	row("round trip p99 ms", "p99_ms", func(x *Result) string { return num(x.P99ms, 2) })
	row("round trip max ms", "max_ms", func(x *Result) string { return num(x.MaxMs, 2) })
	row("KB per device (RSS)", "mem_per_device_kb", func(x *Result) string { return num(x.MemPerDeviceKB, 1) })
	row("KB per device (Go heap+stacks)", "", func(x *Result) string {
		if x.HeapPerDeviceKB == 0 {
			return "-"
		}
		return num(x.HeapPerDeviceKB, 1)
	})
	row("KB per device (peak RSS in load)", "peak_rss_per_device_kb", func(x *Result) string { return num(x.PeakRSSPerDeviceKB, 1) })
	row("peak / steady RSS", "", func(x *Result) string {
		if x.MemPerDeviceKB <= 0 {
			return "-"
		}
		return num(x.PeakRSSPerDeviceKB/x.MemPerDeviceKB, 2)
	})
	row("broker CPU %", "cpu_percent", func(x *Result) string { return num(x.BrokerCPUPercent, 0) })
	row("fleet CPU %", "", func(x *Result) string { return num(x.FleetCPUPercent, 0) })
	row("fleet KB per device (RSS)", "", func(x *Result) string { return num(x.FleetRSSPerDevKB, 1) })
	goRT := func(f func(*Result) string) func(*Result) string {
		return func(x *Result) string {
			if !x.GoRuntime {
				return "-"
			}
			return f(x)
		}
	}
	row("GOGC", "", goRT(func(x *Result) string { return fmt.Sprint(x.GOGC) }))
	row("GC cycles in load", "", goRT(func(x *Result) string { return fmt.Sprint(x.GCCycles) }))
	row("GC CPU % (of one core)", "", goRT(func(x *Result) string { return num(x.GCCPUPercent, 1) }))
	row("GC pause max ms", "", goRT(func(x *Result) string { return num(x.GCPauseMaxMs, 2) }))
	row("heap after login MB", "", goRT(func(x *Result) string { return num(x.HeapAfterLoginMB, 0) }))
	row("one full GC, wall ms", "", goRT(func(x *Result) string { return num(x.FullGCMs, 0) }))
	row("bytes allocated per command", "alloc_per_command_bytes", goRT(func(x *Result) string { return num(x.AllocPerCommandB, 0) }))
	tw.Flush()
}
