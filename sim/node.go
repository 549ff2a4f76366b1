package sim

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// The MicroPython package the virtual board runs: pinned, and checked by
// npm against the integrity hash in the embedded lock file.
const (
	mpPackage = "@micropython/micropython-webassembly-pyscript"
	mpVersion = "1.27.0"
)

//go:embed vmpkg/package.json
var vmPackageJSON []byte

//go:embed vmpkg/package-lock.json
var vmPackageLock []byte

// EnvMicroPython names a directory holding the package (its micropython.mjs),
// for a machine without npm.
const EnvMicroPython = "HIL_MICROPYTHON"

// runtimeDeps are the node binary and the package directory, found once.
type runtimeDeps struct {
	node, pkg string
}

var (
	depsMu    sync.Mutex
	depsCache = map[string]runtimeDeps{}
)

// findRuntime returns node (Node.js 20 or newer: the permission model
// sandboxes the VM) and the package directory: $HIL_MICROPYTHON, a
// node_modules beside the working directory or above it (a checkout after
// `npm ci`), or the user's cache, where it is installed with npm on first
// use (said on log).
func findRuntime(ctx context.Context, nodeName string, log io.Writer) (runtimeDeps, error) {
	depsMu.Lock()
	defer depsMu.Unlock()
	if d, ok := depsCache[nodeName]; ok {
		return d, nil
	}
	node, err := exec.LookPath(nodeName)
	if err != nil {
		return runtimeDeps{}, fmt.Errorf("sim: the virtual board runs MicroPython on Node.js 20 or newer: %w", err)
	}
	if err := checkNode(ctx, node); err != nil {
		return runtimeDeps{}, err
	}
	pkg, err := findPackage(ctx, log)
	if err != nil {
		return runtimeDeps{}, err
	}
	d := runtimeDeps{node: node, pkg: pkg}
	depsCache[nodeName] = d
	return d, nil
}

var nodeVersion = regexp.MustCompile(`^v(\d+)\.`)

func checkNode(ctx context.Context, node string) error {
	out, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		return fmt.Errorf("sim: %s --version: %w", node, err)
	}
	m := nodeVersion.FindSubmatch(bytes.TrimSpace(out))
	if m == nil {
		return fmt.Errorf("sim: %s --version said %q", node, out)
	}
	if major, _ := strconv.Atoi(string(m[1])); major < 20 {
		return fmt.Errorf("sim: %s is Node.js %s; the virtual board needs 20 or newer (its permission model sandboxes the VM)",
			node, bytes.TrimSpace(out))
	}
	return nil
}

func hasPackage(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "micropython.mjs"))
	return err == nil
}

func findPackage(ctx context.Context, log io.Writer) (string, error) {
	if d := os.Getenv(EnvMicroPython); d != "" {
		if !hasPackage(d) {
			return "", fmt.Errorf("sim: $%s=%s has no micropython.mjs", EnvMicroPython, d)
		}
		return filepath.Abs(d)
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, "node_modules", filepath.FromSlash(mpPackage))
			if hasPackage(p) && packageVersion(p) == mpVersion {
				return p, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("sim: no node_modules with %s and no cache directory: %w", mpPackage, err)
	}
	prefix := filepath.Join(cache, "hil", "micropython-"+mpVersion)
	p := filepath.Join(prefix, "node_modules", filepath.FromSlash(mpPackage))
	if hasPackage(p) {
		return p, nil
	}
	return p, installPackage(ctx, prefix, log)
}

var versionField = regexp.MustCompile(`"version"\s*:\s*"([^"]+)"`)

func packageVersion(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return ""
	}
	if m := versionField.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// installPackage runs `npm ci` in prefix with the embedded lock file, so npm
// checks the tarball against its sha512.
func installPackage(ctx context.Context, prefix string, log io.Writer) error {
	if log == nil {
		log = os.Stderr
	}
	fmt.Fprintf(log, "hil: installing MicroPython %s (npm %s@%s) into %s for the virtual board; once only\n",
		mpVersion, mpPackage, mpVersion, prefix)
	if err := os.MkdirAll(prefix, 0o755); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"package.json": vmPackageJSON, "package-lock.json": vmPackageLock} {
		if err := os.WriteFile(filepath.Join(prefix, name), data, 0o644); err != nil {
			return err
		}
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("sim: MicroPython %s is not installed and npm is missing (install npm, or set $%s): %w",
			mpVersion, EnvMicroPython, err)
	}
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = prefix
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("sim: npm ci of %s@%s in %s: %w\n%s", mpPackage, mpVersion, prefix, err,
			strings.TrimSpace(out.String()))
	}
	if !hasPackage(filepath.Join(prefix, "node_modules", filepath.FromSlash(mpPackage))) {
		return errors.New("sim: npm ci finished but the package is not there")
	}
	return nil
}
