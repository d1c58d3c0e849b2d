package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

// TestWorkflows lints every workflow of the repository with actionlint (as a library: no
// shellcheck, no pyflakes, no network) and checks the project's own rules: every workflow sets
// top-level permissions, and every third-party action is pinned by commit SHA with the tag in a
// comment. actionlint reads action.yml for each `uses: ./` step, so an input or output a
// workflow uses that action.yml does not define, or a required input it leaves out, fails here.
func TestWorkflows(t *testing.T) {
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	files := workflowFiles(t, root)
	if len(files) < 3 {
		t.Fatalf("found workflows %v, want at least ci.yml, upgrade.yml and rehearsal.yml", files)
	}
	for _, want := range []string{"ci.yml", "upgrade.yml", "rehearsal.yml"} {
		if !slices.ContainsFunc(files, func(f string) bool { return filepath.Base(f) == want }) {
			t.Errorf("missing .github/workflows/%s", want)
		}
	}
	usesLocal := 0
	for _, f := range files {
		for _, p := range checkWorkflow(t, root, f) {
			t.Error(p)
		}
		usesLocal += countLocalActionSteps(t, f)
	}
	// The workflows are what checks action.yml's inputs and outputs: make sure they use it.
	if usesLocal == 0 {
		t.Error("no workflow step uses the local action (uses: ./): action.yml's inputs go unchecked")
	}
}

// TestWorkflowActionMetadata checks that actionlint can read action.yml as action metadata (the
// parser it uses for `uses: ./`) and that it declares what the design says the action has.
func TestWorkflowActionMetadata(t *testing.T) {
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	proj, err := actionlint.NewProject(root)
	if err != nil {
		t.Fatal(err)
	}
	meta, _, err := actionlint.NewLocalActionsCache(proj, nil).FindMetadata("./")
	if err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	if meta == nil {
		t.Fatal("action.yml: not found")
	}
	if meta.Runs.Using != "docker" || meta.Runs.Image != "Dockerfile" {
		t.Errorf("action.yml runs: using %q, image %q; want docker, Dockerfile", meta.Runs.Using, meta.Runs.Image)
	}
	if meta.Branding.Icon == "" || meta.Branding.Color == "" {
		t.Error("action.yml: Marketplace branding (icon, color) missing")
	}
	// Which inputs a step needs depends on its command (a backup or restore step gives no
	// release or chart): the tool checks them itself, and action.yml requires none.
	for _, in := range []string{"release-name", "chart"} {
		if i, ok := meta.Inputs[in]; !ok || i.Required {
			t.Errorf("action.yml: input %q missing, or required (the tool checks it per command)", in)
		}
	}
	for _, out := range []string{"result", "previous-revision", "revision", "backup-location",
		"backup-sha256", "backup-bytes", "failure-reason", "duration-seconds"} {
		if _, ok := meta.Outputs[out]; !ok {
			t.Errorf("action.yml: output %q missing", out)
		}
	}
}

// TestWorkflowChecksCatchBrokenWorkflows feeds deliberately broken workflows through the same
// checks, next to a copy of the real action.yml, and expects each fault to be reported.
func TestWorkflowChecksCatchBrokenWorkflows(t *testing.T) {
	action, err := os.ReadFile("action.yml")
	if err != nil {
		t.Fatal(err)
	}
	const pinnedCheckout = "actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1"
	workflow := func(permissions, steps string) string {
		return "name: t\non: workflow_dispatch\n" + permissions + `jobs:
  j:
    runs-on: ubuntu-latest
    steps:
` + steps
	}
	const perms = "permissions:\n  contents: read\n"
	const goodLocal = `      - id: up
        uses: ./
        with:
          release-name: identity
          chart: testdata/charts/identity/3.0.0
`
	tests := []struct {
		name     string
		workflow string
		want     []string // substrings of expected problems; none: expect no problem at all
	}{
		{
			name:     "valid",
			workflow: workflow(perms, "      - uses: "+pinnedCheckout+"\n"+goodLocal+"      - run: echo \"$R\"\n        env:\n          R: ${{ steps.up.outputs.result }}\n"),
		},
		{
			name:     "unknown input to the local action",
			workflow: workflow(perms, goodLocal+"          no-such-input: x\n"),
			want:     []string{`input "no-such-input" is not defined in action`},
		},
		{
			name:     "unknown output of the local action",
			workflow: workflow(perms, goodLocal+"      - run: echo \"$R\"\n        env:\n          R: ${{ steps.up.outputs.no-such-output }}\n"),
			want:     []string{`"no-such-output" is not defined`},
		},
		{
			name:     "unpinned action",
			workflow: workflow(perms, "      - uses: actions/checkout@v4\n"),
			want:     []string{`"actions/checkout@v4" is not pinned to a full commit SHA`},
		},
		{
			name:     "pinned action without its tag in a comment",
			workflow: workflow(perms, "      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1\n"),
			want:     []string{"needs a trailing comment naming its tag"},
		},
		{
			name:     "short SHA",
			workflow: workflow(perms, "      - uses: actions/checkout@3d3c42e # v7.0.1\n"),
			want:     []string{"is not pinned to a full commit SHA"},
		},
		{
			name:     "missing top-level permissions",
			workflow: workflow("", "      - uses: "+pinnedCheckout+"\n"),
			want:     []string{"no top-level permissions"},
		},
		{
			name:     "untrusted input in a script",
			workflow: "name: t\non: issues\n" + perms + "jobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo \"${{ github.event.issue.title }}\"\n",
			want:     []string{"potentially untrusted"},
		},
		{
			name:     "syntax error",
			workflow: workflow(perms, "      - uses: "+pinnedCheckout+"\n        run: echo both\n"),
			want:     []string{`unexpected key "uses" for step to run shell command`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, ".github", "workflows")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "action.yml"), action, 0o644); err != nil {
				t.Fatal(err)
			}
			// actionlint checks that the image a docker action names exists.
			if err := os.WriteFile(filepath.Join(root, "Dockerfile"), []byte("FROM scratch\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "w.yml")
			if err := os.WriteFile(path, []byte(tt.workflow), 0o644); err != nil {
				t.Fatal(err)
			}
			problems := checkWorkflow(t, root, path)
			if len(tt.want) == 0 && len(problems) > 0 {
				t.Errorf("want no problems, got:\n%s", strings.Join(problems, "\n"))
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, w) }) {
					t.Errorf("want a problem containing %q, got:\n%s", w, strings.Join(problems, "\n"))
				}
			}
		})
	}
}

func workflowFiles(t *testing.T, root string) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{"*.yml", "*.yaml"} {
		m, err := filepath.Glob(filepath.Join(root, ".github", "workflows", pattern))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	slices.Sort(files)
	return files
}

// checkWorkflow returns every problem actionlint and the project's own rules find in the
// workflow at path, of the repository at root (whose action.yml the `uses: ./` steps use).
func checkWorkflow(t *testing.T, root, path string) []string {
	t.Helper()
	proj, err := actionlint.NewProject(root)
	if err != nil {
		t.Fatal(err)
	}
	// Shellcheck and Pyflakes empty: those external rules are off, nothing is executed.
	linter, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{
		Shellcheck: "",
		Pyflakes:   "",
		WorkingDir: root,
		LogWriter:  io.Discard,
	})
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rel, _ := filepath.Rel(root, path)
	errs, err := linter.Lint(path, src, proj)
	if err != nil {
		t.Fatalf("actionlint %s: %v", rel, err)
	}
	var problems []string
	for _, e := range errs {
		problems = append(problems, fmt.Sprintf("%s:%d:%d: %s [%s]", rel, e.Line, e.Column, e.Message, e.Kind))
	}
	w, _ := actionlint.Parse(src) // parse errors are already among errs
	if w == nil {
		return problems
	}
	if w.Permissions == nil {
		problems = append(problems, rel+": no top-level permissions: set them explicitly (e.g. contents: read)")
	}
	lines := strings.Split(string(src), "\n")
	for _, uses := range usesOf(w) {
		if strings.HasPrefix(uses.Value, "./") {
			continue
		}
		at := fmt.Sprintf("%s:%d:%d", rel, uses.Pos.Line, uses.Pos.Col)
		if !pinnedUses.MatchString(uses.Value) {
			problems = append(problems, fmt.Sprintf("%s: %q is not pinned to a full commit SHA (owner/repo@<40 hex>)", at, uses.Value))
			continue
		}
		line := ""
		if i := uses.Pos.Line - 1; i >= 0 && i < len(lines) {
			line = lines[i]
		}
		if !tagComment.MatchString(line) {
			problems = append(problems, fmt.Sprintf("%s: %q needs a trailing comment naming its tag (# vX.Y.Z)", at, uses.Value))
		}
	}
	return problems
}

var (
	// owner/repo[/path]@<full commit SHA>
	pinnedUses = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@\s]+)?@[0-9a-f]{40}$`)
	// uses: owner/repo@sha # v1.2.3
	tagComment = regexp.MustCompile(`@[0-9a-f]{40}["']?\s+#\s*v\d+(\.\d+)*\b`)
)

// usesOf returns the uses: of every step and of every job that calls a reusable workflow.
func usesOf(w *actionlint.Workflow) []*actionlint.String {
	var out []*actionlint.String
	for _, j := range w.Jobs {
		if j == nil {
			continue
		}
		if j.WorkflowCall != nil && j.WorkflowCall.Uses != nil {
			out = append(out, j.WorkflowCall.Uses)
		}
		for _, s := range j.Steps {
			if s == nil {
				continue
			}
			if a, ok := s.Exec.(*actionlint.ExecAction); ok && a.Uses != nil {
				out = append(out, a.Uses)
			}
		}
	}
	return out
}

func countLocalActionSteps(t *testing.T, path string) int {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := actionlint.Parse(src)
	if w == nil {
		return 0
	}
	n := 0
	for _, u := range usesOf(w) {
		if u.Value == "./" {
			n++
		}
	}
	return n
}

// readmeExample matches the uses: line of an example step that names this action by its
// repository, which the check replaces with ./ so that actionlint reads action.yml for it.
var readmeExample = regexp.MustCompile(`(?m)^(\s*(?:- )?uses: )identity-upgrade/identity-upgrade@\S+`)

// TestREADMEExamples extracts every YAML example of the README that is a workflow or a list of
// steps (Kubernetes objects and their rules are left out) and lints it with the workflows' checks, against
// action.yml: an input that does not exist, a required one left out, or an output that is not
// there fails here, as in the workflows.
func TestREADMEExamples(t *testing.T) {
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(readme, -1)
	checked := 0
	for i, m := range blocks {
		block := string(m[1])
		if !strings.Contains(block, "uses:") && !strings.Contains(block, "jobs:") {
			continue // a Kubernetes object or its rules, not a workflow
		}
		block = readmeExample.ReplaceAllString(block, "${1}./")
		if !strings.Contains(block, "jobs:") {
			// A list of steps: put it in a job, indented as steps are.
			var b strings.Builder
			b.WriteString("name: example\non: workflow_dispatch\npermissions:\n  contents: read\njobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n")
			for line := range strings.Lines(block) {
				b.WriteString("      " + line)
			}
			block = b.String()
		}
		dir := t.TempDir()
		path := filepath.Join(dir, fmt.Sprintf("readme-example-%d.yml", i+1))
		if err := os.WriteFile(path, []byte(block), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, p := range checkWorkflow(t, root, path) {
			t.Errorf("README example %d: %s\n%s", i+1, p, block)
		}
		checked++
	}
	if checked < 3 {
		t.Errorf("checked %d README examples, want the workflow examples (at least 3)", checked)
	}
}
