// Package dirfiles reads a directory tree into memory by slash-separated
// path: the firmware folder `hil flash --firmware` uploads, and the host
// folder that is the virtual board's flash.
package dirfiles

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Read returns every regular file below dir by its path relative to dir
// (with "/" separators). skip, when not nil, leaves out the files and
// whole directories whose name it accepts.
func Read(dir string, skip func(name string) bool) (map[string][]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir && skip != nil && skip(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = data
		return nil
	})
	return files, err
}
