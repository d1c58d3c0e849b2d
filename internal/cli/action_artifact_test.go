package cli

import (
	"maps"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestActionBackupAndRestoreThroughArtifacts runs command: backup and command: restore as
// action steps of one workflow run, through act's artifact v4 server: the backup is kept as
// an artifact (its id and page in the outputs), and the restore takes it back by name.
func TestActionBackupAndRestoreThroughArtifacts(t *testing.T) {
	artifacts := testworld.StartArtifactServer(t)
	src := testworld.Postgres(t)
	src.Exec(t, `SET ROLE keycloak; CREATE TABLE realm (id text PRIMARY KEY, name text); INSERT INTO realm VALUES ('1', 'master'), ('2', 'partners');`)
	env := map[string]string{"GITHUB_REPOSITORY": "octo/infra", "GITHUB_RUN_ID": "2", "INPUT_COMMAND": "backup",
		"INPUT_DATABASE-URL": src.URL(), "INPUT_BACKUP-STORE": "artifact", "INPUT_ALLOW-PLAINTEXT-BACKUP": "true",
		"INPUT_BACKUP-NAME": "kc-nightly"}
	maps.Copy(env, artifacts.Env())
	r := runAction(t, env)
	if r.code != rollout.ExitOK || r.outputs["result"] != "backed-up" || r.outputs["artifact-id"] == "" ||
		!strings.HasPrefix(r.outputs["artifact-url"], "https://github.com/octo/infra/actions/runs/2/artifacts/") {
		t.Fatalf("backup: exit %d, outputs %q\n%s", r.code, r.outputs, r.stderr)
	}
	if !strings.Contains(r.summary, "Backup artifact") {
		t.Errorf("the summary does not link the artifact:\n%s", r.summary)
	}

	dst := testworld.Postgres(t)
	env = map[string]string{"GITHUB_REPOSITORY": "octo/infra", "GITHUB_RUN_ID": "2", "INPUT_COMMAND": "restore",
		"INPUT_DATABASE-URL": dst.URL(), "INPUT_RESTORE-FROM": "artifact:kc-nightly"}
	maps.Copy(env, artifacts.Env())
	r = runAction(t, env)
	if r.code != rollout.ExitOK || r.outputs["result"] != "restored" {
		t.Fatalf("restore: exit %d, outputs %q\n%s", r.code, r.outputs, r.stderr)
	}
	if got := strings.Fields(dst.Exec(t, `SELECT name FROM realm ORDER BY id`)); strings.Join(got, ",") != "master,partners" {
		t.Errorf("restored %q", got)
	}
}
