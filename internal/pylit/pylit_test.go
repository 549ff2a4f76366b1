package pylit

import (
	"context"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// allBytes is every byte value once.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func TestStr(t *testing.T) {
	for in, want := range map[string]string{
		"":                `''`,
		"plain /a.py":     `'plain /a.py'`,
		`it's`:            `'it\'s'`,
		`say "hi"`:        `'say "hi"'`,
		`a\b`:             `'a\\b'`,
		"nl\n cr\r tab\t": `'nl\x0a cr\x0d tab\x09'`,
		"\x00\x1f\x7f":    `'\x00\x1f\x7f'`,
		"实验室 é \u0085":    "'实验室 é \u0085'",
		"bad \xff utf8":   "'bad \uFFFD utf8'",
	} {
		assert.Equal(t, want, Str(in), "%q", in)
	}
}

func TestRepr(t *testing.T) {
	for in, want := range map[string]string{
		"":             `b''`,
		"on":           `b'on'`,
		`it's`:         `b"it's"`,
		`say "hi"`:     `b'say "hi"'`,
		`it's "both"`:  `b'it\'s "both"'`,
		`a\b`:          `b'a\\b'`,
		"\n\r\t":       `b'\n\r\t'`,
		"\x00\x1f":     `b'\x00\x1f'`,
		"\x7f\x80\xff": `b'\x7f\x80\xff'`,
		"é":            `b'\xc3\xa9'`,
	} {
		assert.Equal(t, want, Repr(in), "%q", in)
		assert.Equal(t, want, Repr([]byte(in)), "%q as []byte", in)
	}
}

func TestSourceBytes(t *testing.T) {
	for in, want := range map[string]string{
		"TurnipRobot/led": `b"TurnipRobot/led"`,
		`it's "q"`:        `b"it's \"q\""`,
		`a\b`:             `b"a\\b"`,
		"\n\r\t\x00":      `b"\x0a\x0d\x09\x00"`,
		"\x7f\xff é":      `b"\x7f\xff \xc3\xa9"`,
	} {
		assert.Equal(t, want, Encode(in, SourceBytes), "%q", in)
	}
}

func TestFileChunk(t *testing.T) {
	for in, want := range map[string]string{
		"":                     `b''''''`,
		"line\n\tindent\n":     "b'''line\n\tindent\n'''",
		`it's "q" \ end'`:      `b'''it\'s "q" \\ end\''''`,
		"crlf\r\n":             "b'''crlf\\x0d\n'''",
		"\x00\x1b\x7f\x80\xff": `b'''\x00\x1b\x7f\x80\xff'''`,
	} {
		assert.Equal(t, want, Encode([]byte(in), FileChunk), "%q", in)
	}
}

func TestBodyIsWhatLiesBetweenTheQuotes(t *testing.T) {
	for _, st := range []Style{
		SourceStr, ReprBytes, SourceBytes, FileChunk,
		{Quote: Double, Controls: Named}, {Bytes: true, Quote: Double, Controls: Named},
	} {
		for _, in := range []string{"", "x", `it's`, `"q"`, `it's "q"`, "\\\n\r\t\x00é\xff"} {
			lit := Encode(in, st)
			q := len(quoteOf(in, st))
			p := 0
			if st.Bytes {
				p = 1
			}
			assert.Equal(t, lit[p+q:len(lit)-q], Body(in, st), "%+v %q", st, in)
		}
	}
	assert.Equal(t, `it\'s`, Body(`it's`, Style{Controls: Named}))
	assert.Equal(t, `it's`, Body(`it's`, Style{Quote: Double, Controls: Named}))
	assert.Equal(t, `\xc3\xa9\t`, Body("é\t", Style{Bytes: true, Controls: Named}))
	assert.Equal(t, "é\\t", Body("é\t", Style{Controls: Named}))
}

// Python itself reads every literal back as the value it was made from.
func TestPythonReadsTheLiteralsBack(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	inputs := []string{"", "plain", `it's "q"`, `'`, `"`, `\`, "ends with '", "\n\r\t", string(allBytes()), "实验室"}
	var src string
	for _, in := range inputs {
		for _, st := range []Style{ReprBytes, SourceBytes, FileChunk, {Bytes: true, Controls: Named}} {
			src += "print(" + Encode(in, st) + ".hex())\n"
		}
		src += "print(" + Str(in) + ".encode('utf-8', 'surrogateescape').hex())\n"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, py, "-c", src).Output()
	require.NoError(t, err)
	var want string
	for _, in := range inputs {
		for range 4 {
			want += hex.EncodeToString([]byte(in)) + "\n"
		}
		want += hex.EncodeToString([]byte(strings.ToValidUTF8(in, "\uFFFD"))) + "\n"
	}
	assert.Equal(t, want, string(out))
}
