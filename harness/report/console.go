package report

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Console is a Sink that prints one progress line per scenario. On a
// terminal (Live) the line is rewritten in place as steps complete, at most
// every Every; otherwise only the final line of each scenario is printed.
type Console struct {
	W     io.Writer
	Live  bool
	Every time.Duration // default 100ms
	Mask  *Masker

	mu    sync.Mutex
	name  string
	total int
	done  int
	last  time.Time
}

func (c *Console) ScenarioStarted(name string, steps int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.name, c.total, c.done, c.last = name, steps, 0, time.Time{}
	if c.Live {
		c.progress()
	}
}

func (c *Console) StepDone(_ string, _ Step) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done++
	every := c.Every
	if every == 0 {
		every = 100 * time.Millisecond
	}
	if c.Live && time.Since(c.last) >= every {
		c.progress()
	}
}

// progress rewrites the current line (clear to end of line first).
func (c *Console) progress() {
	c.last = time.Now()
	fmt.Fprintf(c.W, "\r\x1b[K RUN  %s  step %d/%d", c.Mask.Mask(c.name), c.done, c.total)
}

func (c *Console) ScenarioDone(s Scenario) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Live {
		fmt.Fprint(c.W, "\r\x1b[K")
	}
	fmt.Fprintln(c.W, c.Mask.Mask(ResultLine(s)))
}

// ResultLine is the one-line outcome of a scenario.
func ResultLine(s Scenario) string {
	tag := map[Status]string{Pass: "PASS", Fail: "FAIL", Skip: "SKIP"}[s.Status]
	line := fmt.Sprintf(" %s %s (%d steps, %s", tag, s.Name, len(s.Steps), s.Duration.Round(time.Millisecond))
	if lat := s.Latencies(); len(lat) > 0 {
		line += fmt.Sprintf(", p50 %.1f ms, p99 %.1f ms", ms(Percentile(lat, 50)), ms(Percentile(lat, 99)))
	}
	line += ")"
	if s.Reason != "" {
		// The first line of the reason; the rest is in the reports.
		r, _, _ := strings.Cut(s.Reason, "\n")
		line += ": " + r
	}
	return line
}

// WriteSummary prints the summary table of a run and its totals.
func WriteSummary(w io.Writer, r Run, m *Masker) error {
	r = Masked(m, r)
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tRESULT\tSTEPS\tP50 ms\tP99 ms\tTIME\tREASON")
	for _, s := range r.Scenarios {
		lat := s.Latencies()
		p50, p99 := "-", "-"
		if len(lat) > 0 {
			p50 = fmt.Sprintf("%.1f", ms(Percentile(lat, 50)))
			p99 = fmt.Sprintf("%.1f", ms(Percentile(lat, 99)))
		}
		reason, _, _ := strings.Cut(s.Reason, "\n")
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.Name, s.Status, len(s.Steps), p50, p99,
			s.Duration.Round(time.Millisecond), reason)
	}
	tw.Flush()
	t := r.Totals()
	fmt.Fprintf(&b, "\n%d passed, %d failed, %d skipped of %d in %s\n", t.Passed, t.Failed, t.Skipped, t.Total,
		r.Duration.Round(time.Millisecond))
	for _, s := range r.Scenarios {
		if s.Heap != nil {
			fmt.Fprintf(&b, "firmware heap (%s): %s\n", s.Name, s.Heap)
		}
	}
	_, err := io.WriteString(w, m.Mask(b.String()))
	return err
}
