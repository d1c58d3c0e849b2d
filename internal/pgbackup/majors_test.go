package pgbackup_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestMajorsMatrix runs the database side of a failed upgrade on every PostgreSQL major the
// field runs, with every client the tests have: for each client of the server's major or newer
// (the only pairs pg_dump allows), back up the Keycloak 11 schema, migrate it to Keycloak 12
// as the new version does, restore, and compare the whole content with before (every row,
// sequence, column and routine), in both dump formats. A client 17 writes settings (its
// transaction_timeout) that servers up to 16 refuse: the restore drops them from the header.
// With only an older client the backup is refused before anything is written.
func TestMajorsMatrix(t *testing.T) {
	for _, server := range testworld.ServerMajors {
		t.Run(fmt.Sprintf("server %d", server), func(t *testing.T) {
			t.Parallel()
			db := testworld.PostgresMajor(t, server)
			loadSQLFixture(t, db, "keycloak-11.sql")
			before := contentDigest(t, db)
			for _, client := range testworld.ClientMajors {
				dir := testworld.ClientBinDir(t, client)
				if client < server {
					t.Run(fmt.Sprintf("client %d refused", client), func(t *testing.T) {
						e := &pgbackup.Engine{ConnString: db.URL(), WorkDir: t.TempDir(), Clients: pgbackup.ClientChooser{Dir: dir}}
						_, err := e.Backup(t.Context(), rollout.BackupRequest{Name: "refused"})
						if !errors.Is(err, pgbackup.ErrNoClient) && (err == nil || !strings.Contains(err.Error(), "pg-bin-dir")) {
							t.Errorf("backup of a %d server with client %d: %v, want a refusal naming pg-bin-dir", server, client, err)
						}
					})
					continue
				}
				for _, format := range []string{bundle.FormatCustom, bundle.FormatPlain} {
					t.Run(fmt.Sprintf("client %d %s", client, format), func(t *testing.T) {
						e := &pgbackup.Engine{ConnString: db.URL(), Format: format, WorkDir: t.TempDir(), Clients: pgbackup.ClientChooser{Dir: dir}}
						b, err := e.Backup(t.Context(), rollout.BackupRequest{Name: "matrix"})
						if err != nil {
							t.Fatal(err)
						}
						bundle, err := bundle.Open(b.Dir)
						if err != nil {
							t.Fatal(err)
						}
						m := bundle.Manifest
						if !strings.HasPrefix(m.ServerVersion, fmt.Sprint(server)+".") || !strings.HasPrefix(m.PgDumpVersion, fmt.Sprint(client)+".") {
							t.Errorf("manifest says server %s, pg_dump %s; want %d and %d", m.ServerVersion, m.PgDumpVersion, server, client)
						}
						loadSQLFixture(t, db, "keycloak-12-migration.sql")
						drift, err := e.Drift(t.Context(), b)
						if err != nil || !strings.Contains(drift, "migrated the schema") {
							t.Fatalf("drift after the migration: %q, %v", drift, err)
						}
						how, err := e.Restore(t.Context(), b)
						if err != nil {
							t.Fatal(err)
						}
						if !strings.Contains(how, fmt.Sprintf("PostgreSQL %s client tools into server %d.", m.PgDumpVersion, server)) {
							t.Errorf("restore says %q; want it to name client %s and server %d", how, m.PgDumpVersion, server)
						}
						if dropped := strings.Contains(how, "transaction_timeout"); dropped != (client >= 17 && server < 17) {
							t.Errorf("restore says %q: transaction_timeout left out %v, want %v", how, dropped, !dropped)
						}
						if err := e.Verify(t.Context(), b); err != nil {
							t.Error(err)
						}
						if got := contentDigest(t, db); got != before {
							t.Errorf("content after the restore differs from before the backup")
						}
					})
				}
			}
		})
	}
}

// TestRestoreIntoOlderMajor refuses to restore a dump of a PostgreSQL 13 server into an 11
// one, leaving it as it was, unless allowed; allowed, the settings 11 does not know are left
// out wherever pg_dump wrote them, and the content arrives whole.
func TestRestoreIntoOlderMajor(t *testing.T) {
	source := testworld.PostgresMajor(t, 13)
	loadSQLFixture(t, source, "keycloak-11.sql")
	want := contentDigest(t, source)
	e := &pgbackup.Engine{ConnString: source.URL(), WorkDir: t.TempDir()}
	b, err := e.Backup(t.Context(), rollout.BackupRequest{Name: "from-13"})
	if err != nil {
		t.Fatal(err)
	}
	older := testworld.PostgresMajor(t, 11)
	older.Exec(t, "SET ROLE "+older.Owner+"; CREATE TABLE kept (a int); INSERT INTO kept VALUES (1)")
	before := contentDigest(t, older)
	_, err = pgbackup.Restore(t.Context(), b.Dir, pgbackup.RestoreOptions{ConnString: older.URL()})
	if !errors.Is(err, pgbackup.ErrOlderServer) || !pgbackup.Untouched(err) || !strings.Contains(err.Error(), "allow-older-server") {
		t.Fatalf("restore of a 13 dump into 11: %v; want ErrOlderServer, untouched, naming allow-older-server", err)
	}
	if got := contentDigest(t, older); got != before {
		t.Error("the refused restore changed the database")
	}
	r, err := pgbackup.RestoreBundle(t.Context(), b.Dir, pgbackup.RestoreOptions{ConnString: older.URL(), AllowOlderServer: true})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(r.DroppedSettings, "default_table_access_method") {
		t.Errorf("left out %q; want default_table_access_method, which 11 does not know", r.DroppedSettings)
	}
	if got := contentDigest(t, older); got != want {
		t.Error("the allowed restore into 11 holds other content than the 13 source")
	}
}
