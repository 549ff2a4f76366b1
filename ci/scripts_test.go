// Package ci_test holds the tests of the project's scripts, so that the
// README's `go test ./...` exercises them: every shell script parses
// (`bash -n`), every workflow step parses and the scripts it calls exist,
// the nightly hardware run (ci/hardware-run.sh) passes against a virtual
// board's pty used as a serial board, and scripts/fuzz.sh runs.
package ci_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// mustCheck are the scripts the search must find: if it finds none of
// them, it is broken, not the tree clean.
var mustCheck = []string{".ci/run", "ci/hardware-run.sh", "scripts/fuzz.sh"}

// repoRoot is the module's root, the parent of this folder.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "go.mod"), "the ci folder is not at the module's root")
	return root
}

// repoFiles lists the files of the checkout, relative to root: the tracked
// ones (git ls-files), or, without git, every file outside .git and
// node_modules.
func repoFiles(t *testing.T, root string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "git", "-C", root, "ls-files", "-z")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		return strings.Split(strings.TrimRight(string(out), "\x00"), "\x00")
	}
	t.Logf("git ls-files: %v %s; walking the tree instead", err, strings.TrimSpace(stderr.String()))
	var files []string
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(root, path)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	require.NoError(t, err)
	return files
}

// shebangShell matches the first line of a bash or sh script.
var shebangShell = regexp.MustCompile(`^#!\s*\S*/(?:env\s+)?(?:ba)?sh(?:\s|$)`)

// shellScripts are the repository's shell scripts: *.sh and *.bash files
// and files whose first line is a bash or sh shebang (like .ci/run).
func shellScripts(t *testing.T, root string) []string {
	t.Helper()
	var scripts []string
	for _, f := range repoFiles(t, root) {
		if f == "" || strings.Contains("/"+f, "/node_modules/") {
			continue
		}
		path := filepath.Join(root, filepath.FromSlash(f))
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			continue // tracked but deleted in the working tree
		}
		if strings.HasSuffix(f, ".sh") || strings.HasSuffix(f, ".bash") {
			scripts = append(scripts, f)
			continue
		}
		first, err := firstLine(path)
		require.NoError(t, err)
		if shebangShell.MatchString(first) {
			scripts = append(scripts, f)
		}
	}
	return scripts
}

func firstLine(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// bashN runs `bash -n` on a file, or on stdin when file is "", and fails
// the test with bash's message.
func bashN(t *testing.T, root, file, stdin, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-n"}
	if file != "" {
		args = append(args, file)
	}
	cmd := exec.CommandContext(ctx, "bash", args...)
	cmd.Dir = root
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "bash -n %s:\n%s", what, out)
}

// TestShellScriptsParse runs `bash -n` on every shell script of the
// repository.
func TestShellScriptsParse(t *testing.T) {
	_, err := exec.LookPath("bash")
	require.NoError(t, err, "the scripts are bash scripts")
	root := repoRoot(t)
	scripts := shellScripts(t, root)
	require.Subset(t, scripts, mustCheck, "the script search missed some; it found %v", scripts)
	for _, s := range scripts {
		t.Run(s, func(t *testing.T) {
			bashN(t, root, s, "", s)
		})
	}
}

type workflow struct {
	Jobs map[string]struct {
		Steps []struct {
			Name  string `yaml:"name"`
			Uses  string `yaml:"uses"`
			Run   string `yaml:"run"`
			Shell string `yaml:"shell"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

var (
	// expression is a GitHub Actions ${{ ... }}, replaced before the
	// shell sees the step.
	expression = regexp.MustCompile(`\$\{\{[^}]*\}\}`)
	// scriptArg is the file of a `bash FILE` or `sh FILE` command.
	scriptArg = regexp.MustCompile(`(?m)(?:^|[;&|(]|\s)(?:ba)?sh\s+(?:-\S+\s+)*([^\s;&|)$'"-][^\s;&|)'"]*)`)
)

// TestWorkflowStepsParse parses every workflow, runs `bash -n` on each
// `run:` step and checks that the scripts a step calls exist and are among
// the scripts TestShellScriptsParse checks.
func TestWorkflowStepsParse(t *testing.T) {
	root := repoRoot(t)
	files, err := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.y*ml"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no workflow in .github/workflows")
	scripts := shellScripts(t, root)
	steps := 0
	for _, file := range files {
		rel, err := filepath.Rel(root, file)
		require.NoError(t, err)
		t.Run(rel, func(t *testing.T) {
			data, err := os.ReadFile(file)
			require.NoError(t, err)
			var w workflow
			require.NoError(t, yaml.Unmarshal(data, &w), "%s is not valid YAML", rel)
			require.NotEmpty(t, w.Jobs, "%s has no jobs", rel)
			for job, j := range w.Jobs {
				require.NotEmpty(t, j.Steps, "%s: job %s has no steps", rel, job)
				for i, s := range j.Steps {
					what := s.Name
					if what == "" {
						what = s.Uses
					}
					what = strings.TrimSpace(rel + ": job " + job + ", step " + strconv.Itoa(i+1) + " " + what)
					require.True(t, (s.Run == "") != (s.Uses == ""), "%s: want exactly one of run and uses", what)
					if s.Run == "" {
						continue
					}
					require.Contains(t, []string{"", "bash"}, s.Shell, "%s: a shell this test cannot check", what)
					steps++
					bashN(t, root, "", expression.ReplaceAllString(s.Run, "X"), what)
					for _, m := range scriptArg.FindAllStringSubmatch(s.Run, -1) {
						t.Logf("%s calls %s", what, m[1])
						require.FileExists(t, filepath.Join(root, m[1]), "%s calls %s", what, m[1])
						require.True(t, slices.Contains(scripts, filepath.ToSlash(filepath.Clean(m[1]))),
							"%s calls %s, which is not a tracked shell script (checked: %v)", what, m[1], scripts)
					}
				}
			}
		})
	}
	require.Positive(t, steps, "no run: step in any workflow")
}
