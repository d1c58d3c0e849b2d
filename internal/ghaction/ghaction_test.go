package ghaction_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/ghaction"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// env is a fake environment for getenv.
type env map[string]string

func (e env) get(k string) string { return e[k] }

// newAction returns an Action whose GITHUB_OUTPUT and GITHUB_STEP_SUMMARY are files in a temp
// dir, and the buffer it writes workflow commands to.
func newAction(t *testing.T) (*ghaction.Action, env, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	e := env{
		"GITHUB_OUTPUT":       filepath.Join(dir, "output"),
		"GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"),
	}
	var out bytes.Buffer
	return ghaction.New(e.get, &out), e, &out
}

// parseOutputs reads a GITHUB_OUTPUT file the way the runner does: name=value lines and
// name<<DELIM heredocs.
func parseOutputs(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if name, delim, ok := strings.Cut(line, "<<"); ok && !strings.Contains(name, "=") {
			var val []string
			i++
			for ; i < len(lines) && lines[i] != delim; i++ {
				val = append(val, lines[i])
			}
			if i == len(lines) {
				t.Fatalf("output %s: heredoc %s not closed:\n%s", name, delim, data)
			}
			if _, dup := got[name]; dup {
				t.Errorf("output %s written twice", name)
			}
			got[name] = strings.Join(val, "\n")
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("line %d of GITHUB_OUTPUT is neither name=value nor a heredoc: %q", i+1, line)
		}
		got[name] = val
	}
	return got
}

// outputNames are the outputs of action.yml (TestOutputsMatchActionYAML).
var outputNames = []string{"result", "exit-code", "previous-revision", "revision", "backup-location", "backup-sha256",
	"backup-bytes", "artifact-id", "artifact-url", "failure-reason", "duration-seconds", "rehearsal-result", "rehearsal-migration-seconds"}

func TestOutputs(t *testing.T) {
	reps := reports()
	multi := reports()["needs-attention"]
	multi.Failure = fmt.Errorf("upgrade: %w", errors.Join(errors.New("first cause"), errors.New("second line\n_GitHubActionsFileCommandDelimeter_\nrevision=99")))

	tests := []struct {
		name string
		rep  *rollout.Report
		want map[string]string
	}{
		{"success", reps["success"], map[string]string{
			"result": "upgraded", "exit-code": "0", "previous-revision": "4", "revision": "5",
			"backup-location": "artifact:identity-r4-20250314T092653Z\npath:/backups/identity-r4-20250314T092653Z",
			"backup-sha256":   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "backup-bytes": "3481216", "artifact-id": "2718281", "artifact-url": "https://github.com/octo/infra/actions/runs/1234/artifacts/2718281",
			"failure-reason": "", "duration-seconds": "122",
		}},
		{"rolled back", reps["rolled-back"], map[string]string{
			"result": "rolled-back", "exit-code": "1", "previous-revision": "4", "revision": "6",
			"backup-location": "artifact:identity-r4-20250314T092653Z\npath:/backups/identity-r4-20250314T092653Z",
			"backup-sha256":   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "backup-bytes": "3481216", "artifact-id": "", "artifact-url": "",
			"failure-reason":   "readiness: not ready: pod identity-id-keycloak-0 container keycloak (StatefulSet/identity-id-keycloak): CrashLoopBackOff: back-off 20s restarting failed container",
			"duration-seconds": "185",
		}},
		{"refused", reps["refused"], map[string]string{
			"result": "refused", "exit-code": "2", "previous-revision": "", "revision": "", "backup-location": "", "backup-sha256": "", "backup-bytes": "", "artifact-id": "", "artifact-url": "",
			"failure-reason":   "lock: another identity-upgrade run holds the release: held by run 1234 (octo/infra, attempt 1) since 09:20:11",
			"duration-seconds": "0",
		}},
		{"multi-line failure", multi, map[string]string{
			"result": "needs-attention", "exit-code": "3", "previous-revision": "4", "revision": "5",
			"backup-location": "artifact:identity-r4-20250314T092653Z\npath:/backups/identity-r4-20250314T092653Z",
			"backup-sha256":   "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "backup-bytes": "3481216", "artifact-id": "", "artifact-url": "",
			"failure-reason":   "upgrade: first cause\nsecond line\n_GitHubActionsFileCommandDelimiter_\nrevision=99",
			"duration-seconds": "737",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, e, _ := newAction(t)
			if err := a.Outputs(tt.rep); err != nil {
				t.Fatal(err)
			}
			got := parseOutputs(t, e["GITHUB_OUTPUT"])
			if names := slices.Sorted(maps.Keys(got)); !slices.Equal(names, slices.Sorted(slices.Values(outputNames))) {
				t.Errorf("outputs %v, want %v", names, outputNames)
			}
			for k, want := range tt.want {
				if got[k] != want {
					t.Errorf("%s = %q, want %q", k, got[k], want)
				}
			}
		})
	}
}

func TestOutputsOutsideActions(t *testing.T) {
	var out bytes.Buffer
	a := ghaction.New(env{}.get, &out)
	if err := a.Outputs(reports()["success"]); err != nil {
		t.Errorf("Outputs without GITHUB_OUTPUT: %v", err)
	}
	if err := a.Summary(reports()["success"]); err != nil {
		t.Errorf("Summary without GITHUB_STEP_SUMMARY: %v", err)
	}
	if out.Len() > 0 {
		t.Errorf("wrote %q", out.String())
	}
}

func TestOutputsUnwritable(t *testing.T) {
	e := env{"GITHUB_OUTPUT": filepath.Join(t.TempDir(), "missing", "output")}
	a := ghaction.New(e.get, new(bytes.Buffer))
	if err := a.Outputs(reports()["success"]); err == nil {
		t.Error("Outputs to a file that cannot be created: no error")
	}
}

func TestSummaryFile(t *testing.T) {
	a, e, _ := newAction(t)
	if err := os.WriteFile(e["GITHUB_STEP_SUMMARY"], []byte("earlier step\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := reports()["rolled-back"]
	if err := a.Summary(rep); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(e["GITHUB_STEP_SUMMARY"])
	if err != nil {
		t.Fatal(err)
	}
	if want := "earlier step\n" + ghaction.Summary(rep) + "\n"; string(got) != want {
		t.Errorf("GITHUB_STEP_SUMMARY =\n%s\nwant the earlier content and the summary appended", got)
	}
}

func TestMask(t *testing.T) {
	a, _, out := newAction(t)
	kubeconfig := "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: LS0tLS1CRUdJTiBDRVJU\n  name: k\n"
	a.Mask("s3cr%t", "", kubeconfig, "s3cr%t")
	got := out.String()
	for _, w := range []string{
		"::add-mask::s3cr%25t\n",
		"::add-mask::apiVersion: v1%0Aclusters:%0A- cluster:%0A    certificate-authority-data: LS0tLS1CRUdJTiBDRVJU%0A  name: k%0A\n",
		"::add-mask::apiVersion: v1\n",
		"::add-mask::clusters:\n",
		"::add-mask::- cluster:\n",
		"::add-mask::certificate-authority-data: LS0tLS1CRUdJTiBDRVJU\n",
		"::add-mask::name: k\n",
	} {
		if !strings.Contains(got, w) {
			t.Errorf("stdout lacks %q:\n%s", w, got)
		}
	}
	if n := strings.Count(got, "::add-mask::s3cr%25t\n"); n != 1 {
		t.Errorf("the repeated secret was masked %d times", n)
	}
	if strings.Contains(got, "::add-mask::\n") {
		t.Errorf("an empty value was masked:\n%s", got)
	}
	if n := strings.Count(got, "::add-mask::"); n != 7 {
		t.Errorf("%d masks, want 7 (the secret, the kubeconfig whole and its 5 lines):\n%s", n, got)
	}
}

func TestGroup(t *testing.T) {
	a, _, out := newAction(t)
	a.Mask("hunter2")
	out.Reset()
	end := a.Group("backup of hunter2")
	fmt.Fprintln(out, "inside")
	end()
	end()
	if want := "::group::backup of xxxxx\ninside\n::endgroup::\n"; out.String() != want {
		t.Errorf("stdout = %q, want %q", out.String(), want)
	}
}

func TestError(t *testing.T) {
	reps := reports()
	tests := []struct {
		name string
		rep  *rollout.Report
		want string
	}{
		{"success", reps["success"],
			"::notice title=identity-upgrade::Upgraded identity: revision 4 → 5 (alfresco-identity-service-2.1.0 → alfresco-identity-service-3.0.0).\n"},
		{"rolled back", reps["rolled-back"],
			"::error title=identity-upgrade::Failed and rolled back: identity is back at revision 4's release (now revision 6); the database was restored from the backup.%0ACause: readiness: not ready: pod identity-id-keycloak-0 container keycloak (StatefulSet/identity-id-keycloak): CrashLoopBackOff: back-off 20s restarting failed container\n"},
		{"needs a person", reps["needs-attention"],
			"::error title=identity-upgrade::FAILED and NOT fully recovered: identity needs a person (state below).%0ACause: readiness: not ready: StatefulSet/identity-id-keycloak: Timeout: 0/1 replicas ready after 10m0s%0ARecovery did not complete: restore database: psql: error: connection to server at \"identity-postgresql-id\" (10.0.0.7), port 5432 failed: Connection refused%0A\tIs the server running on that host and accepting TCP/IP connections?%0Arollback: another operation (install/upgrade/rollback) is in progress\n"},
		{"refused", reps["refused"],
			"::error title=identity-upgrade::Refused: identity was not changed.%0ACause: lock: another identity-upgrade run holds the release: held by run 1234 (octo/infra, attempt 1) since 09:20:11\n"},
		{"invalid input", reps["invalid-input"],
			"::error title=identity-upgrade::Refused: nothing was changed.%0ACause: invalid input: timeout: \"soon\" is not a duration (examples: 90s, 10m)%0Achart: required\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, out := newAction(t)
			a.Error(tt.rep)
			if out.String() != tt.want {
				t.Errorf("stdout =\n%q\nwant\n%q", out.String(), tt.want)
			}
		})
	}
}

// TestSecretsNotWritten puts secrets the action knows into every text of a failed report and
// checks that neither the outputs, the summary, nor the annotation carry them.
func TestSecretsNotWritten(t *testing.T) {
	const password = "Tr0ub4dor|&3`x"
	identity := "# created: 2025-03-14\nAGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
	rep := reports()["needs-attention"]
	rep.Failure = fmt.Errorf("preflight: connect to postgres://keycloak:%s@db:5432/keycloak: password authentication failed", password)
	rep.Recovery = fmt.Errorf("restore database: decrypt with AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ: no identity matched\nPGPASSWORD=%s", password)
	rep.DatabaseDrift = "tried " + password
	rep.NotReady = &rollout.NotReady{Pod: "p", Container: "c", Reason: "Terminated", Logs: []string{"db password is " + password}}
	rep.Timeline[0].Note = "password " + password
	rep.Backup.Locations[0] = "oci://user:" + password + "@registry/repo:tag"

	a, e, out := newAction(t)
	a.Mask(password, identity)
	if err := a.Outputs(rep); err != nil {
		t.Fatal(err)
	}
	if err := a.Summary(rep); err != nil {
		t.Fatal(err)
	}
	a.Error(rep)

	outputs, err := os.ReadFile(e["GITHUB_OUTPUT"])
	if err != nil {
		t.Fatal(err)
	}
	summary, err := os.ReadFile(e["GITHUB_STEP_SUMMARY"])
	if err != nil {
		t.Fatal(err)
	}
	annotations := strings.SplitN(out.String(), "::error", 2)
	if len(annotations) != 2 {
		t.Fatalf("no ::error in stdout:\n%s", out.String())
	}
	for name, text := range map[string]string{"outputs": string(outputs), "summary": string(summary), "annotation": annotations[1]} {
		for _, leak := range []string{"Tr0ub4dor", "AGE-SECRET-KEY-1QQQ"} {
			if strings.Contains(text, leak) {
				t.Errorf("%s contain %q:\n%s", name, leak, text)
			}
		}
		if !strings.Contains(text, "xxxxx") {
			t.Errorf("%s show no redaction:\n%s", name, text)
		}
	}
	got := parseOutputs(t, e["GITHUB_OUTPUT"])
	if want := "preflight: connect to postgres://keycloak:xxxxx@db:5432/keycloak: password authentication failed"; got["failure-reason"] != want {
		t.Errorf("failure-reason = %q, want %q", got["failure-reason"], want)
	}
}

func TestDurationSecondsRounds(t *testing.T) {
	a, e, _ := newAction(t)
	rep := reports()["success"]
	rep.Duration = 89*time.Second + 600*time.Millisecond
	if err := a.Outputs(rep); err != nil {
		t.Fatal(err)
	}
	if got := parseOutputs(t, e["GITHUB_OUTPUT"])["duration-seconds"]; got != "90" {
		t.Errorf("duration-seconds = %q, want 90", got)
	}
}

// TestOutputsGolden writes the outputs of each way a run ends (exit 0, 1, 2 and 3) to a
// GITHUB_OUTPUT file as the action does, and compares the file with testdata/<name>.outputs.
func TestOutputsGolden(t *testing.T) {
	for name, rep := range reports() {
		t.Run(name, func(t *testing.T) {
			a, e, _ := newAction(t)
			if err := a.Outputs(rep); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(e["GITHUB_OUTPUT"])
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".outputs")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("GITHUB_OUTPUT differs from %s (run with -update to accept):\n%s", path, got)
			}
			outs := parseOutputs(t, e["GITHUB_OUTPUT"])
			if outs["result"] != string(rep.Result) || outs["exit-code"] != strconv.Itoa(rep.ExitCode()) {
				t.Errorf("result=%s exit-code=%s, want %s and %d", outs["result"], outs["exit-code"], rep.Result, rep.ExitCode())
			}
			if (rep.ExitCode() == rollout.ExitOK) != (outs["failure-reason"] == "") {
				t.Errorf("exit %d with failure-reason %q", rep.ExitCode(), outs["failure-reason"])
			}
		})
	}
}

// TestEveryExitWritesEverything: whatever the exit code, the action writes every output, a
// summary, and one annotation: ::error unless the run succeeded.
func TestEveryExitWritesEverything(t *testing.T) {
	codes := map[int]bool{}
	for name, rep := range reports() {
		codes[rep.ExitCode()] = true
		t.Run(name, func(t *testing.T) {
			a, e, out := newAction(t)
			a.Error(rep)
			if err := errors.Join(a.Outputs(rep), a.Summary(rep)); err != nil {
				t.Fatal(err)
			}
			if got := parseOutputs(t, e["GITHUB_OUTPUT"]); len(got) != len(outputNames) {
				t.Errorf("%d outputs, want %d", len(got), len(outputNames))
			}
			if sum, err := os.ReadFile(e["GITHUB_STEP_SUMMARY"]); err != nil || !strings.HasPrefix(string(sum), "## ") {
				t.Errorf("summary %q, %v", sum, err)
			}
			kind := "::error "
			if rep.ExitCode() == rollout.ExitOK {
				kind = "::notice "
			}
			if !strings.HasPrefix(out.String(), kind) || strings.Count(out.String(), "\n") != 1 {
				t.Errorf("stdout = %q, want one %s annotation", out.String(), kind)
			}
		})
	}
	for _, c := range []int{rollout.ExitOK, rollout.ExitRolledBack, rollout.ExitRefused, rollout.ExitNeedsHuman} {
		if !codes[c] {
			t.Errorf("no golden case exits %d", c)
		}
	}
}

// TestOutputsMatchActionYAML: the action writes exactly the outputs action.yml declares.
func TestOutputsMatchActionYAML(t *testing.T) {
	data, err := os.ReadFile("../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	var action struct {
		Outputs map[string]struct {
			Description string `json:"description"`
		} `json:"outputs"`
	}
	if err := yaml.Unmarshal(data, &action); err != nil {
		t.Fatal(err)
	}
	if got := slices.Sorted(maps.Keys(action.Outputs)); !slices.Equal(got, slices.Sorted(slices.Values(outputNames))) {
		t.Errorf("action.yml declares outputs %v; the action writes %v", got, outputNames)
	}
	for name, out := range action.Outputs {
		if out.Description == "" {
			t.Errorf("action.yml output %s has no description", name)
		}
	}
}
