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
)

// runBackup dumps the database into a bundle in every path:DIR store and prints the bundle's
// location as its last stdout line.
func runBackup(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer, log *slog.Logger) int {
	var stores []pgbackup.DirStore
	for _, s := range cfg.BackupStores {
		dir, ok := strings.CutPrefix(s, "path:")
		if !ok {
			fmt.Fprintf(stderr, "identity-upgrade backup: backup-store %q is not supported yet by backup; use path:DIR; nothing was changed\n", s)
			return ExitInvalid
		}
		stores = append(stores, pgbackup.DirStore{Dir: strings.TrimSpace(dir)})
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	name := cfg.BackupName
	if name == "" {
		prefix := cfg.ReleaseName
		if prefix == "" {
			prefix = databaseName(cfg)
		}
		name = pgbackup.BundleName(prefix, time.Now())
	}
	first := stores[0]
	if err := os.MkdirAll(first.Dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "identity-upgrade backup: %v\n", err)
		return ExitFailed
	}
	log.InfoContext(ctx, "backing up the database", "bundle", first.Location(name), "format", cfg.BackupFormat)
	b, err := pgbackup.Backup(ctx, first.Location(name), pgbackup.BackupOptions{
		ConnString: cfg.DatabaseConnString(),
		Format:     cfg.BackupFormat,
		Recipients: cfg.BackupEncryptionRecipients,
		Release:    cfg.ReleaseName,
	})
	if err != nil {
		fmt.Fprintf(stderr, "identity-upgrade backup: %v\n", err)
		return ExitFailed
	}
	location := b.Dir
	for _, s := range stores[1:] {
		if _, err := s.Put(ctx, b); err != nil {
			fmt.Fprintf(stderr, "identity-upgrade backup: the bundle is complete in %s, but: %v\n", b.Dir, err)
			fmt.Fprintln(stdout, location)
			return ExitFailed
		}
	}
	if abs, err := filepath.Abs(location); err == nil {
		location = abs
	}
	fmt.Fprintf(stdout, "sha256 %s\nbytes %d\n%s\n", b.Manifest.SHA256, b.Manifest.SizeBytes, location)
	return ExitOK
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
func runRestore(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer, log *slog.Logger) int {
	if strings.HasPrefix(cfg.From, "oci://") {
		fmt.Fprintf(stderr, "identity-upgrade restore: oci:// bundles are not supported yet; give a bundle directory; nothing was changed\n")
		return ExitInvalid
	}
	if st, err := os.Stat(cfg.From); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "identity-upgrade restore: %q is not a bundle directory (artifact names are not supported yet); nothing was changed\n", cfg.From)
		return ExitInvalid
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	log.InfoContext(ctx, "restoring the database", "bundle", cfg.From)
	m, err := pgbackup.Restore(ctx, cfg.From, pgbackup.RestoreOptions{
		ConnString: cfg.DatabaseConnString(),
		Identity:   cfg.BackupIdentity,
	})
	switch {
	case pgbackup.Untouched(err):
		fmt.Fprintf(stderr, "identity-upgrade restore: %v\nThe database was not changed.\n", err)
		return ExitInvalid
	case err != nil:
		fmt.Fprintf(stderr, "identity-upgrade restore: %v\n", err)
		if !errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintln(stderr, "The database may be partly restored: run the restore again.")
		}
		return ExitFailed
	}
	fmt.Fprintf(stdout, "restored %s (%s dump of %s, %d tables, taken %s)\n", cfg.From, m.DumpFormat, m.Database, len(m.RowCounts), m.CreatedAt.Format(time.RFC3339))
	return ExitOK
}
