package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/identity-upgrade/identity-upgrade/internal/redact"
)

// redacted replaces a secret wherever a configuration is shown.
const redacted = redact.Mark

// Secrets returns the non-empty secret values (passwords, the age identity, the kubeconfig
// content, passwords inside URLs), each once, so that they can be masked in logs. Multi-line
// secrets are returned whole.
func (c *Config) Secrets() []string {
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	add(c.DBPassword)
	add(c.KeycloakAdminPassword)
	add(c.RegistryPassword)
	add(c.GitHubToken)
	add(c.BackupIdentity)
	add(c.Kubeconfig)
	if c.DatabaseURL != "" {
		if _, err := url.Parse(c.DatabaseURL); err != nil {
			add(c.DatabaseURL) // cannot find the password in it: all of it is secret
		} else {
			add(urlPassword(c.DatabaseURL))
		}
	}
	for _, s := range []string{c.RepoURL, c.ProbeURL, c.KeycloakURL} {
		add(urlPassword(s))
	}
	return out
}

// containsSecret reports whether s contains any secret value.
func (c *Config) containsSecret(s string) bool {
	for _, secret := range c.Secrets() {
		if strings.Contains(s, secret) {
			return true
		}
	}
	return false
}

// scrub replaces every secret value in s, and every line of a multi-line secret, in one
// pass, longest first.
func (c *Config) scrub(s string) string { return redact.String(s, c.Secrets()) }

// quote shows a user-given value in a message: quoted, shortened, and not at all if it contains
// a secret.
func (c *Config) quote(s string) string {
	if c.containsSecret(s) {
		return "(value not shown: it contains a secret)"
	}
	const max = 80
	if len(s) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		return strconv.Quote(s[:cut]) + "..."
	}
	return strconv.Quote(s)
}

// field is one input as String and LogValue show it.
type field struct {
	name  string
	value string   // for every kind but KindList
	list  []string // for KindList
}

// fields lists every input with its value, in table order. Values are not redacted yet.
func (c *Config) fields() []field {
	b := func(v bool) string { return strconv.FormatBool(v) }
	d := func(v time.Duration) string { return v.String() }
	// restore's bundle is the restore-from input of the action, the --from flag on the CLI.
	from, restoreFrom := c.From, ""
	if c.Action {
		from, restoreFrom = "", c.From
	}
	return []field{
		{name: "command", value: c.Command},
		{name: "release-name", value: c.ReleaseName},
		{name: "namespace", value: c.Namespace},
		{name: "chart", value: c.Chart},
		{name: "chart-version", value: c.ChartVersion},
		{name: "repo-url", value: c.RepoURL},
		{name: "values", value: c.Values},
		{name: "values-files", list: c.ValuesFiles},
		{name: "set", list: c.Set},
		{name: "reuse-values", value: b(c.ReuseValues)},
		{name: "kubeconfig", value: c.Kubeconfig},
		{name: "kube-context", value: c.KubeContext},
		{name: "database-url", value: c.DatabaseURL},
		{name: "db-host", value: c.DBHost},
		{name: "db-port-forward", value: c.DBPortForward},
		{name: "db-port", value: strconv.Itoa(c.DBPort)},
		{name: "db-name", value: c.DBName},
		{name: "db-user", value: c.DBUser},
		{name: "db-password", value: c.DBPassword},
		{name: "db-password-from", value: c.DBPasswordFrom},
		{name: "db-sslmode", value: c.DBSSLMode},
		{name: "pg-bin-dir", value: c.PgBinDir},
		{name: "from", value: from},
		{name: "restore-from", value: restoreFrom},
		{name: "backup-format", value: c.BackupFormat},
		{name: "backup-store", list: c.BackupStores},
		{name: "backup-name", value: c.BackupName},
		{name: "backup-encryption-recipients", list: c.BackupEncryptionRecipients},
		{name: "allow-plaintext-backup", value: b(c.AllowPlaintextBackup)},
		{name: "backup-identity", value: c.BackupIdentity},
		{name: "allow-older-server", value: b(c.AllowOlderServer)},
		{name: "registry-username", value: c.RegistryUsername},
		{name: "registry-password", value: c.RegistryPassword},
		{name: "retention-days", value: optionalInt(int64(c.RetentionDays), c.Given("retention-days"))},
		{name: "run-id", value: optionalInt(c.RunID, c.Given("run-id"))},
		{name: "github-token", value: c.GitHubToken},
		{name: "timeout", value: d(c.Timeout)},
		{name: "stability-window", value: d(c.StabilityWindow)},
		{name: "probe-url", value: c.ProbeURL},
		{name: "rollback", value: c.Rollback},
		{name: "restore-database", value: c.RestoreDatabase},
		{name: "rollback-hooks", value: c.RollbackHooks},
		{name: "recreate-statefulsets", value: c.RecreateStatefulSets},
		{name: "continue-after-recovery", value: b(c.ContinueAfterRecovery)},
		{name: "cancel-budget", value: d(c.CancelBudget)},
		{name: "unlock-pending", value: b(c.UnlockPending)},
		{name: "quiesce", value: b(c.Quiesce)},
		{name: "workload", value: c.Workload},
		{name: "logout-sessions", value: b(c.LogoutSessions)},
		{name: "keycloak-url", value: c.KeycloakURL},
		{name: "keycloak-admin-user", value: c.KeycloakAdminUser},
		{name: "keycloak-admin-password", value: c.KeycloakAdminPassword},
		{name: "realms", list: c.Realms},
		{name: "clear-tx-object-store", value: b(c.ClearTxObjectStore)},
		{name: "tx-object-store-path", value: c.TxObjectStorePath},
		{name: "dry-run", value: b(c.DryRun)},
	}
}

// optionalInt shows a number that may be left empty: "" when it was not given.
func optionalInt(n int64, given bool) string {
	if !given {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

// sensitiveKey matches --set keys whose values are not shown.
var sensitiveKey = regexp.MustCompile(`(?i)(password|passwd|secret|token|credential|private|key$)`)

// shown returns the non-empty inputs with their values as they may be shown: secrets replaced,
// passwords in URLs replaced, inline YAML as a size, secret-looking --set values replaced, and
// any secret value that appears inside another value replaced.
func (c *Config) shown() []field {
	var out []field
	for _, f := range c.fields() {
		if f.value == "" && len(f.list) == 0 {
			continue
		}
		in, _ := lookup(f.name)
		switch {
		case f.name == "database-url" || in.Kind == KindString && strings.Contains(f.value, "://"):
			f.value = redactURL(f.value)
		case in.Secret:
			f.value = redacted
		case f.name == "values":
			f.value = fmt.Sprintf("(%d bytes of YAML)", len(f.value))
		case f.name == "set":
			f.list = slices.Clone(f.list)
			for i, kv := range f.list {
				if k, _, ok := strings.Cut(kv, "="); ok && sensitiveKey.MatchString(k) {
					f.list[i] = k + "=" + redacted
				}
			}
		}
		f.value = c.scrub(f.value)
		for i := range f.list {
			f.list[i] = c.scrub(f.list[i])
		}
		out = append(out, f)
	}
	return out
}

// redactURL replaces the password in a URL (userinfo or password query parameter); a URL that
// does not parse is hidden whole.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return redacted
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", redacted)
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// String shows the configuration on one line with every secret redacted.
func (c *Config) String() string {
	var b strings.Builder
	b.WriteString(c.Command)
	if c.Action {
		b.WriteString(" (action)")
	}
	for _, f := range c.shown() {
		b.WriteString(" " + f.name + "=")
		if f.list != nil {
			b.WriteString("[")
			for i, s := range f.list {
				if i > 0 {
					b.WriteString(" ")
				}
				b.WriteString(quoteIfNeeded(s))
			}
			b.WriteString("]")
			continue
		}
		b.WriteString(quoteIfNeeded(f.value))
	}
	return b.String()
}

func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\"=[]") || strconv.Quote(s) != `"`+s+`"` {
		return strconv.Quote(s)
	}
	return s
}

// LogValue implements slog.LogValuer: the configuration as a group, every secret redacted.
func (c *Config) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("command", c.Command), slog.Bool("action", c.Action)}
	for _, f := range c.shown() {
		if f.list != nil {
			attrs = append(attrs, slog.Any(f.name, f.list))
			continue
		}
		attrs = append(attrs, slog.String(f.name, f.value))
	}
	return slog.GroupValue(attrs...)
}
