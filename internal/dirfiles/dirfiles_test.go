package dirfiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestReadTakesRegularFilesAndSkipsWhatItIsTold(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"main.py": "m", "lib/x.py": "x", ".git/HEAD": "h", "lib/.hidden": "s"} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600))
	}
	require.NoError(t, os.Symlink("main.py", filepath.Join(dir, "link.py")))
	all, err := Read(dir, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"main.py": []byte("m"), "lib/x.py": []byte("x"), ".git/HEAD": []byte("h"),
		"lib/.hidden": []byte("s")}, all, "every regular file, no symlink")
	visible, err := Read(dir, func(name string) bool { return strings.HasPrefix(name, ".") })
	require.NoError(t, err)
	assert.Equal(t, map[string][]byte{"main.py": []byte("m"), "lib/x.py": []byte("x")}, visible)
	_, err = Read(filepath.Join(dir, "missing"), nil)
	assert.Error(t, err)
}
