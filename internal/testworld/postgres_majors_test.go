package testworld_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestPostgresMajors starts a server of every major offered and checks, through TCP with the
// owner's password, that it is of that major, that the owner can create its tables, and that
// both roles' passwords are SCRAM secrets behind scram-sha-256 host rules only.
func TestPostgresMajors(t *testing.T) {
	for _, major := range testworld.ServerMajors {
		t.Run(strconv.Itoa(major), func(t *testing.T) {
			t.Parallel()
			db := testworld.PostgresMajor(t, major)
			if db.Host != "127.0.0.1" || db.Major != major {
				t.Fatalf("host %s, major %d; want 127.0.0.1, %d", db.Host, db.Major, major)
			}
			out, err := ownerPsql(t, db, db.OwnerPassword, `CREATE TABLE realm (id text PRIMARY KEY);
				INSERT INTO realm VALUES ('master');
				SELECT current_setting('server_version_num')::int / 10000, current_user, count(*) FROM realm`)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%d|keycloak|1", major); strings.TrimSpace(out) != want {
				t.Fatalf("as the owner: %q, want %q", out, want)
			}
			if _, err := ownerPsql(t, db, "wrong", "SELECT 1"); err == nil || !strings.Contains(err.Error(), "password authentication failed") {
				t.Fatalf("a wrong password: %v, want password authentication failed", err)
			}
			got := db.Exec(t, `SELECT (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE relname = 'realm'),
				(SELECT count(*) FROM pg_authid WHERE rolname IN ('postgres', 'keycloak') AND rolpassword LIKE 'SCRAM-SHA-256$%'),
				(SELECT string_agg(DISTINCT auth_method, ',') FROM pg_hba_file_rules WHERE type = 'host'),
				(SELECT rolsuper FROM pg_roles WHERE rolname = 'keycloak')`)
			if strings.TrimSpace(got) != "keycloak|2|scram-sha-256|f" {
				t.Fatalf("server facts = %q, want table owned by keycloak, 2 SCRAM secrets, host rules scram-sha-256 only, owner not superuser", got)
			}
		})
	}
}

// TestClientMajors checks every client directory's programs and that Debian 13's pg_dump 17
// dumps the shared server (15) when run with an environment of its own, as pgbackup runs it.
func TestClientMajors(t *testing.T) {
	for _, major := range testworld.ClientMajors {
		dir := testworld.ClientBinDir(t, major)
		for _, prog := range []string{"pg_dump", "pg_restore", "psql"} {
			out, err := exec.CommandContext(t.Context(), filepath.Join(dir, prog), "--version").CombinedOutput()
			if want := fmt.Sprintf("%s (PostgreSQL) %d.", prog, major); err != nil || !strings.HasPrefix(string(out), want) {
				t.Fatalf("%s/%s --version: %q, %v; want %s...", dir, prog, out, err, want)
			}
		}
	}

	db := testworld.Postgres(t)
	db.Exec(t, "SET ROLE keycloak; CREATE TABLE realm (id text PRIMARY KEY); INSERT INTO realm VALUES ('master')")
	dump := exec.CommandContext(t.Context(), filepath.Join(testworld.ClientBinDir(t, 17), "pg_dump"), "--format=plain")
	dump.Env = []string{"PGHOST=" + db.Host, "PGPORT=" + strconv.Itoa(db.Port), "PGDATABASE=" + db.Database,
		"PGUSER=" + db.Owner, "PGPASSWORD=" + db.OwnerPassword, "PGCONNECT_TIMEOUT=5"}
	var stderr bytes.Buffer
	dump.Stderr = &stderr
	out, err := dump.Output()
	if err != nil {
		t.Fatalf("pg_dump 17 of server %d: %v: %s", db.Major, err, stderr.String())
	}
	for _, want := range []string{"-- Dumped from database version 15.", "-- Dumped by pg_dump version 17.", "CREATE TABLE public.realm", "master"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("pg_dump 17's dump lacks %q", want)
		}
	}
}

// ownerPsql runs sql as the database's owner through the system's psql, with password.
func ownerPsql(t *testing.T, db testworld.Database, password, sql string) (string, error) {
	cmd := exec.CommandContext(t.Context(), filepath.Join(db.PsqlDir, "psql"),
		"-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", db.Host, "-p", strconv.Itoa(db.Port),
		"-U", db.Owner, "-d", db.Database)
	cmd.Env = []string{"PGPASSWORD=" + password, "PGCONNECT_TIMEOUT=5"}
	cmd.Stdin = strings.NewReader(sql)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("psql as %s: %w: %s", db.Owner, err, stderr.String())
	}
	return string(out), nil
}
