package report

import (
	"bytes"
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"
)

// The page is self-contained: inline CSS and SVG, no script, no fetches.
var page = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>hil run: {{.Totals.Passed}} passed, {{.Totals.Failed}} failed</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:left}
.pass{color:#17803d}.fail{color:#c0262d}.skip{color:#8a6d00}
section{border-top:2px solid #ccc;margin-top:1.5em;padding-top:.5em}
pre{background:#f6f6f6;padding:.5em;max-height:30em;overflow:auto;font-size:12px}
svg{background:#fafafa;border:1px solid #ddd}.legend span{margin-right:1.5em}
.reason{white-space:pre-wrap;font-family:monospace;background:#fff0f0;padding:.5em}
</style></head><body>
<h1>hil run</h1>
<p>Target: {{.Target}} &middot; started {{.Started}} &middot; {{.Duration}} &middot;
<b class="pass">{{.Totals.Passed}} passed</b>, <b class="fail">{{.Totals.Failed}} failed</b>,
<b class="skip">{{.Totals.Skipped}} skipped</b> of {{.Totals.Total}}</p>
<table><tr><th>scenario</th><th>result</th><th>steps</th><th>p50 ms</th><th>p99 ms</th><th>time</th></tr>
{{range .Scenarios}}<tr><td><a href="#{{.ID}}">{{.Name}}</a></td><td class="{{.Status}}">{{.Status}}</td><td>{{.Steps}}</td><td>{{.P50}}</td><td>{{.P99}}</td><td>{{.Duration}}</td></tr>
{{end}}</table>
{{range .Scenarios}}<section id="{{.ID}}">
<h2>{{.Name}} <span class="{{.Status}}">{{.Status}}</span></h2>
<p>{{.File}}</p>
{{if .Reason}}<div class="reason">{{.Reason}}</div>{{end}}
{{if .Timeline}}<h3>LED: expected vs observed</h3>
<p class="legend"><span style="color:#2463eb">&#9644; expected (model)</span><span style="color:#e8710a">&#9644; observed (echo)</span><span style="color:#17803d">&#9644; GPIO pin</span><span style="color:#c0262d">&#9679; disagreement</span></p>
<svg width="{{.Timeline.W}}" height="{{.Timeline.H}}" viewBox="0 0 {{.Timeline.W}} {{.Timeline.H}}" role="img">
<text x="2" y="{{.Timeline.Y1}}" font-size="10">1</text><text x="2" y="{{.Timeline.Y0}}" font-size="10">0</text>
<path d="{{.Timeline.Expected}}" fill="none" stroke="#2463eb" stroke-width="2"/>
<path d="{{.Timeline.Echo}}" fill="none" stroke="#e8710a" stroke-width="2" stroke-dasharray="5 3"/>
<path d="{{.Timeline.Pin}}" fill="none" stroke="#17803d" stroke-width="1" stroke-dasharray="2 2"/>
{{range .Timeline.Bad}}<circle cx="{{.X}}" cy="{{.Y}}" r="4" fill="#c0262d"><title>{{.Title}}</title></circle>{{end}}
<text x="{{.Timeline.W}}" y="{{.Timeline.H}}" font-size="10" text-anchor="end" dy="-2">{{.Timeline.Sends}} sends</text>
</svg>{{end}}
{{if .Hist}}<h3>Latency histogram (send to echo)</h3>
<svg width="{{.Hist.W}}" height="{{.Hist.H}}" viewBox="0 0 {{.Hist.W}} {{.Hist.H}}" role="img">
{{range .Hist.Bars}}<rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="#2463eb"><title>{{.Title}}</title></rect>{{end}}
<text x="2" y="{{.Hist.H}}" font-size="10" dy="-2">0 ms</text>
<text x="{{.Hist.W}}" y="{{.Hist.H}}" font-size="10" dy="-2" text-anchor="end">{{.Hist.Max}} ms</text>
<text x="2" y="10" font-size="10">max count {{.Hist.Peak}}</text>
</svg>{{end}}
<details{{if eq .Status "fail"}} open{{end}}><summary>steps ({{.Steps}})</summary>
<table><tr><th>#</th><th>line</th><th>step</th><th>result</th><th>model</th><th>echo</th><th>pin</th><th>ms</th><th>note</th></tr>
{{range .StepRows}}<tr><td>{{.Index}}</td><td>{{.Line}}</td><td>{{.Desc}}</td><td class="{{.Status}}">{{.Status}}</td><td>{{.Expected}}</td><td>{{.Echo}}</td><td>{{.Pin}}</td><td>{{.MS}}</td><td>{{.Message}}</td></tr>
{{end}}{{if .MoreSteps}}<tr><td colspan="9">&hellip; {{.MoreSteps}} more steps</td></tr>{{end}}</table></details>
<details{{if eq .Status "fail"}} open{{end}}><summary>serial log ({{len .Serial}} lines)</summary>
<pre>{{range .Serial}}{{.}}
{{end}}</pre></details>
</section>
{{end}}</body></html>
`))

type htmlRun struct {
	Target, Started, Duration string
	Totals                    Totals
	Scenarios                 []htmlScenario
}

type htmlScenario struct {
	ID, Name, File, Reason, P50, P99, Duration string
	Status                                     Status
	Steps                                      int
	Timeline                                   *timeline
	Hist                                       *histogram
	StepRows                                   []htmlStep
	MoreSteps                                  int
	Serial                                     []string
}

type htmlStep struct {
	Index, Line                            int
	Desc, Message, Expected, Echo, Pin, MS string
	Status                                 Status
}

type point struct {
	X, Y  float64
	Title string
}

type timeline struct {
	W, H, Y0, Y1        float64
	Expected, Echo, Pin string
	Bad                 []point
	Sends               int
}

type bar struct {
	X, Y, W, H float64
	Title      string
}

type histogram struct {
	W, H float64
	Bars []bar
	Max  string
	Peak int
}

// maxStepRows bounds the step table of one scenario (a burst has 1,000).
const maxStepRows = 300

// WriteHTML writes one self-contained page for the run.
func WriteHTML(w io.Writer, r Run, m *Masker) error {
	r = Masked(m, r)
	hr := htmlRun{Target: r.Target, Started: r.Started.UTC().Format("2006-01-02 15:04:05 UTC"),
		Duration: r.Duration.Round(time.Millisecond).String(), Totals: r.Totals()}
	for i, s := range r.Scenarios {
		lat := s.Latencies()
		hs := htmlScenario{ID: fmt.Sprintf("s%d", i), Name: s.Name, File: s.File, Reason: s.Reason,
			Status: s.Status, Steps: len(s.Steps), Duration: s.Duration.Round(time.Millisecond).String(),
			P50: "-", P99: "-", Timeline: makeTimeline(s.Steps), Hist: makeHistogram(lat)}
		if len(lat) > 0 {
			hs.P50 = fmt.Sprintf("%.1f", ms(Percentile(lat, 50)))
			hs.P99 = fmt.Sprintf("%.1f", ms(Percentile(lat, 99)))
		}
		for j, st := range s.Steps {
			if j == maxStepRows {
				hs.MoreSteps = len(s.Steps) - j
				break
			}
			row := htmlStep{Index: st.Index, Line: st.Line, Desc: st.Desc, Message: st.Message, Status: st.Status,
				Expected: level(st.Expected), Echo: level(st.Echo), Pin: level(st.Pin)}
			if st.Latency > 0 {
				row.MS = fmt.Sprintf("%.2f", ms(st.Latency))
			}
			hs.StepRows = append(hs.StepRows, row)
		}
		for _, l := range s.Serial {
			hs.Serial = append(hs.Serial, l.At.UTC().Format("15:04:05.000")+"  "+strings.ToValidUTF8(l.Text, "\uFFFD"))
		}
		hr.Scenarios = append(hr.Scenarios, hs)
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, hr); err != nil {
		return err
	}
	_, err := io.WriteString(w, m.Mask(buf.String()))
	return err
}

func level(v int) string {
	if v == Unknown {
		return "-"
	}
	return fmt.Sprint(v)
}

// makeTimeline draws the model's and the board's LED level after each
// send as step lines; nil when the scenario sent nothing.
func makeTimeline(steps []Step) *timeline {
	var sends []Step
	for _, st := range steps {
		if st.Kind == "send" && st.Status != NotRun {
			sends = append(sends, st)
		}
	}
	if len(sends) == 0 {
		return nil
	}
	t := &timeline{W: 900, H: 90, Y1: 20, Y0: 70, Sends: len(sends)}
	dx := (t.W - 20) / float64(len(sends))
	y := func(v int) float64 {
		if v == 1 {
			return t.Y1
		}
		return t.Y0
	}
	trace := func(get func(Step) int, off float64) string {
		var b strings.Builder
		pen := false
		for i, st := range sends {
			v := get(st)
			x := 15 + float64(i)*dx
			if v == Unknown {
				pen = false
				continue
			}
			if !pen {
				fmt.Fprintf(&b, "M%.1f %.1f", x, y(v)+off)
				pen = true
			} else {
				fmt.Fprintf(&b, "V%.1f", y(v)+off)
			}
			fmt.Fprintf(&b, "H%.1f", x+dx)
		}
		return b.String()
	}
	t.Expected = trace(func(s Step) int { return s.Expected }, 0)
	t.Echo = trace(func(s Step) int { return s.Echo }, 3)
	t.Pin = trace(func(s Step) int { return s.Pin }, 6)
	for i, st := range sends {
		if st.Status == Fail {
			t.Bad = append(t.Bad, point{X: 15 + (float64(i)+0.5)*dx, Y: (t.Y0 + t.Y1) / 2,
				Title: fmt.Sprintf("step %d (line %d): %s", st.Index, st.Line, st.Message)})
		}
	}
	return t
}

// makeHistogram bins latencies into 30 equal bars from 0 to the maximum.
func makeHistogram(lat []time.Duration) *histogram {
	if len(lat) == 0 {
		return nil
	}
	const bins = 30
	h := &histogram{W: 900, H: 120}
	maxL := Percentile(lat, 100)
	width := maxL/bins + 1
	counts := make([]int, bins)
	for _, l := range lat {
		counts[min(int(l/width), bins-1)]++
	}
	for _, c := range counts {
		h.Peak = max(h.Peak, c)
	}
	bw := h.W / bins
	for i, c := range counts {
		bh := (h.H - 25) * float64(c) / float64(h.Peak)
		h.Bars = append(h.Bars, bar{X: float64(i) * bw, Y: h.H - 12 - bh, W: bw - 2, H: bh,
			Title: fmt.Sprintf("%.2f-%.2f ms: %d", ms(time.Duration(i)*width), ms(time.Duration(i+1)*width), c)})
	}
	h.Max = fmt.Sprintf("%.2f", ms(maxL))
	return h
}
