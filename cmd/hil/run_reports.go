package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/onenet-hil/hil/harness/report"
)

// reportFiles are hil run's report files (--junit, --json, --html), opened
// before the run so that a bad path fails before anything starts.
type reportFiles struct {
	stdout               io.Writer
	junit, jsonOut, html string
	outs                 map[string]*os.File // the ones still open
}

// openReports creates every report file asked for; on an error it leaves
// none behind.
func openReports(stdout io.Writer, junit, jsonOut, html string) (*reportFiles, error) {
	r := &reportFiles{stdout: stdout, junit: junit, jsonOut: jsonOut, html: html, outs: map[string]*os.File{}}
	for _, p := range []string{junit, jsonOut, html} {
		if p == "" {
			continue
		}
		f, err := openPrivate(p, os.O_RDWR|os.O_TRUNC)
		if err != nil {
			for q, g := range r.outs { // no empty report files left behind
				g.Close()
				os.Remove(q)
				delete(r.outs, q)
			}
			return nil, err
		}
		r.outs[p] = f
	}
	return r, nil
}

// close closes the files not yet written.
func (r *reportFiles) close() {
	for _, f := range r.outs {
		f.Close()
	}
}

// write fills every report file asked for.
func (r *reportFiles) write(run report.Run, m *report.Masker) error {
	for p, write := range map[string]func(io.Writer, report.Run, *report.Masker) error{
		r.junit: report.WriteJUnit, r.jsonOut: report.WriteJSON, r.html: report.WriteHTML,
	} {
		if p == "" {
			continue
		}
		if err := write(r.outs[p], run, m); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		if err := r.outs[p].Close(); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		delete(r.outs, p)
		fmt.Fprintf(r.stdout, "report: %s\n", p)
	}
	return nil
}

// setupFailed is a run that could not start, or stopped on an error: the
// reports still say why (one failed "setup" entry after what ran), never
// empty files a CI parser chokes on. It returns err masked.
func (r *reportFiles) setupFailed(run report.Run, started time.Time, err error, m *report.Masker) error {
	msg := m.Mask(err.Error())
	if run.Target == "" {
		run.Target, run.Started = "setup", started
	}
	run.Duration = time.Since(started)
	run.Scenarios = append(run.Scenarios, report.Scenario{
		Name: "setup", Status: report.Fail, Reason: msg, Started: started, Duration: time.Since(started)})
	if werr := r.write(run, m); werr != nil {
		return errors.Join(errors.New(msg), werr)
	}
	return errors.New(msg)
}

// openPrivate opens path 0600, also when it existed with a wider mode: a
// report or a serial log is masked, but it is the run's whole record, for
// its owner only.
func openPrivate(path string, flag int) (*os.File, error) {
	f, err := os.OpenFile(path, flag|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil { // OpenFile keeps an existing file's mode
		f.Close()
		return nil, err
	}
	return f, nil
}
