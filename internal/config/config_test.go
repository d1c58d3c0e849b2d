package config

import (
	"errors"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// recipient is a syntactically valid age recipient (the example key from age's README).
const recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"

// envOf returns a getenv that reads from m.
func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// actionEnv returns the environment of a valid action run: every given input as INPUT_<NAME>.
// A value of "" removes the input.
func actionEnv(overrides map[string]string) map[string]string {
	inputs := map[string]string{
		"release-name":                 "identity",
		"chart":                        "alfresco/alfresco-identity-service",
		"chart-version":                "3.0.0",
		"repo-url":                     "https://kubernetes-charts.alfresco.com/stable",
		"db-host":                      "db.example.internal",
		"db-name":                      "keycloak",
		"db-user":                      "keycloak",
		"db-password":                  "pw-for-tests",
		"backup-encryption-recipients": recipient,
	}
	for k, v := range overrides {
		if v == "" {
			delete(inputs, k)
		} else {
			inputs[k] = v
		}
	}
	env := map[string]string{"GITHUB_ACTIONS": "true"}
	for k, v := range inputs {
		env[EnvName(k)] = v
	}
	return env
}

// problemInputs returns the input named by each problem in err, in order.
func problemInputs(t *testing.T, err error) []string {
	t.Helper()
	var names []string
	for _, p := range Problems(err) {
		var ie *InputError
		if !errors.As(p, &ie) {
			t.Fatalf("problem %v is a %T, not an *InputError", p, p)
		}
		names = append(names, ie.Input)
	}
	return names
}

func TestFromActionReadsHyphenatedEnvNames(t *testing.T) {
	env := actionEnv(map[string]string{
		"namespace":               "identity-ns",
		"set":                     "a=b\n\n  c.d=e  \n",
		"timeout":                 "15m",
		"reuse-values":            "false",
		"db-port":                 "6543",
		"backup-store":            "artifact\npath:/tmp/backups",
		"keycloak-admin-password": "kc-pass",
		"clear-tx-object-store":   "TRUE",
	})
	env["INPUT_RELEASE_NAME"] = "underscore-is-not-read"
	c := FromAction(envOf(env))

	if !c.Action || c.Command != CmdUpgrade {
		t.Errorf("Action, Command = %v, %q; want true, %q", c.Action, c.Command, CmdUpgrade)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"release-name", c.ReleaseName, "identity"},
		{"namespace", c.Namespace, "identity-ns"},
		{"chart", c.Chart, "alfresco/alfresco-identity-service"},
		{"set", c.Set, []string{"a=b", "c.d=e"}},
		{"timeout", c.Timeout, 15 * time.Minute},
		{"reuse-values", c.ReuseValues, false},
		{"db-port", c.DBPort, 6543},
		{"backup-store", c.BackupStores, []string{"artifact", "path:/tmp/backups"}},
		{"keycloak-admin-password", c.KeycloakAdminPassword, "kc-pass"},
		{"clear-tx-object-store", c.ClearTxObjectStore, true},
	}
	for _, ch := range checks {
		if !equal(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

func equal(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok && bok {
		return slices.Equal(as, bs)
	}
	return a == b
}

func TestDefaults(t *testing.T) {
	action := FromAction(envOf(nil))
	cli, err := FromFlags(CmdUpgrade, nil, envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*Config{action, cli} {
		if c.Namespace != "default" || c.DBPort != 5432 || c.DBSSLMode != "prefer" || c.BackupFormat != "custom" ||
			c.Timeout != 10*time.Minute || c.StabilityWindow != 30*time.Second || !c.ReuseValues || !c.Quiesce ||
			c.Rollback != "auto" || c.RestoreDatabase != "auto" || c.RollbackHooks != "auto" ||
			c.RecreateStatefulSets != "never" || c.Workload != "auto" || !slices.Equal(c.Realms, []string{"all"}) ||
			c.TxObjectStorePath != "/opt/jboss/keycloak/standalone/data/tx-object-store" ||
			c.DryRun || c.UnlockPending || c.LogoutSessions || c.AllowPlaintextBackup || c.ClearTxObjectStore {
			t.Errorf("defaults (action=%v) wrong: %v", c.Action, c)
		}
	}
	if !slices.Equal(action.BackupStores, []string{"artifact"}) {
		t.Errorf("action backup-store = %q, want [artifact]", action.BackupStores)
	}
	if !slices.Equal(cli.BackupStores, []string{"path:./backups"}) {
		t.Errorf("CLI backup-store = %q, want [path:./backups]", cli.BackupStores)
	}
}

func TestFromActionEmptyIsUnset(t *testing.T) {
	env := actionEnv(map[string]string{})
	env["INPUT_NAMESPACE"] = ""
	env["INPUT_TIMEOUT"] = "  "
	env["INPUT_BACKUP-STORE"] = "\n"
	c := FromAction(envOf(env))
	if c.Namespace != "default" || c.Timeout != 10*time.Minute || !slices.Equal(c.BackupStores, []string{"artifact"}) {
		t.Errorf("empty inputs did not fall back to defaults: %v", c)
	}
	if c.Given("namespace") || !c.Given("release-name") {
		t.Errorf("Given(namespace) = %v, Given(release-name) = %v; want false, true", c.Given("namespace"), c.Given("release-name"))
	}
}

func TestFromFlags(t *testing.T) {
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte("a: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		cmd   string
		args  []string
		check func(*Config) bool
	}{
		{"strings and typed", CmdUpgrade,
			[]string{"--release-name=identity", "--chart", "./chart", "--timeout=2m", "--db-port=6000", "--stability-window", "0s"},
			func(c *Config) bool {
				return c.ReleaseName == "identity" && c.Chart == "./chart" && c.Timeout == 2*time.Minute && c.DBPort == 6000 && c.StabilityWindow == 0
			}},
		{"bare boolean", CmdUpgrade, []string{"--dry-run", "--reuse-values=false", "-quiesce=false"},
			func(c *Config) bool { return c.DryRun && !c.ReuseValues && !c.Quiesce }},
		{"repeated list flag appends and replaces the default", CmdUpgrade,
			[]string{"--set", "a=b", "--set=c=d", "--backup-store=artifact", "--backup-store", "path:/x", "--values-files", values},
			func(c *Config) bool {
				return slices.Equal(c.Set, []string{"a=b", "c=d"}) && slices.Equal(c.BackupStores, []string{"artifact", "path:/x"}) &&
					slices.Equal(c.ValuesFiles, []string{values})
			}},
		{"newline list in one flag", CmdUpgrade, []string{"--set", "a=b\nc=d"},
			func(c *Config) bool { return slices.Equal(c.Set, []string{"a=b", "c=d"}) }},
		{"empty flag is unset", CmdUpgrade, []string{"--namespace="},
			func(c *Config) bool { return c.Namespace == "default" && !c.Given("namespace") }},
		{"plan is always a dry run", CmdPlan, []string{"--release-name=x"},
			func(c *Config) bool { return c.DryRun && c.Command == CmdPlan && !c.Action }},
		{"restore from", CmdRestore, []string{"--from=oci://ghcr.io/org/backups:b1", "--backup-identity=AGE-SECRET-KEY-1XYZ"},
			func(c *Config) bool {
				return c.From == "oci://ghcr.io/org/backups:b1" && c.BackupIdentity == "AGE-SECRET-KEY-1XYZ"
			}},
		{"backup store default on the CLI", CmdBackup, []string{"--db-host=h"},
			func(c *Config) bool { return slices.Equal(c.BackupStores, []string{"path:./backups"}) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := FromFlags(tt.cmd, tt.args, envOf(nil))
			if err != nil {
				t.Fatalf("FromFlags: %v", err)
			}
			if !tt.check(c) {
				t.Errorf("unexpected config: %v", c)
			}
		})
	}
}

func TestFromFlagsErrors(t *testing.T) {
	tests := []struct {
		name string
		cmd  string
		args []string
		want string
		help bool
	}{
		{"help", CmdUpgrade, []string{"--help"}, "help requested", true},
		{"short help", CmdRestore, []string{"-h"}, "help requested", true},
		{"unknown flag", CmdUpgrade, []string{"--nope=1"}, "flag provided but not defined: -nope", false},
		{"flag of another subcommand", CmdBackup, []string{"--chart=x"}, "flag provided but not defined: -chart", false},
		{"from is restore only", CmdUpgrade, []string{"--from=x"}, "flag provided but not defined: -from", false},
		{"missing value", CmdUpgrade, []string{"--chart"}, "flag needs an argument", false},
		{"stray argument", CmdUpgrade, []string{"--dry-run", "true"}, `unexpected argument "true"`, false},
		{"unknown subcommand", "deploy", nil, `unknown subcommand "deploy"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromFlags(tt.cmd, tt.args, envOf(nil))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			if got := errors.Is(err, flag.ErrHelp); got != tt.help {
				t.Errorf("errors.Is(err, flag.ErrHelp) = %v, want %v", got, tt.help)
			}
		})
	}
}

func TestBackupIdentityFromEnv(t *testing.T) {
	const key = "AGE-SECRET-KEY-1ENVKEY"
	env := envOf(map[string]string{BackupIdentityEnv: key})
	cfg, err := FromFlags(CmdRestore, []string{"--from=oci://ghcr.io/org/backups:b1"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BackupIdentity != key {
		t.Errorf("BackupIdentity = %q, want the key from %s", cfg.BackupIdentity, BackupIdentityEnv)
	}
	if strings.Contains(cfg.String(), key) {
		t.Errorf("the key from the environment is shown: %s", cfg.String())
	}
	cfg, err = FromFlags(CmdRestore, []string{"--from=oci://ghcr.io/org/backups:b1", "--backup-identity=AGE-SECRET-KEY-1FLAG"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BackupIdentity != "AGE-SECRET-KEY-1FLAG" {
		t.Errorf("BackupIdentity = %q, want the flag to win over the environment", cfg.BackupIdentity)
	}
}

func TestEnvFallbacks(t *testing.T) {
	const pw = "from-env-pw"
	const dbURL = "postgres://keycloak@db.internal:5432/keycloak"
	tests := []struct {
		name         string
		inputs       map[string]string // action inputs; for the CLI the same as flags
		env          map[string]string
		wantPassword string
		wantURL      string
		wantValid    bool
	}{
		{"PGPASSWORD fills db-password",
			map[string]string{"db-host": "h", "db-name": "n", "db-user": "u"}, map[string]string{"PGPASSWORD": pw}, pw, "", true},
		{"db-password input wins over PGPASSWORD",
			map[string]string{"db-host": "h", "db-name": "n", "db-user": "u", "db-password": "given"}, map[string]string{"PGPASSWORD": pw}, "given", "", true},
		{"DATABASE_URL fills database-url, PGPASSWORD the password",
			nil, map[string]string{"DATABASE_URL": dbURL, "PGPASSWORD": pw}, pw, dbURL, true},
		{"database-url input wins over DATABASE_URL",
			map[string]string{"database-url": "postgres://a@b/c"}, map[string]string{"DATABASE_URL": dbURL}, "", "postgres://a@b/c", true},
		{"DATABASE_URL ignored when db-host is given",
			map[string]string{"db-host": "h", "db-name": "n", "db-user": "u"}, map[string]string{"DATABASE_URL": dbURL}, "", "", true},
		{"PGPASSWORD ignored when the URL has a password",
			map[string]string{"database-url": "postgres://a:urlpw@b/c"}, map[string]string{"PGPASSWORD": pw}, "", "postgres://a:urlpw@b/c", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Action mode.
			env := map[string]string{"GITHUB_ACTIONS": "true"}
			for k, v := range tt.env {
				env[k] = v
			}
			for k, v := range tt.inputs {
				env[EnvName(k)] = v
			}
			action := FromAction(envOf(env))

			// CLI mode, same inputs as flags.
			var args []string
			for k, v := range tt.inputs {
				args = append(args, "--"+k+"="+v)
			}
			cli, err := FromFlags(CmdBackup, args, envOf(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []*Config{action, cli} {
				if c.DBPassword != tt.wantPassword || c.DatabaseURL != tt.wantURL {
					t.Errorf("action=%v: db-password %q, database-url %q; want %q, %q", c.Action, c.DBPassword, c.DatabaseURL, tt.wantPassword, tt.wantURL)
				}
				if c.Given("db-password") && tt.inputs["db-password"] == "" {
					t.Errorf("action=%v: an env fallback counts as given", c.Action)
				}
				c.Command = CmdBackup // validate the database part only
				c.BackupStores = []string{"path:/tmp/b"}
				if err := c.Validate(); (err == nil) != tt.wantValid {
					t.Errorf("action=%v: Validate = %v, want valid %v", c.Action, err, tt.wantValid)
				}
			}
		})
	}
}

func TestInputsTable(t *testing.T) {
	seen := map[string]bool{}
	var names []string
	for _, in := range allInputs() {
		if seen[in.Name] {
			t.Errorf("input %q listed twice", in.Name)
		}
		seen[in.Name] = true
		names = append(names, in.Name)
		if in.Description == "" || in.Group == "" || len(in.Commands) == 0 {
			t.Errorf("input %q lacks a description, group or subcommand", in.Name)
		}
		if !slices.Contains(Groups(), in.Group) {
			t.Errorf("input %q has unknown group %q", in.Name, in.Group)
		}
		if in.Enum != nil && !slices.Contains(in.Enum, in.Default) {
			t.Errorf("input %q: default %q is not one of %v", in.Name, in.Default, in.Enum)
		}
		if in.Required && in.Default != "" {
			t.Errorf("input %q is required and has a default", in.Name)
		}
	}
	for _, action := range []bool{false, true} {
		var want, got []string
		for _, in := range allInputs() {
			if !(in.CLIOnly && action) && !(in.ActionOnly && !action && in.Name != "command") {
				want = append(want, in.Name)
			}
		}
		for _, f := range (&Config{Action: action}).fields() {
			got = append(got, f.name)
		}
		if !slices.Equal(want, got) {
			t.Errorf("action %v: fields() and the input table differ:\n table  %v\n fields %v", action, want, got)
		}
	}
	for _, cmd := range []string{CmdUpgrade, CmdPlan, CmdBackup, CmdRestore} {
		if len(InputsFor(cmd)) == 0 {
			t.Errorf("InputsFor(%q) is empty", cmd)
		}
	}
	if InputsFor("version") != nil {
		t.Errorf("InputsFor(version) is not nil")
	}
}

func TestFromActionCommand(t *testing.T) {
	restore := map[string]string{"command": "restore", "restore-from": "artifact:identity-r4", "chart": "", "chart-version": "",
		"repo-url": "", "backup-encryption-recipients": ""}
	tests := []struct {
		name     string
		inputs   map[string]string // over actionEnv's valid inputs; "" removes one
		command  string
		problems []string
	}{
		{"default", nil, CmdUpgrade, nil},
		{"upgrade", map[string]string{"command": "upgrade"}, CmdUpgrade, nil},
		{"plan", map[string]string{"command": "plan"}, CmdPlan, nil},
		{"backup", map[string]string{"command": "backup", "chart": "", "chart-version": "", "repo-url": ""}, CmdBackup, nil},
		{"restore", restore, CmdRestore, nil},
		{"recover", map[string]string{"command": "recover", "chart": "", "chart-version": "", "repo-url": "", "backup-encryption-recipients": ""},
			CmdRecover, nil},
		{"unknown command", map[string]string{"command": "deploy"}, CmdUpgrade, []string{"command"}},
		{"restore without restore-from", with(restore, "restore-from", ""), CmdRestore, []string{"restore-from"}},
		{"restore-from given to an upgrade", map[string]string{"restore-from": "artifact:x"}, CmdUpgrade, []string{"restore-from"}},
		{"the chart given to a backup", map[string]string{"command": "backup"}, CmdBackup, []string{"chart", "chart-version", "repo-url"}},
		{"a restore input given to an upgrade", map[string]string{"allow-older-server": "true"}, CmdUpgrade, []string{"allow-older-server"}},
		{"dry-run given to a plan", map[string]string{"command": "plan", "dry-run": "true"}, CmdPlan, []string{"dry-run"}},
		// GitHub passes every input's default: a default is never refused.
		{"defaults of inputs that do not apply", with(restore, "rollback", "auto", "backup-store", "artifact", "dry-run", "false"), CmdRestore, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := FromAction(envOf(actionEnv(tt.inputs)))
			if c.Command != tt.command {
				t.Errorf("Command = %q, want %q", c.Command, tt.command)
			}
			err := c.Validate()
			var got []string
			for _, p := range Problems(err) {
				var in *InputError
				if errors.As(p, &in) {
					got = append(got, in.Input)
				}
			}
			if !slices.Equal(got, tt.problems) {
				t.Errorf("problems name %q, want %q:\n%v", got, tt.problems, err)
			}
			if strings.Contains(tt.name, "given to") && !strings.Contains(err.Error(), "does not apply to command "+tt.command) {
				t.Errorf("error does not say the input does not apply:\n%v", err)
			}
		})
	}
	if c := FromAction(envOf(actionEnv(restore))); c.From != "artifact:identity-r4" {
		t.Errorf("restore-from: From = %q", c.From)
	}
	if c := FromAction(envOf(actionEnv(map[string]string{"command": "plan"}))); !c.DryRun {
		t.Error("command plan does not set DryRun")
	}
}

// with returns m with the key/value pairs kv set.
func with(m map[string]string, kv ...string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// The Keycloak admin password comes from KEYCLOAK_ADMIN_PASSWORD when not given, so that it
// need never sit in process arguments; it is a secret either way.
func TestKeycloakAdminPasswordFromEnv(t *testing.T) {
	const pw = "kc-Admin-Passw0rd"
	env := map[string]string{"KEYCLOAK_ADMIN_PASSWORD": pw}
	c, err := FromFlags(CmdUpgrade, []string{"--keycloak-url=https://id.example.com/auth", "--keycloak-admin-user=admin"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.KeycloakAdminPassword != pw {
		t.Errorf("keycloak-admin-password = %q, want the environment's", c.KeycloakAdminPassword)
	}
	if !slices.Contains(c.Secrets(), pw) || strings.Contains(c.String(), pw) {
		t.Errorf("the password is not a secret: secrets %d, String %s", len(c.Secrets()), c)
	}
	c, _ = FromFlags(CmdUpgrade, []string{"--keycloak-admin-password=given"}, func(k string) string { return env[k] })
	if c.KeycloakAdminPassword != "given" {
		t.Errorf("keycloak-admin-password = %q, want the flag's", c.KeycloakAdminPassword)
	}
}
