package pgbackup_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// contentDigest is the full content of the database (testworld's digest): two databases with
// the same digest hold the same data.
func contentDigest(t *testing.T, db testworld.Database) string {
	t.Helper()
	return db.Digest(t).String()
}

func backupKeycloak11(t *testing.T, opts pgbackup.BackupOptions) (testworld.Database, *bundle.Bundle, string) {
	t.Helper()
	db := testworld.Postgres(t)
	loadSQLFixture(t, db, "keycloak-11.sql")
	want := contentDigest(t, db)
	opts.ConnString = db.URL()
	b, err := pgbackup.Backup(t.Context(), filepath.Join(t.TempDir(), "kc-bundle"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return db, b, want
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{bundle.FormatCustom, bundle.FormatPlain} {
		for _, encrypted := range []bool{false, true} {
			for _, target := range []string{"empty", "migrated", "same"} {
				name := format + "/plaintext/" + target
				if encrypted {
					name = format + "/age/" + target
				}
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					opts := pgbackup.BackupOptions{Format: format, Release: "identity", Revision: 3, ChartVersion: "2.1.0"}
					var restoreOpts pgbackup.RestoreOptions
					if encrypted {
						opts.Recipients = []string{identity.Recipient().String()}
						restoreOpts.Identity = identity.String()
					}
					src, b, want := backupKeycloak11(t, opts)
					checkManifest(t, b, format, encrypted)

					dst := testworld.Postgres(t)
					switch target {
					case "migrated":
						loadSQLFixture(t, dst, "keycloak-11.sql")
						loadSQLFixture(t, dst, "keycloak-12-migration.sql")
						checkFixtureState(t, dst, keycloak12Rows, keycloak12Schema)
					case "same":
						dst = src
						loadSQLFixture(t, dst, "keycloak-12-migration.sql")
						if contentDigest(t, dst) == want {
							t.Fatal("the migration did not change the content digest")
						}
					}
					restoreOpts.ConnString = dst.URL()
					if format == bundle.FormatCustom {
						// Every way to restore a custom dump: the default (streamed, one
						// transaction), parallel jobs, and one job given.
						restoreOpts.Jobs = map[string]int{"empty": 0, "migrated": 3, "same": 1}[target]
					}
					m, err := pgbackup.Restore(t.Context(), b.Dir, restoreOpts)
					if err != nil {
						t.Fatal(err)
					}
					if m.SHA256 != b.Manifest.SHA256 {
						t.Errorf("restored manifest sha256 %s, want %s", m.SHA256, b.Manifest.SHA256)
					}
					checkFixtureState(t, dst, keycloak11Rows, keycloak11Schema)
					if got := contentDigest(t, dst); got != want {
						t.Errorf("restored content differs:\n got %s\nwant %s", got, want)
					}
				})
			}
		}
	}
}

func checkManifest(t *testing.T, b *bundle.Bundle, format string, encrypted bool) {
	t.Helper()
	m := b.Manifest
	wantEnc, wantFile := "none", bundle.DumpFileName(format, encrypted)
	if encrypted {
		wantEnc = "age"
	}
	if m.FormatVersion != bundle.ManifestVersion || m.DumpFormat != format || m.Compression != "zstd" || m.Encryption != wantEnc ||
		m.DumpFile != wantFile || m.Release != "identity" || m.Revision != 3 || m.ChartVersion != "2.1.0" ||
		!strings.HasPrefix(m.ServerVersion, "15") || !strings.HasPrefix(m.PgDumpVersion, "15") || m.CreatedAt.IsZero() {
		t.Errorf("manifest = %+v", m)
	}
	if m.Schema.State() != keycloak11Schema {
		t.Errorf("manifest schema = %+v, want %+v", m.Schema, keycloak11Schema)
	}
	if len(m.RowCounts) != len(keycloak11Rows) {
		t.Errorf("manifest has %d row counts, want %d", len(m.RowCounts), len(keycloak11Rows))
	}
	for name, n := range keycloak11Rows {
		if m.RowCounts[name] != n {
			t.Errorf("manifest row count of %s = %d, want %d", name, m.RowCounts[name], n)
		}
	}
	st, err := os.Stat(b.DumpPath())
	if err != nil || st.Size() != m.SizeBytes {
		t.Errorf("dump file: %v, size %d, manifest size %d", err, st.Size(), m.SizeBytes)
	}
	again, err := bundle.Open(b.Dir)
	if err != nil || again.Manifest.SHA256 != m.SHA256 {
		t.Errorf("bundle.Open: %v, %+v", err, again)
	}
	if encrypted {
		head := make([]byte, 21)
		f, _ := os.Open(b.DumpPath())
		f.Read(head)
		f.Close()
		if string(head) != "age-encryption.org/v1" {
			t.Errorf("encrypted dump starts with %q", head)
		}
	}
}
