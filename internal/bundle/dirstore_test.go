package bundle

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDirStorePut stores a bundle twice: on the same file system the dump is a hard link of
// the original (no second write), and where links fail it is a full copy; either way the
// stored bundle opens with the same manifest and the same bytes.
func TestDirStorePut(t *testing.T) {
	dump := bytes.Repeat([]byte("dump bytes\n"), 10000)
	b := testBundle(t, "b", dump)
	m := b.Manifest

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

// TestDirStoreCheck checks path:DIR stores the way the preflight does: a writable directory
// (or one that can be created) passes and is left as it was; a directory that cannot be
// created, one where no file can be created (tests run as root, so permission bits would not
// stop a write) and a file where a directory is expected fail, naming the store and the fix.
func TestDirStoreCheck(t *testing.T) {
	t.Run("writable", func(t *testing.T) {
		dir := t.TempDir()
		if err := (DirStore{Dir: dir}).Check(t.Context()); err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("the check left %v", entries)
		}
	})
	t.Run("to be created", func(t *testing.T) {
		parent := t.TempDir()
		if err := (DirStore{Dir: filepath.Join(parent, "a", "b")}).Check(t.Context()); err != nil {
			t.Fatal(err)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			t.Errorf("the check left %v", entries)
		}
	})
	file := filepath.Join(t.TempDir(), "backups")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"/proc/nope", "/proc", file, filepath.Join(file, "sub")} {
		t.Run(dir, func(t *testing.T) {
			err := DirStore{Dir: dir}.Check(t.Context())
			t.Log(err)
			want := fmt.Sprintf("backup-store %q: cannot write in %s: ", "path:"+dir, dir)
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "; give a writable directory") {
				t.Errorf("Check: %v, want %s…; give a writable directory", err, want)
			}
		})
	}
	if data, err := os.ReadFile(file); err != nil || string(data) != "not a directory" {
		t.Errorf("the file in the directory's place changed: %q, %v", data, err)
	}
}

// TestCheckStores reports every unusable store, and only those.
func TestCheckStores(t *testing.T) {
	good := DirStore{Dir: t.TempDir()}
	if err := CheckStores(t.Context(), []Store{good, good}); err != nil {
		t.Fatal(err)
	}
	err := CheckStores(t.Context(), []Store{DirStore{Dir: "/proc/nope"}, good, DirStore{Dir: "/proc/other"}})
	if err == nil || strings.Count(err.Error(), "backup-store") != 2 || !strings.Contains(err.Error(), `"path:/proc/nope"`) ||
		!strings.Contains(err.Error(), `"path:/proc/other"`) || strings.Contains(err.Error(), good.Dir) {
		t.Errorf("CheckStores: %v, want both /proc stores named and not %s", err, good.Dir)
	}
}

// testBundle writes a plaintext bundle called name, with dump as its dump and a values part,
// in a directory of the test's.
func testBundle(t *testing.T, name string, dump []byte) *Bundle {
	t.Helper()
	src := filepath.Join(t.TempDir(), name)
	if err := os.Mkdir(src, 0o700); err != nil {
		t.Fatal(err)
	}
	m := Manifest{FormatVersion: ManifestVersion, DumpFormat: FormatCustom, Compression: "zstd", Encryption: "none",
		DumpFile: DumpFileName(FormatCustom, false), SizeBytes: int64(len(dump)), SHA256: fmt.Sprintf("%x", sha256.Sum256(dump))}
	if err := os.WriteFile(filepath.Join(src, m.DumpFile), dump, 0o600); err != nil {
		t.Fatal(err)
	}
	values, err := WritePart(t.Context(), src, Bytes(PartReleaseValues, ReleaseValuesFile, []byte("a: 1\n")), nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Parts = append(m.Parts, values)
	if err := WriteManifest(src, m); err != nil {
		t.Fatal(err)
	}
	return &Bundle{Dir: src, Manifest: m}
}
