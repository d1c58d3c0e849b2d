package config

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	chartDir := filepath.Join(dir, "identity")
	if err := os.Mkdir(chartDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(chartDir, "Chart.yaml"), []byte("name: identity\nversion: 3.0.0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	valuesFile := filepath.Join(dir, "values.yaml")
	if err := os.WriteFile(valuesFile, []byte("a: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noDB := map[string]string{"db-host": "", "db-name": "", "db-user": ""}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := make(map[string]string, len(base)+len(kv)/2)
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	kubeconfig := "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: https://127.0.0.1:6443}\n"
	// The action's restore: the inputs of an upgrade that do not apply to it removed.
	restoring := map[string]string{"command": "restore", "restore-from": "artifact:identity-r4", "chart": "", "chart-version": "",
		"repo-url": "", "backup-encryption-recipients": ""}

	tests := []struct {
		name   string
		inputs map[string]string // over actionEnv's valid inputs; "" removes one
		want   []string          // inputs named by the problems, in order
		text   string            // expected in the error text
	}{
		{name: "valid"},

		// Types.
		{name: "timeout not a duration", inputs: with(nil, "timeout", "abc"), want: []string{"timeout"},
			text: `timeout: "abc" is not a duration (examples: 90s, 10m)`},
		{name: "timeout zero", inputs: with(nil, "timeout", "0s"), want: []string{"timeout"}, text: "must be more than 0"},
		{name: "stability-window negative", inputs: with(nil, "stability-window", "-1s"), want: []string{"stability-window"}},
		{name: "stability-window not shorter than timeout", inputs: with(nil, "timeout", "1m", "stability-window", "1m"), want: []string{"stability-window"}},
		{name: "stability-window zero", inputs: with(nil, "stability-window", "0")},
		{name: "boolean yes", inputs: with(nil, "reuse-values", "yes"), want: []string{"reuse-values"}, text: `"yes" is not a boolean; use true or false`},
		{name: "boolean True", inputs: with(nil, "reuse-values", "True", "dry-run", "FALSE")},
		{name: "db-port not a number", inputs: with(nil, "db-port", "x"), want: []string{"db-port"}},
		{name: "db-port zero", inputs: with(nil, "db-port", "0"), want: []string{"db-port"}, text: "1-65535"},
		{name: "db-port too big", inputs: with(nil, "db-port", "65536"), want: []string{"db-port"}},

		// Enums.
		{name: "backup-format", inputs: with(nil, "backup-format", "zip"), want: []string{"backup-format"}, text: `"zip" is not one of custom, plain`},
		{name: "rollback", inputs: with(nil, "rollback", "sometimes"), want: []string{"rollback"}},
		{name: "restore-database", inputs: with(nil, "restore-database", "yes"), want: []string{"restore-database"}},
		{name: "rollback-hooks", inputs: with(nil, "rollback-hooks", "none"), want: []string{"rollback-hooks"}},
		{name: "recreate-statefulsets", inputs: with(nil, "recreate-statefulsets", "delete"), want: []string{"recreate-statefulsets"}},
		{name: "db-sslmode", inputs: with(nil, "db-sslmode", "strict"), want: []string{"db-sslmode"}},
		{name: "enums valid", inputs: with(nil, "backup-format", "plain", "rollback", "never", "restore-database", "always",
			"rollback-hooks", "run", "recreate-statefulsets", "orphan", "db-sslmode", "verify-full")},

		// Release.
		{name: "release-name missing", inputs: with(nil, "release-name", ""), want: []string{"release-name"}},
		{name: "release-name upper case", inputs: with(nil, "release-name", "Identity"), want: []string{"release-name"}},
		{name: "release-name 54 characters", inputs: with(nil, "release-name", strings.Repeat("a", 54)), want: []string{"release-name"}},
		{name: "release-name 53 characters", inputs: with(nil, "release-name", strings.Repeat("a", 53))},
		{name: "namespace", inputs: with(nil, "namespace", "bad_ns"), want: []string{"namespace"}},
		{name: "chart missing", inputs: with(nil, "chart", ""), want: []string{"chart"}},
		{name: "repo/name needs repo-url", inputs: with(nil, "repo-url", ""), want: []string{"chart"}, text: "needs repo-url"},
		{name: "chart empty segment", inputs: with(nil, "chart", "alfresco//identity"), want: []string{"chart"}},
		{name: "chart three segments", inputs: with(nil, "chart", "a/b/c"), want: []string{"chart"}},
		{name: "chart white space", inputs: with(nil, "chart", "alfresco/ident ity"), want: []string{"chart"}},
		{name: "chart control character", inputs: with(nil, "chart", "alfresco/ident\x1bity"), want: []string{"chart"}},
		{name: "chart bad name", inputs: with(nil, "chart", "alfresco/-x"), want: []string{"chart"}},
		{name: "chart other URL", inputs: with(nil, "chart", "https://example.com/chart"), want: []string{"chart"}},
		{name: "oci chart", inputs: with(nil, "chart", "oci://ghcr.io/org/alfresco-identity-service", "repo-url", "")},
		{name: "oci chart with port", inputs: with(nil, "chart", "oci://127.0.0.1:5000/charts/identity", "repo-url", "")},
		{name: "oci chart without host", inputs: with(nil, "chart", "oci:///charts/identity", "repo-url", ""), want: []string{"chart"}, text: "no registry host"},
		{name: "oci chart without path", inputs: with(nil, "chart", "oci://ghcr.io", "repo-url", ""), want: []string{"chart"}},
		{name: "oci chart empty segment", inputs: with(nil, "chart", "oci://ghcr.io//identity", "repo-url", ""), want: []string{"chart"}},
		{name: "oci chart trailing slash", inputs: with(nil, "chart", "oci://ghcr.io/org/", "repo-url", ""), want: []string{"chart"}},
		{name: "oci chart with repo-url", inputs: with(nil, "chart", "oci://ghcr.io/org/identity"), want: []string{"repo-url"}},
		{name: "local chart", inputs: with(nil, "chart", chartDir, "repo-url", "", "chart-version", "")},
		{name: "local chart with version", inputs: with(nil, "chart", chartDir, "repo-url", ""), want: []string{"chart-version"}},
		{name: "local chart missing", inputs: with(nil, "chart", "./no-such-chart", "repo-url", "", "chart-version", ""), want: []string{"chart"}},
		{name: "local dir without Chart.yaml", inputs: with(nil, "chart", dir+"/", "repo-url", "", "chart-version", ""), want: []string{"chart"}},
		{name: "local tgz missing", inputs: with(nil, "chart", "identity-3.0.0.tgz", "repo-url", "", "chart-version", ""), want: []string{"chart"}},
		{name: "chart-version constraint", inputs: with(nil, "chart-version", ">=2.1.0 <4.0.0")},
		{name: "chart-version bad", inputs: with(nil, "chart-version", "three"), want: []string{"chart-version"}},
		{name: "repo-url not http", inputs: with(nil, "repo-url", "ftp://example.com/charts"), want: []string{"repo-url"}},
		{name: "values valid", inputs: with(nil, "values", "keycloak:\n  image:\n    tag: 12.0.4\n")},
		{name: "values invalid YAML", inputs: with(nil, "values", "a: [b"), want: []string{"values"}, text: "values: is not valid YAML"},
		{name: "values a list", inputs: with(nil, "values", "- a\n- b"), want: []string{"values"}, text: "mapping"},
		{name: "values-files", inputs: with(nil, "values-files", valuesFile)},
		{name: "values-files missing", inputs: with(nil, "values-files", valuesFile+"\n"+dir+"/nope.yaml"), want: []string{"values-files"}},
		{name: "values-files a directory", inputs: with(nil, "values-files", dir), want: []string{"values-files"}},
		{name: "set valid", inputs: with(nil, "set", "a=b\nc.d[0]=e=f\nempty=")},
		{name: "set without =", inputs: with(nil, "set", "a=b\nfoo"), want: []string{"set"}, text: "line 2"},
		{name: "set empty key", inputs: with(nil, "set", "=x"), want: []string{"set"}},
		{name: "kubeconfig content", inputs: with(nil, "kubeconfig", kubeconfig)},
		{name: "kubeconfig path", inputs: with(nil, "kubeconfig", "/home/me/.kube/config"), want: []string{"kubeconfig"}, text: "looks like a file path"},
		{name: "kubeconfig without clusters", inputs: with(nil, "kubeconfig", "apiVersion: v1\nkind: Config\n"), want: []string{"kubeconfig"}},
		{name: "kubeconfig-path", inputs: with(nil, "kubeconfig-path", "kubeconfig", "cluster-auth", "aws")},
		{name: "kubeconfig and kubeconfig-path", inputs: with(nil, "kubeconfig", kubeconfig, "kubeconfig-path", "kubeconfig"), want: []string{"kubeconfig-path"},
			text: "kubeconfig-path: given together with kubeconfig; give the kubeconfig's content in kubeconfig or its file in kubeconfig-path, not both"},
		{name: "cluster-auth unknown", inputs: with(nil, "cluster-auth", "okta"), want: []string{"cluster-auth"}, text: `"okta" is not one of kubeconfig, aws, gcp, azure`},

		// Database.
		{name: "database-url alone", inputs: with(noDB, "database-url", "postgres://keycloak@db:5432/keycloak?sslmode=require")},
		{name: "postgresql scheme, host in query", inputs: with(noDB, "database-url", "postgresql:///keycloak?host=/var/run/postgresql")},
		{name: "database-url and db-host", inputs: with(nil, "database-url", "postgres://keycloak@db/keycloak", "db-name", "", "db-user", ""),
			want: []string{"database-url"}, text: "database-url: given together with db-host"},
		{name: "database-url and db-port", inputs: with(noDB, "database-url", "postgres://k@db/k", "db-port", "6432"),
			want: []string{"database-url"}, text: "db-port"},
		// The runner passes every default: db-port 5432 and db-sslmode prefer are in every step.
		{name: "database-url and the defaults the runner passes", inputs: with(noDB, "database-url", "postgres://k@db/k", "db-port", "5432", "db-sslmode", "prefer")},
		{name: "database-url and db-sslmode", inputs: with(noDB, "database-url", "postgres://k@db/k", "db-sslmode", "require"),
			want: []string{"database-url"}, text: "db-sslmode"},
		{name: "password twice", inputs: with(noDB, "database-url", "postgres://k:p@db/k"), want: []string{"db-password"}},
		{name: "database-url other scheme", inputs: with(noDB, "database-url", "mysql://k@db/k"), want: []string{"database-url"}},
		{name: "database-url without host", inputs: with(noDB, "database-url", "postgres:///k"), want: []string{"database-url"}, text: "no host"},
		{name: "database-url bad port", inputs: with(noDB, "database-url", "postgres://k@db:99999/k"), want: []string{"database-url"}},
		{name: "database-url unparseable", inputs: with(noDB, "database-url", "postgres://k@db:port/k"), want: []string{"database-url"}},
		{name: "database-url bad sslmode", inputs: with(noDB, "database-url", "postgres://k@db/k?sslmode=on"), want: []string{"database-url"}},
		{name: "no database", inputs: noDB, want: []string{"db-host", "db-name", "db-user"}, text: "or give database-url"},
		{name: "db-name missing", inputs: with(nil, "db-name", ""), want: []string{"db-name"}},
		{name: "db-host with space", inputs: with(nil, "db-host", "db host"), want: []string{"db-host"}},

		// Backup.
		{name: "backup-store several", inputs: with(nil, "backup-store", "artifact\noci://ghcr.io/org/backups:identity\npath:./backups")},
		{name: "backup-store unknown", inputs: with(nil, "backup-store", "s3://bucket"), want: []string{"backup-store"}},
		{name: "backup-store empty path", inputs: with(nil, "backup-store", "path:"), want: []string{"backup-store"}},
		{name: "backup-store twice", inputs: with(nil, "backup-store", "artifact\nartifact"), want: []string{"backup-store"}},
		{name: "backup-store oci upper case", inputs: with(nil, "backup-store", "oci://ghcr.io/Org/backups"), want: []string{"backup-store"}},
		{name: "backup-store oci bad tag", inputs: with(nil, "backup-store", "oci://ghcr.io/org/backups:-x"), want: []string{"backup-store"}},
		{name: "backup-store oci tag and digest", inputs: with(nil, "backup-store", "oci://127.0.0.1:5000/org/backups:kc-1@sha256:"+strings.Repeat("a", 64))},
		{name: "backup-store oci bad tag before digest", inputs: with(nil, "backup-store", "oci://ghcr.io/org/backups:-x@sha256:"+strings.Repeat("a", 64)), want: []string{"backup-store"}},
		{name: "recipient bad", inputs: with(nil, "backup-encryption-recipients", recipient+"\nssh-rsa-AAAA"), want: []string{"backup-encryption-recipients"}},
		{name: "plaintext refused", inputs: with(nil, "backup-encryption-recipients", ""), want: []string{"backup-encryption-recipients"},
			text: "allow-plaintext-backup"},
		{name: "plaintext allowed", inputs: with(nil, "backup-encryption-recipients", "", "allow-plaintext-backup", "true")},
		{name: "plaintext to a local path", inputs: with(nil, "backup-encryption-recipients", "", "backup-store", "path:./backups")},
		{name: "backup-name", inputs: with(nil, "backup-name", "identity-r3-20250101T000000Z")},
		{name: "backup-name bad", inputs: with(nil, "backup-name", "../etc"), want: []string{"backup-name"}},
		{name: "backup-identity", inputs: with(restoring, "backup-identity", "# created: 2025\n# public key: age1...\nAGE-SECRET-KEY-1QQQ\n")},
		{name: "backup-identity bad", inputs: with(restoring, "backup-identity", "not a key"), want: []string{"backup-identity"}},
		{name: "registry password without user", inputs: with(nil, "registry-password", "t"), want: []string{"registry-username"}},
		{name: "registry user without password", inputs: with(nil, "registry-username", "u"), want: []string{"registry-password"}},

		// Readiness, recovery, identity service.
		{name: "probe-url", inputs: with(nil, "probe-url", "https://id.example.com/auth/realms/master/.well-known/openid-configuration")},
		{name: "probe-url bad", inputs: with(nil, "probe-url", "id.example.com"), want: []string{"probe-url"}},
		{name: "keycloak-url bad", inputs: with(nil, "keycloak-url", "ftp://id", "keycloak-admin-user", "admin", "keycloak-admin-password", "pw"), want: []string{"keycloak-url"}},
		{name: "keycloak-url without the credentials", inputs: with(nil, "keycloak-url", "https://id.example.com/auth"),
			want: []string{"keycloak-admin-user", "keycloak-admin-password"}},
		{name: "missing-theme warn", inputs: with(nil, "missing-theme", "warn")},
		{name: "missing-theme bad", inputs: with(nil, "missing-theme", "ignore"), want: []string{"missing-theme"}},
		{name: "logout-sessions needs the admin API", inputs: with(nil, "logout-sessions", "true"),
			want: []string{"keycloak-url", "keycloak-admin-user", "keycloak-admin-password"}},
		{name: "logout-sessions", inputs: with(nil, "logout-sessions", "true", "keycloak-url", "https://id.example.com/auth",
			"keycloak-admin-user", "admin", "keycloak-admin-password", "pw", "realms", "alfresco\nmaster")},
		{name: "realms all and names", inputs: with(nil, "realms", "all\nalfresco"), want: []string{"realms"}},
		{name: "workload", inputs: with(nil, "workload", "statefulset/identity-keycloak")},
		{name: "workload bad", inputs: with(nil, "workload", "pod/identity-keycloak-0"), want: []string{"workload"}},
		{name: "tx-object-store-path relative", inputs: with(nil, "tx-object-store-path", "data/tx"), want: []string{"tx-object-store-path"}},
		{name: "tx-object-store-path root", inputs: with(nil, "tx-object-store-path", "/"), want: []string{"tx-object-store-path"}},
		{name: "tx-object-store-path unclean", inputs: with(nil, "tx-object-store-path", "/opt/../tx"), want: []string{"tx-object-store-path"}},

		// Text hygiene.
		{name: "newline in single-line input", inputs: with(nil, "release-name", "a\nb"), want: []string{"release-name"}, text: "single line"},
		{name: "NUL", inputs: with(nil, "namespace", "a\x00b"), want: []string{"namespace"}, text: "NUL"},
		{name: "not UTF-8", inputs: with(nil, "kube-context", "ctx\xff"), want: []string{"kube-context"}, text: "UTF-8"},
		{name: "too long", inputs: with(nil, "kube-context", strings.Repeat("c", 5000)), want: []string{"kube-context"}, text: "limit is 4096"},
		{name: "long text is fine", inputs: with(nil, "values", "a: "+strings.Repeat("b", 10000))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := FromAction(envOf(actionEnv(tt.inputs)))
			err := c.Validate()
			if got := problemInputs(t, err); !slices.Equal(got, tt.want) {
				t.Fatalf("problems name %q, want %q; error:\n%v", got, tt.want, err)
			}
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error does not contain %q:\n%v", tt.text, err)
			}
		})
	}
}

func TestValidateReportsAllProblemsAtOnce(t *testing.T) {
	c := FromAction(envOf(actionEnv(map[string]string{
		"release-name":  "",
		"timeout":       "soon",
		"backup-format": "zip",
		"db-port":       "0",
		"set":           "novalue",
		"probe-url":     "nope",
	})))
	err := c.Validate()
	want := []string{"release-name", "db-port", "backup-format", "timeout", "probe-url", "set"}
	got := problemInputs(t, err)
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("no problem names %q; got %q", w, got)
		}
		if !strings.Contains(err.Error(), w+": ") {
			t.Errorf("error text does not name %q:\n%v", w, err)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d problems %q, want %d", len(got), got, len(want))
	}
	// In input order, one per line.
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) || !strings.HasPrefix(lines[0], "release-name: ") {
		t.Errorf("error text is not one problem per line in input order:\n%v", err)
	}
}

func TestValidateSubcommandRequirements(t *testing.T) {
	tests := []struct {
		cmd  string
		args []string
		want []string
	}{
		{CmdUpgrade, nil, []string{"release-name", "chart", "db-host", "db-name", "db-user"}},
		{CmdPlan, nil, []string{"release-name", "chart", "db-host", "db-name", "db-user"}},
		{CmdBackup, nil, []string{"db-host", "db-name", "db-user"}},
		{CmdBackup, []string{"--database-url=postgres://k@db/k"}, nil},
		{CmdRestore, nil, []string{"db-host", "db-name", "db-user", "from"}},
		{CmdRestore, []string{"--database-url=postgres://k@db/k", "--from=oci://ghcr.io/org/b:1"}, nil},
		{CmdRestore, []string{"--database-url=postgres://k@db/k", "--from=artifact:identity-r4-20261126T101500Z"}, nil},
		{CmdRestore, []string{"--database-url=postgres://k@db/k", "--from=artifact:"}, []string{"from"}},
		{CmdRestore, []string{"--database-url=postgres://k@db/k", "--from=./no/such/dir"}, []string{"from"}},
		{CmdRestore, []string{"--database-url=postgres://k@db/k", "--from=bad:name"}, []string{"from"}},
		{CmdRestore, []string{"--from=oci://ghcr.io/org/b:1", "--customizations-to=/tmp/out"}, nil},
		{CmdRestore, []string{"--from=oci://ghcr.io/org/b:1"}, []string{"db-host", "db-name", "db-user"}},
		{CmdRestore, []string{"--db-name=k", "--from=oci://ghcr.io/org/b:1", "--customizations-to=/tmp/out"}, []string{"db-host", "db-user"}},
		{CmdRestore, []string{"--database-url=postgres://k@db/k", "--from=identity-r3-20250101T000000Z"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.cmd+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			c, err := FromFlags(tt.cmd, tt.args, envOf(nil))
			if err != nil {
				t.Fatal(err)
			}
			if got := problemInputs(t, c.Validate()); !slices.Equal(got, tt.want) {
				t.Errorf("problems name %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidateTouchesNothingForManualConfig(t *testing.T) {
	// A Config built by hand (as other packages' tests may do) validates on its fields alone.
	c := &Config{Command: CmdBackup, Namespace: "default", DatabaseURL: "postgres://k@db/k", DBPort: 5432, DBSSLMode: "prefer",
		BackupFormat: "custom", BackupStores: []string{"path:/tmp/b"}, Timeout: 1, Rollback: "auto", RestoreDatabase: "auto",
		RollbackHooks: "auto", RecreateStatefulSets: "never", Workload: "auto", Realms: []string{"all"}, TxObjectStorePath: "/a/b", ClusterAuth: "kubeconfig",
		MissingTheme: "fail"}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestValidateRehearsal: a rehearsal needs a namespace of its own and a database for the
// clone's Keycloak that is not production's.
func TestValidateRehearsal(t *testing.T) {
	// actionEnv's step, the database not named yet and nothing a rehearsal does not take.
	base := map[string]string{"command": "rehearse", "namespace": "identity", "db-host": "", "backup-encryption-recipients": ""}
	tests := []struct {
		name   string
		inputs map[string]string
		want   []string
		text   string
	}{
		{name: "bundled database through the forward", inputs: map[string]string{"db-port-forward": "auto"}},
		{name: "production's database outside the release", inputs: map[string]string{"db-host": "db.internal"},
			want: []string{"rehearsal-database-url"}, text: "would otherwise migrate production's database"},
		{name: "a scratch database given", inputs: map[string]string{"db-host": "db.internal", "rehearsal-database-url": "postgres://keycloak@scratch:5432/kc"}},
		{name: "the release's own namespace", inputs: map[string]string{"db-port-forward": "auto", "rehearsal-namespace": "identity"},
			want: []string{"rehearsal-namespace"}, text: "needs a namespace of its own"},
		{name: "not a URL", inputs: map[string]string{"db-port-forward": "auto", "rehearsal-database-url": "scratch"},
			want: []string{"rehearsal-database-url"}},
		{name: "upgrade without rehearse-first needs none", inputs: map[string]string{"command": "upgrade", "db-host": "db.internal",
			"backup-store": "path:/tmp/b"}},
		{name: "upgrade with rehearse-first", inputs: map[string]string{"command": "upgrade", "db-host": "db.internal",
			"backup-store": "path:/tmp/b", "rehearse-first": "true"}, want: []string{"rehearsal-database-url"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := maps.Clone(base)
			maps.Copy(in, tt.inputs)
			c := FromAction(envOf(actionEnv(in)))
			err := c.Validate()
			if got := problemInputs(t, err); !slices.Equal(got, tt.want) {
				t.Fatalf("problems name %q, want %q; error:\n%v", got, tt.want, err)
			}
			if tt.text != "" && !strings.Contains(err.Error(), tt.text) {
				t.Errorf("error does not contain %q:\n%v", tt.text, err)
			}
		})
	}
	if got := (&Config{Namespace: "identity"}).RehearsalNamespaceOrDefault(); got != "identity-rehearsal" {
		t.Errorf("default rehearsal namespace %q", got)
	}
}
