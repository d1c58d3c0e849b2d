// Package config reads the inputs of identity-upgrade, from the action environment
// (INPUT_<NAME>) or from command-line flags, into one plain Config, and validates it.
//
// Reading never fails on a bad value: every problem is kept and reported, all at once, by
// Validate. Nothing in this package touches the network or changes a file.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of one run. FromAction and FromFlags build it once;
// Validate checks it.
type Config struct {
	Command string // upgrade, plan, backup or restore
	Action  bool   // read from action inputs (INPUT_<NAME>) rather than flags

	// Release.
	ReleaseName  string
	Namespace    string
	Chart        string
	ChartVersion string
	RepoURL      string
	Values       string // inline YAML
	ValuesFiles  []string
	Set          []string // key=value
	ReuseValues  bool

	// Cluster.
	Kubeconfig  string // content, not a path
	KubeContext string

	// Database.
	DatabaseURL string
	DBHost      string
	DBPort      int
	DBName      string
	DBUser      string
	DBPassword  string
	DBSSLMode   string
	PgBinDir    string
	// DBPortForward is "", auto, service/NAME[:PORT] or pod/NAME[:PORT]; DBPasswordFrom is
	// "" or secret/NAME:KEY. The CLI resolves both (UseForward, UseClusterPassword).
	DBPortForward  string
	DBPasswordFrom string

	// Backup.
	From                       string // restore only: bundle directory, oci:// reference or artifact name
	BackupFormat               string
	BackupStores               []string
	BackupName                 string
	BackupEncryptionRecipients []string
	AllowPlaintextBackup       bool
	BackupIdentity             string
	AllowOlderServer           bool
	RegistryUsername           string
	RegistryPassword           string
	RetentionDays              int    // 0: the repository's default
	RunID                      int64  // restore only: 0 means the current workflow run
	GitHubToken                string // restore only, with RunID

	// Readiness and recovery.
	Timeout               time.Duration
	StabilityWindow       time.Duration
	ProbeURL              string
	Rollback              string
	RestoreDatabase       string
	RollbackHooks         string
	RecreateStatefulSets  string
	UnlockPending         bool
	ContinueAfterRecovery bool
	CancelBudget          time.Duration

	// Identity service.
	Quiesce               bool
	Workload              string
	LogoutSessions        bool
	KeycloakURL           string
	KeycloakAdminUser     string
	KeycloakAdminPassword string
	Realms                []string
	ClearTxObjectStore    bool
	TxObjectStorePath     string

	DryRun bool

	given    map[string]bool // inputs given explicitly (not defaults, not env fallbacks)
	problems []*InputError   // values that could not be read; reported by Validate
}

// FromAction reads every action input from INPUT_<NAME> (GitHub passes an empty string for an
// input that is not set: empty means unset). The command input is the subcommand (default
// upgrade). An input that does not apply to it is a problem for Validate, unless it holds the
// input's default: GitHub passes every input's default, so that one cannot have been given.
func FromAction(getenv func(string) string) *Config {
	raw := make(map[string]string)
	given := make(map[string]bool)
	for _, in := range Inputs() {
		if v := strings.TrimSpace(getenv(EnvName(in.Name))); v != "" {
			raw[in.Name] = v
			given[in.Name] = true
		}
	}
	cmd := CmdUpgrade
	known := raw["command"] == "" || slices.Contains(ActionCommands(), raw["command"])
	if raw["command"] != "" && known {
		cmd = raw["command"]
	}
	c := build(cmd, true, raw, given, getenv)
	if !known {
		c.problem("command", "%s is not one of %s", c.quote(raw["command"]), strings.Join(ActionCommands(), ", "))
		return c
	}
	for _, in := range Inputs() {
		if given[in.Name] && !slices.Contains(in.Commands, cmd) && raw[in.Name] != in.Default {
			c.problem(in.Name, "does not apply to command %s; remove it from the step's with: block (it applies to %s)", cmd, strings.Join(in.Commands, ", "))
		}
	}
	return c
}

// FromFlags reads the flags of a subcommand (upgrade, plan, backup or restore). Only syntax
// errors (an unknown flag, a missing value, a stray argument) are returned; an error wrapping
// flag.ErrHelp means -h or --help was given. Bad values are reported by Validate.
// getenv supplies the environment fallbacks (PGPASSWORD, DATABASE_URL).
func FromFlags(cmd string, args []string, getenv func(string) string) (*Config, error) {
	inputs := InputsFor(cmd)
	if inputs == nil {
		return nil, fmt.Errorf("unknown subcommand %q", cmd)
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the caller prints errors and help
	fs.Usage = func() {}
	values := make(map[string]*flagValue, len(inputs))
	for _, in := range inputs {
		v := &flagValue{isBool: in.Kind == KindBool}
		values[in.Name] = v
		fs.Var(v, in.Name, in.Description)
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}

	raw := make(map[string]string)
	given := make(map[string]bool)
	for name, v := range values {
		if s := strings.TrimSpace(strings.Join(v.values, "\n")); s != "" {
			raw[name] = s
			given[name] = true
		}
	}
	c := build(cmd, false, raw, given, getenv)
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%s: unexpected argument %s (flags are --name=value; boolean flags take --name=true or --name=false)", cmd, c.quote(fs.Arg(0)))
	}
	return c, nil
}

// flagValue collects every occurrence of a flag: list inputs append, the others keep the last.
type flagValue struct {
	values []string
	isBool bool
}

func (f *flagValue) String() string {
	if f == nil || len(f.values) == 0 {
		return ""
	}
	return f.values[len(f.values)-1]
}

func (f *flagValue) Set(s string) error {
	f.values = append(f.values, s)
	return nil
}

// IsBoolFlag lets a boolean input be given as a bare --name.
func (f *flagValue) IsBoolFlag() bool { return f.isBool }

// build turns raw input text into a Config. raw holds the given inputs only; defaults and
// environment fallbacks are applied here.
func build(cmd string, action bool, raw map[string]string, given map[string]bool, getenv func(string) string) *Config {
	get := func(name string) string {
		if v, ok := raw[name]; ok {
			return v
		}
		in, _ := lookup(name)
		return in.DefaultFor(action)
	}
	list := func(name string) []string { return splitLines(get(name)) }

	c := &Config{Command: cmd, Action: action, given: given}

	// Environment fallbacks for secrets, so they never need to sit in process arguments.
	// DATABASE_URL is only used when no database input is given at all, and PGPASSWORD only
	// when no password is given in db-password or inside database-url.
	databaseURL := get("database-url")
	if databaseURL == "" && !given["db-host"] && !given["db-port"] && !given["db-name"] && !given["db-user"] && !given["db-port-forward"] {
		databaseURL = getenv("DATABASE_URL")
	}
	dbPassword := get("db-password")
	if dbPassword == "" && urlPassword(databaseURL) == "" && !given["db-password-from"] {
		dbPassword = getenv("PGPASSWORD")
	}

	// Text inputs first: the secrets must be known before any value is quoted in a problem.
	c.ReleaseName = get("release-name")
	c.Namespace = get("namespace")
	c.Chart = get("chart")
	c.ChartVersion = get("chart-version")
	c.RepoURL = get("repo-url")
	c.Values = get("values")
	c.ValuesFiles = list("values-files")
	c.Set = list("set")
	c.Kubeconfig = get("kubeconfig")
	c.KubeContext = get("kube-context")
	c.DatabaseURL = databaseURL
	c.DBHost = get("db-host")
	c.DBName = get("db-name")
	c.DBUser = get("db-user")
	c.DBPassword = dbPassword
	c.DBSSLMode = get("db-sslmode")
	c.PgBinDir = get("pg-bin-dir")
	c.DBPortForward = get("db-port-forward")
	c.DBPasswordFrom = get("db-password-from")
	c.From = get("from")
	if action {
		c.From = get("restore-from")
	}
	c.BackupFormat = get("backup-format")
	c.BackupStores = list("backup-store")
	c.BackupName = get("backup-name")
	c.BackupEncryptionRecipients = list("backup-encryption-recipients")
	c.BackupIdentity = get("backup-identity")
	if c.BackupIdentity == "" {
		// Like PGPASSWORD: the key that decrypts every backup need never sit in process arguments.
		c.BackupIdentity = getenv(BackupIdentityEnv)
	}
	c.RegistryUsername = get("registry-username")
	c.RegistryPassword = get("registry-password")
	c.GitHubToken = get("github-token")
	if c.GitHubToken == "" {
		c.GitHubToken = getenv("GITHUB_TOKEN")
	}
	c.ProbeURL = get("probe-url")
	c.Rollback = get("rollback")
	c.RestoreDatabase = get("restore-database")
	c.RollbackHooks = get("rollback-hooks")
	c.RecreateStatefulSets = get("recreate-statefulsets")
	c.Workload = get("workload")
	c.KeycloakURL = get("keycloak-url")
	c.KeycloakAdminUser = get("keycloak-admin-user")
	c.KeycloakAdminPassword = get("keycloak-admin-password")
	c.Realms = list("realms")
	c.TxObjectStorePath = get("tx-object-store-path")

	// Typed inputs.
	c.ReuseValues = c.parseBool("reuse-values", get("reuse-values"))
	c.DBPort = c.parseInt("db-port", get("db-port"))
	c.AllowPlaintextBackup = c.parseBool("allow-plaintext-backup", get("allow-plaintext-backup"))
	c.AllowOlderServer = c.parseBool("allow-older-server", get("allow-older-server"))
	c.RetentionDays = int(c.parseOptionalInt("retention-days", get("retention-days")))
	c.RunID = c.parseOptionalInt("run-id", get("run-id"))
	c.Timeout = c.parseDuration("timeout", get("timeout"))
	c.StabilityWindow = c.parseDuration("stability-window", get("stability-window"))
	c.UnlockPending = c.parseBool("unlock-pending", get("unlock-pending"))
	c.ContinueAfterRecovery = c.parseBool("continue-after-recovery", get("continue-after-recovery"))
	c.CancelBudget = c.parseDuration("cancel-budget", get("cancel-budget"))
	c.Quiesce = c.parseBool("quiesce", get("quiesce"))
	c.LogoutSessions = c.parseBool("logout-sessions", get("logout-sessions"))
	c.ClearTxObjectStore = c.parseBool("clear-tx-object-store", get("clear-tx-object-store"))
	c.DryRun = c.parseBool("dry-run", get("dry-run")) || cmd == CmdPlan
	return c
}

// splitLines splits a newline list, trimming each line and dropping blank ones.
func splitLines(s string) []string {
	var out []string
	for line := range strings.Lines(s) {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// parseBool reads a GitHub-style boolean: true/True/TRUE or false/False/FALSE.
func (c *Config) parseBool(name, s string) bool {
	switch s {
	case "true", "True", "TRUE":
		return true
	case "false", "False", "FALSE":
		return false
	}
	c.problem(name, "%s is not a boolean; use true or false", c.quote(s))
	return false
}

func (c *Config) parseInt(name, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		c.problem(name, "%s is not a whole number", c.quote(s))
		return 0
	}
	return n
}

// parseOptionalInt reads a whole number that may be left empty (0).
func (c *Config) parseOptionalInt(name, s string) int64 {
	if s == "" {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		c.problem(name, "%s is not a whole number", c.quote(s))
		return 0
	}
	return n
}

func (c *Config) parseDuration(name, s string) time.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		c.problem(name, "%s is not a duration (examples: 90s, 10m)", c.quote(s))
		return 0
	}
	return d
}

// problem records a value that could not be read.
func (c *Config) problem(name, format string, args ...any) {
	c.problems = append(c.problems, &InputError{Input: name, Reason: fmt.Sprintf(format, args...)})
}

// Given reports whether an input was set explicitly, rather than by its default or an
// environment fallback.
func (c *Config) Given(name string) bool { return c.given[name] }

// InputError is one problem with one input. Its text never contains a secret.
type InputError struct {
	Input  string // the input's name, e.g. "timeout"
	Reason string // what is wrong and how to fix it
}

func (e *InputError) Error() string { return e.Input + ": " + e.Reason }

// Problems returns the individual problems of an error returned by Validate.
func Problems(err error) []error {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		return joined.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// urlPassword returns the password in a URL's userinfo or in its password query parameter
// (libpq accepts both), or "" if there is none or the URL does not parse.
func urlPassword(s string) string {
	if !strings.Contains(s, "@") && !strings.Contains(s, "password") {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			return p
		}
	}
	return u.Query().Get("password")
}
