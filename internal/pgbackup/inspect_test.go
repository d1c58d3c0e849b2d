package pgbackup_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestMain(m *testing.M) { testworld.Main(m) }

func TestInspectReadsKeycloakSchemaState(t *testing.T) {
	tests := []struct {
		name      string
		sql       string
		wantRows  int64
		wantID    string
		wantModel string
		wantTable int
	}{
		{name: "empty database", wantTable: 0},
		{
			name: "keycloak 11 schema",
			sql: `CREATE TABLE databasechangelog (id varchar(255), author varchar(255), filename varchar(255),
					dateexecuted timestamp, orderexecuted int);
				INSERT INTO databasechangelog VALUES ('1.0.0.Final-KEYCLOAK-5461', 'sthorger', 'META-INF/jpa-changelog-1.0.0.Final.xml', now(), 1),
					('11.0.0-KEYCLOAK-13717', 'keycloak', 'META-INF/jpa-changelog-11.0.0.xml', now(), 2);
				CREATE TABLE migration_model (id varchar(36), version varchar(36), update_time bigint);
				INSERT INTO migration_model VALUES ('a', '10.0.2', 1), ('b', '11.0.3', 2);`,
			wantRows: 2, wantID: "11.0.0-KEYCLOAK-13717", wantModel: "11.0.3", wantTable: 2,
		},
		{
			name: "upper-case liquibase tables",
			sql: `CREATE TABLE "DATABASECHANGELOG" (id varchar(255), dateexecuted timestamp, orderexecuted int);
				INSERT INTO "DATABASECHANGELOG" VALUES ('12.0.0-KEYCLOAK-11412', now(), 7);`,
			wantRows: 1, wantID: "12.0.0-KEYCLOAK-11412", wantTable: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := testworld.Postgres(t)
			if tt.sql != "" {
				db.Exec(t, "SET ROLE keycloak;\n"+tt.sql)
			}
			info, err := pgbackup.Inspect(t.Context(), db.URL())
			if err != nil {
				t.Fatal(err)
			}
			if info.Major() < 15 || info.Database != db.Database || info.Tables != tt.wantTable {
				t.Errorf("info = %+v, want major >= 15, database %s, %d tables", info, db.Database, tt.wantTable)
			}
			want := pgbackup.SchemaState{ChangelogRows: tt.wantRows, LatestChangeID: tt.wantID, MigrationVersion: tt.wantModel}
			if info.Schema != want {
				t.Errorf("schema = %+v, want %+v", info.Schema, want)
			}
		})
	}
}

func TestInspectWrongPasswordIsAClearError(t *testing.T) {
	db := testworld.Postgres(t)
	u, _ := url.Parse(db.URL())
	u.User = url.UserPassword(db.Owner, "not-the-password")
	_, err := pgbackup.Inspect(t.Context(), u.String())
	if err == nil {
		t.Fatal("connected with a wrong password")
	}
	if !strings.Contains(err.Error(), "password authentication failed") {
		t.Errorf("error %q does not say the password was refused", err)
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Errorf("error %q contains the password", err)
	}
}
