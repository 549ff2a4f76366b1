package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
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
	// the custom-topic path measured on both.
	Ratio map[string]float64 `json:"ratio_embedded_to_mosquitto,omitempty"`
}

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
	if e, m := find(results, "embedded", PathTopic), find(results, "mosquitto", PathTopic); e != nil && m != nil {
		r.Ratio = Ratio(e, m)
	}
	return r
}

func find(rs []*Result, broker string, p Path) *Result {
	for _, r := range rs {
		if r.Broker == broker && r.Path == p {
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

// WriteTable prints the figures side by side, with the embedded/mosquitto
// ratio when both were measured.
func (r *Report) WriteTable(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := []string{"figure"}
	for _, res := range r.Results {
		head = append(head, res.Broker+" "+string(res.Path))
	}
	if r.Ratio != nil {
		head = append(head, "embedded/mosquitto")
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	row := func(name, ratioKey string, f func(*Result) string) {
		cells := []string{name}
		for _, res := range r.Results {
			cells = append(cells, f(res))
		}
		if r.Ratio != nil {
			if v, ok := r.Ratio[ratioKey]; ok && ratioKey != "" {
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
	row("KB per device (peak RSS in load)", "", func(x *Result) string { return num(x.PeakRSSPerDeviceKB, 1) })
	row("broker CPU %", "cpu_percent", func(x *Result) string { return num(x.BrokerCPUPercent, 0) })
	row("fleet CPU %", "", func(x *Result) string { return num(x.FleetCPUPercent, 0) })
	row("fleet KB per device (RSS)", "", func(x *Result) string { return num(x.FleetRSSPerDevKB, 1) })
	inproc := func(f func(*Result) string) func(*Result) string {
		return func(x *Result) string {
			if x.HeapAfterLoginMB == 0 {
				return "-"
			}
			return f(x)
		}
	}
	row("GC cycles in load", "", inproc(func(x *Result) string { return fmt.Sprint(x.GCCycles) }))
	row("GC pause max ms", "", inproc(func(x *Result) string { return num(x.GCPauseMaxMs, 2) }))
	row("bytes allocated per command", "", inproc(func(x *Result) string { return num(x.AllocPerCommandB, 0) }))
	tw.Flush()
	for _, res := range r.Results {
		for _, n := range res.Notes {
			fmt.Fprintf(w, "note (%s %s): %s\n", res.Broker, res.Path, n)
		}
	}
}
