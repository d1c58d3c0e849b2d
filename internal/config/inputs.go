package config

import (
	"slices"
	"strings"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// BackupIdentityEnv is the environment variable read when backup-identity is not given.
const BackupIdentityEnv = "IDENTITY_UPGRADE_BACKUP_IDENTITY"

// Subcommands that take a configuration.
const (
	CmdUpgrade  = "upgrade"
	CmdPlan     = "plan"
	CmdBackup   = "backup"
	CmdRestore  = "restore"
	CmdRecover  = "recover"
	CmdRehearse = "rehearse"
	CmdInspect  = "inspect"
)

// Kind is how an input's text is read.
type Kind int

const (
	KindString   Kind = iota // one line of text
	KindText                 // multi-line text (YAML, kubeconfig, age identity)
	KindList                 // newline-separated list; on the CLI the flag may also be repeated
	KindBool                 // true or false
	KindInt                  // a decimal number
	KindDuration             // a Go duration such as 90s or 10m
)

// String names the kind as the help text shows it.
func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindList:
		return "list"
	case KindBool:
		return "bool"
	case KindInt:
		return "int"
	case KindDuration:
		return "duration"
	default:
		return "string"
	}
}

// Input is one row of the table of inputs: an action input (env INPUT_<NAME>) and a CLI flag
// (--<name>), bound to its field of Config. Reading, showing, redacting, the help text, the
// action metadata (action.yml is generated from the table) and the checks that two inputs
// are not given together all come from the row.
type Input struct {
	Name        string
	Bind        binding // the Config field, and the kind of text it takes
	Group       string  // heading in the help text and in action.yml
	Description string
	Default     string   // default as an action (and on the CLI unless CLIDefault is set)
	CLIDefault  string   // default on the CLI when it differs from Default
	Enum        []string // allowed values, if it is an enumeration
	Secret      bool     // redacted in String/LogValue, returned by Secrets
	Required    bool     // required: true in action.yml (for the action's default command, upgrade)
	Env         string   // environment variable read when the input is not given
	// EnvUnless are inputs whose being given turns the Env fallback off (DATABASE_URL is not
	// read when the db-* inputs name a database).
	EnvUnless []string
	// Excludes are inputs that may not be given together with this one; ExcludeHint says what
	// to do instead ({other} stands for the excluded input's name).
	Excludes    []string
	ExcludeHint string
	// Fixes is the procedure's option this input gives, for refusals that name their fix.
	Fixes      rollout.Option
	Commands   []string // subcommands that accept it: as a flag, and as an input of the action's command
	CLIOnly    bool     // a CLI flag only, not an action input
	ActionOnly bool     // an action input only, not a CLI flag
}

// Kind is how the input's text is read.
func (in Input) Kind() Kind { return in.Bind.kind() }

// DefaultFor returns the input's default as an action (action true) or on the CLI.
func (in Input) DefaultFor(action bool) string {
	if !action && in.CLIDefault != "" {
		return in.CLIDefault
	}
	return in.Default
}

// EnvName is the environment variable GitHub sets for an action input: INPUT_ and the name in
// upper case, hyphens kept (INPUT_RELEASE-NAME).
func EnvName(input string) string {
	return "INPUT_" + strings.ToUpper(input)
}

// Help text groups, in the order the help shows them.
const (
	GroupRelease   = "Release"
	GroupCluster   = "Cluster"
	GroupDatabase  = "Database"
	GroupBackup    = "Backup"
	GroupRecovery  = "Readiness and recovery"
	GroupIdentity  = "Identity service"
	GroupRehearsal = "Rehearsal"
	GroupRun       = "Run"
)

// Groups returns the help text groups in display order.
func Groups() []string {
	return []string{GroupRelease, GroupCluster, GroupDatabase, GroupBackup, GroupRecovery, GroupIdentity, GroupRehearsal, GroupRun}
}

// allInputs is the one table of inputs. It drives FromAction, FromFlags, the help text and the
// test that compares it with action.yml.
func allInputs() []Input {
	var (
		upgrade  = []string{CmdUpgrade}
		upPlan   = []string{CmdUpgrade, CmdPlan}
		upBackup = []string{CmdUpgrade, CmdPlan, CmdBackup}
		restore  = []string{CmdRestore}
		all      = []string{CmdUpgrade, CmdPlan, CmdBackup, CmdRestore, CmdRecover, CmdRehearse}
		rehearse = []string{CmdUpgrade, CmdRehearse}
		reads    = []string{CmdRestore, CmdInspect} // commands that read a stored bundle
		allRead  = append(slices.Clone(all), CmdInspect)
		recov    = []string{CmdUpgrade, CmdRecover}
		planRec  = []string{CmdUpgrade, CmdPlan, CmdRecover}
	)
	return []Input{
		// What the action does; on the command line it is the subcommand.
		{Name: "command", Bind: str(func(c *Config) *string { return &c.Command }), Group: GroupRun, Fixes: rollout.OptionCommand, Default: CmdUpgrade, ActionOnly: true, Commands: all,
			Description: "What the step does: upgrade; plan (the preflight and the manifest diff, changing nothing); backup (the database into the backup stores); restore (the database from restore-from); recover (complete the recovery of an earlier run that was cancelled or killed, e.g. in an if: cancelled() step); or rehearse (try the upgrade on a clone in a scratch namespace, production untouched). An input that does not apply to the command is refused."},

		// Release.
		{Name: "release-name", Bind: str(func(c *Config) *string { return &c.ReleaseName }), Group: GroupRelease, Commands: all,
			Description: "Name of the Helm release of the identity service (a DNS-1123 label, at most 53 characters). Required by upgrade, plan and recover; backup names its bundle after it."},
		{Name: "namespace", Bind: str(func(c *Config) *string { return &c.Namespace }), Group: GroupRelease, Default: "default", Commands: all,
			Description: "Kubernetes namespace of the release."},
		{Name: "chart", Bind: str(func(c *Config) *string { return &c.Chart }), Group: GroupRelease, Commands: append(slices.Clone(upPlan), CmdRehearse),
			Description: "Chart to upgrade to: repo/name (needs repo-url), oci://host/path/name, or a local chart directory or .tgz (e.g. alfresco/alfresco-identity-service). Required by upgrade and plan."},
		{Name: "chart-version", Bind: str(func(c *Config) *string { return &c.ChartVersion }), Group: GroupRelease, Commands: append(slices.Clone(upPlan), CmdRehearse),
			Description: "Chart version or semver constraint (e.g. 3.0.0). Empty means the newest; not used with a local chart."},
		{Name: "repo-url", Bind: str(func(c *Config) *string { return &c.RepoURL }), Group: GroupRelease, Commands: append(slices.Clone(upPlan), CmdRehearse),
			Description: "Chart repository URL (http or https) for a repo/name chart, e.g. https://kubernetes-charts.alfresco.com/stable."},
		{Name: "values", Bind: text(func(c *Config) *string { return &c.Values }), Group: GroupRelease, Commands: append(slices.Clone(upPlan), CmdRehearse),
			Description: "Inline YAML values applied on top of the values files."},
		{Name: "values-files", Bind: list(func(c *Config) *[]string { return &c.ValuesFiles }), Group: GroupRelease, Commands: append(slices.Clone(upPlan), CmdRehearse),
			Description: "Values files, one path per line, applied in order."},
		{Name: "set", Bind: list(func(c *Config) *[]string { return &c.Set }), Group: GroupRelease, Commands: append(slices.Clone(upPlan), CmdRehearse),
			Description: "Values as key=value, one per line (like helm --set), applied last."},
		{Name: "reuse-values", Bind: boolean(func(c *Config) *bool { return &c.ReuseValues }), Group: GroupRelease, Default: "true", Commands: append(slices.Clone(upPlan), CmdRehearse),
			Description: "Start from the release's current values (true or false)."},
		{Name: "map-removed-apis", Bind: boolean(func(c *Config) *bool { return &c.MapRemovedAPIs }), Group: GroupRelease, Fixes: rollout.OptionMapRemovedAPIs, Default: "false", Commands: upPlan,
			Description: "When the release was installed on a Kubernetes that served APIs the cluster no longer serves (extensions/v1beta1 Ingress...), rewrite the stored manifest of its deployed revision to the APIs that replaced them, as the helm-mapkubeapis plugin does: a new revision that the run upgrades from and rolls back to; the objects in the cluster do not change (true or false)."},
		{Name: "convert-removed-apis", Bind: boolean(func(c *Config) *bool { return &c.ConvertRemovedAPIs }), Group: GroupRelease, Fixes: rollout.OptionConvertRemovedAPIs, Default: "false", Commands: upPlan,
			Description: "Convert the objects the target chart renders in APIs the cluster no longer serves to the APIs that replaced them (Ingress backends, workload selectors and the like included), so that they are upgraded in place instead of failing (true or false)."},
		{Name: "migrate-values", Bind: boolean(func(c *Config) *bool { return &c.MigrateValues }), Group: GroupRelease, Fixes: rollout.OptionMigrateValues, Default: "false", Commands: upPlan,
			Description: "Move the reused values and the given ones to the keys the target chart reads them under, by the project's table of value moves for the two chart versions (identity-service 2.x to 3.x: keycloak.keycloak.* to keycloak.*, and more); without it a run whose reused values would be dropped is refused (true or false)."},

		// Cluster.
		{Name: "kubeconfig", Bind: text(func(c *Config) *string { return &c.Kubeconfig }), Group: GroupCluster, Secret: true, Commands: all,
			Description: "Kubeconfig file content (not a path; secret). Empty means kubeconfig-path, KUBECONFIG, ~/.kube/config, or in-cluster config."},
		{Name: "kubeconfig-path", Bind: str(func(c *Config) *string { return &c.KubeconfigPath }), Group: GroupCluster, Env: "KUBECONFIG", EnvUnless: []string{"kubeconfig"},
			Excludes: []string{"kubeconfig"}, ExcludeHint: "give the kubeconfig's content in kubeconfig or its file in kubeconfig-path, not both",
			Commands:    all,
			Description: "Kubeconfig file (or a list, as in KUBECONFIG), instead of kubeconfig. As an action, a path on the runner under the workspace (e.g. $GITHUB_WORKSPACE/kubeconfig as a run step writes it) is found at /github/workspace; a file elsewhere on the runner is not visible in the container and is refused. Falls back to KUBECONFIG."},
		{Name: "kube-context", Bind: str(func(c *Config) *string { return &c.KubeContext }), Group: GroupCluster, Commands: all,
			Description: "Kubeconfig context to use. Empty means the current context."},
		{Name: "cluster-auth", Bind: str(func(c *Config) *string { return &c.ClusterAuth }), Group: GroupCluster, Default: "kubeconfig",
			Enum: []string{"kubeconfig", "aws", "gcp", "azure"}, Commands: all,
			Description: "Where the cluster token comes from: kubeconfig (its own credentials; the exec plugins aws eks get-token, aws-iam-authenticator, gke-gcloud-auth-plugin and kubelogin are recognised and replaced by the cloud's SDK); aws (an EKS token from the job's AWS credentials); gcp (Application Default Credentials, e.g. from google-github-actions/auth); azure (an Entra token from AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_SECRET or the job's OIDC token)."},

		// Database.
		{Name: "database-url", Bind: str(func(c *Config) *string { return &c.DatabaseURL }), Group: GroupDatabase, Secret: true, Env: "DATABASE_URL", EnvUnless: []string{"db-host", "db-port", "db-name", "db-user", "db-port-forward"},
			Excludes: []string{"db-host", "db-port", "db-name", "db-user", "db-sslmode"}, ExcludeHint: "use database-url alone, or remove it and use db-host, db-port, db-name, db-user",
			Commands:    all,
			Description: "Keycloak database as postgres://user[:password]@host[:port]/dbname[?sslmode=...] (secret). Falls back to DATABASE_URL. Use it or the db-* inputs, not both."},
		{Name: "db-host", Bind: str(func(c *Config) *string { return &c.DBHost }), Group: GroupDatabase, Commands: all,
			Description: "Database host, when database-url is not used."},
		{Name: "db-port-forward", Bind: str(func(c *Config) *string { return &c.DBPortForward }), Group: GroupDatabase, Excludes: []string{"database-url", "db-host", "db-port"},
			ExcludeHint: "the port-forward is the database's host and port (127.0.0.1 and a free port): remove {other} and give db-name, db-user and the password",
			Commands:    all,
			Description: "Reach the database through a port-forward of the Kubernetes API server, for a release's own in-cluster PostgreSQL that the runner cannot dial: auto (the pod of the release's PostgreSQL StatefulSet, found through the StatefulSet, and its port), service/NAME[:PORT] or pod/NAME[:PORT] in the release's namespace. The forward listens on 127.0.0.1 and stands for the host and port: give db-name, db-user and the password, not db-host, db-port or database-url. Empty: off."},
		{Name: "db-port", Bind: number(func(c *Config) *int { return &c.DBPort }), Group: GroupDatabase, Default: "5432", Commands: all,
			Description: "Database port (1-65535)."},
		{Name: "db-name", Bind: str(func(c *Config) *string { return &c.DBName }), Group: GroupDatabase, Commands: all,
			Description: "Database name, when database-url is not used."},
		{Name: "db-user", Bind: str(func(c *Config) *string { return &c.DBUser }), Group: GroupDatabase, Commands: all,
			Description: "Database user, when database-url is not used."},
		{Name: "db-password", Bind: str(func(c *Config) *string { return &c.DBPassword }), Group: GroupDatabase, Secret: true, Env: "PGPASSWORD", EnvUnless: []string{"db-password-from"}, Commands: all,
			Description: "Database password (secret). Falls back to PGPASSWORD, which keeps it out of process arguments."},
		{Name: "db-password-from", Bind: str(func(c *Config) *string { return &c.DBPasswordFrom }), Group: GroupDatabase, Commands: all,
			Description: "Read the database password from a Secret in the release's namespace, as secret/NAME:KEY (the bundled PostgreSQL's is secret/<release>-postgresql-id:postgresql-password); masked like every secret. Instead of db-password."},
		{Name: "db-sslmode", Bind: str(func(c *Config) *string { return &c.DBSSLMode }), Group: GroupDatabase, Default: "prefer", Commands: all,
			Enum:        []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"},
			Description: "PostgreSQL sslmode."},
		{Name: "db-lock-timeout", Bind: duration(func(c *Config) *time.Duration { return &c.DBLockTimeout }), Group: GroupDatabase, Default: "30s", Commands: append(slices.Clone(all), CmdRehearse),
			Description: "Longest wait for a lock on the database (a duration): every session's lock_timeout, and pg_dump's --lock-wait-timeout. When it runs out, the run fails naming each session that holds the lock (pid, user, application, state, how long) and what to do; for Keycloak's, quiesce."},
		{Name: "db-attempts", Bind: number(func(c *Config) *int { return &c.DBAttempts }), Group: GroupDatabase, Default: "3", Commands: append(slices.Clone(all), CmdRehearse),
			Description: "How many times a restore, a backup and a connection check are tried when the way to the database breaks (a port-forward's stream, the API server or PostgreSQL restarting), each failed attempt logged with what broke (1-10; 1: no retry). A restore is one transaction and a backup a new snapshot, so trying again is safe."},
		{Name: "db-retry-backoff", Bind: duration(func(c *Config) *time.Duration { return &c.DBRetryBackoff }), Group: GroupDatabase, Default: "5s", Commands: append(slices.Clone(all), CmdRehearse),
			Description: "Wait before the second attempt (a duration), doubled before each further one, at most 1m."},
		{Name: "pg-bin-dir", Bind: str(func(c *Config) *string { return &c.PgBinDir }), Group: GroupDatabase, Commands: append(slices.Clone(all), CmdRehearse),
			Description: "Directory of the PostgreSQL client tools to use (it must hold pg_dump, pg_restore and psql, of the server's major version or newer). Empty means the installed client of the server's major, else the oldest newer one."},

		// Backup.
		{Name: "from", Bind: str(func(c *Config) *string { return &c.From }), Group: GroupBackup, Fixes: rollout.OptionRestoreFrom, CLIOnly: true, Commands: reads,
			Description: "Bundle to restore or inspect: a bundle directory (DIR/<backup-name>), an oci://registry/repo:tag reference, or, in GitHub Actions, an artifact name. Required."},
		{Name: "restore-from", Bind: str(func(c *Config) *string { return &c.From }), Group: GroupBackup, Fixes: rollout.OptionRestoreFrom, ActionOnly: true, Commands: restore,
			Description: "Bundle that command restore restores (required there): a bundle directory, an oci://registry/repo:tag reference, or artifact:<name> (an artifact of this workflow run), as the backup-location output of a backup or upgrade step gives it."},
		{Name: "backup-format", Bind: str(func(c *Config) *string { return &c.BackupFormat }), Group: GroupBackup, Default: "custom", Enum: []string{"custom", "plain"}, Commands: append(slices.Clone(upBackup), CmdRehearse),
			Description: "pg_dump format: custom (restored with pg_restore) or plain (SQL restored with psql)."},
		{Name: "backup-store", Bind: list(func(c *Config) *[]string { return &c.BackupStores }), Group: GroupBackup, Default: "artifact", CLIDefault: "path:./backups", Commands: append(slices.Clone(upBackup), CmdRecover),
			Description: "Where to store the backup, one per line: artifact (GitHub artifact), oci://registry/repo[:tag], or path:DIR. Default: artifact as an action, path:./backups on the CLI."},
		{Name: "backup-name", Bind: str(func(c *Config) *string { return &c.BackupName }), Group: GroupBackup, Commands: upBackup,
			Description: "Bundle name (letters, digits, '.', '_', '-'; at most 128). Empty means <release>-r<revision>-<UTC timestamp>."},
		{Name: "backup-encryption-recipients", Bind: list(func(c *Config) *[]string { return &c.BackupEncryptionRecipients }), Group: GroupBackup, Commands: upBackup,
			Description: "age recipients (age1...), one per line, that the backup is encrypted to before it leaves the machine."},
		{Name: "allow-plaintext-backup", Bind: boolean(func(c *Config) *bool { return &c.AllowPlaintextBackup }), Group: GroupBackup, Default: "false", Commands: upBackup,
			Description: "Allow an unencrypted backup in an artifact or oci:// store when no recipients are given (true or false)."},
		{Name: "backup-identity", Bind: text(func(c *Config) *string { return &c.BackupIdentity }), Group: GroupBackup, Secret: true, Env: BackupIdentityEnv, Commands: []string{CmdRestore, CmdUpgrade, CmdRecover},
			Description: "age identity (AGE-SECRET-KEY-1...) that decrypts an encrypted bundle (secret). Needed by restore of an encrypted bundle. On the command line prefer the IDENTITY_UPGRADE_BACKUP_IDENTITY environment variable, so the key never sits in process arguments."},
		{Name: "allow-older-server", Bind: boolean(func(c *Config) *bool { return &c.AllowOlderServer }), Group: GroupBackup, Default: "false", Commands: restore,
			Description: "Allow restoring a bundle into a server of an older PostgreSQL major than the one it was dumped from (true or false); such a dump may use what the older server lacks."},
		{Name: "registry-username", Bind: str(func(c *Config) *string { return &c.RegistryUsername }), Group: GroupBackup, Commands: allRead,
			Description: "Username for oci:// registries (chart and backup store)."},
		{Name: "registry-password", Bind: str(func(c *Config) *string { return &c.RegistryPassword }), Group: GroupBackup, Secret: true, Commands: allRead,
			Description: "Password or token for oci:// registries (secret)."},
		{Name: "retention-days", Bind: optional(func(c *Config) *int { return &c.RetentionDays }), Group: GroupBackup, Commands: upBackup,
			Description: "Days GitHub keeps the backup artifact (1-90, at most the repository's limit), so that a later run can restore it (restore with run-id). Empty means the repository's default (90 days unless changed)."},
		{Name: "run-id", Bind: optional(func(c *Config) *int64 { return &c.RunID }), Group: GroupBackup, Commands: reads,
			Description: "Workflow run whose artifact restore reads (the id in .../actions/runs/<id>), for a backup taken by an earlier run; needs github-token. Empty means the current run."},
		{Name: "github-token", Bind: str(func(c *Config) *string { return &c.GitHubToken }), Group: GroupBackup, Secret: true, Env: "GITHUB_TOKEN", Commands: reads,
			Description: "GitHub token that may read the repository's actions (actions: read), for restore with run-id (secret). Falls back to GITHUB_TOKEN."},
		{Name: "keycloak-home", Bind: str(func(c *Config) *string { return &c.KeycloakHome }), Group: GroupBackup, Commands: []string{CmdBackup},
			Description: "Keycloak home of a ZIP installation (the directory holding standalone/ and themes/): backup also saves its customizations into the bundle (standalone/configuration, standalone/deployments, custom modules, themes other than the built-in ones, realm/)."},
		{Name: "customizations-to", Bind: str(func(c *Config) *string { return &c.CustomizationsTo }), Group: GroupBackup, Commands: restore,
			Description: "Empty directory (or a new one) that restore writes the bundle's customizations to: the ConfigMaps, Secrets, realm exports and themes saved from the cluster, or a ZIP installation's files laid out like its Keycloak home. Without a database input, restore only writes them."},

		// Readiness and recovery.
		{Name: "timeout", Bind: duration(func(c *Config) *time.Duration { return &c.Timeout }), Group: GroupRecovery, Default: "10m", Commands: allRead,
			Description: "Longest wait for the upgraded release to become ready (a duration such as 90s or 10m); also bounds backup and restore."},
		{Name: "stability-window", Bind: duration(func(c *Config) *time.Duration { return &c.StabilityWindow }), Group: GroupRecovery, Default: "30s", Commands: append(slices.Clone(upPlan), CmdRehearse),
			Description: "How long every pod must stay ready after all are ready (a duration; 0 turns it off)."},
		{Name: "probe-url", Bind: str(func(c *Config) *string { return &c.ProbeURL }), Group: GroupRecovery, Commands: upPlan,
			Description: "Optional http(s) URL that must answer 200 after the upgrade, e.g. the OIDC discovery URL .../realms/master/.well-known/openid-configuration."},
		{Name: "rollback", Bind: choice(func(c *Config) *rollout.RollbackPolicy { return &c.Rollback }), Group: GroupRecovery, Default: "auto", Enum: enum(rollout.RollbackAuto, rollout.RollbackNever), Commands: upPlan,
			Description: "On failure: auto rolls the release (and database) back; never leaves everything as it failed."},
		{Name: "restore-database", Bind: choice(func(c *Config) *rollout.RestoreDatabase { return &c.RestoreDatabase }), Group: GroupRecovery, Default: "auto", Enum: enum(rollout.RestoreAuto, rollout.RestoreAlways, rollout.RestoreNever), Commands: planRec,
			Description: "On rollback: auto restores the database when the schema changed; always or never."},
		{Name: "rollback-hooks", Bind: choice(func(c *Config) *rollout.RollbackHooks { return &c.RollbackHooks }), Group: GroupRecovery, Default: "auto", Enum: enum(rollout.HooksAuto, rollout.HooksRun, rollout.HooksSkip), Commands: planRec,
			Description: "Hooks of the revision rolled back to: auto skips them (the database is restored by this tool), run or skip."},
		{Name: "recreate-statefulsets", Bind: choice(func(c *Config) *rollout.RecreateStatefulSets { return &c.RecreateStatefulSets }), Group: GroupRecovery, Fixes: rollout.OptionRecreateStatefulSets, Default: "never", Enum: enum(rollout.RecreateNever, rollout.RecreateOrphan), Commands: planRec,
			Description: "StatefulSets whose immutable fields change: never fails, orphan deletes them with --cascade=orphan and lets helm re-create them."},
		{Name: "continue-after-recovery", Bind: boolean(func(c *Config) *bool { return &c.ContinueAfterRecovery }), Group: GroupRecovery, Default: "false", Commands: []string{CmdUpgrade},
			Description: "When this run first recovers an earlier run that was interrupted (its journal open), go on with this run's upgrade instead of stopping with exit 1 (true or false)."},
		{Name: "cancel-budget", Bind: duration(func(c *Config) *time.Duration { return &c.CancelBudget }), Group: GroupRecovery, Default: "8s", Commands: append(slices.Clone(recov), CmdRehearse),
			Description: "How long a cancelled run (SIGINT, SIGTERM) spends on its recovery before it exits; what does not fit stays in the run journal for the next run or recover. The default fits GitHub's cancellation (SIGTERM 7.5 s after SIGINT, SIGKILL 2.5 s later)."},
		{Name: "unlock-pending", Bind: boolean(func(c *Config) *bool { return &c.UnlockPending }), Group: GroupRecovery, Fixes: rollout.OptionUnlockPending, Default: "false", Commands: upPlan,
			Description: "Unlock a release left pending-install/upgrade/rollback by a killed run (true or false)."},

		// Identity service.
		{Name: "quiesce", Bind: boolean(func(c *Config) *bool { return &c.Quiesce }), Group: GroupIdentity, Default: "true", Commands: upPlan,
			Description: "Scale the Keycloak workload to 0 before the backup (the downtime the vendor procedure asks for)."},
		{Name: "workload", Bind: str(func(c *Config) *string { return &c.Workload }), Group: GroupIdentity, Default: "auto", Commands: append(slices.Clone(planRec), CmdRehearse),
			Description: "Keycloak workload as statefulset/NAME or deployment/NAME; auto detects it from the release."},
		{Name: "logout-sessions", Bind: boolean(func(c *Config) *bool { return &c.LogoutSessions }), Group: GroupIdentity, Default: "false", Commands: upPlan,
			Description: "End all user sessions through the admin API first (needs keycloak-url, keycloak-admin-user, keycloak-admin-password)."},
		{Name: "keycloak-url", Bind: str(func(c *Config) *string { return &c.KeycloakURL }), Group: GroupIdentity, Commands: upPlan,
			Description: "Keycloak base URL (http or https) for the admin API, e.g. https://id.example.com/auth."},
		{Name: "keycloak-admin-user", Bind: str(func(c *Config) *string { return &c.KeycloakAdminUser }), Group: GroupIdentity, Commands: append(slices.Clone(upPlan), CmdRehearse),
			Description: "Keycloak admin user (master realm)."},
		{Name: "keycloak-admin-password", Bind: str(func(c *Config) *string { return &c.KeycloakAdminPassword }), Group: GroupIdentity, Secret: true, Env: "KEYCLOAK_ADMIN_PASSWORD", Commands: append(slices.Clone(upPlan), CmdRehearse),
			Description: "Keycloak admin password (secret). Falls back to KEYCLOAK_ADMIN_PASSWORD, which keeps it out of process arguments."},
		{Name: "realms", Bind: list(func(c *Config) *[]string { return &c.Realms }), Group: GroupIdentity, Default: "all", Commands: upPlan,
			Description: "Realms whose sessions are ended, one per line; all means every realm."},
		{Name: "clear-tx-object-store", Bind: boolean(func(c *Config) *bool { return &c.ClearTxObjectStore }), Group: GroupIdentity, Default: "false", Commands: upPlan,
			Description: "Delete the transaction object store in the Keycloak pod before the upgrade (vendor step 2)."},
		{Name: "tx-object-store-path", Bind: str(func(c *Config) *string { return &c.TxObjectStorePath }), Group: GroupIdentity, Default: "/opt/jboss/keycloak/standalone/data/tx-object-store", Commands: upPlan,
			Description: "Absolute path of the transaction object store in the Keycloak container."},
		{Name: "missing-theme", Bind: choice(func(c *Config) *rollout.MissingTheme { return &c.MissingTheme }), Group: GroupIdentity, Fixes: rollout.OptionMissingTheme, Default: "fail", Enum: enum(rollout.MissingThemeFail, rollout.MissingThemeWarn), Commands: append(slices.Clone(upPlan), CmdRehearse),
			Description: "After the upgrade, or on the rehearsal's clone, a theme a realm names that the new Keycloak lacks (checked through the admin API): fail rolls the upgrade back (fails the rehearsal), warn keeps it with a warning."},

		// Run.
		// Rehearsal.
		{Name: "rehearse-first", Bind: boolean(func(c *Config) *bool { return &c.RehearseFirst }), Group: GroupRehearsal, Default: "false", Commands: []string{CmdUpgrade},
			Description: "Try the upgrade on a clone of the release first, in a scratch namespace of the same cluster, before any downtime (what command rehearse does), and start the real upgrade only when it passed; refused (exit 2) when it failed, production untouched (true or false)."},
		{Name: "rehearsal-namespace", Bind: str(func(c *Config) *string { return &c.RehearsalNamespace }), Group: GroupRehearsal, Commands: rehearse,
			Description: "Scratch namespace of the rehearsal's clone, created and deleted by the run (labelled as a rehearsal of the release; one that exists and is not is refused). Empty means <namespace>-rehearsal."},
		{Name: "rehearsal-database-url", Bind: str(func(c *Config) *string { return &c.RehearsalDatabaseURL }), Group: GroupRehearsal, Secret: true, Commands: rehearse,
			Description: "An empty scratch database (postgres://...) for the clone when production's database is not the release's bundled PostgreSQL (secret). Empty: the clone's own bundled PostgreSQL, reached like production's (db-port-forward)."},

		{Name: "dry-run", Bind: boolean(func(c *Config) *bool { return &c.DryRun }), Group: GroupRun, Default: "false", Commands: upgrade,
			Description: "Run the preflight and show the manifest diff; change nothing (true or false)."},
	}
}

// ActionCommands are the values of the action's command input.
func ActionCommands() []string {
	return []string{CmdUpgrade, CmdPlan, CmdBackup, CmdRestore, CmdRecover, CmdRehearse}
}

// Inputs returns the action inputs (every input except CLI-only flags), in table order.
func Inputs() []Input {
	var out []Input
	for _, in := range allInputs() {
		if !in.CLIOnly {
			out = append(out, in)
		}
	}
	return out
}

// InputsFor returns the inputs a subcommand accepts as flags, in table order. It returns nil for
// an unknown subcommand.
func InputsFor(cmd string) []Input {
	var out []Input
	for _, in := range allInputs() {
		if slices.Contains(in.Commands, cmd) && !in.ActionOnly {
			out = append(out, in)
		}
	}
	return out
}

// lookup returns the input called name from the table.
func lookup(name string) (Input, bool) {
	for _, in := range allInputs() {
		if in.Name == name {
			return in, true
		}
	}
	return Input{}, false
}
