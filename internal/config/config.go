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
	"strings"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
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
	// The vendor's charts on today's clusters: map the stored release's removed APIs, convert
	// the render's, move values to the keys the target chart reads.
	MapRemovedAPIs     bool
	ConvertRemovedAPIs bool
	MigrateValues      bool

	// Cluster.
	Kubeconfig     string // content, not a path
	KubeconfigPath string // a file or a KUBECONFIG-style list, as the runner names it
	KubeContext    string
	ClusterAuth    string // kubeconfig, aws, gcp or azure

	// Database.
	DatabaseURL string
	DBHost      string
	DBPort      int
	DBName      string
	DBUser      string
	DBPassword  string
	DBSSLMode   string
	PgBinDir    string
	// DBLockTimeout bounds every wait for a lock; DBAttempts and DBRetryBackoff say how often
	// and how soon a restore, a backup and a connection check are tried again when the way to
	// the database breaks.
	DBLockTimeout  time.Duration
	DBAttempts     int
	DBRetryBackoff time.Duration
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
	// KeycloakHome is a ZIP installation's Keycloak home whose customizations backup saves;
	// CustomizationsTo the directory restore writes a bundle's customizations to.
	KeycloakHome     string
	CustomizationsTo string

	// Readiness and recovery.
	Timeout               time.Duration
	StabilityWindow       time.Duration
	ProbeURL              string
	Rollback              rollout.RollbackPolicy
	RestoreDatabase       rollout.RestoreDatabase
	RollbackHooks         rollout.RollbackHooks
	RecreateStatefulSets  rollout.RecreateStatefulSets
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
	MissingTheme          rollout.MissingTheme

	// Rehearsal.
	RehearseFirst        bool
	RehearsalNamespace   string // "" means <namespace>-rehearsal
	RehearsalDatabaseURL string

	DryRun bool

	given    map[string]bool // inputs given explicitly (not defaults, not env fallbacks)
	problems []*InputError   // values that could not be read; reported by Validate
}

// FromAction reads every action input from INPUT_<NAME> (GitHub passes an empty string for an
// input that is not set: empty means unset). GitHub passes every input's default too, so an
// input that holds its default counts as not given: it conflicts with nothing and applies to
// every command. The command input is the subcommand (default upgrade). An input given that
// does not apply to it is a problem for Validate.
func FromAction(getenv func(string) string) *Config {
	raw := make(map[string]string)
	given := make(map[string]bool)
	for _, in := range Inputs() {
		if v := strings.TrimSpace(getenv(EnvName(in.Name))); v != "" {
			raw[in.Name] = v
			// The runner passes every input's default: a default is not a choice of the
			// step's, and counts as not given (db-port 5432 beside database-url).
			given[in.Name] = v != in.Default
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
		if given[in.Name] && !slices.Contains(in.Commands, cmd) {
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
		v := &flagValue{isBool: in.Kind() == KindBool}
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

// build turns raw input text into a Config, one row of the table after another. raw holds the
// given inputs only; an input not given is its environment fallback (when its row has one and
// none of the inputs that turn it off is given), else its default.
func build(cmd string, action bool, raw map[string]string, given map[string]bool, getenv func(string) string) *Config {
	c := &Config{Command: cmd, Action: action, given: given}
	text := func(in Input) string {
		if v, ok := raw[in.Name]; ok {
			return v
		}
		if in.Env != "" && !slices.ContainsFunc(in.EnvUnless, func(n string) bool { return given[n] }) && !c.envNotWanted(in) {
			if v := getenv(in.Env); v != "" {
				return v
			}
		}
		return in.DefaultFor(action)
	}
	// Text first: the secrets must be known before any value is quoted in a problem.
	for _, parses := range []bool{false, true} {
		for _, in := range allInputs() {
			if in.Bind.parses() != parses || (in.CLIOnly && action) || (in.ActionOnly && !action && in.Name != "command") {
				continue
			}
			in.Bind.set(c, in.Name, text(in))
		}
	}
	c.Command = cmd
	c.DryRun = c.DryRun || cmd == CmdPlan
	return c
}

// envNotWanted reports the one fallback that depends on a value rather than on what was
// given: PGPASSWORD is not read when database-url carries its own password.
func (c *Config) envNotWanted(in Input) bool {
	return in.Name == "db-password" && urlPassword(c.DatabaseURL) != ""
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

// Advise says how to apply a fix the procedure names, the way this run takes its inputs: a
// flag on the command line, an input of the step's with: block in the action.
func (c *Config) Advise(fix rollout.Fix) string {
	for _, in := range allInputs() {
		if (in.CLIOnly && c.Action) || (in.ActionOnly && !c.Action && in.Name != "command") {
			continue
		}
		if in.Fixes == fix.Option && fix.Option != 0 {
			switch {
			case in.Name == "command" && fix.Value == CmdRestore && c.Action:
				return "run the action with command: restore and the database inputs"
			case in.Name == "command" && fix.Value == CmdRestore:
				return "run identity-upgrade restore with the database flags"
			case in.Name == "command" && c.Action:
				return fmt.Sprintf("run the action with command: %s (and the same release, cluster and database inputs)", fix.Value)
			case in.Name == "command":
				return fmt.Sprintf("run identity-upgrade %s with the same --release-name, --namespace and database flags", fix.Value)
			}
			if c.Action {
				return fmt.Sprintf("set the input %s: %s", in.Name, fix.Value)
			}
			return fmt.Sprintf("give --%s %s", in.Name, fix.Value)
		}
	}
	return fmt.Sprintf("no input gives option %d", fix.Option)
}
