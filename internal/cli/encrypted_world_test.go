package cli

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// An upgrade with backup-encryption-recipients stores its bundle encrypted in every kind of
// store, every file of it: the release's values (which carry the database password, given by
// value) and its rendered manifest (whose Secret carries it in base64) as well as the dump.
// Nothing the stores hold shows the password; the identity still restores from each of them,
// and decrypts the release's values.
func TestEncryptedBundleShowsNoSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("an upgrade on the simulated cluster")
	}
	w := install13(t)
	identity, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	const registryPassword = "registry-Passw0rd-73"
	host := cliTestRegistry(t, "ci", registryPassword)
	repo := host + "/backups/identity"
	artifacts := testworld.StartArtifactServer(t)
	w.env = artifacts.Env()

	r := w.upgrade(t.Context(), t, "--backup-store", "oci://"+repo, "--backup-store", "artifact",
		"--backup-encryption-recipients", identity.Recipient().String(),
		"--registry-username", "ci", "--registry-password", registryPassword)
	if r.code != rollout.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	secrets := map[string]string{
		"the database password":            w.db.OwnerPassword,
		"the database password, in base64": base64.StdEncoding.EncodeToString([]byte(w.db.OwnerPassword)),
		"the registry password":            registryPassword,
	}

	// Every byte of every store: the path store's files, the registry's blobs, the artifact
	// server's files and the entries of the artifact's zip.
	held := map[string][]byte{}
	for _, root := range []string{w.stores, artifacts.Dir} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			held[p] = data
			if err == nil && strings.HasSuffix(p, ".zip") {
				zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
				if err != nil {
					return err
				}
				for _, f := range zr.File {
					rc, err := f.Open()
					if err != nil {
						return err
					}
					held[p+"!"+f.Name], err = io.ReadAll(rc)
					rc.Close()
					if err != nil {
						return err
					}
				}
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var bundleName string
	if entries, err := os.ReadDir(w.stores); err != nil || len(entries) != 1 {
		t.Fatalf("path store holds %v (%v), want one bundle", entries, err)
	} else {
		bundleName = entries[0].Name()
	}
	ref, err := name.ParseReference(repo + ":" + bundleName)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithAuth(&authn.Basic{Username: "ci", Password: registryPassword}))
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	held["oci manifest"] = raw
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		held["oci layer "+string(rune('0'+i))] = data
	}
	var stored []string
	for where, data := range held {
		stored = append(stored, where)
		for what, secret := range secrets {
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s shows %s", where, what)
			}
		}
	}
	for _, f := range []string{"release-values.yaml", "release-manifest.yaml"} {
		found := false
		for _, where := range stored {
			found = found || strings.Contains(where, f)
		}
		if !found {
			t.Errorf("no store holds the release's %s: %v", f, stored)
		}
	}

	// The identity opens them: the values decrypt to the password, and each store restores.
	values, err := os.ReadFile(filepath.Join(w.stores, bundleName, "release-values.yaml.age"))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := age.Decrypt(bytes.NewReader(values), identity)
	if err != nil {
		t.Fatalf("decrypt the release's values: %v", err)
	}
	if plain, err := io.ReadAll(dec); err != nil || !bytes.Contains(plain, []byte(w.db.OwnerPassword)) {
		t.Errorf("the decrypted values do not hold the password given by value (%v)", err)
	}
	for _, from := range []string{filepath.Join(w.stores, bundleName), "oci://" + repo + ":" + bundleName, "artifact:" + bundleName} {
		other := testworld.Postgres(t)
		env := artifacts.Env()
		maps.Copy(env, map[string]string{"DATABASE_URL": other.URL(), "IDENTITY_UPGRADE_BACKUP_IDENTITY": identity.String()})
		r := runCLI(t, env, "restore", "--from", from, "--registry-username", "ci", "--registry-password", registryPassword)
		if r.code != rollout.ExitOK {
			t.Errorf("restore from %s: exit %d\n%s", from, r.code, r.stderr)
			continue
		}
		if got := dbContent(t, other); got != w.before {
			t.Errorf("the database restored from %s differs from the one backed up", from)
		}
	}
}
