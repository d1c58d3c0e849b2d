package pgbackup_test

import (
	"os"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestEngineInspectChecksStores: the preflight's database port fails on a store that could not
// take the backup, after reading the database facts, naming the store; with usable stores it
// passes and the backup goes to them.
func TestEngineInspectChecksStores(t *testing.T) {
	db := testworld.Postgres(t)
	good := t.TempDir()

	e := &pgbackup.Engine{ConnString: db.URL(), WorkDir: t.TempDir(),
		Stores: []bundle.Store{bundle.DirStore{Dir: good}, bundle.DirStore{Dir: "/proc/nope"}}}
	facts, err := e.Inspect(t.Context())
	if err == nil || !strings.Contains(err.Error(), `backup-store "path:/proc/nope": cannot write in /proc/nope`) {
		t.Errorf("Inspect with an unusable store: %v", err)
	}
	if facts.ServerVersion == "" {
		t.Error("the database facts were not read before the stores were checked")
	}
	if entries, _ := os.ReadDir(good); len(entries) != 0 {
		t.Errorf("the check left %v in the usable store", entries)
	}

	e.Stores = e.Stores[:1]
	if _, err := e.Inspect(t.Context()); err != nil {
		t.Fatalf("Inspect with a usable store: %v", err)
	}
	b, err := e.Backup(t.Context(), rollout.BackupRequest{Name: "checked"})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Locations) != 1 || !strings.HasPrefix(b.Locations[0], good) {
		t.Errorf("stored at %v, want in %s", b.Locations, good)
	}
}
