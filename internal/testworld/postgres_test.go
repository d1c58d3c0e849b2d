package testworld_test

import (
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestMain(m *testing.M) { testworld.Main(m) }

func TestPostgresIsRealAndPasswordProtected(t *testing.T) {
	db := testworld.Postgres(t)
	if db.Host != "127.0.0.1" {
		t.Fatalf("host = %q, want loopback", db.Host)
	}
	got := db.Exec(t, `SELECT current_setting('server_version_num')::int >= 150000,
		(SELECT rolsuper FROM pg_roles WHERE rolname = 'keycloak'),
		(SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()),
		(SELECT count(*) FROM pg_hba_file_rules WHERE type = 'host' AND auth_method = 'scram-sha-256') > 0`)
	if strings.TrimSpace(got) != "t|f|keycloak|t" {
		t.Fatalf("server facts = %q, want version>=15, owner not superuser, database owned by keycloak, scram on TCP", got)
	}
}
