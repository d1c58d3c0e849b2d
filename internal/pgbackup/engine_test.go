package pgbackup_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/pgbackup"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestEngineBackupDriftRestore is the database side of an upgrade that fails after Keycloak
// migrated the schema: the backup carries the release's files, the migration is seen as drift,
// the restore from the working copy removes it, and the stored copies are complete bundles.
func TestEngineBackupDriftRestore(t *testing.T) {
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	db := testworld.Postgres(t)
	loadSQLFixture(t, db, "keycloak-11.sql")
	want := contentDigest(t, db)
	plainStore, ageStore := t.TempDir(), t.TempDir()
	e := &pgbackup.Engine{ConnString: db.URL(), WorkDir: t.TempDir(), Stores: []bundle.Store{bundle.DirStore{Dir: plainStore}}}
	rel := rollout.Release{Name: "identity", Revision: 4, ChartVersion: "2.1.0", Manifest: "kind: StatefulSet\n"}
	b, err := e.Backup(t.Context(), rollout.BackupRequest{Release: rel, Values: []byte("replicaCount: 2\n")})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.Name, "identity-r4-") || b.Location() != filepath.Join(plainStore, b.Name) {
		t.Errorf("backup %q stored at %v", b.Name, b.Locations)
	}
	if b.Encrypted || len(b.Secrets) != 2 {
		t.Errorf("a plaintext bundle with the release's files: encrypted %v, secrets %q", b.Encrypted, b.Secrets)
	}
	if b.Schema != keycloak11Schema || b.Tables != len(keycloak11Rows) || b.Rows != 7188 {
		t.Errorf("backup facts %+v, want the Keycloak 11 schema, %d tables, 7188 rows", b, len(keycloak11Rows))
	}
	for _, dir := range []string{b.Dir, b.Location()} {
		opened, err := bundle.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if opened.Manifest.Revision != 4 || opened.Manifest.ChartVersion != "2.1.0" || len(opened.Manifest.Parts) != 2 {
			t.Errorf("%s: manifest %+v", dir, opened.Manifest)
		}
		if v, err := os.ReadFile(filepath.Join(dir, bundle.ReleaseValuesFile)); err != nil || string(v) != "replicaCount: 2\n" {
			t.Errorf("%s: values file %q, %v", dir, v, err)
		}
	}

	if drift, err := e.Drift(t.Context(), b); err != nil || drift != "" {
		t.Fatalf("drift right after the backup: %q, %v", drift, err)
	}
	loadSQLFixture(t, db, "keycloak-12-migration.sql")
	drift, err := e.Drift(t.Context(), b)
	if err != nil || !strings.Contains(drift, "migrated the schema: 86 changesets") {
		t.Fatalf("drift after the Keycloak 12 migration: %q, %v", drift, err)
	}
	if err := e.Verify(t.Context(), b); err == nil {
		t.Fatal("Verify passed on a migrated database")
	}
	if _, err := e.Restore(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if err := e.Verify(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if got := contentDigest(t, db); got != want {
		t.Errorf("content after the restore differs from before the backup")
	}

	// A restore writes every row anew: the restored database has drifted from the backup's
	// snapshot, though its content is the same (Verify says so).
	if drift, err := e.Drift(t.Context(), b); err != nil || !strings.Contains(drift, "rows inserted or updated since the backup in") {
		t.Errorf("drift after the restore: %q, %v", drift, err)
	}

	// A row deleted without a migration is drift too.
	b, err = e.Backup(t.Context(), rollout.BackupRequest{Name: "identity-r4-again", Release: rel})
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(t, `DELETE FROM event_entity WHERE id IN (SELECT id FROM event_entity LIMIT 3)`)
	if drift, err := e.Drift(t.Context(), b); err != nil || !strings.Contains(drift, "data changed: rows deleted in event_entity (1997 rows, 2000 in the backup)") {
		t.Errorf("drift after deleting rows: %q, %v", drift, err)
	}

	// With recipients, the stores get the encrypted form and the working copy stays plain.
	e.Stores, e.Recipients = []bundle.Store{bundle.DirStore{Dir: ageStore}}, []string{identity.Recipient().String()}
	enc, err := e.Backup(t.Context(), rollout.BackupRequest{Name: "identity-r4-age", Release: rel})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := bundle.Open(enc.Location())
	if err != nil {
		t.Fatal(err)
	}
	work, err := bundle.Open(enc.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Manifest.Encryption != "age" || work.Manifest.Encryption != "none" || enc.SHA256 != stored.Manifest.SHA256 || enc.Bytes != stored.Manifest.SizeBytes {
		t.Errorf("stored %+v, working %+v, reported %s/%d", stored.Manifest, work.Manifest, enc.SHA256, enc.Bytes)
	}
	other := testworld.Postgres(t)
	if _, err := pgbackup.Restore(t.Context(), enc.Location(), pgbackup.RestoreOptions{ConnString: other.URL()}); err == nil {
		t.Error("the encrypted copy restored without an identity")
	}
	if _, err := pgbackup.Restore(t.Context(), enc.Location(), pgbackup.RestoreOptions{ConnString: other.URL(), Identity: identity.String()}); err != nil {
		t.Fatal(err)
	}
	if got := contentDigest(t, other); got != contentDigest(t, db) {
		t.Error("the encrypted copy restored other content")
	}
}

// The customizations saved before the backup go into the bundle as its customizations part,
// listed in the manifest, encrypted in the stores with the rest; the plaintext report names
// the Secrets among them.
func TestEngineBackupCustomizations(t *testing.T) {
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	db := testworld.Postgres(t)
	loadSQLFixture(t, db, "keycloak-11.sql")
	const secret = "realm-Secret-value-57"
	custom := t.TempDir()
	if err := os.MkdirAll(filepath.Join(custom, "kubernetes", "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(custom, "kubernetes", "secrets", "kc-realm.yaml"), []byte("kind: Secret\nstringData:\n  x: "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	idx := bundle.Customizations{Source: bundle.SourceCluster, Items: []bundle.CustomizationItem{{Kind: bundle.ItemSecret, Name: "kc-realm", Path: "kubernetes/secrets/kc-realm.yaml"}}}
	if err := bundle.WriteCustomizationsIndex(custom, idx); err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	e := &pgbackup.Engine{ConnString: db.URL(), WorkDir: t.TempDir(), Stores: []bundle.Store{bundle.DirStore{Dir: store}}}
	req := rollout.BackupRequest{Name: "plain", Release: rollout.Release{Name: "identity", Revision: 1, Manifest: "kind: Secret\n"},
		Customizations: &rollout.Customizations{Dir: custom}}
	b, err := e.Backup(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Secrets) != 3 || b.Secrets[2] != "the Secrets Keycloak's pods reference (kc-realm)" {
		t.Errorf("secrets of the plaintext bundle: %q", b.Secrets)
	}
	e.Recipients = []string{identity.Recipient().String()}
	req.Name = "encrypted"
	b, err = e.Backup(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := bundle.Open(b.Location())
	if err != nil {
		t.Fatal(err)
	}
	p, ok := stored.Manifest.Part(bundle.PartCustomizations)
	if !ok || p.File != bundle.CustomizationsFile+".age" || stored.Manifest.Customizations == nil || stored.Manifest.Customizations.Files != 1 {
		t.Fatalf("stored manifest %+v", stored.Manifest)
	}
	data, err := os.ReadFile(stored.PartPath(p))
	if err != nil || strings.Contains(string(data), secret) {
		t.Errorf("the stored part shows the Secret's value (%v)", err)
	}
	rc, err := stored.OpenPart(bundle.PartCustomizations, []age.Identity{identity})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := filepath.Join(t.TempDir(), "out")
	if n, err := bundle.UnpackCustomizations(t.Context(), rc, out); err != nil || n != 1 {
		t.Fatalf("unpack: %d files, %v", n, err)
	}
	if got, _ := os.ReadFile(filepath.Join(out, "kubernetes", "secrets", "kc-realm.yaml")); !strings.Contains(string(got), secret) {
		t.Errorf("the Secret as restored: %q", got)
	}
}
