package board

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onenet-hil/hil/sim"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func allBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7 % 256)
	}
	return b
}

func TestFilesRoundTrip(t *testing.T) {
	ctx := testCtx(t)
	b, _, r := startBoard(t, sim.Options{}, nil)

	bin := allBytes(3000) // every byte value, several chunks
	text := []byte("print('hi')\n# it's a \"quote\" and a back\\slash\r\n\tend '''\n")
	require.NoError(t, r.MkdirAll(ctx, "/lib/sub/deep"))
	require.NoError(t, r.MkdirAll(ctx, "lib/sub"), "existing directories are fine")

	skipped, err := r.Put(ctx, "lib/sub/deep/blob.bin", bin)
	require.NoError(t, err)
	assert.False(t, skipped)
	skipped, err = r.Put(ctx, "text.py", text)
	require.NoError(t, err)
	assert.False(t, skipped)
	skipped, err = r.Put(ctx, "new/dir/auto.txt", []byte("parents made by Put"))
	require.NoError(t, err)
	assert.False(t, skipped)

	// What the board's flash holds, read on the host side of the virtual board.
	onFlash, err := os.ReadFile(filepath.Join(b.FlashDir(), "lib/sub/deep/blob.bin"))
	require.NoError(t, err)
	assert.Equal(t, bin, onFlash)
	onFlash, err = os.ReadFile(filepath.Join(b.FlashDir(), "text.py"))
	require.NoError(t, err)
	assert.Equal(t, text, onFlash)

	got, err := r.Get(ctx, "lib/sub/deep/blob.bin")
	require.NoError(t, err)
	assert.Equal(t, bin, got)

	h, err := r.Hash(ctx, "text.py")
	require.NoError(t, err)
	assert.Equal(t, SumHex(text), h)

	skipped, err = r.Put(ctx, "text.py", text)
	require.NoError(t, err)
	assert.True(t, skipped, "same sha256: no upload")

	st, err := r.Stat(ctx, "lib/sub/deep/blob.bin")
	require.NoError(t, err)
	assert.Equal(t, Entry{Path: "lib/sub/deep/blob.bin", Size: 3000}, st)
	st, err = r.Stat(ctx, "/lib")
	require.NoError(t, err)
	assert.True(t, st.Dir)
	_, err = r.Stat(ctx, "nope.py")
	assert.ErrorIs(t, err, fs.ErrNotExist)

	list, err := r.List(ctx, "/")
	require.NoError(t, err)
	names := map[string]Entry{}
	for _, e := range list {
		names[e.Path] = e
	}
	assert.True(t, names["/lib"].Dir)
	assert.Equal(t, int64(len(text)), names["/text.py"].Size)
	_, err = r.List(ctx, "/missing")
	assert.ErrorIs(t, err, fs.ErrNotExist)

	all, err := r.Walk(ctx, "/")
	require.NoError(t, err)
	var paths []string
	for _, e := range all {
		paths = append(paths, e.Path)
	}
	assert.ElementsMatch(t, []string{"/lib/sub/deep/blob.bin", "/new/dir/auto.txt", "/text.py"}, paths)

	require.NoError(t, r.Remove(ctx, "text.py"))
	assert.ErrorIs(t, r.Remove(ctx, "text.py"), fs.ErrNotExist)
	_, err = r.Get(ctx, "text.py")
	assert.ErrorIs(t, err, fs.ErrNotExist)

	hs, err := r.Hashes(ctx, []string{"text.py", "new/dir/auto.txt"})
	require.NoError(t, err)
	assert.Equal(t, "", hs["text.py"])
	assert.Equal(t, SumHex([]byte("parents made by Put")), hs["new/dir/auto.txt"])
}

func TestMpremoteStyleCopyAndPlainRaw(t *testing.T) {
	ctx := testCtx(t)
	b, _, r := startBoard(t, sim.Options{NoRawPaste: true}, nil)
	data := append(allBytes(700), []byte("it's \"both\" quotes\n")...)
	require.NoError(t, r.WriteFile(ctx, "a.bin", data, MpremoteCopy, nil))
	require.NoError(t, r.WriteFile(ctx, "b.bin", data, DefaultCopy, nil))
	for _, name := range []string{"a.bin", "b.bin"} {
		onFlash, err := os.ReadFile(filepath.Join(b.FlashDir(), name))
		require.NoError(t, err)
		assert.Equal(t, data, onFlash, name)
	}
	assert.False(t, r.RawPaste())
}

func TestPortDisappearsMidUpload(t *testing.T) {
	ctx := testCtx(t)
	b, _, r := startBoard(t, sim.Options{LineRate: true}, nil)
	require.NoError(t, r.EnterRaw(ctx, false))
	data := []byte(strings.Repeat("x = 1  # some python source\n", 2000)) // ~56 KB: seconds at line rate
	var closed bool
	start := time.Now()
	err := r.WriteFile(ctx, "big.py", data, DefaultCopy, func(int) {
		if !closed {
			closed = true
			go closeBoard(t, b) // the USB cable is pulled
		}
	})
	require.Error(t, err)
	assert.Less(t, time.Since(start), 30*time.Second)
	assert.Contains(t, err.Error(), "write big.py at byte")
	assert.Contains(t, err.Error(), "went away")
}

// Paths are quoted with pylit.Str and Repr chunks are pylit.Repr: a
// path with quotes, a backslash, a space and Chinese, and every byte value
// in mpremote's encoding, reach the board's flash exactly.
func TestPathsThatNeedQuotingAndReprChunks(t *testing.T) {
	ctx := testCtx(t)
	b, _, r := startBoard(t, sim.Options{}, nil)
	name := `it's "q"/配置 a\b.py`
	data := append(allBytes(600), []byte(`it's "both" and a \ too`)...)
	require.NoError(t, r.WriteFile(ctx, "x.bin", data, MpremoteCopy, nil))
	skipped, err := r.Put(ctx, name, data)
	require.NoError(t, err)
	assert.False(t, skipped)
	for _, p := range []string{"x.bin", name} {
		onFlash, err := os.ReadFile(filepath.Join(b.FlashDir(), filepath.FromSlash(p)))
		require.NoError(t, err, p)
		assert.Equal(t, data, onFlash, p)
	}
	got, err := r.Get(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, data, got)
	st, err := r.Stat(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, int64(len(data)), st.Size)
	hs, err := r.Hashes(ctx, []string{name})
	require.NoError(t, err)
	assert.Equal(t, SumHex(data), hs[name])
	list, err := r.List(ctx, `/it's "q"`)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, `/it's "q"/配置 a\b.py`, list[0].Path)
	require.NoError(t, r.Remove(ctx, name))
	_, err = r.Stat(ctx, name)
	assert.ErrorIs(t, err, fs.ErrNotExist)
}
