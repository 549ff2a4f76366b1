package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// JSON is the shape of the --json file.
type JSON struct {
	Target     string         `json:"target"`
	Started    string         `json:"started"`
	DurationMS float64        `json:"duration_ms"`
	Passed     int            `json:"passed"`
	Failed     int            `json:"failed"`
	Skipped    int            `json:"skipped"`
	Total      int            `json:"total"`
	Scenarios  []JSONScenario `json:"scenarios"`
}

// JSONScenario is one scenario in the JSON file.
type JSONScenario struct {
	Name       string  `json:"name"`
	File       string  `json:"file"`
	Status     Status  `json:"status"`
	Passed     bool    `json:"passed"`
	Reason     string  `json:"reason,omitempty"`
	Steps      int     `json:"steps"`
	StepsRun   int     `json:"steps_run"`
	Sends      int     `json:"sends"`
	P50MS      float64 `json:"latency_p50_ms"`
	P99MS      float64 `json:"latency_p99_ms"`
	MaxMS      float64 `json:"latency_max_ms"`
	DurationMS float64 `json:"duration_ms"`
}

// ToJSON summarises a run (already masked by the caller if needed).
func ToJSON(r Run) JSON {
	t := r.Totals()
	out := JSON{Target: r.Target, Started: r.Started.UTC().Format("2006-01-02T15:04:05.000Z"),
		DurationMS: ms(r.Duration), Passed: t.Passed, Failed: t.Failed, Skipped: t.Skipped, Total: t.Total,
		Scenarios: []JSONScenario{}}
	for _, s := range r.Scenarios {
		lat := s.Latencies()
		run := 0
		for _, st := range s.Steps {
			if st.Status == Pass || st.Status == Fail {
				run++
			}
		}
		out.Scenarios = append(out.Scenarios, JSONScenario{Name: s.Name, File: s.File, Status: s.Status,
			Passed: s.Status == Pass, Reason: s.Reason, Steps: len(s.Steps), StepsRun: run, Sends: len(lat),
			P50MS: ms(Percentile(lat, 50)), P99MS: ms(Percentile(lat, 99)), MaxMS: ms(Percentile(lat, 100)),
			DurationMS: ms(s.Duration)})
	}
	return out
}

// WriteJSON writes the run summary as indented JSON.
func WriteJSON(w io.Writer, r Run, m *Masker) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(ToJSON(Masked(m, r))); err != nil {
		return err
	}
	_, err := io.WriteString(w, m.Mask(buf.String()))
	return err
}

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Cases     []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Time      string        `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes the run as JUnit XML: one testcase per scenario, the
// failure's full text and the scenario's serial log in system-out.
func WriteJUnit(w io.Writer, r Run, m *Masker) error {
	r = Masked(m, r)
	t := r.Totals()
	suite := junitSuite{Name: "hil", Tests: t.Total, Failures: t.Failed, Skipped: t.Skipped,
		Time: secs(r.Duration.Seconds()), Timestamp: r.Started.UTC().Format("2006-01-02T15:04:05")}
	for _, s := range r.Scenarios {
		c := junitCase{Name: s.Name, Classname: "hil.scenarios", File: s.File, Time: secs(s.Duration.Seconds())}
		first, _, _ := strings.Cut(s.Reason, "\n")
		switch s.Status {
		case Fail:
			c.Failure = &junitMessage{Message: first, Body: s.Reason}
		case Skip:
			c.Skipped = &junitMessage{Message: first}
		}
		var log strings.Builder
		for _, l := range s.Serial {
			fmt.Fprintf(&log, "%s %s\n", l.At.UTC().Format("15:04:05.000"), xmlSafe(l.Text))
		}
		c.SystemOut = log.String()
		c.Failure = safeMsg(c.Failure)
		suite.Cases = append(suite.Cases, c)
	}
	doc := junitSuites{Tests: t.Total, Failures: t.Failed, Skipped: t.Skipped, Time: suite.Time, Suites: []junitSuite{suite}}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	buf.WriteString("\n")
	_, err := io.WriteString(w, m.Mask(buf.String()))
	return err
}

func secs(f float64) string { return fmt.Sprintf("%.3f", f) }

func safeMsg(j *junitMessage) *junitMessage {
	if j != nil {
		j.Message, j.Body = xmlSafe(j.Message), xmlSafe(j.Body)
	}
	return j
}

// xmlSafe replaces characters XML 1.0 cannot hold (serial noise, NULs) with
// '?', so the file stays valid.
func xmlSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r != 0xFFFD && r < 0xD800) || (r >= 0xE000 && r < 0xFFFE) || r >= 0x10000 {
			return r
		}
		return '?'
	}, strings.ToValidUTF8(s, "?"))
}
