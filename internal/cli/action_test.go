package cli

import (
	"bytes"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/ghaction"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// actionRun is a run of the action: its exit code, stdout and stderr, and what it left in the
// step's outputs and job summary.
type actionRun struct {
	result
	outputs map[string]string
	summary string
}

// runAction runs the CLI as GitHub's runner starts the action (testworld.ActionStep): every
// default of action.yml as INPUT_<NAME>, the step's inputs on top, the runner's files. env holds
// the step's inputs as INPUT_<NAME> and its other variables as they are.
func runAction(t *testing.T, env map[string]string) actionRun {
	t.Helper()
	full, files := actionStep(env).Environ(t)
	r := actionRun{result: runCLI(t, full)}
	r.outputs = readOutputs(t, files.Output)
	summary, err := os.ReadFile(files.Summary)
	if err != nil {
		t.Errorf("no job summary: %v", err)
	}
	r.summary = string(summary)
	return r
}

// actionStep splits an environment into a step's inputs (INPUT_<NAME>, by input name) and its
// other variables.
func actionStep(env map[string]string) testworld.ActionStep {
	step := testworld.ActionStep{With: map[string]string{}, Env: map[string]string{}}
	for k, v := range env {
		if name, ok := strings.CutPrefix(k, "INPUT_"); ok {
			step.With[strings.ToLower(name)] = v
		} else {
			step.Env[k] = v
		}
	}
	return step
}

// readOutputs reads a GITHUB_OUTPUT file: name=value lines and name<<DELIM heredocs.
func readOutputs(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("no outputs: %v", err)
		return nil
	}
	out := map[string]string{}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		if name, delim, ok := strings.Cut(lines[i], "<<"); ok && !strings.Contains(name, "=") {
			var val []string
			for i++; i < len(lines) && lines[i] != delim; i++ {
				val = append(val, lines[i])
			}
			out[name] = strings.Join(val, "\n")
			continue
		}
		name, val, _ := strings.Cut(lines[i], "=")
		out[name] = val
	}
	return out
}

// checkRefused checks the contract of a refused action run: exit 2, result refused, exit-code 2,
// a failure-reason naming the cause, a job summary saying nothing was changed, and an ::error
// annotation.
func checkRefused(t *testing.T, r actionRun, reason string) {
	t.Helper()
	if r.code != rollout.ExitRefused {
		t.Errorf("exit %d, want %d; stderr:\n%s", r.code, rollout.ExitRefused, r.stderr)
	}
	if r.outputs["result"] != "refused" || r.outputs["exit-code"] != "2" {
		t.Errorf("result=%q exit-code=%q, want refused and 2", r.outputs["result"], r.outputs["exit-code"])
	}
	if !strings.Contains(r.outputs["failure-reason"], reason) {
		t.Errorf("failure-reason %q does not name %q", r.outputs["failure-reason"], reason)
	}
	if _, ok := r.outputs["duration-seconds"]; !ok {
		t.Error("no duration-seconds output")
	}
	if !strings.HasPrefix(r.summary, "## ⏸ refused: nothing changed\n") || !strings.Contains(r.summary, "| Result | `refused` (exit 2) |") ||
		!strings.Contains(r.summary, "### Cause") {
		t.Errorf("job summary:\n%s", r.summary)
	}
	if !strings.Contains(r.stdout, "::error title=identity-upgrade::Refused: ") || !strings.Contains(r.stdout, reason) {
		t.Errorf("stdout has no ::error annotation naming %q:\n%s", reason, r.stdout)
	}
}

// TestActionInvalidInput: an input that does not validate still gives the workflow everything
// it reads: the outputs, a summary and an annotation, each naming the input.
func TestActionInvalidInput(t *testing.T) {
	r := runAction(t, map[string]string{"INPUT_RELEASE-NAME": "identity", "INPUT_CHART": "../../testdata/charts/identity/3.0.0",
		"INPUT_DATABASE-URL": "postgres://keycloak@127.0.0.1:1/keycloak", "INPUT_BACKUP-STORE": "path:" + t.TempDir(),
		"INPUT_TIMEOUT": "soon"})
	checkRefused(t, r, `timeout: "soon" is not a duration`)
	if !strings.HasPrefix(r.outputs["failure-reason"], "invalid input: timeout:") {
		t.Errorf("failure-reason = %q", r.outputs["failure-reason"])
	}
	if !strings.Contains(r.summary, "Refused: identity was not changed.") || !strings.Contains(r.summary, "| Release | `identity` in namespace `default` |") {
		t.Errorf("the summary does not name the release:\n%s", r.summary)
	}
	if !strings.Contains(r.stderr, "- timeout:") {
		t.Errorf("stderr does not list the problem:\n%s", r.stderr)
	}
}

// TestActionInvalidRelease: a release name that is not valid is not repeated as the release;
// several problems are one per line.
func TestActionInvalidRelease(t *testing.T) {
	r := runAction(t, map[string]string{"INPUT_RELEASE-NAME": "Identity; rm -rf /", "INPUT_DATABASE-URL": "postgres://k@127.0.0.1:1/k"})
	checkRefused(t, r, "release-name:")
	if !strings.Contains(r.outputs["failure-reason"], "\nchart: required") {
		t.Errorf("failure-reason = %q, want one problem per line", r.outputs["failure-reason"])
	}
	if !strings.Contains(r.summary, "Refused: nothing was changed.") || strings.Contains(r.summary, "| Release |") {
		t.Errorf("summary:\n%s", r.summary)
	}
}

// TestActionSetupRefused: a cluster or a backup store that cannot be set up refuses the run
// with the same contract as an invalid input.
func TestActionSetupRefused(t *testing.T) {
	const secret = "S3cret-setup-pw"
	base := map[string]string{"INPUT_RELEASE-NAME": "identity", "INPUT_CHART": "../../testdata/charts/identity/3.0.0",
		"INPUT_DATABASE-URL": "postgres://keycloak@127.0.0.1:1/keycloak", "PGPASSWORD": secret,
		"KUBECONFIG": filepath.Join(t.TempDir(), "no-kubeconfig")}
	tests := []struct {
		name   string
		env    map[string]string
		reason string
	}{
		{"no cluster", map[string]string{"INPUT_BACKUP-STORE": "path:" + t.TempDir()}, "no-kubeconfig: no such file or directory"},
		{"artifact store outside a job", map[string]string{"INPUT_ALLOW-PLAINTEXT-BACKUP": "true"}, `backup-store "artifact"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := maps.Clone(base)
			maps.Copy(env, tt.env)
			r := runAction(t, env)
			checkRefused(t, r, tt.reason)
			if !strings.Contains(r.summary, "| Release | `identity` in namespace `default` |") {
				t.Errorf("the summary does not name the release:\n%s", r.summary)
			}
			if strings.Contains(strings.Replace(r.stdout, "::add-mask::"+secret+"\n", "", 1)+r.stderr+r.summary+r.outputs["failure-reason"], secret) {
				t.Errorf("the password is shown")
			}
		})
	}
}

// TestFinishKeepsTheExitCode: outputs or a summary that cannot be written are a warning; the
// exit code stays the run's.
func TestFinishKeepsTheExitCode(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	env := map[string]string{"GITHUB_OUTPUT": filepath.Join(missing, "output"), "GITHUB_STEP_SUMMARY": filepath.Join(missing, "summary")}
	for _, rep := range []*rollout.Report{
		{Result: rollout.Upgraded, Release: "identity", PreviousRevision: 1, Revision: 2},
		{Result: rollout.RolledBack, Release: "identity", Failure: errors.New("not ready")},
		{Result: rollout.NeedsAttention, Release: "identity", Failure: errors.New("not ready"),
			Recovery: errors.New("rollback: conflict")},
	} {
		var stdout, stderr bytes.Buffer
		act := ghaction.New(func(k string) string { return env[k] }, &stdout)
		if code := finish(act, rep, &stdout, &stderr); code != rep.ExitCode() {
			t.Errorf("%s: exit %d, want %d", rep.Result, code, rep.ExitCode())
		}
		if !strings.Contains(stderr.String(), "warning: write the step's outputs") || !strings.Contains(stderr.String(), "warning: write the job summary") {
			t.Errorf("%s: stderr:\n%s", rep.Result, stderr.String())
		}
	}
	var stderr bytes.Buffer
	act := ghaction.New(func(k string) string { return env[k] }, new(bytes.Buffer))
	if code := refuse(act, rollout.Refusal("identity", "", time.Now(), errors.New("no cluster")), &stderr); code != rollout.ExitRefused {
		t.Errorf("refuse: exit %d, want %d", code, rollout.ExitRefused)
	}
}

// TestActionCommandRefusesWhatDoesNotApply: the command input picks the subcommand; an input
// of another subcommand is refused, not ignored.
func TestActionCommandRefusesWhatDoesNotApply(t *testing.T) {
	base := map[string]string{"INPUT_RELEASE-NAME": "identity", "INPUT_CHART": "../../testdata/charts/identity/3.0.0",
		"INPUT_DATABASE-URL": "postgres://keycloak@127.0.0.1:1/keycloak", "INPUT_BACKUP-STORE": "path:" + t.TempDir()}
	tests := []struct {
		name   string
		env    map[string]string
		reason string
	}{
		{"backup-identity given to a backup", map[string]string{"INPUT_COMMAND": "backup", "INPUT_CHART": "",
			"INPUT_BACKUP-IDENTITY": "AGE-SECRET-KEY-1QQQQ"}, "backup-identity: does not apply to command backup"},
		{"allow-older-server given to an upgrade", map[string]string{"INPUT_ALLOW-OLDER-SERVER": "true"},
			"allow-older-server: does not apply to command upgrade"},
		{"the chart given to a backup", map[string]string{"INPUT_COMMAND": "backup"}, "chart: does not apply to command backup"},
		{"restore-from given to an upgrade", map[string]string{"INPUT_RESTORE-FROM": "artifact:x"}, "restore-from: does not apply to command upgrade"},
		{"restore without restore-from", map[string]string{"INPUT_COMMAND": "restore", "INPUT_CHART": "", "INPUT_BACKUP-STORE": ""},
			"restore-from: required"},
		{"unknown command", map[string]string{"INPUT_COMMAND": "deploy"}, `command: "deploy" is not one of upgrade, plan, backup, restore, recover`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := maps.Clone(base)
			maps.Copy(env, tt.env)
			r := runAction(t, env)
			checkRefused(t, r, tt.reason)
			if strings.Contains(strings.ReplaceAll(r.stdout, "::add-mask::AGE-SECRET-KEY-1QQQQ\n", "")+r.stderr+r.summary, "AGE-SECRET-KEY-1QQQQ") {
				t.Error("the identity is shown")
			}
		})
	}
}

// TestActionPlanRefused: plan as an action step reports a preflight that cannot start like an
// upgrade does.
func TestActionPlanRefused(t *testing.T) {
	r := runAction(t, map[string]string{"INPUT_COMMAND": "plan", "INPUT_RELEASE-NAME": "identity",
		"INPUT_CHART": "../../testdata/charts/identity/3.0.0", "INPUT_DATABASE-URL": "postgres://keycloak@127.0.0.1:1/keycloak",
		"INPUT_BACKUP-STORE": "path:" + t.TempDir(), "KUBECONFIG": filepath.Join(t.TempDir(), "no-kubeconfig")})
	checkRefused(t, r, "no-kubeconfig")
}

// TestActionBackupAndRestore runs backup and restore as action steps, the second restoring what
// the first's backup-location output names.
func TestActionBackupAndRestore(t *testing.T) {
	src := testworld.Postgres(t)
	src.Exec(t, `SET ROLE keycloak; CREATE TABLE realm (id text PRIMARY KEY, name text); INSERT INTO realm VALUES ('1', 'master');`)
	stores := t.TempDir()
	r := runAction(t, map[string]string{"INPUT_COMMAND": "backup", "INPUT_DATABASE-URL": src.URL(), "INPUT_BACKUP-STORE": "path:" + stores,
		"INPUT_BACKUP-NAME": "kc-1"})
	if r.code != rollout.ExitOK {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	location := r.outputs["backup-location"]
	if r.outputs["result"] != "backed-up" || r.outputs["exit-code"] != "0" || location != filepath.Join(stores, "kc-1") ||
		len(r.outputs["backup-sha256"]) != 64 || r.outputs["backup-bytes"] == "" || r.outputs["backup-bytes"] == "0" || r.outputs["failure-reason"] != "" {
		t.Errorf("backup outputs: %q", r.outputs)
	}
	if !strings.HasPrefix(r.summary, "## ✅ database backed up\n") || !strings.Contains(r.stdout, "::notice title=identity-upgrade::Backed up the database to "+location) {
		t.Errorf("backup: summary:\n%s\nstdout:\n%s", r.summary, r.stdout)
	}
	if strings.Contains(r.summary+strings.Join(slices.Collect(maps.Values(r.outputs)), "\n"), src.OwnerPassword) {
		t.Error("the database password is in the outputs or the summary")
	}

	dst := testworld.Postgres(t)
	r = runAction(t, map[string]string{"INPUT_COMMAND": "restore", "INPUT_DATABASE-URL": dst.URL(), "INPUT_RESTORE-FROM": location})
	if r.code != rollout.ExitOK || r.outputs["result"] != "restored" || r.outputs["exit-code"] != "0" || r.outputs["backup-location"] != location {
		t.Fatalf("restore: exit %d, outputs %q\n%s", r.code, r.outputs, r.stderr)
	}
	if !strings.HasPrefix(r.summary, "## ✅ database restored\n") {
		t.Errorf("restore summary:\n%s", r.summary)
	}
	if got := strings.TrimSpace(dst.Exec(t, `SELECT name FROM realm`)); got != "master" {
		t.Errorf("restored %q", got)
	}

	// A directory that holds no bundle: refused, the database untouched.
	r = runAction(t, map[string]string{"INPUT_COMMAND": "restore", "INPUT_DATABASE-URL": dst.URL(), "INPUT_RESTORE-FROM": t.TempDir()})
	checkRefused(t, r, "no manifest.json")
}
