package pgbackup_test

import (
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestDriftSeesWritesOfEveryKind is the restore decision of restore-database: auto. Each case
// backs up the Keycloak 11 fixture, changes the database as a failed run might (in place,
// with the same row counts, or only in a sequence or a definition), and expects Drift to say
// what changed; with no change, or a change rolled back, Drift says nothing. Before, Drift
// compared the schema state and row counts only, and called a database with updated rows
// unchanged.
func TestDriftSeesWritesOfEveryKind(t *testing.T) {
	db := testworld.Postgres(t)
	loadSQLFixture(t, db, "keycloak-11.sql")
	db.Exec(t, `SET ROLE `+db.Owner+`; CREATE SEQUENCE public.drift_seq`)
	for _, tc := range []struct {
		name, sql string
		want      string // "" for no drift
	}{
		{"nothing", ``, ""},
		{"an update rolled back", `BEGIN; UPDATE realm SET ssl_required = 'all'; ROLLBACK;`, ""},
		{"an update in place", `UPDATE realm SET ssl_required = 'all' WHERE id = 'master'`, "rows inserted or updated since the backup in realm (1)"},
		{"many updates in place", `UPDATE credential SET priority = priority + 1`, "rows inserted or updated since the backup in credential ("},
		{"delete and insert, same count", `WITH d AS (DELETE FROM event_entity WHERE id = (SELECT min(id) FROM event_entity) RETURNING *)
			INSERT INTO event_entity SELECT * FROM d`, "rows inserted or updated since the backup in event_entity (1)"},
		{"a delete", `DELETE FROM event_entity WHERE id = (SELECT min(id) FROM event_entity)`, "rows deleted in event_entity"},
		{"a sequence", `SELECT nextval('public.drift_seq')`, "sequences changed: drift_seq"},
		{"a column added", `SET ROLE ` + db.Owner + `; ALTER TABLE realm ADD COLUMN extra text DEFAULT 'x'`, "definitions changed"},
		{"an index created", `SET ROLE ` + db.Owner + `; CREATE INDEX drift_idx ON realm (name)`, "definitions changed"},
		{"a table created", `SET ROLE ` + db.Owner + `; CREATE TABLE drift_new (a int)`, "tables not in the backup: drift_new"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &pgbackup.Engine{ConnString: db.URL(), WorkDir: t.TempDir()}
			b, err := e.Backup(t.Context(), rollout.BackupRequest{Name: "drift"})
			if err != nil {
				t.Fatal(err)
			}
			if tc.sql != "" {
				db.Exec(t, tc.sql)
			}
			drift, err := e.Drift(t.Context(), b)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.want == "" && drift != "":
				t.Errorf("drift %q, want none", drift)
			case tc.want != "" && !strings.Contains(drift, tc.want):
				t.Errorf("drift %q, want it to say %q", drift, tc.want)
			}
		})
	}
}
