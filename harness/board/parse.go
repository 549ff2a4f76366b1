package board

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// The board's answers to the code the REPL client sends, parsed apart
// from the link so that they can be fuzzed: whatever a broken board or a
// noisy line prints gives an error, never a panic or a wrong value.

// pasteAnswer is the board's reply to the raw-paste request.
type pasteAnswer int

const (
	answerAccepted pasteAnswer = iota // "R\x01": raw paste follows
	answerRefused                     // "R\x00": understood, refused
	answerOther                       // anything else: old firmware
)

func parsePasteAnswer(ans []byte) pasteAnswer {
	switch {
	case bytes.Equal(ans, []byte("R\x01")):
		return answerAccepted
	case bytes.Equal(ans, []byte("R\x00")):
		return answerRefused
	}
	return answerOther
}

// parseWindow reads the raw-paste window size (little-endian uint16).
func parseWindow(hdr []byte) (int, error) {
	if len(hdr) != 2 {
		return 0, fmt.Errorf("raw paste: window header of %d bytes", len(hdr))
	}
	w := int(hdr[0]) | int(hdr[1])<<8
	if w == 0 {
		return 0, fmt.Errorf("raw paste: board offered a zero window")
	}
	return w, nil
}

// splitExecReply splits what the board prints after accepting a block,
// "stdout \x04 stderr \x04 >", as follow reads it from the link. complete
// is false when the reply is not finished yet.
func splitExecReply(b []byte) (stdout, stderr []byte, complete bool) {
	i := bytes.IndexByte(b, 0x04)
	if i < 0 {
		return nil, nil, false
	}
	j := bytes.IndexByte(b[i+1:], 0x04)
	if j < 0 {
		return b[:i], nil, false
	}
	j += i + 1
	if bytes.IndexByte(b[j+1:], '>') < 0 {
		return b[:i], b[i+1 : j], false
	}
	return b[:i], b[i+1 : j], true
}

// parseStat reads Stat's answer: "mode size" or "-".
func parseStat(p string, out []byte) (Entry, error) {
	f := strings.Fields(string(out))
	if len(f) == 1 && f[0] == "-" {
		return Entry{}, notFound(p)
	}
	if len(f) != 2 {
		return Entry{}, fmt.Errorf("stat %s: unexpected answer %q", p, out)
	}
	mode, err1 := strconv.ParseInt(f[0], 10, 64)
	size, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || size < 0 {
		return Entry{}, fmt.Errorf("stat %s: unexpected answer %q", p, out)
	}
	return Entry{Path: p, Dir: mode&0x4000 != 0, Size: size}, nil
}

// parseList reads List's answer: a JSON list of [name, type, size], or
// null for a missing directory.
func parseList(dir string, out []byte) ([]Entry, error) {
	var raw [][]any
	if err := json.Unmarshal(bytes.TrimSpace(out), &raw); err != nil {
		return nil, fmt.Errorf("list %s: unexpected answer %q", dir, out)
	}
	if raw == nil {
		return nil, notFound(dir)
	}
	entries := make([]Entry, 0, len(raw))
	for _, e := range raw {
		if len(e) != 3 {
			return nil, fmt.Errorf("list %s: unexpected entry %v", dir, e)
		}
		name, ok1 := e[0].(string)
		kind, ok2 := e[1].(float64)
		size, ok3 := e[2].(float64)
		if !ok1 || !ok2 || !ok3 || name == "" || strings.Contains(name, "/") || name == "." || name == ".." || size < 0 {
			return nil, fmt.Errorf("list %s: unexpected entry %v", dir, e)
		}
		entries = append(entries, Entry{Path: path.Join(dir, name), Dir: int64(kind)&0x4000 != 0, Size: int64(size)})
	}
	return entries, nil
}

// parseHashes reads Hashes' answer: one line per path, 64 hex digits or
// "-" for a missing file.
func parseHashes(paths []string, out []byte) (map[string]string, error) {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, len(out)+1) // one line may be the whole answer
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			lines = append(lines, s)
		}
	}
	if len(lines) != len(paths) {
		return nil, fmt.Errorf("sha256 on the board: %d answers for %d files: %q", len(lines), len(paths), out)
	}
	res := make(map[string]string, len(paths))
	for i, p := range paths {
		if lines[i] == "-" {
			res[p] = ""
			continue
		}
		if _, err := hex.DecodeString(lines[i]); err != nil || len(lines[i]) != 64 {
			return nil, fmt.Errorf("sha256 on the board: bad answer %q for %s", lines[i], p)
		}
		res[p] = strings.ToLower(lines[i])
	}
	return res, nil
}

// parseGet reads Get's answer: lines of hex ending with ".", or "-".
func parseGet(p string, out []byte) ([]byte, error) {
	lines := strings.Fields(string(out))
	if len(lines) == 1 && lines[0] == "-" {
		return nil, notFound(p)
	}
	if len(lines) == 0 || lines[len(lines)-1] != "." {
		return nil, fmt.Errorf("get %s: incomplete answer", p)
	}
	var data []byte
	for _, l := range lines[:len(lines)-1] {
		b, err := hex.DecodeString(l)
		if err != nil {
			return nil, fmt.Errorf("get %s: bad hex from the board", p)
		}
		data = append(data, b...)
	}
	return data, nil
}
