package cli

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"filippo.io/age"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestRestoreArtifactOfAnEarlierRun: tonight's backup, taken by one workflow run into the
// artifact store (kept 30 days) and a path store in the workspace, is restored tomorrow by
// another run through the REST API (run-id, github-token) into another PostgreSQL: the same
// content, definitions and all. Run as root, as a container action is, the path store's
// bundle belongs to the workspace's owner.
func TestRestoreArtifactOfAnEarlierRun(t *testing.T) {
	src := testworld.Postgres(t)
	src.Exec(t, `SET ROLE keycloak;
		CREATE TABLE realm (id text PRIMARY KEY, name text NOT NULL UNIQUE, enabled boolean DEFAULT true);
		CREATE TABLE user_entity (id serial PRIMARY KEY, realm_id text REFERENCES realm(id), username text, created timestamptz);
		CREATE INDEX user_entity_realm ON user_entity (realm_id, username);
		CREATE VIEW enabled_realms AS SELECT id, name FROM realm WHERE enabled;
		CREATE FUNCTION realm_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM realm';
		INSERT INTO realm VALUES ('1', 'master', true), ('2', 'alfresco', false);
		INSERT INTO user_entity (realm_id, username, created)
			SELECT CASE WHEN i % 3 = 0 THEN '1' ELSE '2' END, 'user-' || i, timestamptz '2026-05-04 03:02:01+00' + i * interval '1 minute'
			FROM generate_series(1, 5000) i;`)
	want := runsDigest(t, src)

	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	artifacts := testworld.StartArtifactServer(t)
	rest := artifacts.StartREST(t, "acme/identity", "ghs_actions_read_3141")
	root, err := os.MkdirTemp("", "runs-workspace-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	workspace := filepath.Join(root, "identity")
	if err := os.Mkdir(workspace, 0o755); err != nil {
		t.Fatal(err)
	}
	const runnerUID, runnerGID = 1001, 127 // the runner's user on GitHub's hosted runners
	if err := os.Chown(workspace, runnerUID, runnerGID); err != nil {
		t.Fatal(err)
	}

	// Tonight: run 7 takes the backup.
	const tonight = 7
	env := artifacts.EnvForRun(tonight)
	maps.Copy(env, map[string]string{"DATABASE_URL": src.URL(), "GITHUB_WORKSPACE": workspace, "RUNNER_TEMP": t.TempDir()})
	r := runCLI(t, env, "backup", "--backup-store=artifact", "--backup-store=path:"+filepath.Join(workspace, "backups"),
		"--backup-encryption-recipients="+identity.Recipient().String(), "--retention-days=30")
	if r.code != rollout.ExitOK {
		t.Fatalf("backup: exit %d\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	location := lines[len(lines)-1]
	name, ok := strings.CutPrefix(location, "artifact:")
	if !ok {
		t.Fatalf("backup's last line %q is not an artifact", location)
	}
	if !slices.Contains(lines, filepath.Join(workspace, "backups", name)) {
		t.Errorf("backup did not report the path store's bundle:\n%s", r.stdout)
	}
	if os.Geteuid() == 0 {
		bundle := filepath.Join(workspace, "backups", name)
		entries, err := os.ReadDir(bundle)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range append([]string{bundle}, namesIn(bundle, entries)...) {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != runnerUID || st.Gid != runnerGID || fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s: uid %d gid %d mode %v, want the workspace's owner (%d:%d) and no access for others",
					p, st.Uid, st.Gid, fi.Mode().Perm(), runnerUID, runnerGID)
			}
		}
	}

	// Tomorrow: run 8 restores it into another server.
	dst := testworld.Postgres(t)
	dst.Exec(t, `SET ROLE keycloak; CREATE TABLE leftover (x int); INSERT INTO leftover VALUES (1);`)
	env = artifacts.EnvForRun(8)
	maps.Copy(env, rest.Env())
	maps.Copy(env, map[string]string{"DATABASE_URL": dst.URL(), "IDENTITY_UPGRADE_BACKUP_IDENTITY": identity.String(),
		"GITHUB_TOKEN": rest.Token, "RUNNER_TEMP": t.TempDir()})
	r = runCLI(t, env, "restore", "--from="+location, fmt.Sprintf("--run-id=%d", tonight))
	if r.code != rollout.ExitOK {
		t.Fatalf("restore of run %d's artifact: exit %d\n%s", tonight, r.code, r.stderr)
	}
	if got := runsDigest(t, dst); got != want {
		t.Errorf("the restored database differs from the one backed up:\n got %s\nwant %s", got, want)
	}
	calls := rest.Calls()
	if len(calls) != 3 || !strings.HasPrefix(calls[0], fmt.Sprintf("GET /repos/acme/identity/actions/runs/%d/artifacts", tonight)) {
		t.Errorf("REST calls %q, want the run's list, the zip and its signed URL", calls)
	}
	if strings.Contains(r.stdout+r.stderr, rest.Token) {
		t.Errorf("the token is shown:\n%s\n%s", r.stdout, r.stderr)
	}

	// Without the token the restore is refused before anything changes.
	delete(env, "GITHUB_TOKEN")
	dst.Exec(t, `SET ROLE keycloak; CREATE TABLE after_restore (x int);`)
	r = runCLI(t, env, "restore", "--from="+location, fmt.Sprintf("--run-id=%d", tonight))
	if r.code != rollout.ExitRefused || !strings.Contains(r.stderr, "github-token: required with run-id") {
		t.Errorf("restore without a token: exit %d, want %d naming github-token\n%s", r.code, rollout.ExitRefused, r.stderr)
	}
	if got := strings.TrimSpace(dst.Exec(t, `SELECT count(*) FROM pg_tables WHERE tablename = 'after_restore'`)); got != "1" {
		t.Error("a refused restore changed the database")
	}
}

func namesIn(dir string, entries []os.DirEntry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}

// runsDigest is the full content of the database (testworld's digest).
func runsDigest(t *testing.T, db testworld.Database) string {
	t.Helper()
	return db.Digest(t).String()
}
