package echo

import (
	"errors"
	"strconv"
	"strings"

	"github.com/onenet-hil/hil/internal/pylit"
)

// Quote renders b as a Python bytes literal (b'...'), the way MicroPython's
// repr() prints a message payload: printable ASCII as is, the rest escaped.
// Unquote reads it back.
func Quote(b []byte) string { return pylit.Repr(b) }

var errUnterminated = errors.New("unterminated quoted value")

// Unquote reads one Python string or bytes literal ('..', "..", b'..',
// b"..") from the start of s and returns its value and the rest of s.
// Characters outside escapes are taken byte for byte (MicroPython prints
// non-ASCII str characters as raw UTF-8).
func Unquote(s string) (val, rest string, err error) {
	i := 0
	if i < len(s) && s[i] == 'b' {
		i++
	}
	if i >= len(s) || (s[i] != '\'' && s[i] != '"') {
		return "", s, errors.New("not a quoted value")
	}
	q := s[i]
	i++
	var sb strings.Builder
	for i < len(s) {
		c := s[i]
		switch {
		case c == q:
			return sb.String(), s[i+1:], nil
		case c == '\\':
			if i+1 >= len(s) {
				return "", s, errUnterminated
			}
			e := s[i+1]
			i += 2
			switch e {
			case '\\', '\'', '"':
				sb.WriteByte(e)
			case 'n':
				sb.WriteByte('\n')
			case 'r':
				sb.WriteByte('\r')
			case 't':
				sb.WriteByte('\t')
			case 'a':
				sb.WriteByte('\a')
			case 'b':
				sb.WriteByte('\b')
			case 'f':
				sb.WriteByte('\f')
			case 'v':
				sb.WriteByte('\v')
			case '0', '1', '2', '3', '4', '5', '6', '7':
				// Up to three octal digits, the first already read.
				j := i
				for j < len(s) && j < i+2 && s[j] >= '0' && s[j] <= '7' {
					j++
				}
				n, _ := strconv.ParseUint(s[i-1:j], 8, 16)
				if n > 0xff {
					return "", s, errors.New("octal escape out of range")
				}
				sb.WriteByte(byte(n))
				i = j
			case 'x':
				if i+2 > len(s) {
					return "", s, errors.New(`short \x escape`)
				}
				n, perr := strconv.ParseUint(s[i:i+2], 16, 8)
				if perr != nil {
					return "", s, errors.New(`bad \x escape`)
				}
				sb.WriteByte(byte(n))
				i += 2
			default:
				// Python keeps unknown escapes verbatim.
				sb.WriteByte('\\')
				sb.WriteByte(e)
			}
		default:
			sb.WriteByte(c)
			i++
		}
	}
	return "", s, errUnterminated
}
