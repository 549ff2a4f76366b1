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
// A secret shorter than ValueLen is masked only where it stands as a value:
// not glued to letters or digits on either side (an escape such as \x07 or
// %20 just before it counts as a separator). Masked anywhere, a one-letter
// Wi-Fi password "x" would turn "context deadline exceeded" into
// "conte****t deadline e****ceeded". A longer secret is masked wherever it
// appears: glued to other text ("pw" + password) it is still a leak, and
// unrelated text does not hold it by chance. A secret shorter than MinLen
// cannot be told from ordinary text at all; Check refuses it.
//
// Two fixed renderings need no Masker: Hint shows a key's first two
// characters, for a console table where a person must tell keys apart (as
// OneNET's console does), and Redact is what a configuration dump shows in
// place of a secret field.
package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

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

// MinLen is the shortest secret Check accepts: a shorter one is a common
// word, a letter or a number that ordinary text holds too.
const MinLen = 4

// ValueLen is the length from which a secret is masked wherever it
// appears; a shorter one only where it stands as a value (see the package
// comment).
const ValueLen = 8

// Check says why a secret (named what, e.g. "the Wi-Fi password") is too
// short to keep out of logs and reports safely, or nil. An empty secret
// is no secret and passes. The error holds the secret's length, never the
// secret.
func Check(what, s string) error {
	if s == "" || utf8.RuneCountInString(s) >= MinLen {
		return nil
	}
	return fmt.Errorf("%s has %d character(s): a secret shorter than %d cannot be masked safely in logs and reports "+
		"(it cannot be told from ordinary text); use a longer one", what, utf8.RuneCountInString(s), MinLen)
}

// Masker replaces known secrets with Stars.
type Masker struct {
	r     *strings.Replacer // forms of secrets of ValueLen or more: masked anywhere
	short []string          // forms of shorter secrets, longest first: masked where they stand as values
}

// NewMasker masks every non-empty secret, also in the escaped forms in which
// it reaches a report or log (JSON, Go and Python literals, URLs, HTML);
// longer secrets are matched first so that one secret containing another is
// masked whole. Secrets shorter than ValueLen are masked only where they
// stand as values (see the package comment).
func NewMasker(secrets ...string) *Masker {
	var long, short []string
	for _, x := range secrets {
		switch {
		case x == "":
		case len(x) < ValueLen:
			short = append(short, escapedForms(x)...)
		default:
			long = append(long, escapedForms(x)...)
		}
	}
	var pairs []string
	for _, x := range byLength(long) {
		pairs = append(pairs, x, Stars)
	}
	m := &Masker{short: byLength(short)}
	if len(pairs) > 0 { // an empty Replacer would copy every string it sees
		m.r = strings.NewReplacer(pairs...)
	}
	return m
}

// byLength is s without duplicates, longest first.
func byLength(s []string) []string {
	slices.Sort(s)
	s = slices.Compact(s)
	slices.SortStableFunc(s, func(a, b string) int { return len(b) - len(a) })
	return s
}

// Mask returns s with every secret replaced. A nil Masker masks nothing.
func (m *Masker) Mask(s string) string {
	if m == nil {
		return s
	}
	return m.maskShort(m.replace(s))
}

// replaceBufs are replace's scratch buffers.
var replaceBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// replace is m.r.Replace without an allocation when s holds no long
// secret, the common case: the broker masks every event it records.
func (m *Masker) replace(s string) string {
	if m.r == nil || s == "" {
		return s
	}
	buf := replaceBufs.Get().(*bytes.Buffer)
	buf.Reset()
	_, _ = m.r.WriteString(buf, s)
	out := s
	if string(buf.Bytes()) != s { // compared without a copy
		out = buf.String()
	}
	if buf.Cap() <= 64<<10 {
		replaceBufs.Put(buf)
	}
	return out
}

// maskShort replaces the short secrets' forms where they stand as values.
func (m *Masker) maskShort(s string) string {
	if !slices.ContainsFunc(m.short, func(f string) bool { return strings.Contains(s, f) }) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if f := m.valueAt(s, i); f != "" {
			b.WriteString(Stars)
			i += len(f)
			continue
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}

// valueAt is the longest short form that stands as a value at s[i:], or "".
func (m *Masker) valueAt(s string, i int) string {
	for _, f := range m.short {
		if strings.HasPrefix(s[i:], f) && startsValue(s[:i], f) && endsValue(f, s[i+len(f):]) {
			return f
		}
	}
	return ""
}

// isWord: letters, digits and '_' make up a word.
func isWord(r rune) bool { return r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) }

// startsValue: the form f, after the text before, does not continue a word.
func startsValue(before, f string) bool {
	first, _ := utf8.DecodeRuneInString(f)
	last, _ := utf8.DecodeLastRuneInString(before)
	return before == "" || !isWord(first) || !isWord(last) || endsInEscape(before)
}

// endsValue: the form f is not continued by a word in the text after.
func endsValue(f, after string) bool {
	last, _ := utf8.DecodeLastRuneInString(f)
	next, _ := utf8.DecodeRuneInString(after)
	return after == "" || !isWord(last) || !isWord(next)
}

// endsInEscape: s ends in an escape of a string literal or a URL (\n,
// \x07, \u00e9, \012, %20), whose last letter or digit is no word that a
// secret after it could be part of.
func endsInEscape(s string) bool {
	if n := len(s); n >= 3 && s[n-3] == '%' && isHex(s[n-2:]) {
		return true
	}
	for _, e := range []struct {
		lead  string
		n     int
		digit func(string) bool
	}{
		{"x", 2, isHex}, {"u", 4, isHex}, {"U", 8, isHex}, {"", 1, isOctal}, {"", 2, isOctal}, {"", 3, isOctal},
		{"a", 0, nil}, {"b", 0, nil}, {"f", 0, nil}, {"n", 0, nil}, {"r", 0, nil}, {"t", 0, nil}, {"v", 0, nil},
	} {
		k := len(e.lead) + e.n
		if len(s) < k+1 || s[len(s)-k-1] != '\\' || !strings.HasPrefix(s[len(s)-k:], e.lead) {
			continue
		}
		if e.digit != nil && !e.digit(s[len(s)-e.n:]) {
			continue
		}
		if oddBackslashes(s[:len(s)-k]) {
			return true
		}
	}
	return false
}

// oddBackslashes: s ends in an odd run of backslashes (its last one
// escapes what follows rather than being escaped itself).
func oddBackslashes(s string) bool {
	n := 0
	for n < len(s) && s[len(s)-1-n] == '\\' {
		n++
	}
	return n%2 == 1
}

func isHex(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return !unicode.Is(unicode.ASCII_Hex_Digit, r) }) < 0
}

func isOctal(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '7' }) < 0
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
