package pgbackup

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestDirStorePut stores a bundle twice: on the same file system the dump is a hard link of
// the original (no second write), and where links fail it is a full copy; either way the
// stored bundle opens with the same manifest and the same bytes.
func TestDirStorePut(t *testing.T) {
	src := filepath.Join(t.TempDir(), "b")
	if err := os.Mkdir(src, 0o700); err != nil {
		t.Fatal(err)
	}
	dump := bytes.Repeat([]byte("dump bytes\n"), 10000)
	m := Manifest{FormatVersion: ManifestVersion, DumpFormat: FormatCustom, Compression: "zstd", Encryption: "none",
		DumpFile: DumpFileName(FormatCustom, false), SizeBytes: int64(len(dump)), SHA256: fmt.Sprintf("%x", sha256.Sum256(dump)), ReleaseFiles: []string{ReleaseValuesFile}}
	if err := os.WriteFile(filepath.Join(src, m.DumpFile), dump, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, ReleaseValuesFile), []byte("a: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := writeManifest(src, m); err != nil {
		t.Fatal(err)
	}
	b := &Bundle{Dir: src, Manifest: m}

	check := func(t *testing.T, store DirStore, wantLink bool) {
		t.Helper()
		loc, err := store.Put(t.Context(), b)
		if err != nil {
			t.Fatal(err)
		}
		got, err := store.Open(t.Context(), loc)
		if err != nil {
			t.Fatal(err)
		}
		if got.Manifest.SHA256 != m.SHA256 || got.Manifest.DumpFile != m.DumpFile {
			t.Errorf("stored manifest %+v, want %+v", got.Manifest, m)
		}
		data, err := os.ReadFile(got.DumpPath())
		if err != nil || !bytes.Equal(data, dump) {
			t.Fatalf("stored dump differs (%v)", err)
		}
		if values, _ := os.ReadFile(filepath.Join(loc, ReleaseValuesFile)); string(values) != "a: 1\n" {
			t.Errorf("release values %q", values)
		}
		a, _ := os.Stat(b.DumpPath())
		c, _ := os.Stat(got.DumpPath())
		if linked := os.SameFile(a, c); linked != wantLink {
			t.Errorf("dump hard-linked = %v, want %v", linked, wantLink)
		}
	}
	t.Run("same file system", func(t *testing.T) {
		check(t, DirStore{Dir: t.TempDir()}, true)
	})
	t.Run("links refused", func(t *testing.T) {
		linkFile = func(string, string) error { return errors.New("invalid cross-device link") }
		t.Cleanup(func() { linkFile = os.Link })
		check(t, DirStore{Dir: t.TempDir()}, false)
	})
}
