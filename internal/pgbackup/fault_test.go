package pgbackup_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestBackupConnectionFaults(t *testing.T) {
	db := testworld.Postgres(t)
	wrong, _ := url.Parse(db.URL())
	wrong.User = url.UserPassword(db.Owner, "not-the-password")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	tests := []struct {
		name, conn, want string
		retried          bool // a refused login is the input's fault: trying again cannot help
	}{
		{"wrong password", wrong.String(), "password authentication failed", false},
		{"unreachable host", fmt.Sprintf("postgres://keycloak:pw@127.0.0.1:%d/db?sslmode=disable&connect_timeout=5", closedPort), "connection refused", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "b")
			var log testworld.LogBuffer
			_, err := pgbackup.Backup(t.Context(), dir, pgbackup.BackupOptions{ConnString: tt.conn,
				Session: pgbackup.Session{Retry: pgbackup.Retry{Attempts: 2, Backoff: 10 * time.Millisecond}, Log: slog.New(slog.NewTextHandler(&log, nil))}})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "connect to database") {
				t.Fatalf("error %v, want one naming %q", err, tt.want)
			}
			if retried := strings.Contains(log.String(), `msg="backup attempt 1/2 failed; retrying 2/2"`); retried != tt.retried {
				t.Errorf("retried: %t, want %t\n%s", retried, tt.retried, log.String())
			}
			if got := pgbackup.Refused(err); got == tt.retried {
				t.Errorf("Refused = %t: a refused login is the input's fault, an unreachable host is not", got)
			}
			if strings.Contains(err.Error(), "not-the-password") {
				t.Errorf("error shows the password: %v", err)
			}
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("bundle directory exists after a failed backup: %v", err)
			}
		})
	}
}

// TestBackupOfATruncatedDumpIsIncomplete runs pg_dump through a shell pipe that cuts it off
// and still exits 0 (a pipe without pipefail): only the completeness checks can notice.
func TestBackupOfATruncatedDumpIsIncomplete(t *testing.T) {
	db := testworld.Postgres(t)
	loadSQLFixture(t, db, "keycloak-11.sql")
	for i, tt := range []struct {
		format, script string
	}{
		{bundle.FormatCustom, `"$REAL_PG_DUMP" "$@" | head -c 30000`},
		{bundle.FormatPlain, `"$REAL_PG_DUMP" "$@" | head -c 30000`},
		{bundle.FormatPlain, `"$REAL_PG_DUMP" "$@" | head -c 30000; kill -9 $$`},
		{bundle.FormatCustom, `"$REAL_PG_DUMP" "$@" | head -c 30000; kill -9 $$`},
	} {
		t.Run(fmt.Sprintf("%s/%d", tt.format, i), func(t *testing.T) {
			wrapper := pgDumpWrapper(t, "", tt.script)
			dir := filepath.Join(t.TempDir(), "b")
			_, err := pgbackup.Backup(t.Context(), dir, pgbackup.BackupOptions{
				ConnString: db.URL(), Format: tt.format, Tools: pgbackup.Tools{PgDump: wrapper},
			})
			if !errors.Is(err, pgbackup.ErrIncomplete) || !strings.Contains(err.Error(), "incomplete") {
				t.Fatalf("error %v, want ErrIncomplete", err)
			}
			if _, err := os.Stat(filepath.Join(dir, bundle.ManifestFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("manifest exists after an incomplete dump: %v", err)
			}
		})
	}
}

func TestBackupCancelledIsIncomplete(t *testing.T) {
	db := testworld.Postgres(t)
	loadSQLFixture(t, db, "keycloak-11.sql")
	ctx, cancel := context.WithCancel(t.Context())
	// A pg_dump that starts, then the caller gives up while it runs.
	wrapper := filepath.Join(t.TempDir(), "pg_dump")
	realDump, _ := exec.LookPath("pg_dump")
	started := filepath.Join(t.TempDir(), "started")
	os.WriteFile(wrapper, []byte("#!/bin/sh\ncase \"$1\" in --version) exec "+realDump+" --version;; esac\ntouch "+started+"\nsleep 30\n"), 0o755)
	// Cancel once pg_dump runs: on a loaded machine the preflight before it can take seconds.
	go func() {
		for {
			if _, err := os.Stat(started); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		cancel()
	}()
	dir := filepath.Join(t.TempDir(), "b")
	start := time.Now()
	_, err := pgbackup.Backup(ctx, dir, pgbackup.BackupOptions{ConnString: db.URL(), Tools: pgbackup.Tools{PgDump: wrapper}})
	if time.Since(start) > 15*time.Second {
		t.Errorf("the cancelled backup took %s to return", time.Since(start))
	}
	if !errors.Is(err, pgbackup.ErrIncomplete) {
		t.Fatalf("error %v, want ErrIncomplete", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bundle directory left after a cancelled dump: %v", err)
	}
}

func TestRestoreRefusesBadBundles(t *testing.T) {
	identity, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	_, encrypted, _ := backupKeycloak11(t, pgbackup.BackupOptions{Recipients: []string{identity.Recipient().String()}})
	_, plain, _ := backupKeycloak11(t, pgbackup.BackupOptions{Format: bundle.FormatPlain})
	_, custom, _ := backupKeycloak11(t, pgbackup.BackupOptions{Format: bundle.FormatCustom})

	// The target: a migrated database that must stay exactly as it is.
	dst := testworld.Postgres(t)
	loadSQLFixture(t, dst, "keycloak-11.sql")
	loadSQLFixture(t, dst, "keycloak-12-migration.sql")
	before := contentDigest(t, dst)

	// Each case damages a copy of its own (a DirStore would hard-link the dump file, and the
	// damage would reach the original).
	copyBundle := func(t *testing.T, b *bundle.Bundle) string {
		dir := filepath.Join(t.TempDir(), b.Name())
		if err := os.CopyFS(dir, os.DirFS(b.Dir)); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	editManifest := func(t *testing.T, dir string, edit func(map[string]any)) {
		p := filepath.Join(dir, bundle.ManifestFile)
		data, _ := os.ReadFile(p)
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		edit(m)
		data, _ = json.Marshal(m)
		os.WriteFile(p, data, 0o600)
	}
	type badBundle struct {
		name     string
		bundle   *bundle.Bundle
		identity string
		damage   func(t *testing.T, dir string, m bundle.Manifest)
		want     string
	}
	tests := []badBundle{
		{"no manifest", plain, "", func(t *testing.T, dir string, m bundle.Manifest) {
			os.Remove(filepath.Join(dir, bundle.ManifestFile))
		}, "no manifest.json"},
		{"unknown format version", plain, "", func(t *testing.T, dir string, m bundle.Manifest) {
			editManifest(t, dir, func(m map[string]any) { m["format_version"] = 99 })
		}, "format_version 99"},
		{"encrypted without identity", encrypted, "", nil, "encrypted with age"},
		{"wrong identity", encrypted, other.String(), nil, "does not decrypt this bundle"},
	}
	// The damage a streamed restore finds on the way, for both formats (a custom archive
	// streams through pg_restore).
	for _, b := range []*bundle.Bundle{plain, custom} {
		format := b.Manifest.DumpFormat + ": "
		tests = append(tests, []badBundle{
			{format + "flipped byte", b, "", func(t *testing.T, dir string, m bundle.Manifest) {
				p := filepath.Join(dir, m.DumpFile)
				data, _ := os.ReadFile(p)
				data[len(data)/2] ^= 0x01
				os.WriteFile(p, data, 0o600)
			}, "sha256"},
			{format + "manifest names another sha256", b, "", func(t *testing.T, dir string, m bundle.Manifest) {
				// The file decodes cleanly: only the checksum taken during the decode can refuse it.
				editManifest(t, dir, func(m map[string]any) { m["sha256"] = strings.Repeat("0", 64) })
			}, "sha256"},
			{format + "truncated", b, "", func(t *testing.T, dir string, m bundle.Manifest) {
				os.Truncate(filepath.Join(dir, m.DumpFile), m.SizeBytes/2)
			}, "truncated"},
			{format + "rows differ from the manifest", b, "", func(t *testing.T, dir string, m bundle.Manifest) {
				// Caught in the restore's transaction, which then does not commit.
				editManifest(t, dir, func(m map[string]any) { m["row_counts"].(map[string]any)["user_entity"] = 12345 })
			}, "user_entity has 723 rows, want 12345"},
			{format + "a table the manifest does not list", b, "", func(t *testing.T, dir string, m bundle.Manifest) {
				editManifest(t, dir, func(m map[string]any) { delete(m["row_counts"].(map[string]any), "realm") })
			}, "realm is not in the backup"},
		}...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyBundle(t, tt.bundle)
			if tt.damage != nil {
				tt.damage(t, dir, tt.bundle.Manifest)
			}
			_, err := pgbackup.Restore(t.Context(), dir, pgbackup.RestoreOptions{ConnString: dst.URL(), Identity: tt.identity})
			if !errors.Is(err, bundle.ErrRefused) || !pgbackup.Untouched(err) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want a refusal saying %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "AGE-SECRET-KEY") {
				t.Errorf("error shows the identity: %v", err)
			}
			if got := contentDigest(t, dst); got != before {
				t.Errorf("the target database changed")
			}
		})
	}
	// A pg_restore that cannot start is not the bundle's fault: nothing started, nothing refused.
	missing := pgbackup.Tools{PgRestore: filepath.Join(t.TempDir(), "pg_restore")}
	_, err := pgbackup.Restore(t.Context(), custom.Dir, pgbackup.RestoreOptions{ConnString: dst.URL(), Tools: missing})
	if !errors.Is(err, pgbackup.ErrNotStarted) || errors.Is(err, bundle.ErrRefused) || !strings.Contains(err.Error(), "pg_restore") {
		t.Errorf("restore without pg_restore: %v, want nothing started, naming pg_restore", err)
	}
	if got := contentDigest(t, dst); got != before {
		t.Errorf("the target database changed")
	}
	// The undamaged copies restore: the refusals above were about the damage.
	if _, err := pgbackup.Restore(t.Context(), copyBundle(t, encrypted), pgbackup.RestoreOptions{ConnString: dst.URL(), Identity: identity.String()}); err != nil {
		t.Fatal(err)
	}
	checkFixtureState(t, dst, keycloak11Rows, keycloak11Schema)
}

// TestBackupFallsBackToPgRestore checks a custom dump from a pg_dump whose archive format the
// built-in reader does not know (here one claiming version 99): pg_restore reads it to its
// end instead, passing a whole dump and failing a cut one.
func TestBackupFallsBackToPgRestore(t *testing.T) {
	db := testworld.Postgres(t)
	loadSQLFixture(t, db, "keycloak-11.sql")
	for _, tt := range []struct {
		name, script string
		whole        bool
	}{
		{"whole", `exec "$REAL_PG_DUMP" "$@"`, true},
		{"cut", `"$REAL_PG_DUMP" "$@" | head -c 30000`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wrapper := pgDumpWrapper(t, "99.0", tt.script)
			dir := filepath.Join(t.TempDir(), "b")
			b, err := pgbackup.Backup(t.Context(), dir, pgbackup.BackupOptions{ConnString: db.URL(), Tools: pgbackup.Tools{PgDump: wrapper}})
			switch {
			case tt.whole && err != nil:
				t.Fatal(err)
			case tt.whole && b.Manifest.PgDumpVersion != "99.0":
				t.Fatalf("pg_dump version %q, want the wrapper's 99.0", b.Manifest.PgDumpVersion)
			case !tt.whole && !errors.Is(err, pgbackup.ErrIncomplete):
				t.Fatalf("error %v, want ErrIncomplete", err)
			case !tt.whole && !strings.Contains(err.Error(), "pg_restore"):
				t.Fatalf("error %v, want pg_restore's", err)
			}
		})
	}
}

// pgDumpWrapper writes a pg_dump stand-in that answers --version with version (the real
// pg_dump's answer when empty) and otherwise runs script, in which $REAL_PG_DUMP is the
// real pg_dump.
func pgDumpWrapper(t *testing.T, version, script string) string {
	t.Helper()
	realDump, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Fatal(err)
	}
	answer := `exec "$REAL_PG_DUMP" --version`
	if version != "" {
		answer = "echo 'pg_dump (PostgreSQL) " + version + "'; exit 0"
	}
	wrapper := filepath.Join(t.TempDir(), "pg_dump")
	text := "#!/bin/sh\ncase \"$1\" in --version) " + answer + ";; esac\n" + script + "\n"
	if err := os.WriteFile(wrapper, []byte(strings.ReplaceAll(text, "$REAL_PG_DUMP", realDump)), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper
}
