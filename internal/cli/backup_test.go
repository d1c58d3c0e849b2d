package cli

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func TestMain(m *testing.M) { testworld.Main(m) }

func TestBackupAndRestoreCommands(t *testing.T) {
	src := testworld.Postgres(t)
	src.Exec(t, `SET ROLE keycloak; CREATE TABLE realm (id text PRIMARY KEY, name text); INSERT INTO realm VALUES ('1', 'master'), ('2', 'alfresco');`)
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	stores := t.TempDir()
	r := runCLI(t, map[string]string{"DATABASE_URL": src.URL()}, "backup", "--backup-store=path:"+stores,
		"--backup-encryption-recipients="+identity.Recipient().String(), "--backup-format=plain")
	if r.code != rollout.ExitOK {
		t.Fatalf("backup: code %d, stderr:\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	location := lines[len(lines)-1]
	if !regexp.MustCompile(`^` + regexp.QuoteMeta(stores) + `/` + src.Database + `-\d{8}T\d{6}Z$`).MatchString(location) {
		t.Errorf("last stdout line %q is not the bundle location in %s", location, stores)
	}
	if _, err := os.Stat(filepath.Join(location, "manifest.json")); err != nil {
		t.Fatal(err)
	}

	dst := testworld.Postgres(t)
	dst.Exec(t, `SET ROLE keycloak; CREATE TABLE realm (id text PRIMARY KEY, name text, extra int); CREATE TABLE newer (x int);`)
	env := map[string]string{"DATABASE_URL": dst.URL()}

	// Refused before anything changes: no identity, then a damaged dump.
	if r := runCLI(t, env, "restore", "--from="+location); r.code != rollout.ExitRefused || !strings.Contains(r.stderr, "encrypted with age") {
		t.Errorf("restore without identity: code %d, stderr:\n%s", r.code, r.stderr)
	}
	if r := runCLI(t, env, "restore", "--from="+t.TempDir()); r.code != rollout.ExitRefused || !strings.Contains(r.stderr, "no manifest.json") {
		t.Errorf("restore of an empty directory: code %d, stderr:\n%s", r.code, r.stderr)
	}
	if got := dst.Exec(t, `SELECT count(*) FROM newer`); strings.TrimSpace(got) != "0" {
		t.Fatalf("the target changed after a refused restore")
	}

	// A failure during the restore: the target holds an object the owner cannot drop and the
	// dump recreates. A plain dump restores in one transaction, so the failure rolls back the
	// cleaning too: exit 2, and every table is still there.
	dst.Exec(t, `CREATE TABLE public.realm_blocker (x int); ALTER TABLE realm RENAME TO realm_old; CREATE TABLE public.realm (id text); ALTER TABLE public.realm OWNER TO postgres;`)
	if r := runCLI(t, env, "restore", "--from="+location, "--backup-identity="+identity.String()); r.code != rollout.ExitRefused ||
		!strings.Contains(r.stderr, "must be owner of table realm") || !strings.Contains(r.stderr, "The database was not changed") {
		t.Errorf("restore over a table the owner cannot drop: code %d, stderr:\n%s", r.code, r.stderr)
	}
	if got := strings.TrimSpace(dst.Exec(t, `SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'`)); got != "newer,realm,realm_blocker,realm_old" {
		t.Errorf("tables after the failed restore: %s, want all four as they were", got)
	}
	dst.Exec(t, `DROP TABLE public.realm; DROP TABLE public.realm_blocker;`)

	r = runCLI(t, env, "restore", "--from="+location, "--backup-identity="+identity.String())
	if r.code != rollout.ExitOK {
		t.Fatalf("restore: code %d, stderr:\n%s", r.code, r.stderr)
	}
	if got := strings.TrimSpace(dst.Exec(t, `SELECT string_agg(name, ',' ORDER BY id) FROM realm`)); got != "master,alfresco" {
		t.Errorf("restored realms %q", got)
	}
	if got := strings.TrimSpace(dst.Exec(t, `SELECT count(*) FROM pg_tables WHERE schemaname = 'public'`)); got != "1" {
		t.Errorf("%s tables after restore, want 1 (the newer table must be gone)", got)
	}
	if strings.Contains(r.stdout+r.stderr, "AGE-SECRET-KEY") || strings.Contains(r.stdout+r.stderr, dst.OwnerPassword) {
		t.Errorf("a secret is shown:\n%s\n%s", r.stdout, r.stderr)
	}
}

func TestBackupCommandFailures(t *testing.T) {
	db := testworld.Postgres(t)
	// The artifact store outside a GitHub Actions job is refused before anything starts.
	r := runCLI(t, map[string]string{"DATABASE_URL": db.URL()}, "backup", "--backup-store=artifact", "--allow-plaintext-backup=true")
	if r.code != rollout.ExitRefused || !strings.Contains(r.stderr, "outside a GitHub Actions job") || !strings.Contains(r.stderr, "nothing was changed") {
		t.Errorf("artifact store outside Actions: code %d, stderr:\n%s", r.code, r.stderr)
	}
	// A wrong password: the server refuses the inputs, exit 2. A database that does not
	// answer, every attempt: not the inputs' fault, exit 1 (failed). Neither writes a bundle.
	for name, tt := range map[string]struct {
		url  string
		code int
		says string
	}{
		"wrong password": {strings.Replace(db.URL(), db.OwnerPassword, "wrong-pw", 1), rollout.ExitRefused, "nothing was changed"},
		"unreachable":    {"postgres://keycloak:pw@127.0.0.1:1/keycloak?connect_timeout=5", rollout.ExitRolledBack, "no bundle was stored"},
	} {
		stores := t.TempDir()
		r = runCLI(t, map[string]string{"DATABASE_URL": tt.url}, "backup", "--backup-store=path:"+stores, "--db-retry-backoff=10ms")
		if r.code != tt.code || !strings.Contains(r.stderr, tt.says) {
			t.Errorf("%s: code %d, want %d, stderr:\n%s", name, r.code, tt.code, r.stderr)
		}
		if name == "wrong password" && !strings.Contains(r.stderr, "password authentication failed") {
			t.Errorf("wrong password: stderr does not say so:\n%s", r.stderr)
		}
		if entries, _ := os.ReadDir(stores); len(entries) != 0 {
			t.Errorf("%s: a failed backup left %d entries in the store", name, len(entries))
		}
	}
}

// TestBackupAndRestoreThroughAnOCIRegistry takes a backup into a registry on loopback and
// restores it from its oci:// reference into another database.
func TestBackupAndRestoreThroughAnOCIRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	ref := "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/backups/keycloak"
	src := testworld.Postgres(t)
	src.Exec(t, `SET ROLE keycloak; CREATE TABLE realm (id text PRIMARY KEY, name text); INSERT INTO realm VALUES ('1', 'master');`)
	r := runCLI(t, map[string]string{"DATABASE_URL": src.URL()}, "backup", "--backup-store="+ref, "--allow-plaintext-backup=true", "--backup-name=kc-1")
	if r.code != rollout.ExitOK {
		t.Fatalf("backup: code %d, stderr:\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	location := lines[len(lines)-1]
	if !strings.HasPrefix(location, ref+":kc-1@sha256:") {
		t.Fatalf("location %q, want %s:kc-1@sha256:…", location, ref)
	}
	dst := testworld.Postgres(t)
	r = runCLI(t, map[string]string{"DATABASE_URL": dst.URL()}, "restore", "--from="+location)
	if r.code != rollout.ExitOK {
		t.Fatalf("restore: code %d, stderr:\n%s", r.code, r.stderr)
	}
	if got := strings.TrimSpace(dst.Exec(t, `SELECT name FROM realm`)); got != "master" {
		t.Errorf("restored %q", got)
	}
	if r := runCLI(t, map[string]string{"DATABASE_URL": dst.URL()}, "restore", "--from="+ref+":no-such-tag"); r.code != rollout.ExitRefused {
		t.Errorf("restore of a missing tag: code %d, stderr:\n%s", r.code, r.stderr)
	}
}
