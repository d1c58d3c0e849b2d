package bundle

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestDirStoreCopyProgress: a dump that a path store copies (a link is refused) logs the
// copy's last line; a linked one logs nothing.
func TestDirStoreCopyProgress(t *testing.T) {
	src := filepath.Join(t.TempDir(), "b")
	if err := os.Mkdir(src, 0o700); err != nil {
		t.Fatal(err)
	}
	dump := bytes.Repeat([]byte("dump bytes\n"), 100000)
	m := Manifest{FormatVersion: ManifestVersion, DumpFormat: FormatCustom, Compression: "zstd", Encryption: "none",
		DumpFile: DumpFileName(FormatCustom, false), SizeBytes: int64(len(dump)), SHA256: fmt.Sprintf("%x", sha256.Sum256(dump))}
	if err := os.WriteFile(filepath.Join(src, m.DumpFile), dump, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteManifest(src, m); err != nil {
		t.Fatal(err)
	}
	b := &Bundle{Dir: src, Manifest: m}

	var buf bytes.Buffer // Put's meter has stopped when Put returns
	store := DirStore{Dir: t.TempDir(), Log: slog.New(slog.NewTextHandler(&buf, nil))}
	if _, err := store.Put(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Errorf("a linked dump logged %q", buf.String())
	}

	linkFile = func(string, string) error { return errors.New("invalid cross-device link") }
	t.Cleanup(func() { linkFile = os.Link })
	store.Dir = t.TempDir()
	if _, err := store.Put(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^time=\S+ level=INFO msg="copy progress" store=path file=\S+/b/dump\.pgcustom\.zst bytes=1\.0MiB of=1\.0MiB percent=100 rate=\S+/s elapsed=\S+ done=true\n$`)
	if !want.MatchString(buf.String()) {
		t.Errorf("copy progress %q, want a match of %s", buf.String(), want)
	}
}
