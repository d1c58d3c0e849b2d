package testworld

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// ActionStep is one step that uses this action, as a workflow writes it: its with: block (by
// input name, as in the workflow) and its env: (PGPASSWORD, GITHUB_REPOSITORY, ...).
type ActionStep struct {
	With map[string]string
	Env  map[string]string
}

// RunnerFiles are the files the runner gives a step and reads back after it.
type RunnerFiles struct {
	Output, Summary, Env, Path, State string
	// Workspace is GITHUB_WORKSPACE, Temp RUNNER_TEMP, Home HOME.
	Workspace, Temp, Home string
}

// Environ builds the environment GitHub's runner starts the action's container with:
//   - the runner's variables: GITHUB_ACTIONS=true, CI=true, the file commands (GITHUB_OUTPUT,
//     GITHUB_STEP_SUMMARY, GITHUB_ENV, GITHUB_PATH, GITHUB_STATE) as fresh files, the
//     workspace, RUNNER_TEMP and HOME as directories of the test's own;
//   - INPUT_<NAME> (upper case, hyphens kept) for every input of action.yml that has a
//     default, given or not: the runner passes every default;
//   - the step's with: on top, each as INPUT_<NAME> (with: values are trimmed by nothing: the
//     runner passes them as written);
//   - the step's env: last, as the runner does.
//
// Every action-mode test builds its environment here, so a test sees what a workflow sees.
func (s ActionStep) Environ(t testing.TB) (map[string]string, RunnerFiles) {
	t.Helper()
	inputs, err := ActionInputs()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := RunnerFiles{
		Output:    filepath.Join(dir, "file_commands", "set_output"),
		Summary:   filepath.Join(dir, "file_commands", "step_summary"),
		Env:       filepath.Join(dir, "file_commands", "set_env"),
		Path:      filepath.Join(dir, "file_commands", "add_path"),
		State:     filepath.Join(dir, "file_commands", "save_state"),
		Workspace: filepath.Join(dir, "workspace"),
		Temp:      filepath.Join(dir, "_temp"),
		Home:      filepath.Join(dir, "_github_home"),
	}
	for _, d := range []string{filepath.Dir(files.Output), files.Workspace, files.Temp, files.Home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{files.Output, files.Summary, files.Env, files.Path, files.State} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{
		"GITHUB_ACTIONS": "true", "CI": "true",
		"GITHUB_OUTPUT": files.Output, "GITHUB_STEP_SUMMARY": files.Summary, "GITHUB_ENV": files.Env,
		"GITHUB_PATH": files.Path, "GITHUB_STATE": files.State,
		"GITHUB_WORKSPACE": files.Workspace, "RUNNER_TEMP": files.Temp, "HOME": files.Home,
	}
	for name, def := range inputs {
		if def != nil {
			env[InputEnv(name)] = *def
		}
	}
	for name, v := range s.With {
		if _, ok := inputs[name]; !ok {
			// The runner passes it with a warning ("Unexpected input"); a test means a real one.
			t.Fatalf("with: %s is not an input of action.yml", name)
		}
		env[InputEnv(name)] = v
	}
	maps.Copy(env, s.Env)
	return env, files
}

// InputEnv is the variable the runner sets for an input: INPUT_ and the name in upper case,
// hyphens kept (INPUT_RELEASE-NAME).
func InputEnv(name string) string { return "INPUT_" + strings.ToUpper(name) }

// ActionInputs reads action.yml's inputs: each name with its default, nil for an input that has
// none.
func ActionInputs() (map[string]*string, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(root, "action.yml"))
	if err != nil {
		return nil, err
	}
	var action struct {
		Inputs map[string]struct {
			Default *string `json:"default"`
		} `json:"inputs"`
	}
	if err := yaml.Unmarshal(data, &action); err != nil {
		return nil, fmt.Errorf("action.yml: %w", err)
	}
	out := make(map[string]*string, len(action.Inputs))
	for name, in := range action.Inputs {
		out[name] = in.Default
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("action.yml declares no inputs")
	}
	return out, nil
}

// EnvList turns an environment map into KEY=value lines, sorted, for exec.Cmd.Env.
func EnvList(env map[string]string) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}
