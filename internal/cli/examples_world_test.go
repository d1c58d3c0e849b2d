package cli

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// The README's workflow examples and the repository's workflows, run. Every step that uses this
// action is started the way GitHub's runner starts it (testworld.ActionStep: every default of
// action.yml, the step's with: and env:, the runner's files, the binary in the workspace as its
// working directory) against a release of the test world, in the order its job has them, each
// expression filled by the test; a step must reach the cluster and the database and end cleanly
// (exit 0 or 1). A README that does not run fails here.
//
// The test world stands in for the names the examples use:
//   - the vendor's chart repository (https://kubernetes-charts.alfresco.com/stable): a chart
//     repository of the test charts (testworld.ChartRepo);
//   - the namespace identity: the test's own namespace;
//   - the database keycloak (user keycloak) at db.internal or at the postgres service: the
//     test's database on the test server;
//   - secrets and variables: the test's kubeconfig, database password and age keys;
//   - the rehearsal's default scratch namespace (identity-rehearsal): a clone namespace of the
//     test world (testworld.Kube.CloneOf), whose PostgreSQL is a database of its own.
//
// ${{ runner.temp }} is the runner's own directory, which the action's container does not see
// under that path (the runner mounts it at another one, and passes RUNNER_TEMP as that one): a
// step that points the action at a file by runner.temp fails here as it fails on GitHub.

// example is a job of a workflow, or a README example, with the steps that use this action.
type example struct {
	name   string
	env    map[string]string // the workflow's and the job's env:
	inputs map[string]string // workflow_dispatch inputs, at their defaults
	steps  []exampleStep
	cloud  string // aws, gcp or azure: the job logs in to a managed cluster (examples_clouds_world_test.go)
}

type exampleStep struct {
	id, name  string
	with, env map[string]string
}

// usesThisAction matches the uses: of a step that runs this action: the repository itself,
// the action by its name, or its prebuilt image.
var usesThisAction = regexp.MustCompile(`^(\./?|identity-upgrade/identity-upgrade@\S+|docker://ghcr\.io/[^/]+/identity-upgrade:\S+)$`)

func TestExamplesRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every example workflow against the simulated cluster")
	}
	examples := readExamples(t)
	if len(examples) < 6 {
		t.Fatalf("found %d examples with steps of this action, want the README's and the workflows' (at least 6)", len(examples))
	}
	bin := identityUpgrade(t)
	repo := testworld.ChartRepo(t)
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			runExample(t, bin, repo, ex)
		})
	}
}

// readExamples reads the README's workflow examples and the repository's workflows.
func readExamples(t *testing.T) []example {
	t.Helper()
	var out []example
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(readme, -1)
	for i, m := range blocks {
		var doc any
		if err := yaml.Unmarshal(m[1], &doc); err != nil {
			t.Fatalf("README example %d: %v", i+1, err)
		}
		name := fmt.Sprintf("README-%d", i+1)
		switch d := doc.(type) {
		case []any: // a list of steps
			if ex := exampleOf(t, name, nil, nil, d); len(ex.steps) > 0 {
				out = append(out, ex)
			}
		case map[string]any:
			if _, ok := d["jobs"]; ok {
				out = append(out, workflowExamples(t, name, d)...)
			}
		}
	}
	files, err := filepath.Glob("../../.github/workflows/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]any
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, workflowExamples(t, strings.TrimSuffix(filepath.Base(f), ".yml"), doc)...)
	}
	return out
}

// workflowExamples returns the jobs of a workflow that have steps of this action.
func workflowExamples(t *testing.T, name string, wf map[string]any) []example {
	t.Helper()
	env := stringMap(wf["env"])
	inputs := map[string]string{}
	// yaml reads the key on as true.
	for _, key := range []string{"on", "true"} {
		on, _ := wf[key].(map[string]any)
		dispatch, _ := on["workflow_dispatch"].(map[string]any)
		ins, _ := dispatch["inputs"].(map[string]any)
		for k, v := range ins {
			if def, ok := v.(map[string]any)["default"]; ok {
				inputs[k] = fmt.Sprint(def)
			}
		}
	}
	var out []example
	jobs, _ := wf["jobs"].(map[string]any)
	for _, id := range slices.Sorted(maps.Keys(jobs)) {
		job, _ := jobs[id].(map[string]any)
		jobEnv := maps.Clone(env)
		maps.Copy(jobEnv, stringMap(job["env"]))
		steps, _ := job["steps"].([]any)
		if ex := exampleOf(t, name+"-"+id, jobEnv, inputs, steps); len(ex.steps) > 0 {
			out = append(out, ex)
		}
	}
	return out
}

func exampleOf(t *testing.T, name string, env, inputs map[string]string, steps []any) example {
	t.Helper()
	ex := example{name: name, env: env, inputs: inputs}
	for _, s := range steps {
		step, _ := s.(map[string]any)
		uses, _ := step["uses"].(string)
		if !usesThisAction.MatchString(uses) {
			if c := cloudOf(uses); c != "" {
				ex.cloud = c
			}
			continue
		}
		id, _ := step["id"].(string)
		stepName, _ := step["name"].(string)
		ex.steps = append(ex.steps, exampleStep{id: id, name: stepName, with: stringMap(step["with"]), env: stringMap(step["env"])})
	}
	return ex
}

func stringMap(v any) map[string]string {
	out := map[string]string{}
	m, _ := v.(map[string]any)
	for k, x := range m {
		out[k] = fmt.Sprint(x)
	}
	return out
}

// exampleWorld is what one example runs against, and what its earlier steps left.
type exampleWorld struct {
	w         *installed
	repo      string
	recipient string
	identity  string
	workspace string
	// hostTemp is ${{ runner.temp }}: the runner's path, which the container does not see.
	hostTemp string
	outputs  map[string]map[string]string // by step id
	secrets  map[string]string
	// cloud is what a managed cluster's login steps leave (examples_clouds_world_test.go).
	cloud exampleCloud
}

func runExample(t *testing.T, bin, repo string, ex example) {
	w := installInCluster(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	x := &exampleWorld{w: w, repo: repo, recipient: id.Recipient().String(), identity: id.String(),
		workspace: t.TempDir(), hostTemp: filepath.Join(t.TempDir(), "runner-host", "_temp"), outputs: map[string]map[string]string{}}
	x.secrets = map[string]string{"KUBECONFIG": string(w.kube.KubeconfigData), "KEYCLOAK_DB_PASSWORD": w.db.OwnerPassword,
		"BACKUP_AGE_IDENTITY": x.identity}
	// The checkout: the repository's test charts where the workspace has them.
	root, err := testworld.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "testdata"), filepath.Join(x.workspace, "testdata")); err != nil {
		t.Fatal(err)
	}
	if ex.cloud != "" {
		x.startCloud(t, ex.cloud)
	}
	artifacts := testworld.StartArtifactServer(t)
	for i, s := range ex.steps {
		label := s.id
		if label == "" {
			label = fmt.Sprintf("step %d", i+1)
		}
		step := testworld.ActionStep{With: map[string]string{}, Env: map[string]string{}}
		maps.Copy(step.Env, x.cloud.env)
		for k, v := range s.with {
			step.With[k] = x.standIn(t, k, x.eval(t, ex, v))
		}
		if rehearses(step.With) && step.With["rehearsal-namespace"] == "" {
			// The default scratch namespace, <namespace>-rehearsal, is one of the test world's
			// clone namespaces: there the clone's PostgreSQL is a database of its own.
			step.With["rehearsal-namespace"] = w.kube.CloneOf(t, w.db).Namespace
		}
		for k, v := range s.env {
			step.Env[k] = x.eval(t, ex, v)
		}
		maps.Copy(step.Env, artifacts.Env())
		step.Env["GITHUB_REPOSITORY"], step.Env["GITHUB_RUN_ID"], step.Env["GITHUB_RUN_ATTEMPT"] = "octo/identity", "1", "1"
		env, files := step.Environ(t)
		env["GITHUB_WORKSPACE"] = x.workspace
		x.leftByRunSteps(t, files)

		cmd := exec.Command(bin)
		cmd.Dir = x.workspace
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "PG") && k != "KUBECONFIG" && k != "DATABASE_URL" && !strings.HasPrefix(k, "GITHUB_") && !strings.HasPrefix(k, "INPUT_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, testworld.EnvList(env)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		if exit, ok := errors.AsType[*exec.ExitError](err); ok {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		outputs := readOutputs(t, files.Output)
		if s.id != "" {
			x.outputs[s.id] = outputs
		}
		t.Logf("%s (%s): exit %d, result %s", label, s.name, code, outputs["result"])
		if code != rollout.ExitOK && code != rollout.ExitRolledBack {
			t.Fatalf("%s (%s): exit %d, result %q: %s\nstdout:\n%s\nstderr:\n%s", label, s.name, code, outputs["result"],
				outputs["failure-reason"], stdout.String(), stderr.String())
		}
	}
}

var expression = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

// eval fills the ${{ }} expressions of a value the way the runner would, from the test world.
// An expression it does not know fails the test: teach it here.
func (x *exampleWorld) eval(t *testing.T, ex example, v string) string {
	t.Helper()
	return expression.ReplaceAllStringFunc(v, func(m string) string {
		e := expression.FindStringSubmatch(m)[1]
		scope, name, _ := strings.Cut(e, ".")
		switch scope {
		case "secrets":
			if s, ok := x.secrets[name]; ok {
				return s
			}
		case "github":
			if name == "workspace" {
				return exampleRunnerWorkspace
			}
		case "vars":
			if v, ok := x.cloud.vars[name]; ok {
				return v
			}
			switch name {
			case "BACKUP_AGE_RECIPIENT":
				return x.recipient
			case "KEYCLOAK_DATABASE_URL":
				return "postgres://keycloak@db.internal:5432/keycloak"
			}
		case "inputs":
			if name == "chart-version" {
				return "3.0.0"
			}
			if v, ok := ex.inputs[name]; ok {
				return v
			}
		case "env":
			if name == "KEYCLOAK_DB_PASSWORD" {
				return x.w.db.OwnerPassword // written to GITHUB_ENV by an earlier run step
			}
			if v, ok := ex.env[name]; ok {
				return v
			}
		case "runner":
			if name == "temp" {
				return x.hostTemp
			}
		case "steps":
			step, output, ok := strings.Cut(name, ".outputs.")
			if out, found := x.outputs[step]; ok && found {
				return out[output]
			}
		}
		t.Fatalf("%s uses ${{ %s }}, which the examples test does not know; teach exampleWorld.eval", ex.name, e)
		return ""
	})
}

// standIn replaces the names the examples use for the vendor's world with the test world's.
func (x *exampleWorld) standIn(t *testing.T, input, v string) string {
	t.Helper()
	switch input {
	case "namespace":
		if v == "identity" {
			return x.w.kube.Namespace
		}
	case "repo-url":
		if v == "https://kubernetes-charts.alfresco.com/stable" {
			return x.repo
		}
	case "db-name":
		if v == "keycloak" {
			return x.w.db.Database
		}
	case "db-user":
		if v == "keycloak" {
			return x.w.db.Owner
		}
	case "database-url":
		u, err := url.Parse(v)
		if err != nil {
			t.Fatalf("database-url %q: %v", v, err)
		}
		if h := u.Hostname(); h == "db.internal" || h == "postgres" {
			u.Host = x.w.db.Host + ":" + strconv.Itoa(x.w.db.Port)
		}
		if u.User != nil && u.User.Username() == "keycloak" {
			u.User = url.User(x.w.db.Owner)
		}
		if u.Path == "/keycloak" {
			u.Path = "/" + x.w.db.Database
		}
		return u.String()
	}
	return v
}

// leftByRunSteps puts in place what the run steps before the action's leave for it, as the
// workflows write them: a kubeconfig written to $RUNNER_TEMP is, in the action's container,
// under the container's RUNNER_TEMP (and not under ${{ runner.temp }}); one written to the
// working directory is in the workspace.
func (x *exampleWorld) leftByRunSteps(t *testing.T, files testworld.RunnerFiles) {
	t.Helper()
	for _, path := range []string{filepath.Join(files.Temp, "kubeconfig"), filepath.Join(files.Temp, "kubeconfig-internal"),
		filepath.Join(x.workspace, "kubeconfig-internal")} {
		if err := os.WriteFile(path, x.w.kube.KubeconfigData, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// rehearses reports whether a step's inputs rehearse on a clone.
func rehearses(with map[string]string) bool {
	return with["command"] == "rehearse" || with["rehearse-first"] == "true"
}
