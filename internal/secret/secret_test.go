package secret

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHint(t *testing.T) {
	assert.Equal(t, "****", Hint(""))
	assert.Equal(t, "****", Hint("abcd"))
	assert.Equal(t, "tp****", Hint("tpy-001"))
	assert.NotContains(t, Hint("demo-master-key-386427"), "master")
}

func TestRedact(t *testing.T) {
	assert.Equal(t, "", Redact(""))
	assert.Equal(t, "***", Redact("x"))
	assert.Equal(t, "***", Redact("a long secret"))
}

func TestMasker(t *testing.T) {
	m := NewMasker("", "abc", "abcdef")
	assert.Equal(t, "x **** y ****", m.Mask("x abcdef y abc"), "the longer secret is masked whole")
	assert.Equal(t, "nothing here", m.Mask("nothing here"))
	var none *Masker
	assert.Equal(t, "abc", none.Mask("abc"))
	assert.Equal(t, "abc", NewMasker().Mask("abc"))
}

// A secret with quotes, backslashes and non-ASCII bytes is masked in each
// escaped form it takes on the way to a report.
func TestMaskerEscapedForms(t *testing.T) {
	secret := `pa"ss\wörd'&=`
	m := NewMasker(secret)
	for _, form := range []string{
		secret,
		`pa\"ss\\wörd'\u0026=`,         // encoding/json
		`pa\"ss\\wörd'&=`,              // Go %q keeps printable runes
		`pa"ss\\w\xc3\xb6rd\'&=`,       // Python bytes literal
		"pa%22ss%5Cw%C3%B6rd%27%26%3D", // URL query
		"pa%22ss%5Cw%C3%B6rd%27&=",     // URL path
		"pa&#34;ss\\wörd&#39;&amp;=",   // HTML
	} {
		got := m.Mask("before " + form + " after")
		assert.Equal(t, "before **** after", got, "form %q", form)
	}
}

// MicroPython's repr picks double quotes for text with a ' and writes tab,
// CR and LF by name: those forms are masked too.
func TestMaskerPythonReprForms(t *testing.T) {
	m := NewMasker("it's-w\u00f6rd", "\u00e9\tx")
	for _, form := range []string{
		`b"it's-w\xc3\xb6rd"`,
		"\"it's-w\u00f6rd\"",
		`b'\xc3\xa9\tx'`,
		"'\u00e9\\tx'",
	} {
		got := m.Mask("x " + form + " y")
		assert.NotContains(t, got, "rd", "form %s: %s", form, got)
		assert.Contains(t, got, "****", "form %s: %s", form, got)
	}
}

func TestMaskError(t *testing.T) {
	m := NewMasker("s3cret")
	err := m.MaskError(&fs.PathError{Op: "open", Path: "/x/s3cret", Err: fs.ErrNotExist})
	assert.EqualError(t, err, "open /x/****: file does not exist")
	assert.ErrorIs(t, err, fs.ErrNotExist, "errors.Is sees through")
	var pe *fs.PathError
	require.ErrorAs(t, err, &pe, "errors.As sees through")
	assert.Equal(t, "/x/s3cret", pe.Path, "the wrapped error is untouched")
	assert.NoError(t, m.MaskError(nil))
	plain := errors.New("s3cret")
	var none *Masker
	assert.Same(t, plain, none.MaskError(plain))
}

func TestLineWriterMasksASecretSplitAcrossWrites(t *testing.T) {
	var out bytes.Buffer
	w := NewMasker("s3cret").LineWriter(&out)
	for _, p := range []string{"one s3", "cret two\nthree s", "3cret", " four"} {
		n, err := w.Write([]byte(p))
		require.NoError(t, err)
		assert.Equal(t, len(p), n)
	}
	assert.Equal(t, "one **** two\n", out.String(), "an unfinished line waits")
	require.NoError(t, w.Flush())
	assert.Equal(t, "one **** two\nthree **** four", out.String())
	require.NoError(t, w.Flush(), "nothing left")
	assert.Equal(t, "one **** two\nthree **** four", out.String())
}

func TestChunkWriterPassesEachWriteOnAtOnce(t *testing.T) {
	var out bytes.Buffer
	w := NewMasker("s3cret").ChunkWriter(&out)
	_, err := w.Write([]byte("\r 50% s3cret"))
	require.NoError(t, err)
	assert.Equal(t, "\r 50% ****", out.String())
	require.NoError(t, w.Flush())
	assert.Equal(t, "\r 50% ****", out.String())
}

type failing struct{}

func (failing) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriterErrors(t *testing.T) {
	n, err := NewMasker("x").ChunkWriter(failing{}).Write([]byte("abc\n"))
	assert.EqualError(t, err, "disk full")
	assert.Zero(t, n)
	lw := NewMasker("x").LineWriter(failing{})
	n, err = lw.Write([]byte("abc\n"))
	assert.EqualError(t, err, "disk full")
	assert.Equal(t, 4, n)
	lw = NewMasker("x").LineWriter(failing{})
	_, err = lw.Write([]byte("tail"))
	require.NoError(t, err, "an unfinished line is only held")
	assert.EqualError(t, lw.Flush(), "disk full")
}

func TestWriterFd(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "fd")
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, f.Fd(), NewMasker().ChunkWriter(f).Fd())
	assert.Equal(t, ^uintptr(0), NewMasker().LineWriter(&strings.Builder{}).Fd())
}

// A short secret is masked where it stands as a value, not inside the
// words of unrelated text (issue 17: a Wi-Fi password "x" shredded
// "context deadline exceeded").
func TestShortSecretMaskedOnlyAsAValue(t *testing.T) {
	m := NewMasker("x")
	for _, text := range []string{
		"context deadline exceeded",
		"0x1F max xx x_y y_x",
		`\\nx`, // an escaped backslash, then a word
	} {
		assert.Equal(t, text, m.Mask(text), "unrelated text stays whole")
	}
	for text, want := range map[string]string{
		"password x":              "password ****",
		`{"password": "x"}`:       `{"password": "****"}`,
		"ssid=lab,pw=x;":          "ssid=lab,pw=****;",
		"x":                       "****",
		"b'\\nx'":                 "b'\\n****'",
		"(x) deadline x exceeded": "(****) deadline **** exceeded",
	} {
		assert.Equal(t, want, m.Mask(text), "%q", text)
	}
}

// A short secret right after an escape (a repr of bytes, a URL) still
// stands as a value: the escape's letter or digits are not a word.
func TestShortSecretAfterAnEscape(t *testing.T) {
	m := NewMasker("tpy-001")
	for _, text := range []string{
		`b'\x10\x00\x07tpy-001'`,
		`"\ntpy-001"`,
		`\u0007tpy-001`,
		`\007tpy-001`,
		"key=%20tpy-001",
		"pw=tpy-001",
	} {
		got := m.Mask(text)
		assert.NotContains(t, got, "tpy-001", "%q", text)
		assert.Contains(t, got, Stars, "%q", text)
	}
	assert.Equal(t, "xtpy-001 tpy-0012", m.Mask("xtpy-001 tpy-0012"), "glued to a word: another word")
}

// A secret of ValueLen or more is masked wherever it appears, also glued to
// other text, as before.
func TestLongSecretMaskedAnywhere(t *testing.T) {
	m := NewMasker("s3cret-pw")
	assert.Equal(t, "pw****x ****", m.Mask("pws3cret-pwx s3cret-pw"))
}

// Two short secrets, one inside the other, as values: the longer is masked whole.
func TestShortSecretsLongestFirst(t *testing.T) {
	m := NewMasker("ab", "ab-cd")
	assert.Equal(t, "**** ****-x abc", m.Mask("ab-cd ab-x abc"))
}

func TestCheck(t *testing.T) {
	assert.NoError(t, Check("the Wi-Fi password", ""), "no secret")
	assert.NoError(t, Check("the Wi-Fi password", "abcd"))
	err := Check("the Wi-Fi password", "x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the Wi-Fi password has 1 character(s)")
	assert.Contains(t, err.Error(), "shorter than 4")
	err = Check("the key", "xyz")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "xyz", "the error never holds the secret")
}
