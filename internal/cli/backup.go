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

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// runBackup checks every store of backup-store, dumps the database into a bundle, puts it in
// every store and prints the bundle's location as its last stdout line. A store that could not
// take the bundle is refused (exit 2) before the dump.
func runBackup(ctx context.Context, cfg *config.Config, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger) int {
	work, err := os.MkdirTemp(getenv("RUNNER_TEMP"), "identity-upgrade-")
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade backup: working directory: %v; nothing was changed\n", err)
		return rollout.ExitRefused
	}
	defer os.RemoveAll(work)
	targets, err := stores(cfg, getenv, work)
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade backup: %v; nothing was changed\n", err)
		return rollout.ExitRefused
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	fwd, err := clusterDatabase(ctx, cfg, getenv, nil, nil, log)
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade backup: %v; nothing was changed\n", err)
		return rollout.ExitRefused
	}
	defer fwd.Close()

	name := cfg.BackupName
	if name == "" {
		prefix := cfg.ReleaseName
		if prefix == "" {
			prefix = databaseName(cfg)
		}
		name = pgbackup.BundleName(prefix, time.Now())
	}
	log.InfoContext(ctx, "backing up the database", "bundle", name, "format", cfg.BackupFormat, "stores", len(targets))
	engine := &pgbackup.Engine{
		ConnString: cfg.DatabaseConnString(), Format: cfg.BackupFormat,
		Recipients: cfg.BackupEncryptionRecipients, WorkDir: work, Stores: targets,
		Clients: pgbackup.ClientChooser{Dir: cfg.PgBinDir},
	}
	if err := engine.CheckStores(ctx); err != nil {
		fmt.Fprintf(stderr, "identity-upgrade backup: %v; nothing was changed\n", err)
		return rollout.ExitRefused
	}
	b, err := engine.Backup(ctx, rollout.BackupRequest{Name: name, Release: rollout.Release{Name: cfg.ReleaseName}})
	if err != nil && b.SHA256 == "" {
		// No dump was completed (the database unreachable, pg_dump failed): no store was
		// written to.
		fmt.Fprintf(stderr, "identity-upgrade backup: %v; nothing was changed\n", err)
		return rollout.ExitRefused
	}
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade backup: %v\n", err)
		for _, l := range b.Locations {
			fmt.Fprintf(stderr, "The bundle is complete in %s.\n", l)
		}
		return rollout.ExitRolledBack
	}
	location := b.Location()
	if abs, err := filepath.Abs(location); err == nil && !strings.Contains(location, "://") && !strings.HasPrefix(location, "artifact:") {
		location = abs
	}
	fmt.Fprintf(stdout, "sha256 %s\nbytes %d\n", b.SHA256, b.Bytes)
	for _, l := range b.Locations[1:] {
		fmt.Fprintln(stdout, l)
	}
	fmt.Fprintln(stdout, location)
	return rollout.ExitOK
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
// could not start (the database is unchanged), 1 when it failed during the restore.
func runRestore(ctx context.Context, cfg *config.Config, getenv func(string) string, stdout, stderr io.Writer, log *slog.Logger) int {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	work, err := os.MkdirTemp(getenv("RUNNER_TEMP"), "identity-upgrade-")
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade restore: working directory: %v; nothing was changed\n", err)
		return rollout.ExitRefused
	}
	defer os.RemoveAll(work)
	dir, err := openBundle(ctx, cfg, getenv, work)
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade restore: %v\nThe database was not changed.\n", err)
		return rollout.ExitRefused
	}
	fwd, err := clusterDatabase(ctx, cfg, getenv, nil, nil, log)
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade restore: %v\nThe database was not changed.\n", err)
		return rollout.ExitRefused
	}
	defer fwd.Close()
	if fwd != nil {
		if err := waitForDatabase(ctx, cfg.DatabaseConnString(), log); err != nil {
			fmt.Fprintf(stderr, "identity-upgrade restore: %v\nThe database was not changed.\n", err)
			return rollout.ExitRefused
		}
	}
	log.InfoContext(ctx, "restoring the database", "bundle", cfg.From)
	r, err := pgbackup.RestoreBundle(ctx, dir, pgbackup.RestoreOptions{
		ConnString:       cfg.DatabaseConnString(),
		Identity:         cfg.BackupIdentity,
		Clients:          pgbackup.ClientChooser{Dir: cfg.PgBinDir},
		AllowOlderServer: cfg.AllowOlderServer,
	})
	switch {
	case pgbackup.Untouched(err):
		fmt.Fprintf(stderr, "identity-upgrade restore: %v\nThe database was not changed.\n", err)
		return rollout.ExitRefused
	case err != nil:
		fmt.Fprintf(stderr, "identity-upgrade restore: %v\n", err)
		if !errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintln(stderr, "The database may be partly restored: run the restore again.")
		}
		return rollout.ExitRolledBack
	}
	m := r.Manifest
	fmt.Fprintf(stdout, "restored %s (%s dump of %s, PostgreSQL %s, %d tables, taken %s)\n", cfg.From, m.DumpFormat, m.Database, m.ServerVersion, len(m.RowCounts), m.CreatedAt.Format(time.RFC3339))
	if how := r.String(); how != "" {
		fmt.Fprintln(stdout, how)
	}
	return rollout.ExitOK
}
