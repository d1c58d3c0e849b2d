package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/Masterminds/semver/v3"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/forwardspec"
)

// Limits on the size of one input.
const (
	maxLineBytes = 4096    // a single-line input or one line of a list
	maxTextBytes = 1 << 20 // a multi-line input (values, kubeconfig, age identity)
)

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	chartName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	ociHost      = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$`)
	ociComponent = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*$`)
	ociTag       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)
	ociDigest    = regexp.MustCompile(`^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$`)
	// age1 + bech32 data, or a plugin recipient age1<name>1<data>.
	ageRecipient  = regexp.MustCompile(`^age1([a-z0-9.+-]*1)?[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{6,}$`)
	artifactChars = `":<>|*?\/`
	yamlProse     = regexp.MustCompile(`^yaml: (line \d+: )?([A-Za-z ,;()-]|'[^']')+$`)
	yamlLine      = regexp.MustCompile(`line \d+`)
)

// Validate checks the configuration and returns every problem at once: an errors.Join of
// *InputError, in input order, each naming the input and how to fix it; nil if all is well.
// No message contains a secret. Validate touches nothing: no network; the only file access is a
// read-only stat of a local chart, the values files and a restore directory.
func (c *Config) Validate() error {
	v := &validator{c: c, problems: slices.Clone(c.problems)}
	v.hygiene()
	v.enums()
	v.release()
	v.cluster()
	v.database()
	v.backup()
	v.recovery()
	v.identity()
	v.rehearsal()
	v.excludes()

	if c.Action {
		// As an action, restore's bundle is the restore-from input.
		for i, p := range v.problems {
			if p.Input == "from" {
				v.problems[i] = &InputError{Input: "restore-from", Reason: p.Reason}
			}
		}
	}
	order := make(map[string]int)
	for i, in := range allInputs() {
		order[in.Name] = i
	}
	slices.SortStableFunc(v.problems, func(a, b *InputError) int { return order[a.Input] - order[b.Input] })
	errs := make([]error, len(v.problems))
	for i, p := range v.problems {
		errs[i] = p
	}
	return errors.Join(errs...)
}

type validator struct {
	c        *Config
	problems []*InputError
}

// add records a problem. Values in args must already be quoted with c.quote (or be our own text).
func (v *validator) add(name, format string, args ...any) {
	v.problems = append(v.problems, &InputError{Input: name, Reason: fmt.Sprintf(format, args...)})
}

// has reports whether the input already has a problem; later checks of it are then skipped.
func (v *validator) has(name string) bool {
	return slices.ContainsFunc(v.problems, func(p *InputError) bool { return p.Input == name })
}

// check runs a check on an input's value unless the value is empty or already has a problem.
func (v *validator) check(name, value string, fn func(string)) {
	if value != "" && !v.has(name) {
		fn(value)
	}
}

// hygiene rejects text no input may hold: invalid UTF-8, NUL and other control characters and
// line breaks in single-line inputs, and values that are far too long.
func (v *validator) hygiene() {
	for _, f := range v.c.fields() {
		in, _ := lookup(f.name)
		switch {
		case in.Kind() == KindText:
			v.text(f.name, f.value)
		case f.list != nil:
			for _, s := range f.list {
				if !v.line(f.name, s) {
					break
				}
			}
		default:
			v.line(f.name, f.value)
		}
	}
}

func (v *validator) line(name, s string) bool {
	switch {
	case !utf8.ValidString(s):
		v.add(name, "is not valid UTF-8 text")
	case strings.ContainsRune(s, 0):
		v.add(name, "contains a NUL byte")
	case strings.ContainsAny(s, "\r\n"):
		v.add(name, "must be a single line; remove the line break")
	case strings.ContainsFunc(s, unicode.IsControl):
		v.add(name, "contains a control character; remove it")
	case len(s) > maxLineBytes:
		v.add(name, "is %d bytes long; the limit is %d", len(s), maxLineBytes)
	default:
		return true
	}
	return false
}

func (v *validator) text(name, s string) {
	switch {
	case !utf8.ValidString(s):
		v.add(name, "is not valid UTF-8 text")
	case strings.ContainsRune(s, 0):
		v.add(name, "contains a NUL byte")
	case len(s) > maxTextBytes:
		v.add(name, "is %d bytes long; the limit is %d", len(s), maxTextBytes)
	}
}

// enums checks every input that has a fixed set of values.
func (v *validator) enums() {
	for _, f := range v.c.fields() {
		in, _ := lookup(f.name)
		if in.Enum == nil || v.has(f.name) {
			continue
		}
		if f.value == "" {
			v.add(f.name, "empty; use one of %s (default %s)", strings.Join(in.Enum, ", "), in.Default)
		} else if !slices.Contains(in.Enum, f.value) {
			v.add(f.name, "%s is not one of %s", v.c.quote(f.value), strings.Join(in.Enum, ", "))
		}
	}
}

// UsesDatabase reports whether the run touches a database: every command but inspect and a
// restore that only writes a bundle's customizations out (customizations-to without any
// database input).
func (c *Config) UsesDatabase() bool {
	if c.Command == CmdInspect {
		return false
	}
	if c.Command != CmdRestore || c.CustomizationsTo == "" {
		return true
	}
	return c.DatabaseURL != "" || c.DBHost != "" || c.DBName != "" || c.DBUser != "" || c.DBPortForward != ""
}

func (c *Config) upgrades() bool { return c.Command == CmdUpgrade || c.Command == CmdPlan }

func (c *Config) backsUp() bool { return c.upgrades() || c.Command == CmdBackup }

func (v *validator) release() {
	c := v.c
	if c.ReleaseName == "" && (c.upgrades() || c.Command == CmdRecover || c.Command == CmdRehearse) && !v.has("release-name") {
		v.add("release-name", "required: the name of the Helm release to upgrade (helm list --namespace %s shows it)", c.Namespace)
	}
	v.check("release-name", c.ReleaseName, func(s string) {
		if len(s) > 53 || !dnsLabel.MatchString(s) {
			v.add("release-name", "%s is not a valid release name: use at most 53 lower case letters, digits and '-', starting and ending with a letter or digit", c.quote(s))
		}
	})
	if c.Namespace == "" && !v.has("namespace") {
		v.add("namespace", "empty; give the release's namespace (default: default)")
	}
	v.check("namespace", c.Namespace, func(s string) {
		if len(s) > 63 || !dnsLabel.MatchString(s) {
			v.add("namespace", "%s is not a valid namespace: use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit", c.quote(s))
		}
	})
	if c.Chart == "" && (c.upgrades() || c.Command == CmdRehearse) && !v.has("chart") {
		v.add("chart", "required: the chart to upgrade to, as repo/name with repo-url, oci://host/path/name, or a local chart directory or .tgz")
	}
	v.check("chart", c.Chart, v.chart)
	v.check("chart-version", c.ChartVersion, func(s string) {
		if _, err := semver.NewConstraint(s); err != nil {
			v.add("chart-version", "%s is not a version or version constraint (examples: 3.0.0, ~3.0, >=2.1.0 <4.0.0)", c.quote(s))
		}
	})
	v.check("repo-url", c.RepoURL, func(s string) { v.httpURL("repo-url", s, "https://kubernetes-charts.alfresco.com/stable") })
	v.check("values", c.Values, func(s string) {
		var doc any
		if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
			v.add("values", "is not valid YAML: %s", yamlProblem(err))
			return
		}
		if _, ok := doc.(map[string]any); !ok && doc != nil {
			v.add("values", "must be a YAML mapping (key: value lines), not a %s", yamlKind(doc))
		}
	})
	if !v.has("values-files") {
		for _, f := range c.ValuesFiles {
			if st, err := os.Stat(f); err != nil {
				v.add("values-files", "%s does not exist or cannot be read (paths are relative to %s)", c.quote(f), cwd())
			} else if !st.Mode().IsRegular() {
				v.add("values-files", "%s is not a regular file", c.quote(f))
			}
		}
	}
	if !v.has("set") {
		for i, kv := range c.Set {
			k, _, ok := strings.Cut(kv, "=")
			switch {
			case !ok:
				v.add("set", "line %d is not key=value: %s", i+1, c.quote(kv))
			case k == "" || strings.ContainsFunc(k, unicode.IsSpace):
				v.add("set", "line %d has an empty key or a key with spaces (%s); write key=value, e.g. image.tag=12.0.4", i+1, c.quote(k))
			}
		}
	}
}

// chart checks a chart reference: oci://…, a local chart, or repo/name (which needs repo-url).
func (v *validator) chart(s string) {
	c := v.c
	if strings.ContainsFunc(s, unicode.IsSpace) {
		v.add("chart", "%s contains white space; remove it", c.quote(s))
		return
	}
	local := false
	switch {
	case strings.HasPrefix(s, "oci://"):
		if why := checkOCIRef(s); why != "" {
			v.add("chart", "%s %s", c.quote(s), why)
		}
	case strings.Contains(s, "://"):
		v.add("chart", "%s: only oci:// references are URLs; for a chart repository give repo-url and chart as repo/name", c.quote(s))
		return
	case isLocalPath(s):
		local = true
		st, err := os.Stat(s)
		switch {
		case err != nil:
			v.add("chart", "%s is a local path that does not exist or cannot be read (paths are relative to %s)", c.quote(s), cwd())
		case st.IsDir():
			if _, err := os.Stat(filepath.Join(s, "Chart.yaml")); err != nil {
				v.add("chart", "%s is a directory without Chart.yaml; give the chart's own directory", c.quote(s))
			}
		case !st.Mode().IsRegular():
			v.add("chart", "%s is neither a chart directory nor a .tgz file", c.quote(s))
		}
	default:
		parts := strings.Split(s, "/")
		if len(parts) > 2 || slices.Contains(parts, "") {
			v.add("chart", "%s is not repo/name; write a local chart directory as ./path", c.quote(s))
			return
		}
		for _, p := range parts {
			if !chartName.MatchString(p) {
				v.add("chart", "%s: %s is not a valid repository or chart name (letters, digits, '.', '_', '-')", c.quote(s), c.quote(p))
				return
			}
		}
		if c.RepoURL == "" && !v.has("repo-url") {
			v.add("chart", "%s is a repo/name reference, which needs repo-url (the chart repository's URL, e.g. https://kubernetes-charts.alfresco.com/stable); or give oci://… or a local path", c.quote(s))
		}
		return
	}
	if c.RepoURL != "" {
		v.add("repo-url", "only used with a repo/name chart; leave it empty with chart %s", c.quote(s))
	}
	if local && c.ChartVersion != "" {
		v.add("chart-version", "not used with a local chart (it has its own version); leave it empty or give a repo or oci:// chart")
	}
}

// isLocalPath reports whether a chart reference means a local directory or archive, the way
// helm decides: an explicit path, an archive name, or anything that exists locally.
func isLocalPath(s string) bool {
	if s == "." || s == ".." || strings.HasPrefix(s, "/") || strings.HasPrefix(s, "./") || strings.HasPrefix(s, "../") ||
		strings.HasSuffix(s, ".tgz") || strings.HasSuffix(s, ".tar.gz") {
		return true
	}
	_, err := os.Stat(s)
	return err == nil
}

// checkOCIRef checks oci://host[:port]/path[:tag|@digest] and says what is wrong, or "".
func checkOCIRef(ref string) string {
	rest := strings.TrimPrefix(ref, "oci://")
	host, repo, _ := strings.Cut(rest, "/")
	if host == "" {
		return "has no registry host (example: oci://ghcr.io/org/name)"
	}
	if !ociHost.MatchString(host) {
		return "does not start with a registry host or host:port (example: oci://ghcr.io/org/name)"
	}
	if !strings.ContainsAny(host, ".:") && host != "localhost" {
		// Registry clients read a first element without a dot or a port as a Docker Hub
		// path, not a host: oci://myregistry/x would go to docker.io/myregistry/x.
		return "does not start with a registry host: a host name needs a dot or a port (or is localhost), e.g. oci://registry.example.com/org/name or oci://myregistry:5000/org/name"
	}
	if repo == "" {
		return "has no repository path after the host (example: oci://ghcr.io/org/name)"
	}
	if before, digest, ok := strings.Cut(repo, "@"); ok {
		if !ociDigest.MatchString(digest) {
			return "has a malformed digest after '@' (expected sha256:<hex>)"
		}
		repo = before
	}
	// A tag, alone or before a digest (repo:tag@sha256:…, as the OCI store reports a backup).
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		if !ociTag.MatchString(repo[i+1:]) {
			return "has a malformed tag after ':' (letters, digits, '.', '_', '-'; at most 128)"
		}
		repo = repo[:i]
	}
	for seg := range strings.SplitSeq(repo, "/") {
		if seg == "" {
			return "has an empty path segment ('//' or a trailing '/')"
		}
		if !ociComponent.MatchString(seg) {
			return "has a path segment that is not lower case letters and digits separated by '.', '_' or '-'"
		}
	}
	return ""
}

// yamlProblem describes a YAML syntax error without quoting the document, which may hold chart
// passwords: the parser's own words are kept only when they are plain prose.
func yamlProblem(err error) string {
	msg := strings.TrimPrefix(err.Error(), "error converting YAML to JSON: ")
	if yamlProse.MatchString(msg) {
		return msg
	}
	if m := yamlLine.FindString(msg); m != "" {
		return "syntax error at " + m
	}
	return "syntax error"
}

func yamlKind(doc any) string {
	switch doc.(type) {
	case []any:
		return "list"
	case string:
		return "string"
	default:
		return "scalar"
	}
}

func cwd() string {
	if d, err := os.Getwd(); err == nil {
		return d
	}
	return "the working directory"
}

// httpURL checks an http or https URL with a host.
func (v *validator) httpURL(name, s, example string) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.add(name, "%s is not an http or https URL (example: %s)", v.c.quote(s), example)
	}
}

func (v *validator) cluster() {
	c := v.c
	v.check("kubeconfig", c.Kubeconfig, func(s string) {
		// Never show any part of it: a kubeconfig holds credentials.
		var doc any
		if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
			v.add("kubeconfig", "is not valid YAML; give the content of a kubeconfig file")
			return
		}
		switch d := doc.(type) {
		case string:
			v.add("kubeconfig", "looks like a file path; this input takes the kubeconfig content (give a path in kubeconfig-path)")
		case map[string]any:
			if _, ok := d["clusters"]; !ok {
				v.add("kubeconfig", "has no clusters; give the content of a kubeconfig file")
			}
		default:
			v.add("kubeconfig", "is not a kubeconfig (a YAML mapping with clusters, users and contexts)")
		}
	})
}

func (v *validator) database() {
	c := v.c
	if c.DatabaseURL != "" {
		v.check("database-url", c.DatabaseURL, v.databaseURL)
		if c.Given("db-password") && urlPassword(c.DatabaseURL) != "" {
			v.add("db-password", "database-url already holds a password; give it in one place (db-password, PGPASSWORD or the URL)")
		}
	} else if c.Command != "" && c.UsesDatabase() {
		for _, r := range []struct{ name, what string }{
			{"db-host", "host"},
			{"db-name", "name"},
			{"db-user", "user"},
		} {
			if r.name == "db-host" && c.DBPortForward != "" {
				continue // the forward is the host
			}
			if v.fieldEmpty(r.name) && !v.has(r.name) {
				v.add(r.name, "required: the Keycloak database %s (or give database-url, postgres://user@host:5432/dbname, instead)", r.what)
			}
		}
	}
	v.check("db-host", c.DBHost, func(s string) {
		if strings.ContainsFunc(s, unicode.IsSpace) {
			v.add("db-host", "%s contains white space; give a host name, IP address or socket directory", c.quote(s))
		}
	})
	if !v.has("db-port") && (c.DBPort < 1 || c.DBPort > 65535) {
		v.add("db-port", "%d is not a port number; use 1-65535 (PostgreSQL's default is 5432)", c.DBPort)
	}
	// Zero, in a Config built without the table's defaults, means the database adapter's own.
	if lt := c.DBLockTimeout; !v.has("db-lock-timeout") && (lt < 0 || lt > 24*time.Hour || (lt < 100*time.Millisecond && (lt != 0 || c.Given("db-lock-timeout")))) {
		v.add("db-lock-timeout", "%s is not a lock timeout; give 100ms to 24h (examples: 30s, 2m)", c.DBLockTimeout)
	}
	if n := c.DBAttempts; !v.has("db-attempts") && (n < 0 || n > 10 || (n == 0 && c.Given("db-attempts"))) {
		v.add("db-attempts", "%d is not 1-10 (1: no retry)", c.DBAttempts)
	}
	if !v.has("db-retry-backoff") && (c.DBRetryBackoff < 0 || c.DBRetryBackoff > 10*time.Minute) {
		v.add("db-retry-backoff", "%s is not 0 to 10m (examples: 5s, 30s)", c.DBRetryBackoff)
	}
	v.portForward()
}

// excludes refuses, for every input that has a value, the inputs its row says may not be
// given with it: the run would otherwise use one of them and ignore the other.
func (v *validator) excludes() {
	for _, in := range allInputs() {
		if value, list := in.Bind.get(v.c); len(in.Excludes) == 0 || (value == "" && len(list) == 0) {
			continue
		}
		for _, other := range in.Excludes {
			if v.c.Given(other) {
				v.add(in.Name, "given together with %s; %s", other, strings.ReplaceAll(in.ExcludeHint, "{other}", other))
			}
		}
	}
}

// portForward checks db-port-forward and db-password-from. The forward stands for the host
// and port: db-host, db-port and database-url are refused with it rather than ignored, so
// that no run reaches another database than the one named.
func (v *validator) portForward() {
	c := v.c
	v.check("db-port-forward", c.DBPortForward, func(s string) {
		if _, err := forwardspec.Parse(s); s != PortForwardAuto && err != nil {
			v.add("db-port-forward", "%s is not auto, service/NAME[:PORT] or pod/NAME[:PORT] (e.g. service/identity-postgresql-id:5432)", c.quote(s))
			return
		}
		if s == PortForwardAuto && c.ReleaseName == "" && !v.has("release-name") {
			v.add("db-port-forward", "auto finds the database in the release: give release-name too, or name it as service/NAME[:PORT]")
		}
	})
	v.check("db-password-from", c.DBPasswordFrom, func(s string) {
		if _, err := forwardspec.ParseSecretRef(s); err != nil {
			v.add("db-password-from", "%s is not secret/NAME:KEY (e.g. secret/identity-postgresql-id:postgresql-password)", c.quote(s))
			return
		}
		if c.Given("db-password") || urlPassword(c.DatabaseURL) != "" {
			v.add("db-password-from", "given together with a password (db-password or in database-url); give the password in one place")
		}
	})
}

func (v *validator) fieldEmpty(name string) bool {
	for _, f := range v.c.fields() {
		if f.name == name {
			return f.value == "" && len(f.list) == 0
		}
	}
	return true
}

// databaseURL checks a postgres:// URL. It never shows the URL, which may hold a password.
func (v *validator) databaseURL(s string) {
	const example = "postgres://user@host:5432/dbname?sslmode=require"
	u, err := url.Parse(s)
	if err != nil {
		v.add("database-url", "is not a valid URL (example: %s; percent-encode special characters in the password)", example)
		return
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		v.add("database-url", "does not start with postgres:// or postgresql:// (example: %s)", example)
		return
	}
	q := u.Query()
	if u.Hostname() == "" && q.Get("host") == "" {
		v.add("database-url", "has no host (example: %s)", example)
	}
	if p := u.Port(); p != "" {
		var n int
		if _, err := fmt.Sscan(p, &n); err != nil || n < 1 || n > 65535 {
			v.add("database-url", "has a port outside 1-65535 (example: %s)", example)
		}
	}
	if m := q.Get("sslmode"); m != "" {
		in, _ := lookup("db-sslmode")
		if !slices.Contains(in.Enum, m) {
			v.add("database-url", "sslmode %s is not one of %s", v.c.quote(m), strings.Join(in.Enum, ", "))
		}
	}
}

func (v *validator) backup() {
	c := v.c
	if len(c.BackupStores) == 0 && c.backsUp() && !v.has("backup-store") {
		v.add("backup-store", "empty; give at least one of artifact, oci://registry/repo[:tag], path:DIR")
	}
	var remote []string
	if !v.has("backup-store") {
		seen := make(map[string]bool)
		for _, s := range c.BackupStores {
			switch {
			case seen[s]:
				v.add("backup-store", "%s is listed twice; remove one", c.quote(s))
			case s == "artifact":
				remote = append(remote, s)
			case strings.HasPrefix(s, "oci://"):
				remote = append(remote, s)
				if why := checkOCIRef(s); why != "" {
					v.add("backup-store", "%s %s", c.quote(s), why)
				}
			case strings.HasPrefix(s, "path:"):
				if strings.TrimSpace(strings.TrimPrefix(s, "path:")) == "" {
					v.add("backup-store", "path: needs a directory, e.g. path:./backups")
				}
			default:
				v.add("backup-store", "%s is not artifact, oci://registry/repo[:tag] or path:DIR", c.quote(s))
			}
			seen[s] = true
		}
	}
	v.check("backup-name", c.BackupName, func(s string) {
		if !ociTag.MatchString(s) {
			v.add("backup-name", "%s is not a valid bundle name: use at most 128 letters, digits, '.', '_' and '-', not starting with '.' or '-'", c.quote(s))
		}
	})
	if !v.has("backup-encryption-recipients") {
		for _, r := range c.BackupEncryptionRecipients {
			if !ageRecipient.MatchString(r) {
				v.add("backup-encryption-recipients", "%s is not an age recipient; give public keys as age-keygen prints them (age1 followed by lower case letters and digits)", c.quote(r))
			}
		}
	}
	if c.backsUp() && len(remote) > 0 && len(c.BackupEncryptionRecipients) == 0 && !c.AllowPlaintextBackup && !v.has("allow-plaintext-backup") {
		v.add("backup-encryption-recipients", "empty, so the database backup would be stored unencrypted in %s; give an age recipient (age1..., from age-keygen) or set allow-plaintext-backup to true", strings.Join(remote, ", "))
	}
	v.check("backup-identity", c.BackupIdentity, func(s string) {
		// Never show any part of it: it is a private key.
		for line := range strings.Lines(s) {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if !strings.HasPrefix(line, "AGE-SECRET-KEY-1") && !strings.HasPrefix(line, "AGE-PLUGIN-") {
				v.add("backup-identity", "is not an age identity; give the content of an age identity file (lines starting AGE-SECRET-KEY-1)")
				return
			}
		}
	})
	if (c.RegistryUsername == "") != (c.RegistryPassword == "") && !v.has("registry-username") && !v.has("registry-password") {
		if c.RegistryUsername == "" {
			v.add("registry-username", "required when registry-password is given")
		} else {
			v.add("registry-password", "required when registry-username is given")
		}
	}
	v.retention()
	if (c.Command == CmdRestore || c.Command == CmdInspect) && c.From == "" && !v.has("from") {
		v.add("from", "required: the bundle to restore: a bundle directory written by backup (DIR/<backup-name>), an oci://registry/repo:tag reference, or an artifact name")
	}
	v.check("from", c.From, v.from)
}

// retention checks retention-days, and run-id and github-token, which restore an artifact of
// an earlier run.
func (v *validator) retention() {
	c := v.c
	if c.Given("retention-days") && !v.has("retention-days") {
		switch {
		case c.RetentionDays < 1 || c.RetentionDays > 90:
			v.add("retention-days", "%d is outside 1-90: give the days GitHub keeps the backup artifact, or leave it empty for the repository's default", c.RetentionDays)
		case c.backsUp() && !v.has("backup-store") && !slices.Contains(c.BackupStores, "artifact"):
			v.add("retention-days", "only the artifact store keeps backups for a number of days, and backup-store has no artifact; add artifact or remove retention-days")
		}
	}
	if c.Command != CmdRestore || !c.Given("run-id") || v.has("run-id") {
		return
	}
	if c.RunID <= 0 {
		v.add("run-id", "%d is not a workflow run id: give the id in .../actions/runs/<id>, or leave it empty for the current run", c.RunID)
		return
	}
	if st, err := os.Stat(c.From); strings.HasPrefix(c.From, "oci://") || (err == nil && st.IsDir() && !strings.HasPrefix(c.From, "artifact:")) {
		v.add("run-id", "only used to restore an artifact of that run, and from %s is not one; give from as artifact:<name>", c.quote(c.From))
	}
	if c.GitHubToken == "" && !v.has("github-token") {
		v.add("github-token", "required with run-id: a token that may read the repository's actions (actions: read); on the command line prefer the GITHUB_TOKEN environment variable, which keeps it out of process arguments")
	}
}

// from checks restore's --from: an oci:// reference, a local bundle directory, or an artifact name
// (bare, or as artifact:<name>).
func (v *validator) from(s string) {
	c := v.c
	if strings.HasPrefix(s, "oci://") {
		if why := checkOCIRef(s); why != "" {
			v.add("from", "%s %s", c.quote(s), why)
		}
		return
	}
	if name, ok := strings.CutPrefix(s, "artifact:"); ok {
		// The form the artifact store reports a backup's location in.
		if name == "" || strings.ContainsAny(name, artifactChars) {
			v.add("from", "%s does not name a valid artifact after artifact:", c.quote(s))
		}
		return
	}
	st, err := os.Stat(s)
	switch {
	case err == nil && st.IsDir():
	case err == nil:
		v.add("from", "%s is a file; give the bundle directory that holds manifest.json", c.quote(s))
	case strings.ContainsAny(s, `/\`) || strings.HasPrefix(s, "."):
		v.add("from", "%s: no such bundle directory (paths are relative to %s)", c.quote(s), cwd())
	case strings.ContainsAny(s, artifactChars):
		v.add("from", "%s is neither a directory, an oci:// reference, nor a valid artifact name", c.quote(s))
	}
}

func (v *validator) recovery() {
	c := v.c
	if !v.has("timeout") && c.Timeout <= 0 {
		v.add("timeout", "must be more than 0 (examples: 90s, 10m)")
	}
	if !v.has("stability-window") {
		switch {
		case c.StabilityWindow < 0:
			v.add("stability-window", "must not be negative (0 turns it off; examples: 0s, 30s)")
		case c.Timeout > 0 && c.StabilityWindow >= c.Timeout:
			v.add("stability-window", "%s is not shorter than timeout %s; shorten it or raise timeout", c.StabilityWindow, c.Timeout)
		}
	}
	v.check("probe-url", c.ProbeURL, func(s string) {
		v.httpURL("probe-url", s, "https://id.example.com/auth/realms/master/.well-known/openid-configuration")
	})
}

func (v *validator) identity() {
	c := v.c
	v.check("workload", c.Workload, func(s string) {
		if s == "auto" {
			return
		}
		kind, name, _ := strings.Cut(s, "/")
		if (kind != "statefulset" && kind != "deployment") || len(name) > 253 || !dnsSubdomain.MatchString(name) {
			v.add("workload", "%s is not auto, statefulset/NAME or deployment/NAME", c.quote(s))
		}
	})
	v.check("keycloak-url", c.KeycloakURL, func(s string) { v.httpURL("keycloak-url", s, "https://id.example.com/auth") })
	admin := []struct{ name, value string }{
		{"keycloak-url", c.KeycloakURL},
		{"keycloak-admin-user", c.KeycloakAdminUser},
		{"keycloak-admin-password", c.KeycloakAdminPassword},
	}
	if c.LogoutSessions && c.upgrades() {
		for _, r := range admin {
			if r.value == "" && !v.has(r.name) {
				v.add(r.name, "required when logout-sessions is true (the admin API ends the sessions)")
			}
		}
	} else if c.upgrades() && (c.KeycloakURL != "" || c.KeycloakAdminUser != "") {
		// Given one, the run is to use the admin API (realm exports, the theme check): all three.
		for _, r := range admin {
			if r.value == "" && !v.has(r.name) {
				v.add(r.name, "required with the other admin API inputs (the realm exports and the theme check log in as an admin of the master realm)")
			}
		}
	}
	if !v.has("realms") {
		if len(c.Realms) == 0 {
			v.add("realms", "empty; give realm names, one per line, or all")
		} else if len(c.Realms) > 1 && slices.Contains(c.Realms, "all") {
			v.add("realms", "lists all together with realm names; give either all or the names")
		}
		for _, r := range c.Realms {
			if strings.ContainsAny(r, "/\\") {
				v.add("realms", "%s is not a realm name (no '/' or '\\')", c.quote(r))
			}
		}
	}
	v.check("tx-object-store-path", c.TxObjectStorePath, func(s string) {
		if !path.IsAbs(s) || path.Clean(s) != s || strings.Count(s, "/") < 2 {
			v.add("tx-object-store-path", "%s must be a clean absolute path at least two levels deep (it is deleted in the pod), e.g. /opt/jboss/keycloak/standalone/data/tx-object-store", c.quote(s))
		}
	})
	if c.TxObjectStorePath == "" && c.ClearTxObjectStore && !v.has("tx-object-store-path") {
		v.add("tx-object-store-path", "required when clear-tx-object-store is true")
	}
}

// rehearsal checks the rehearsal's inputs: a namespace of its own, and a database for the
// clone's Keycloak that is not production's.
func (v *validator) rehearsal() {
	c := v.c
	rehearses := c.Command == CmdRehearse || (c.Command == CmdUpgrade && c.RehearseFirst)
	v.check("rehearsal-namespace", c.RehearsalNamespace, func(s string) {
		switch {
		case len(s) > 63 || !dnsLabel.MatchString(s):
			v.add("rehearsal-namespace", "%s is not a valid namespace: use at most 63 lower case letters, digits and '-', starting and ending with a letter or digit", c.quote(s))
		case s == c.Namespace:
			v.add("rehearsal-namespace", "is the release's own namespace; the clone needs a namespace of its own (empty means %s-rehearsal)", c.Namespace)
		}
	})
	if c.RehearsalNamespace == "" && rehearses && len(c.Namespace)+len("-rehearsal") > 63 && !v.has("namespace") {
		v.add("rehearsal-namespace", "required: %s-rehearsal would be longer than 63 characters; name the clone's namespace", c.Namespace)
	}
	v.check("rehearsal-database-url", c.RehearsalDatabaseURL, func(s string) {
		if u, err := url.Parse(s); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Hostname() == "" {
			v.add("rehearsal-database-url", "is not a postgres:// URL with a host (example: postgres://keycloak@scratch-db:5432/keycloak_rehearsal)")
		}
	})
	if rehearses && c.DBPortForward == "" && c.RehearsalDatabaseURL == "" && !v.has("rehearsal-database-url") {
		v.add("rehearsal-database-url", "required to rehearse when the database is not the release's bundled PostgreSQL (reached with db-port-forward): "+
			"the clone's Keycloak would otherwise migrate production's database; give an empty scratch database, or db-port-forward for the bundled one")
	}
}

// RehearsalNamespaceOrDefault is the rehearsal's scratch namespace: rehearsal-namespace, else
// <namespace>-rehearsal.
func (c *Config) RehearsalNamespaceOrDefault() string {
	if c.RehearsalNamespace != "" {
		return c.RehearsalNamespace
	}
	return c.Namespace + "-rehearsal"
}
