package pgbackup_test

import (
	"fmt"
	"maps"
	"path/filepath"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/store"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestEngineBackupTellsTheArtifact: a backup stored as a GitHub artifact carries the
// artifact's id and page, for the report and the outputs; the locations stay in store order.
func TestEngineBackupTellsTheArtifact(t *testing.T) {
	db := testworld.Postgres(t)
	db.Exec(t, `SET ROLE keycloak; CREATE TABLE realm (id text PRIMARY KEY); INSERT INTO realm VALUES ('master');`)
	srv := testworld.StartArtifactServer(t)
	env := srv.Env()
	maps.Copy(env, map[string]string{"GITHUB_REPOSITORY": "acme/identity", "GITHUB_RUN_ID": "16000000001"})
	dir := bundle.DirStore{Dir: t.TempDir()}
	artifact := store.Artifact{Getenv: func(k string) string { return env[k] }, TempDir: t.TempDir(), RetentionDays: 30}
	e := &pgbackup.Engine{ConnString: db.URL(), WorkDir: t.TempDir(), Stores: []bundle.Store{dir, artifact}}

	b, err := e.Backup(t.Context(), rollout.BackupRequest{Name: "identity-r1-20260504T030201Z", Release: rollout.Release{Name: "identity"}})
	if err != nil {
		t.Fatal(err)
	}
	id := testworld.ArtifactID(b.Name)
	if want := []string{filepath.Join(dir.Dir, b.Name), "artifact:" + b.Name}; fmt.Sprint(b.Locations) != fmt.Sprint(want) {
		t.Errorf("locations %v, want %v", b.Locations, want)
	}
	if wantURL := fmt.Sprintf("https://github.com/acme/identity/actions/runs/16000000001/artifacts/%d", id); b.ArtifactID != id || b.ArtifactURL != wantURL {
		t.Errorf("artifact %d %q, want %d %q", b.ArtifactID, b.ArtifactURL, id, wantURL)
	}

	// Without the artifact store: no artifact.
	e = &pgbackup.Engine{ConnString: db.URL(), WorkDir: t.TempDir(), Stores: []bundle.Store{bundle.DirStore{Dir: t.TempDir()}}}
	b, err = e.Backup(t.Context(), rollout.BackupRequest{Name: "identity-r1-20260504T030202Z", Release: rollout.Release{Name: "identity"}})
	if err != nil {
		t.Fatal(err)
	}
	if b.ArtifactID != 0 || b.ArtifactURL != "" {
		t.Errorf("a backup in a path store tells artifact %d %q", b.ArtifactID, b.ArtifactURL)
	}
}
