// Package secret keeps secrets (the Wi-Fi password, auth_info, API keys,
// Studio keys, tokens) out of everything a person or a CI system reads. It
// is the one masker of the project; use it rather than writing another:
//
//	m := secret.NewMasker(wifiPassword, authInfo, apiKey) // every secret the code knows
//	log.Print(m.Mask(line))                               // a string: each secret becomes ****
//	return m.MaskError(err)                               // an error: masked text, errors.Is/As still work
//	w := m.LineWriter(file); defer w.Flush()              // a log file fed arbitrary writes
//	w := m.ChunkWriter(os.Stderr)                         // console output written a message at a time
//
// A Masker also finds each secret in the escaped forms it takes on its way
// to a report (JSON, Go, Python repr, URL and HTML escapes). A nil *Masker
// masks nothing.
//
// Two fixed renderings need no Masker: Hint shows a key's first two
// characters, for a console table where a person must tell keys apart (as
// OneNET's console does), and Redact is what a configuration dump shows in
// place of a secret field.
package secret

import (
	"encoding/json"
	"html"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/onenet-hil/hil/internal/pylit"
)

// Stars replaces a secret in masked text.
const Stars = "****"

// Hint hides a secret for a console that lists keys: the first two
// characters stay so a human can tell keys apart; a secret of four bytes or
// fewer is all stars.
func Hint(s string) string {
	if len(s) <= 4 {
		return Stars
	}
	return s[:2] + Stars
}

// Redact is what a configuration dump shows for a secret field: nothing
// when the field is empty (so a missing key is visible), else "***".
func Redact(s string) string {
	if s == "" {
		return ""
	}
	return "***"
}

// Masker replaces known secrets with Stars.
type Masker struct{ r *strings.Replacer }

// NewMasker masks every non-empty secret, also in the escaped forms in which
// it reaches a report or log (JSON, Go and Python literals, URLs, HTML);
// longer secrets are matched first so that one secret containing another is
// masked whole.
func NewMasker(secrets ...string) *Masker {
	var s []string
	for _, x := range secrets {
		if x != "" {
			s = append(s, escapedForms(x)...)
		}
	}
	slices.Sort(s)
	s = slices.Compact(s)
	slices.SortStableFunc(s, func(a, b string) int { return len(b) - len(a) })
	var pairs []string
	for _, x := range s {
		pairs = append(pairs, x, Stars)
	}
	return &Masker{r: strings.NewReplacer(pairs...)}
}

// Mask returns s with every secret replaced. A nil Masker masks nothing.
func (m *Masker) Mask(s string) string {
	if m == nil {
		return s
	}
	return m.r.Replace(s)
}

// MaskError returns err with its text masked; errors.Is and errors.As still
// see err. A nil err stays nil, and a nil Masker returns err as it is.
func (m *Masker) MaskError(err error) error {
	if err == nil || m == nil {
		return err
	}
	return &maskedError{err: err, msg: m.Mask(err.Error())}
}

// maskedError shows err's text with the secrets masked.
type maskedError struct {
	err error
	msg string
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }

// escapedForms is x as it is and as each encoder on the way to a report
// writes it: a password with a quote or a non-ASCII byte would otherwise
// slip past the mask inside a JSON string, a Python traceback or a URL.
func escapedForms(x string) []string {
	forms := []string{x, html.EscapeString(x), url.QueryEscape(x), url.PathEscape(x)}
	if j, err := json.Marshal(x); err == nil {
		forms = append(forms, string(j[1:len(j)-1]))
	}
	q := strconv.Quote(x)
	forms = append(forms, q[1:len(q)-1])
	// MicroPython's repr of bytes and of str: it picks " when the text has
	// a ' and no ", so both quotes are forms.
	for _, st := range []pylit.Style{
		{Bytes: true, Quote: pylit.Single, Controls: pylit.Named},
		{Bytes: true, Quote: pylit.Double, Controls: pylit.Named},
		{Quote: pylit.Single, Controls: pylit.Named},
		{Quote: pylit.Double, Controls: pylit.Named},
	} {
		forms = append(forms, pylit.Body(x, st))
	}
	return forms
}

// Writer masks what it passes on. Make one with Masker.LineWriter or
// Masker.ChunkWriter; it is safe for concurrent use.
type Writer struct {
	mu    sync.Mutex
	w     io.Writer
	m     *Masker
	lines bool
	buf   []byte
}

// LineWriter masks w line by line: it holds back an unfinished line until
// its newline (or Flush), so a secret split across writes is still caught.
// Flush it when done, or its unfinished last line is lost.
func (m *Masker) LineWriter(w io.Writer) *Writer { return &Writer{w: w, m: m, lines: true} }

// ChunkWriter masks each write on its own and passes it on at once: for a
// writer that is given whole lines or messages (a progress bar's updates)
// and must show them without delay. A secret split across two writes is
// not caught.
func (m *Masker) ChunkWriter(w io.Writer) *Writer { return &Writer{w: w, m: m} }

// Write masks p (a LineWriter only up to its last newline) and writes it to
// the wrapped writer. It reports len(p) unless a ChunkWriter's write fails.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.lines {
		if _, err := io.WriteString(w.w, w.m.Mask(string(p))); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := slices.Index(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if _, err := io.WriteString(w.w, w.m.Mask(string(w.buf[:i+1]))); err != nil {
			return len(p), err
		}
		w.buf = w.buf[i+1:]
	}
}

// Flush writes a LineWriter's unfinished last line, masked.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) == 0 {
		return nil
	}
	_, err := io.WriteString(w.w, w.m.Mask(string(w.buf)))
	w.buf = nil
	return err
}

// Fd is the wrapped file's descriptor (^uintptr(0) if it has none), so that
// code which checks for a terminal still finds one behind the mask.
func (w *Writer) Fd() uintptr {
	if f, ok := w.w.(interface{ Fd() uintptr }); ok {
		return f.Fd()
	}
	return ^uintptr(0)
}
