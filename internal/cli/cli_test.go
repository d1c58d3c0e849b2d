package cli

import (
	"bytes"
	"maps"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

const recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

type result struct {
	code           int
	stdout, stderr string
}

func runCLI(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(t.Context(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, nil, "version")
	if r.code != rollout.ExitOK || !strings.HasPrefix(r.stdout, "identity-upgrade dev") || !strings.Contains(r.stdout, runtime.Version()) {
		t.Errorf("version: code %d, stdout %q; want 0 and the version with %s", r.code, r.stdout, runtime.Version())
	}
	if r := runCLI(t, nil, "version", "extra"); r.code != rollout.ExitRefused {
		t.Errorf("version extra: code %d, want %d", r.code, rollout.ExitRefused)
	}
}

func TestHelp(t *testing.T) {
	tests := []struct {
		args []string
		want []string // in stdout
	}{
		{[]string{"--help"}, []string{"Usage: identity-upgrade <subcommand>", "upgrade", "restore", "Exit codes"}},
		{[]string{"-h"}, []string{"Usage: identity-upgrade <subcommand>"}},
		{[]string{"help"}, []string{"Usage: identity-upgrade <subcommand>"}},
		{[]string{"help", "backup"}, []string{"Usage: identity-upgrade backup"}},
		{[]string{"upgrade", "--help"}, []string{"Usage: identity-upgrade upgrade", "--release-name string", "--chart string",
			"--timeout duration", "(default: 10m)", "--backup-store list", "(default: path:./backups)", "--dry-run bool",
			"--rollback auto|never", "Requires --release-name, --chart"}},
		{[]string{"plan", "-h"}, []string{"Usage: identity-upgrade plan", "--chart string"}},
		{[]string{"backup", "--help"}, []string{"Usage: identity-upgrade backup", "--db-host string", "--backup-store list"}},
		{[]string{"restore", "-h"}, []string{"Usage: identity-upgrade restore", "--from string", "--backup-identity text", "Requires --from"}},
		{[]string{"version", "--help"}, []string{"Usage: identity-upgrade version"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, nil, tt.args...)
			if r.code != rollout.ExitOK || r.stderr != "" {
				t.Errorf("code %d, stderr %q; want 0 and nothing", r.code, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("help lacks %q:\n%s", w, r.stdout)
				}
			}
		})
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	for _, cmd := range []string{config.CmdUpgrade, config.CmdPlan, config.CmdBackup, config.CmdRestore} {
		r := runCLI(t, nil, cmd, "--help")
		for _, in := range config.InputsFor(cmd) {
			if !strings.Contains(r.stdout, "  --"+in.Name+" ") {
				t.Errorf("%s --help does not list --%s", cmd, in.Name)
			}
		}
	}
	// Flags of other subcommands are not listed.
	if r := runCLI(t, nil, "backup", "--help"); strings.Contains(r.stdout, "--chart ") || strings.Contains(r.stdout, "--from ") {
		t.Errorf("backup --help lists --chart or --from")
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // in stderr
	}{
		{"unknown subcommand", nil, []string{"deploy"}, `unknown subcommand "deploy"`},
		{"no arguments outside Actions", nil, nil, "Usage: identity-upgrade"},
		{"no arguments, GITHUB_ACTIONS not true", map[string]string{"GITHUB_ACTIONS": "false"}, nil, "Usage: identity-upgrade"},
		{"unknown flag", nil, []string{"upgrade", "--nope"}, "flag provided but not defined: -nope"},
		{"flag of another subcommand", nil, []string{"backup", "--chart=x"}, "identity-upgrade backup --help"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.env, tt.args...)
			if r.code != rollout.ExitRefused || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("code %d, stderr %q; want %d and %q", r.code, r.stderr, rollout.ExitRefused, tt.want)
			}
		})
	}
}

func TestInvalidInput(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want []string // named in stderr
	}{
		{"upgrade without inputs", nil, []string{"upgrade"},
			[]string{"release-name: required", "chart: required", "db-host: required"}},
		{"bad timeout", nil, []string{"upgrade", "--release-name=identity", "--chart=./x", "--timeout=abc"},
			[]string{`timeout: "abc" is not a duration`}},
		{"several problems", nil, []string{"upgrade", "--release-name=Bad", "--chart=a//b", "--db-port=0", "--backup-format=zip",
			"--rollback=later", "--set=novalue"},
			[]string{"release-name:", "chart:", "db-port:", "backup-format:", "rollback:", "set:"}},
		{"restore without --from", nil, []string{"restore", "--database-url=postgres://k@db/k"}, []string{"from: required"}},
		{"action without inputs", map[string]string{"GITHUB_ACTIONS": "true"}, nil,
			[]string{"identity-upgrade upgrade: invalid input", "release-name: required", "chart: required", "'with:'"}},
		{"action with a bad input", map[string]string{"GITHUB_ACTIONS": "true", "INPUT_RELEASE-NAME": "identity",
			"INPUT_CHART": "./chart", "INPUT_DATABASE-URL": "postgres://k@db/k", "INPUT_TIMEOUT": "5 minutes"}, nil,
			[]string{`timeout: "5 minutes" is not a duration`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.env, tt.args...)
			if r.code != rollout.ExitRefused {
				t.Errorf("code %d, want %d; stderr:\n%s", r.code, rollout.ExitRefused, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if !strings.Contains(r.stderr, "nothing was changed") {
				t.Errorf("stderr does not say nothing was changed:\n%s", r.stderr)
			}
		})
	}
}

func TestUpgradeRefusedBeforeTouchingAnything(t *testing.T) {
	const secret = "S3cret-run-pw"
	missing := filepath.Join(t.TempDir(), "no-kubeconfig")
	db := []string{"--db-host=127.0.0.1", "--db-name=keycloak", "--db-user=keycloak", "--db-password=" + secret}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no cluster", map[string]string{"KUBECONFIG": missing}, append([]string{"upgrade", "--release-name=identity", "--chart=../../testdata/charts/identity/3.0.0",
			"--backup-store=path:" + t.TempDir()}, db...), "no-kubeconfig: no such file or directory; nothing was changed"},
		{"action with the artifact store", map[string]string{"GITHUB_ACTIONS": "true", "INPUT_RELEASE-NAME": "identity", "KUBECONFIG": missing,
			"INPUT_CHART": "oci://ghcr.io/org/identity", "INPUT_DATABASE-URL": "postgres://keycloak@db/keycloak",
			"PGPASSWORD": secret, "INPUT_BACKUP-ENCRYPTION-RECIPIENTS": recipient}, nil, `backup-store "artifact": the GitHub artifact store`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLI(t, tt.env, tt.args...)
			if r.code != rollout.ExitRefused || !strings.Contains(r.stdout+r.stderr, tt.want) {
				t.Errorf("code %d, stdout:\n%s\nstderr:\n%s\nwant %d and %q", r.code, r.stdout, r.stderr, rollout.ExitRefused, tt.want)
			}
			// As an action the password is masked first, and then shown nowhere.
			if tt.env["GITHUB_ACTIONS"] == "true" && !strings.HasPrefix(r.stdout, "::add-mask::"+secret+"\n") {
				t.Errorf("the action did not mask the password first:\n%s", r.stdout)
			}
			if strings.Contains(strings.Replace(r.stdout, "::add-mask::"+secret+"\n", "", 1)+r.stderr, secret) {
				t.Errorf("the password is shown:\n%s", r.stderr)
			}
		})
	}
}

func TestPlanWithoutClusterIsRefusedWithoutSecrets(t *testing.T) {
	const secret = "S3cret-plan-pw"
	missing := filepath.Join(t.TempDir(), "no-kubeconfig")
	r := runCLI(t, map[string]string{"KUBECONFIG": missing, "PGPASSWORD": secret},
		"plan", "--release-name=identity", "--chart=../../testdata/charts/identity/3.0.0", "--db-host=127.0.0.1", "--db-name=keycloak", "--db-user=keycloak")
	if r.code != rollout.ExitRefused || !strings.Contains(r.stderr, "preflight failed; nothing was changed") || !strings.Contains(r.stderr, "no-kubeconfig") {
		t.Errorf("code %d, stderr:\n%s\nwant %d, a preflight failure naming the kubeconfig", r.code, r.stderr, rollout.ExitRefused)
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Errorf("the password is shown:\n%s", r.stderr)
	}
}

func TestInvalidInputDoesNotShowSecrets(t *testing.T) {
	const secret = "S3cret-bad-input-pw"
	r := runCLI(t, map[string]string{"PGPASSWORD": secret}, "upgrade", "--timeout="+secret, "--release-name=x"+secret,
		"--database-url=postgres://k:"+secret+"@db:bad/k", "--keycloak-admin-password="+secret, "--set=k"+secret)
	if r.code != rollout.ExitRefused {
		t.Errorf("code %d, want %d", r.code, rollout.ExitRefused)
	}
	if strings.Contains(r.stdout+r.stderr, secret) {
		t.Errorf("the password is shown:\n%s", r.stderr)
	}
}

// TestHostileInputs: shell metacharacters, newlines, non-UTF-8 bytes and very long values are
// refused with exit 2, an error naming the input, and nothing touched (no cluster or database
// is reachable here: a run that got past validation would fail differently).
func TestHostileInputs(t *testing.T) {
	base := map[string]string{"INPUT_RELEASE-NAME": "identity", "INPUT_CHART": "../../testdata/charts/identity/3.0.0",
		"INPUT_DATABASE-URL": "postgres://keycloak@127.0.0.1:1/keycloak", "INPUT_BACKUP-STORE": "path:" + t.TempDir(), "GITHUB_ACTIONS": "true"}
	tests := []struct{ input, value string }{
		{"release-name", "identity; rm -rf /"},
		{"release-name", "identity$(reboot)"},
		{"namespace", "identity\nkube-system"},
		{"release-name", "identit\xff"},
		{"release-name", strings.Repeat("a", 10000)},
		{"chart-version", "3.0.0`id`"},
		{"backup-name", "../../etc/passwd"},
		{"db-port", "5432; DROP TABLE realm"},
		{"timeout", "10m\n5m"},
		{"kube-context", "a\x00b"},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			env := maps.Clone(base)
			env["INPUT_"+strings.ToUpper(tt.input)] = tt.value
			if tt.input == "db-port" {
				delete(env, "INPUT_DATABASE-URL")
				env["INPUT_DB-HOST"], env["INPUT_DB-NAME"], env["INPUT_DB-USER"] = "127.0.0.1", "keycloak", "keycloak"
			}
			r := runCLI(t, env)
			if r.code != rollout.ExitRefused || !strings.Contains(r.stderr, "- "+tt.input+":") || !strings.Contains(r.stderr, "nothing was changed") {
				t.Errorf("%s=%.40q: code %d, stderr:\n%.600s", tt.input, tt.value, r.code, r.stderr)
			}
		})
	}
}

// TestRecoverNamesItself: a recover that cannot start says recover, not upgrade.
func TestRecoverNamesItself(t *testing.T) {
	env := map[string]string{"KUBECONFIG": filepath.Join(t.TempDir(), "no-kubeconfig")}
	r := runCLI(t, env, "recover", "--release-name", "identity", "--database-url", "postgres://k@127.0.0.1:1/k")
	if r.code != rollout.ExitRefused || !strings.Contains(r.stderr, "\nidentity-upgrade recover: kubeconfig: ") {
		t.Errorf("exit %d, stderr %q; want 2 and the subcommand's own name", r.code, r.stderr)
	}
}
