package board

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/onenet-hil/hil/internal/pylit"
)

// Entry is a file or directory on the board.
type Entry struct {
	Path string
	Dir  bool
	Size int64
}

// Encoding is how file bytes travel inside the Python source of an upload.
type Encoding int

const (
	// Literal is a triple-quoted bytes literal escaping only what must be
	// (backslash, quote, CR, control and non-ASCII bytes): a text file
	// crosses the line almost byte for byte.
	Literal Encoding = iota
	// Repr is Python's repr() of the bytes, as mpremote sends them.
	Repr
)

// CopyOptions choose how Put moves bytes: ChunkSize file bytes per exec.
// The default (1 KiB literal chunks) keeps the board's compile-time heap
// use small while the per-exec overhead stays a few percent.
type CopyOptions struct {
	ChunkSize int
	Encoding  Encoding
}

// MpremoteCopy is the official tool's way: 256-byte repr() chunks.
var MpremoteCopy = CopyOptions{ChunkSize: 256, Encoding: Repr}

// DefaultCopy is Put's default.
var DefaultCopy = CopyOptions{ChunkSize: 1024, Encoding: Literal}

// notFound wraps fs.ErrNotExist with the board path.
func notFound(p string) error {
	return fmt.Errorf("board: %s: %w", p, fs.ErrNotExist)
}

// Stat describes one path; a missing path gives an error wrapping fs.ErrNotExist.
func (r *REPL) Stat(ctx context.Context, p string) (Entry, error) {
	out, err := r.Exec(ctx, "import os\ntry:\n s=os.stat("+pylit.Str(p)+")\n print(s[0],s[6])\nexcept OSError:\n print('-')")
	if err != nil {
		return Entry{}, fmt.Errorf("stat %s: %w", p, err)
	}
	return parseStat(p, out)
}

// List lists a directory on the board (not recursive).
func (r *REPL) List(ctx context.Context, dir string) ([]Entry, error) {
	code := "import os,json\ntry:\n l=[[e[0],e[1],os.stat(" + pylit.Str(strings.TrimSuffix(dir, "/")+"/") + "+e[0])[6]] for e in os.ilistdir(" + pylit.Str(dir) + ")]\nexcept OSError:\n l=None\nprint(json.dumps(l))"
	out, err := r.Exec(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return parseList(dir, out)
}

// Walk lists every file under dir on the board, depth first.
func (r *REPL) Walk(ctx context.Context, dir string) ([]Entry, error) {
	entries, err := r.List(ctx, dir)
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, e := range entries {
		if e.Dir {
			sub, err := r.Walk(ctx, e.Path)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// MkdirAll creates a directory and its parents; existing ones are fine.
func (r *REPL) MkdirAll(ctx context.Context, dir string) error {
	dir = path.Clean("/" + dir)
	if dir == "/" {
		return nil
	}
	code := "import os\np=''\nfor c in " + pylit.Str(strings.TrimPrefix(dir, "/")) + ".split('/'):\n p+='/'+c\n try:\n  os.mkdir(p)\n except OSError as e:\n  if e.args[0]!=17:raise"
	if _, err := r.Exec(ctx, code); err != nil {
		return fmt.Errorf("mkdir %s: %w", dir, err)
	}
	return nil
}

// Remove deletes a file; a missing file gives an error wrapping fs.ErrNotExist.
func (r *REPL) Remove(ctx context.Context, p string) error {
	out, err := r.Exec(ctx, "import os\ntry:\n os.remove("+pylit.Str(p)+")\n print('ok')\nexcept OSError as e:\n print(e.args[0])")
	if err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	switch s := strings.TrimSpace(string(out)); s {
	case "ok":
		return nil
	case "2":
		return notFound(p)
	default:
		return fmt.Errorf("remove %s: board error %s", p, s)
	}
}

// hashCode hashes files on the board the way mpremote does (256-byte reads
// into a memoryview), one line of hex per path, "-" for a missing file.
const hashCode = `import hashlib,binascii
def _h(p):
 try:
  f=open(p,'rb')
 except OSError:
  return '-'
 h=hashlib.sha256()
 b=bytearray(256)
 m=memoryview(b)
 while 1:
  n=f.readinto(b)
  if not n:break
  h.update(m[:n])
 f.close()
 return binascii.hexlify(h.digest()).decode()
for p in %s:
 print(_h(p))
del _h`

// Hashes returns the sha256 (hex) of each path on the board, in one
// exchange; a missing file maps to "".
func (r *REPL) Hashes(ctx context.Context, paths []string) (map[string]string, error) {
	if len(paths) == 0 {
		return map[string]string{}, nil
	}
	quoted := make([]string, len(paths))
	for i, p := range paths {
		quoted[i] = pylit.Str(p)
	}
	out, err := r.Exec(ctx, fmt.Sprintf(hashCode, "("+strings.Join(quoted, ",")+",)"))
	if err != nil {
		return nil, fmt.Errorf("sha256 on the board: %w", err)
	}
	return parseHashes(paths, out)
}

// Hash returns the sha256 (hex) of one file on the board.
func (r *REPL) Hash(ctx context.Context, p string) (string, error) {
	h, err := r.Hashes(ctx, []string{p})
	if err != nil {
		return "", err
	}
	if h[p] == "" {
		return "", notFound(p)
	}
	return h[p], nil
}

// SumHex is the sha256 of data in hex, as Hashes reports it.
func SumHex(data []byte) string {
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// Put writes data to p on the board unless the file there already has the
// same sha256; it creates parent directories. skipped tells which.
func (r *REPL) Put(ctx context.Context, p string, data []byte) (skipped bool, err error) {
	h, err := r.Hashes(ctx, []string{p})
	if err != nil {
		return false, err
	}
	if h[p] == SumHex(data) {
		return true, nil
	}
	if dir := path.Dir(path.Clean("/" + p)); dir != "/" {
		if err := r.MkdirAll(ctx, dir); err != nil {
			return false, err
		}
	}
	return false, r.WriteFile(ctx, p, data, DefaultCopy, nil)
}

// WriteFile writes data to p on the board (no hash check), chunk by chunk;
// progress, if set, is told the byte count of each chunk written.
func (r *REPL) WriteFile(ctx context.Context, p string, data []byte, opts CopyOptions, progress func(n int)) error {
	if opts.ChunkSize <= 0 {
		opts.ChunkSize = DefaultCopy.ChunkSize
	}
	style := pylit.FileChunk
	if opts.Encoding == Repr {
		style = pylit.ReprBytes // Python's repr() of bytes
	}
	if _, err := r.Exec(ctx, "f=open("+pylit.Str(p)+",'wb')\nw=f.write"); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	for i := 0; i < len(data); i += opts.ChunkSize {
		chunk := data[i:min(i+opts.ChunkSize, len(data))]
		if _, err := r.Exec(ctx, "w("+pylit.Encode(chunk, style)+")"); err != nil {
			r.Exec(ctx, "f.close()") // best effort; the link may be gone
			return fmt.Errorf("write %s at byte %d of %d: %w", p, i, len(data), err)
		}
		if progress != nil {
			progress(len(chunk))
		}
	}
	if _, err := r.Exec(ctx, "f.close()\ndel f,w"); err != nil {
		return fmt.Errorf("write %s: close: %w", p, err)
	}
	return nil
}

// Get reads a file from the board.
func (r *REPL) Get(ctx context.Context, p string) ([]byte, error) {
	code := "import binascii\ntry:\n f=open(" + pylit.Str(p) + ",'rb')\nexcept OSError:\n f=None\n print('-')\nif f:\n while 1:\n  b=f.read(256)\n  if not b:break\n  print(binascii.hexlify(b).decode())\n f.close()\n print('.')"
	out, err := r.Exec(ctx, code)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", p, err)
	}
	return parseGet(p, out)
}
