// Package pylit writes Python string and bytes literals: the one encoder
// behind every literal the project sends to a board (paths, Wi-Fi settings,
// file chunks) and every repr() it has to recognise or mask (echo payloads,
// secrets in tracebacks).
//
// Str is a str literal for Python source, Repr is MicroPython's repr() of
// bytes, and Encode and Body write any other Style.
package pylit

import "strings"

// Quote is the quote a literal is written in.
type Quote int

const (
	// Single quotes: '...'.
	Single Quote = iota
	// Double quotes: "...".
	Double
	// Triple single quotes: '''...''' (every ' inside is escaped, so a
	// trailing one cannot end the literal early).
	Triple
	// Auto is repr()'s choice: ' unless the text has a ' and no ".
	Auto
)

// Controls is how \n, \r and \t are written.
type Controls int

const (
	// Hex writes them as \xNN like every other control character (a
	// one-line literal that any Python reads the same).
	Hex Controls = iota
	// Named writes \n, \r and \t, as repr() prints them.
	Named
	// Verbatim keeps newline and tab as they are (\r still \x0d), for a
	// triple-quoted literal that carries a text file almost byte for byte.
	Verbatim
)

// Style says how a literal is written. The zero Style is a str in single
// quotes with every control character as \xNN.
type Style struct {
	// Bytes makes a bytes literal: a b prefix, and every byte from 0x7f up
	// as \xNN. A str keeps bytes from 0x80 up as they are (UTF-8 text).
	Bytes    bool
	Quote    Quote
	Controls Controls
}

// The styles the project uses.
var (
	// SourceStr is Str's style (without its UTF-8 repair).
	SourceStr = Style{}
	// ReprBytes is MicroPython's repr() of a bytes object.
	ReprBytes = Style{Bytes: true, Quote: Auto, Controls: Named}
	// SourceBytes is a one-line bytes literal in double quotes.
	SourceBytes = Style{Bytes: true, Quote: Double}
	// FileChunk is a triple-quoted bytes literal that escapes only what it
	// must (backslash, quote, CR, other control and non-ASCII bytes).
	FileChunk = Style{Bytes: true, Quote: Triple, Controls: Verbatim}
)

// Str renders s as a Python str literal for source code: quotes,
// backslashes and control characters escaped, other text (Chinese SSIDs
// too) kept as UTF-8; invalid UTF-8 becomes U+FFFD, as Python source must
// be UTF-8.
func Str(s string) string { return Encode(strings.ToValidUTF8(s, "\uFFFD"), SourceStr) }

// Repr renders b as MicroPython's repr() prints a bytes object: printable
// ASCII as is, \n \r \t by name, the rest as \xNN, in ' quotes unless b has
// a ' and no ".
func Repr[T ~string | ~[]byte](b T) string { return Encode(b, ReprBytes) }

// Encode renders s as a literal in style st.
func Encode[T ~string | ~[]byte](s T, st Style) string {
	q := quoteOf(s, st)
	var sb strings.Builder
	sb.Grow(len(s) + len(s)/16 + 8)
	if st.Bytes {
		sb.WriteByte('b')
	}
	sb.WriteString(q)
	writeBody(&sb, s, st, q[0])
	sb.WriteString(q)
	return sb.String()
}

// Body is what Encode writes between the quotes (with Auto, inside the
// quote Encode picks).
func Body[T ~string | ~[]byte](s T, st Style) string {
	var sb strings.Builder
	sb.Grow(len(s) + 8)
	writeBody(&sb, s, st, quoteOf(s, st)[0])
	return sb.String()
}

// quoteOf is the quote mark(s) st writes around s.
func quoteOf[T ~string | ~[]byte](s T, st Style) string {
	switch st.Quote {
	case Double:
		return `"`
	case Triple:
		return "'''"
	case Auto:
		if has(s, '\'') && !has(s, '"') {
			return `"`
		}
	}
	return "'"
}

// has reports whether s contains c.
func has[T ~string | ~[]byte](s T, c byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return true
		}
	}
	return false
}

// named is the escape of \n, \r or \t by name.
func named(c byte) string {
	switch c {
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	}
	return `\t`
}

const hexDigits = "0123456789abcdef"

// writeBody writes s escaped for a literal in style st quoted with q.
func writeBody[T ~string | ~[]byte](sb *strings.Builder, s T, st Style, q byte) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == q:
			sb.WriteByte('\\')
			sb.WriteByte(c)
		case (c == '\n' || c == '\t') && st.Controls == Verbatim:
			sb.WriteByte(c)
		case (c == '\n' || c == '\r' || c == '\t') && st.Controls == Named:
			sb.WriteString(named(c))
		case c < 0x20 || c == 0x7f || (c > 0x7f && st.Bytes):
			sb.WriteString(`\x`)
			sb.WriteByte(hexDigits[c>>4])
			sb.WriteByte(hexDigits[c&15])
		default:
			sb.WriteByte(c)
		}
	}
}
