package pgbackup_test

import (
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// keycloak11Rows is the exact row count of every table testdata/sql/keycloak-11.sql creates.
var keycloak11Rows = map[string]int64{
	"admin_event_entity":       32,
	"client":                   23,
	"client_attributes":        14,
	"client_default_roles":     6,
	"component":                9,
	"component_config":         30,
	"composite_role":           112,
	"credential":               692,
	"databasechangelog":        86,
	"databasechangeloglock":    3,
	"event_entity":             2000,
	"group_role_mapping":       3,
	"keycloak_group":           7,
	"keycloak_role":            123,
	"migration_model":          2,
	"realm":                    3,
	"realm_attribute":          26,
	"realm_default_groups":     1,
	"realm_default_roles":      6,
	"realm_events_listeners":   3,
	"redirect_uris":            13,
	"required_action_provider": 18,
	"scope_mapping":            3,
	"site_branding":            2,
	"site_login_stats":         203,
	"user_attribute":           1204,
	"user_entity":              723,
	"user_group_membership":    337,
	"user_required_action":     55,
	"user_role_mapping":        1449,
}

// keycloak11Schema is the schema state of keycloak-11.sql.
var keycloak11Schema = pgbackup.SchemaState{
	ChangelogRows:    86,
	LatestChangeID:   "map-remove-ri",
	MigrationVersion: "11.0.3",
}

// keycloak12Rows is keycloak11Rows after testdata/sql/keycloak-12-migration.sql.
var keycloak12Rows = func() map[string]int64 {
	rows := maps.Clone(keycloak11Rows)
	rows["databasechangelog"] = 88        // two Keycloak 12 changesets
	rows["keycloak_role"] = 126           // delete-account in every realm's account client
	rows["required_action_provider"] = 21 // delete_account in every realm
	rows["migration_model"] = 3           // 12.0.4
	rows["realm_localizations"] = 0       // the new, empty table
	return rows
}()

// keycloak12Schema is the schema state after keycloak-12-migration.sql.
var keycloak12Schema = pgbackup.SchemaState{
	ChangelogRows:    88,
	LatestChangeID:   "12.1.0-add-realm-localization-table",
	MigrationVersion: "12.0.4",
}

func TestKeycloakFixtures(t *testing.T) {
	db := testworld.Postgres(t)

	loadSQLFixture(t, db, "keycloak-11.sql")
	checkFixtureState(t, db, keycloak11Rows, keycloak11Schema)

	loadSQLFixture(t, db, "keycloak-12-migration.sql")
	checkFixtureState(t, db, keycloak12Rows, keycloak12Schema)
}

// loadSQLFixture runs testdata/sql/name in db as the owner role, the way Keycloak's own
// database user would have created it.
func loadSQLFixture(t *testing.T, db testworld.Database, name string) {
	t.Helper()
	db.ExecFileAsOwner(t, filepath.Join("..", "..", "testdata", "sql", name))
}

func checkFixtureState(t *testing.T, db testworld.Database, wantRows map[string]int64, wantSchema pgbackup.SchemaState) {
	t.Helper()
	if got := tableRowCounts(t, db); !maps.Equal(got, wantRows) {
		for _, name := range slices.Sorted(maps.Keys(wantRows)) {
			if n, ok := got[name]; !ok || n != wantRows[name] {
				t.Errorf("table %s: %d rows (present: %t), want %d", name, n, ok, wantRows[name])
			}
		}
		for _, name := range slices.Sorted(maps.Keys(got)) {
			if _, ok := wantRows[name]; !ok {
				t.Errorf("unexpected table %s (%d rows)", name, got[name])
			}
		}
	}

	info, err := pgbackup.Inspect(t.Context(), db.URL())
	if err != nil {
		t.Fatal(err)
	}
	if info.Schema != wantSchema {
		t.Errorf("schema state = %+v, want %+v", info.Schema, wantSchema)
	}
	if info.Tables != len(wantRows) {
		t.Errorf("Inspect counts %d tables, want %d", info.Tables, len(wantRows))
	}

	if owner := strings.TrimSpace(db.Exec(t, `SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()`)); owner != db.Owner {
		t.Errorf("database owned by %q, want %q", owner, db.Owner)
	}
	// Every table, sequence, view and function must belong to the owner: a restore as that
	// (non-superuser) role must be able to drop and recreate all of it.
	notOwned := db.Exec(t, fmt.Sprintf(`
		SELECT c.relkind::text || ' ' || c.relname || ' ' || pg_get_userbyid(c.relowner)
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'public' AND c.relowner <> '%[1]s'::regrole
		UNION ALL
		SELECT 'function ' || p.proname || ' ' || pg_get_userbyid(p.proowner)
		FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace AND p.proowner <> '%[1]s'::regrole`, db.Owner))
	if strings.TrimSpace(notOwned) != "" {
		t.Errorf("objects not owned by %s:\n%s", db.Owner, notOwned)
	}
}

// tableRowCounts counts the rows of every table in the public schema.
func tableRowCounts(t *testing.T, db testworld.Database) map[string]int64 {
	t.Helper()
	tables := strings.Fields(db.Exec(t, `SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename`))
	counts := make(map[string]int64, len(tables))
	if len(tables) == 0 {
		return counts
	}
	selects := make([]string, len(tables))
	for i, name := range tables {
		selects[i] = fmt.Sprintf(`SELECT '%[1]s', count(*) FROM public."%[1]s"`, name)
	}
	out := db.Exec(t, strings.Join(selects, "\nUNION ALL\n"))
	for line := range strings.Lines(out) {
		name, n, ok := strings.Cut(strings.TrimSpace(line), "|")
		if !ok {
			continue
		}
		count, err := strconv.ParseInt(n, 10, 64)
		if err != nil {
			t.Fatalf("row count %q: %v", line, err)
		}
		counts[name] = count
	}
	return counts
}
