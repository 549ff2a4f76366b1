package sim

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// interpreters caches the resolved path of each interpreter name. Version managers put a shell
// shim on PATH (pyenv's costs ~0.2 s a start); every boot after the first skips it.
var interpreters sync.Map // name -> string

// resolvePython returns the real executable behind name, checking it is Python 3.8 or newer.
func resolvePython(ctx context.Context, name string) (string, error) {
	if p, ok := interpreters.Load(name); ok {
		return p.(string), nil
	}
	if _, err := exec.LookPath(name); err != nil {
		return "", fmt.Errorf("sim: the virtual board needs python3: %w", err)
	}
	out, err := exec.CommandContext(ctx, name, "-I", "-S", "-c",
		"import sys; print(sys.version_info >= (3, 8)); print(sys.executable)").Output()
	if err != nil {
		return "", fmt.Errorf("sim: run %s: %w", name, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] != "True" || lines[1] == "" {
		return "", fmt.Errorf("sim: %s is not Python 3.8 or newer (got %q)", name, out)
	}
	interpreters.Store(name, lines[1])
	return lines[1], nil
}
