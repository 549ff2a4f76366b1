// Package child starts a helper process (this program again, in a worker
// mode) that talks to its parent over its stdin and stdout.
package child

import (
	"errors"
	"io"
	"os"
	"os/exec"
)

// Start starts argv with env added to this process's environment and its
// stderr on ours; it returns the process and its stdin and stdout.
func Start(argv, env []string) (*exec.Cmd, io.WriteCloser, io.ReadCloser, error) {
	if len(argv) == 0 {
		return nil, nil, nil, errors.New("no command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, nil, err
	}
	return cmd, in, out, nil
}
