package kubeauth

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrOutsideWorkspace is the error for a file the container cannot see: a container action sees
// the runner's files only under the workspace, which GitHub mounts at /github/workspace.
var ErrOutsideWorkspace = errors.New("outside the workspace")

// Workspace maps a path as the runner wrote it (GITHUB_WORKSPACE on the runner,
// /home/runner/work/<repo>/<repo>) to the path inside a container action, where GitHub mounts
// the workspace at /github/workspace and sets GITHUB_WORKSPACE to that. Steps before the action
// (google-github-actions/auth's credentials file, a kubeconfig written with
// ${{ github.workspace }}) name files by their runner path. The zero Workspace maps nothing.
type Workspace struct {
	Runner    string // the workspace's path on the runner
	Container string // the same directory inside the container
}

// WorkspaceFromEnv finds the workspace mapping of a container action: RUNNER_WORKSPACE is the
// runner's path of the repository's work directory, the workspace is its directory named after
// the repository, and GITHUB_WORKSPACE is where the container sees it. Outside a container (the
// CLI, a run step) both are the same and nothing is mapped.
func WorkspaceFromEnv(getenv func(string) string) Workspace {
	container, runnerDir, repo := getenv("GITHUB_WORKSPACE"), getenv("RUNNER_WORKSPACE"), getenv("GITHUB_REPOSITORY")
	if getenv("GITHUB_ACTIONS") != "true" || container == "" || runnerDir == "" || repo == "" {
		return Workspace{}
	}
	runner := path.Join(runnerDir, path.Base(repo))
	if filepath.Clean(container) == runner {
		return Workspace{}
	}
	return Workspace{Runner: runner, Container: filepath.Clean(container)}
}

// Path returns where the container finds the file p names. A relative path is left alone (a
// container action runs in the workspace); an absolute one under the runner's workspace is
// moved under the container's. Any other absolute path must exist as it is, or it is a file
// on the runner the container cannot see: an error wrapping ErrOutsideWorkspace that says so.
func (w Workspace) Path(p string) (string, error) {
	if w.Runner == "" || p == "" || !filepath.IsAbs(p) {
		return p, nil
	}
	p = filepath.Clean(p)
	if rel, ok := under(p, w.Runner); ok {
		return filepath.Join(w.Container, rel), nil
	}
	if _, ok := under(p, w.Container); ok {
		return p, nil
	}
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s is %w: this container action sees the runner's files only under the workspace %s (mounted at %s); write the file into the workspace (for example under ${{ github.workspace }}) or pass its content instead",
		p, ErrOutsideWorkspace, w.Runner, w.Container)
}

// under reports whether p is dir or inside it, and p relative to dir.
func under(p, dir string) (string, bool) {
	if p == dir {
		return ".", true
	}
	rest, ok := strings.CutPrefix(p, strings.TrimSuffix(dir, "/")+"/")
	return rest, ok
}
