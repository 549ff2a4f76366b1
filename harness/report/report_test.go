package report

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const leaked = "s3cr3t-APIKey=="

// sampleRun has a passing scenario with latencies, a failing one whose
// reason and serial log leak a secret, and a skipped one.
func sampleRun() Run {
	t0 := time.Date(2026, 11, 25, 22, 0, 0, 0, time.UTC)
	var steps []Step
	state := 0
	for i := range 100 {
		state = 1 - state
		steps = append(steps, Step{Index: i, Line: 5, Kind: "send", Desc: "send toggle via creq", Status: Pass,
			Expected: state, Echo: state, Pin: state, Latency: time.Duration(i+1) * 100 * time.Microsecond})
	}
	return Run{Target: "virtual board", Started: t0, Duration: 3 * time.Second, Scenarios: []Scenario{
		{Name: "toggle parity", File: "scenarios/toggle.yaml", Status: Pass, Started: t0, Duration: time.Second,
			Steps: steps, Serial: []Line{{At: t0, Text: "HIL led state=1 cmd=toggle via=$creq/1"}}},
		{Name: "wrong <credentials>", File: "scenarios/creds.yaml", Status: Fail, Started: t0, Duration: time.Second,
			Reason: "step 1 (line 7): board printed password " + leaked + "\nlast serial lines:\n  \x00\xffgarbage",
			Steps: []Step{
				{Index: 0, Line: 6, Kind: "send", Desc: "send on via http", Status: Fail, Expected: 1, Echo: 0, Pin: Unknown, Message: "echo says 0"},
				{Index: 1, Line: 7, Kind: "expect", Desc: "expect led 1", Status: NotRun, Expected: 1, Echo: Unknown, Pin: Unknown},
			},
			Serial: []Line{{At: t0, Text: "config " + leaked}, {At: t0, Text: "\x00\x8e\xffrst cause:2"}}},
		{Name: "wifi loss", File: "scenarios/wifi.yaml", Status: Skip, Reason: "needs a virtual board"},
	}}
}

func TestPercentile(t *testing.T) {
	assert.Zero(t, Percentile(nil, 99))
	ds := []time.Duration{5, 1, 4, 2, 3}
	assert.Equal(t, time.Duration(3), Percentile(ds, 50))
	assert.Equal(t, time.Duration(5), Percentile(ds, 99))
	assert.Equal(t, time.Duration(1), Percentile(ds, 0))
	assert.Equal(t, []time.Duration{5, 1, 4, 2, 3}, ds, "input untouched")
}

func TestMasker(t *testing.T) {
	m := NewMasker("", "abc", "abcdef")
	assert.Equal(t, "x **** y ****", m.Mask("x abcdef y abc"))
	var none *Masker
	assert.Equal(t, "abc", none.Mask("abc"))
	r := Masked(m, Run{Scenarios: []Scenario{{Name: "abc", Serial: []Line{{Text: "abc"}}}}})
	assert.Equal(t, "****", r.Scenarios[0].Name)
	assert.Equal(t, "****", r.Scenarios[0].Serial[0].Text)
}

func TestTotals(t *testing.T) {
	r := sampleRun()
	assert.Equal(t, Totals{Passed: 1, Failed: 1, Skipped: 1, Total: 3}, r.Totals())
	assert.False(t, r.OK())
	assert.Len(t, r.Scenarios[0].Latencies(), 100)
}

func TestConsole(t *testing.T) {
	var out bytes.Buffer
	c := &Console{W: &out, Mask: NewMasker(leaked)}
	r := sampleRun()
	for _, s := range r.Scenarios {
		c.ScenarioStarted(s.Name, len(s.Steps))
		for _, st := range s.Steps {
			c.StepDone(s.Name, st)
		}
		c.ScenarioDone(s)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Len(t, lines, 3, out.String())
	assert.Contains(t, lines[0], "PASS toggle parity (100 steps, 1s, p50 5.0 ms, p99 9.9 ms)")
	assert.Contains(t, lines[1], "FAIL wrong <credentials>")
	assert.Contains(t, lines[2], "SKIP wifi loss (0 steps, 0s): needs a virtual board")
	assert.NotContains(t, out.String(), leaked)
	assert.NotContains(t, out.String(), "\r", "no live rewriting when not a terminal")

	out.Reset()
	live := &Console{W: &out, Live: true, Every: time.Hour}
	live.ScenarioStarted("burst", 1000)
	live.StepDone("burst", Step{})
	live.ScenarioDone(Scenario{Name: "burst", Status: Pass})
	assert.Equal(t, "\r\x1b[K RUN  burst  step 0/1000\r\x1b[K PASS burst (0 steps, 0s)\n", out.String())
}

func TestSummary(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, WriteSummary(&out, sampleRun(), NewMasker(leaked)))
	s := out.String()
	assert.Contains(t, s, "SCENARIO")
	assert.Regexp(t, `toggle parity\s+pass\s+100\s+5\.0\s+9\.9`, s)
	assert.Contains(t, s, "1 passed, 1 failed, 1 skipped of 3 in 3s")
	assert.NotContains(t, s, leaked)
}

func TestJSON(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, WriteJSON(&out, sampleRun(), NewMasker(leaked)))
	assert.NotContains(t, out.String(), leaked)
	var got JSON
	require.NoError(t, json.Unmarshal(out.Bytes(), &got))
	assert.Equal(t, 1, got.Passed)
	assert.Equal(t, 1, got.Failed)
	assert.Equal(t, 3, got.Total)
	require.Len(t, got.Scenarios, 3)
	s := got.Scenarios[0]
	assert.Equal(t, "toggle parity", s.Name)
	assert.True(t, s.Passed)
	assert.Equal(t, 100, s.Steps)
	assert.InDelta(t, 5.0, s.P50MS, 1e-9)
	assert.InDelta(t, 9.9, s.P99MS, 1e-9)
	assert.False(t, got.Scenarios[1].Passed)
	assert.Equal(t, 1, got.Scenarios[1].StepsRun)
	assert.Contains(t, got.Scenarios[1].Reason, "****")
}

func TestJUnit(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, WriteJUnit(&out, sampleRun(), NewMasker(leaked)))
	assert.NotContains(t, out.String(), leaked)
	var doc struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suite    struct {
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
					Body    string `xml:",chardata"`
				} `xml:"failure"`
				Skipped *struct {
					Message string `xml:"message,attr"`
				} `xml:"skipped"`
				Out string `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	require.NoError(t, xml.Unmarshal(out.Bytes(), &doc), "serial noise must not break the XML")
	assert.Equal(t, 3, doc.Tests)
	assert.Equal(t, 1, doc.Failures)
	cases := doc.Suite.Cases
	require.Len(t, cases, 3)
	assert.Nil(t, cases[0].Failure)
	assert.Contains(t, cases[0].Out, "HIL led state=1")
	require.NotNil(t, cases[1].Failure)
	assert.Equal(t, "step 1 (line 7): board printed password ****", cases[1].Failure.Message)
	assert.Contains(t, cases[1].Failure.Body, "last serial lines")
	assert.Contains(t, cases[1].Out, "rst cause:2")
	require.NotNil(t, cases[2].Skipped)
	assert.Equal(t, "needs a virtual board", cases[2].Skipped.Message)
}

func TestHTML(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, WriteHTML(&out, sampleRun(), NewMasker(leaked)))
	s := out.String()
	assert.NotContains(t, s, leaked)
	assert.Contains(t, s, "<svg", "inline SVG")
	assert.Contains(t, s, "Latency histogram")
	assert.Contains(t, s, "expected (model)")
	assert.Contains(t, s, "wrong &lt;credentials&gt;", "names are escaped")
	assert.Contains(t, s, "HIL led state=1 cmd=toggle via=$creq/1", "serial log included")
	assert.Contains(t, s, "<circle", "a disagreement is marked")
	for _, net := range []string{"http://", "https://", "<script", "<link", "src="} {
		assert.NotContains(t, s, net, "self-contained: no %s", net)
	}
	// 30 histogram bars for the passing scenario, one for the failing one has none.
	assert.Equal(t, 30, strings.Count(s, "<rect"))
}

func TestTimelineAndHistogramShapes(t *testing.T) {
	assert.Nil(t, makeTimeline(nil))
	assert.Nil(t, makeHistogram(nil))
	tl := makeTimeline([]Step{
		{Kind: "send", Expected: 1, Echo: 1, Pin: Unknown, Status: Pass},
		{Kind: "expect", Expected: 1, Echo: 1, Pin: 1, Status: Pass},
		{Kind: "send", Expected: 0, Echo: 1, Pin: 1, Status: Fail},
	})
	require.NotNil(t, tl)
	assert.Equal(t, 2, tl.Sends)
	assert.Equal(t, "M15.0 20.0H455.0V70.0H895.0", tl.Expected)
	assert.Equal(t, "M455.0 26.0H895.0", tl.Pin, "pin trace starts where the pin was first seen")
	assert.Len(t, tl.Bad, 1)
	h := makeHistogram([]time.Duration{time.Millisecond, time.Millisecond, 3 * time.Millisecond})
	assert.Equal(t, 2, h.Peak)
	assert.Len(t, h.Bars, 30)
}
