package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/ghaction"
	"github.com/identity-upgrade/identity-upgrade/internal/keycloak"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// runBackup checks every store of backup-store, dumps the database into a bundle, puts it in
// every store and prints the bundle's location as its last stdout line. A store that could not
// take the bundle is refused (exit 2) before the dump. As an action (act not nil) it also writes
// the outputs, the job summary and an annotation.
func runBackup(ctx context.Context, cfg *config.Config, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger, act *ghaction.Action) int {
	started := time.Now()
	refused := refuser("backup", "; nothing was changed", started, cfg, act, stderr)
	work, err := workDir(getenv)
	if err != nil {
		return refused(err)
	}
	defer os.RemoveAll(work)
	targets, err := stores(cfg, getenv, work, log)
	if err != nil {
		return refused(err)
	}
	var custom *rollout.Customizations
	if cfg.KeycloakHome != "" {
		// A ZIP installation's customizations, read before the dump: a wrong directory is
		// refused before anything else.
		c, err := keycloak.SaveHome(ctx, cfg.KeycloakHome, filepath.Join(work, "customizations"))
		if errors.Is(err, keycloak.ErrNotKeycloakHome) {
			return refused(fmt.Errorf("keycloak-home %q is not a Keycloak home (no standalone/configuration in it): give the directory of the installation that holds standalone/ and themes/", cfg.KeycloakHome))
		}
		if err != nil {
			return refused(fmt.Errorf("keycloak-home %q: %w", cfg.KeycloakHome, err))
		}
		log.InfoContext(ctx, "customizations of the Keycloak home saved", "home", cfg.KeycloakHome, "saved", c.Summary())
		custom = &c
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	fwd, err := clusterDatabase(ctx, cfg, getenv, nil, act, log)
	if err != nil {
		return refused(err)
	}
	defer fwd.Close()
	session := dbSession(cfg, sessionRun(getenv), fwd, log)
	defer endRunSessions(ctx, session, cfg.DatabaseConnString(), log)

	name := cfg.BackupName
	if name == "" {
		prefix := cfg.ReleaseName
		if prefix == "" {
			prefix = databaseName(cfg)
		}
		name = bundle.DefaultName(prefix, time.Now())
	}
	log.InfoContext(ctx, "backing up the database", "bundle", name, "format", cfg.BackupFormat, "stores", len(targets))
	engine := &pgbackup.Engine{
		ConnString: cfg.DatabaseConnString(), Format: cfg.BackupFormat,
		Recipients: cfg.BackupEncryptionRecipients, WorkDir: work, Stores: targets,
		Clients: pgbackup.ClientChooser{Dir: cfg.PgBinDir}, Log: log, Session: session,
	}
	if err := engine.CheckStores(ctx); err != nil {
		return refused(err)
	}
	b, err := engine.Backup(ctx, rollout.BackupRequest{Name: name, Release: rollout.Release{Name: cfg.ReleaseName}, Customizations: custom})
	if err != nil && b.SHA256 == "" {
		// No dump was completed: no store was written to. Refused when the inputs or the
		// preflight decided it (a login the server refuses, no client tools); failed when
		// the way to the database broke for every attempt or another session held a lock.
		if pgbackup.Refused(err) {
			return refused(err)
		}
		fmt.Fprintf(stderr, "identity-upgrade backup: %v; no bundle was stored\n", err)
		return failed(act, rollout.Failure(cfg.ReleaseName, cfg.Namespace, started, err), stderr)
	}
	for i, l := range b.Locations {
		if abs, err := filepath.Abs(l); err == nil && !strings.Contains(l, "://") && !strings.HasPrefix(l, "artifact:") {
			b.Locations[i] = abs
		}
	}
	rep := &rollout.Report{Result: rollout.BackedUp, Release: cfg.ReleaseName, Backup: &b, Customizations: custom, Started: started}
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade backup: %v\n", err)
		for _, l := range b.Locations {
			fmt.Fprintf(stderr, "The bundle is complete in %s.\n", l)
		}
		rep.Result, rep.Failure = rollout.Incomplete, err
	} else {
		fmt.Fprintf(stdout, "sha256 %s\nbytes %d\n", b.SHA256, b.Bytes)
		for _, l := range b.Locations[1:] {
			fmt.Fprintln(stdout, l)
		}
		fmt.Fprintln(stdout, b.Location())
	}
	rep.Duration = time.Since(started)
	if act != nil {
		report(act, rep, stderr)
	}
	return rep.ExitCode()
}

// databaseName is the name of the configured database, for the default bundle name.
func databaseName(cfg *config.Config) string {
	if cfg.DatabaseURL == "" {
		return cfg.DBName
	}
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil {
		return "database"
	}
	if name := strings.TrimPrefix(u.Path, "/"); name != "" {
		return name
	}
	return "database"
}

// runRestore restores a bundle directory: exit 2 when the bundle is refused or the restore
// could not start (the database is unchanged), 1 when it failed during the restore. As an
// action (act not nil) it also writes the outputs, the job summary and an annotation.
func runRestore(ctx context.Context, cfg *config.Config, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger, act *ghaction.Action) int {
	started := time.Now()
	refused := refuser("restore", "\nThe database was not changed.", started, cfg, act, stderr)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	work, err := workDir(getenv)
	if err != nil {
		return refused(err)
	}
	defer os.RemoveAll(work)
	if cfg.CustomizationsTo != "" {
		if err := checkEmptyDir(cfg.CustomizationsTo); err != nil {
			return refused(err)
		}
	}
	dir, err := openBundle(ctx, cfg, getenv, work, log)
	if err != nil {
		return refused(err)
	}
	if cfg.CustomizationsTo != "" {
		// Written first: a wrong identity or a damaged part is found before the database
		// changes.
		if err := writeCustomizations(ctx, dir, cfg, stdout, log); err != nil {
			return refused(err)
		}
		if !cfg.UsesDatabase() {
			rep := &rollout.Report{Result: rollout.Restored, Release: cfg.ReleaseName,
				Backup: &rollout.Backup{Locations: []string{cfg.From}}, Started: started, Duration: time.Since(started)}
			if act != nil {
				report(act, rep, stderr)
			}
			return rep.ExitCode()
		}
	}
	fwd, err := clusterDatabase(ctx, cfg, getenv, nil, act, log)
	if err != nil {
		return refused(err)
	}
	defer fwd.Close()
	session := dbSession(cfg, sessionRun(getenv), fwd, log)
	defer endRunSessions(ctx, session, cfg.DatabaseConnString(), log)
	unchanged := func(err error) int {
		if pgbackup.Refused(err) {
			return refused(err)
		}
		fmt.Fprintf(stderr, "identity-upgrade restore: %v\nThe database was not changed.\n", err)
		return failed(act, rollout.Failure(cfg.ReleaseName, cfg.Namespace, started, err), stderr)
	}
	if fwd != nil {
		if err := session.WaitForDatabase(ctx, cfg.DatabaseConnString(), databaseWait); err != nil {
			return unchanged(err)
		}
	}
	log.InfoContext(ctx, "restoring the database", "bundle", cfg.From)
	r, err := pgbackup.RestoreBundle(ctx, dir, pgbackup.RestoreOptions{
		ConnString:       cfg.DatabaseConnString(),
		Identity:         cfg.BackupIdentity,
		Clients:          pgbackup.ClientChooser{Dir: cfg.PgBinDir},
		AllowOlderServer: cfg.AllowOlderServer,
		Log:              log,
		Session:          session,
	})
	rep := &rollout.Report{Result: rollout.Restored, Release: cfg.ReleaseName, DatabaseRestored: true,
		Backup: &rollout.Backup{Locations: []string{cfg.From}}, Started: started}
	switch {
	case pgbackup.Untouched(err):
		return unchanged(err)
	case err != nil:
		fmt.Fprintf(stderr, "identity-upgrade restore: %v\n", err)
		if !errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintln(stderr, "The database may be partly restored: run the restore again.")
		}
		rep.Result, rep.Failure, rep.DatabaseRestored, rep.Backup = rollout.Incomplete, err, false, nil
	default:
		m := r.Manifest
		fmt.Fprintf(stdout, "restored %s (%s dump of %s, PostgreSQL %s, %d tables, taken %s)\n", cfg.From, m.DumpFormat, m.Database, m.ServerVersion, len(m.RowCounts), m.CreatedAt.Format(time.RFC3339))
		if how := r.String(); how != "" {
			fmt.Fprintln(stdout, how)
		}
	}
	rep.Duration = time.Since(started)
	if act != nil {
		report(act, rep, stderr)
	}
	return rep.ExitCode()
}

// refuser returns what a step's run calls to refuse: the error on stderr, then what stays
// unchanged; as an action the refusal's outputs and summary; exit 2.
func refuser(command, unchanged string, started time.Time, cfg *config.Config, act *ghaction.Action, stderr io.Writer) func(error) int {
	return func(err error) int {
		fmt.Fprintf(stderr, "identity-upgrade %s: %v%s\n", command, err, unchanged)
		return refuse(act, rollout.Refusal(cfg.ReleaseName, cfg.Namespace, started, err), stderr)
	}
}

// workDir makes a run's working directory under RUNNER_TEMP (the system's when unset); the
// caller removes it.
func workDir(getenv func(string) string) (string, error) {
	work, err := os.MkdirTemp(getenv("RUNNER_TEMP"), "identity-upgrade-")
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	return work, nil
}
