package sim

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 15, item 9: what the board writes on its flash (config.json holds
// the Wi-Fi password and the device's key) is its owner's only, also a
// file that was there with a wider mode.
func TestFlashFilesArePrivate(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "config.json")
	require.NoError(t, os.WriteFile(old, []byte("{}"), 0o644))
	require.NoError(t, applyFlash(dir, vmMsg{W: [][2]string{{"config.json", `{"key":"k"}`}, {"lib/new.py", "x = 1"}}, Dirs: []string{"data"}}))
	for _, p := range []string{"config.json", "lib/new.py"} {
		st, err := os.Stat(filepath.Join(dir, p))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), p)
	}
	for _, d := range []string{"lib", "data"} {
		st, err := os.Stat(filepath.Join(dir, d))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o700), st.Mode().Perm(), d)
	}
}
