package bundle

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// A collected directory packs and unpacks byte for byte, modes and times kept, its index in
// the manifest and not among the files; what is not a file is said, not packed.
func TestCustomizationsRoundTrip(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{
		"themes/acme/login/theme.properties":           "parent=keycloak\n",
		"themes/acme/login/resources/img/logo.png":     "\x89PNG\r\n\x1a\n\x00binary",
		"kubernetes/secrets/identity-realm.yaml":       "kind: Secret\n",
		"standalone/deployments/acme-provider.jar":     "PK\x03\x04 jar",
		"standalone/configuration/standalone.xml":      "<server/>\n",
		"realm-exports/alfresco.json":                  "{}",
		"modules/org/postgresql/main/module.xml":       "<module/>",
		"themes/acme/login/resources/css/login.css":    "body{}",
		"themes/acme/email/messages/messages_en.props": "x=y",
	}
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for p, content := range files {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(full, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "standalone/deployments/acme-provider.jar"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "themes", "acme", "link")); err != nil {
		t.Fatal(err)
	}
	idx := Customizations{Source: SourceHome, Items: []CustomizationItem{{Kind: ItemTheme, Name: "acme", Path: "themes/acme"}}}
	if err := WriteCustomizationsIndex(src, idx); err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(t.TempDir(), CustomizationsFile)
	got, err := PackCustomizations(t.Context(), src, part)
	if err != nil {
		t.Fatal(err)
	}
	if got.Files != len(files) || got.Source != SourceHome || len(got.Items) != 1 || len(got.Notes) != 1 || !strings.Contains(got.Notes[0], "themes/acme/link left out") {
		t.Errorf("index %+v", got)
	}

	dst := filepath.Join(t.TempDir(), "out")
	f, err := os.Open(part)
	if err != nil {
		t.Fatal(err)
	}
	n, err := UnpackCustomizations(t.Context(), f, dst)
	f.Close()
	if err != nil || n != len(files) {
		t.Fatalf("Unpack = %d, %v; want %d files", n, err, len(files))
	}
	count := 0
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		count++
		rel, _ := filepath.Rel(dst, p)
		want, ok := files[filepath.ToSlash(rel)]
		data, _ := os.ReadFile(p)
		fi, _ := d.Info()
		switch {
		case !ok:
			t.Errorf("unpacked %s, which was not packed", rel)
		case string(data) != want:
			t.Errorf("%s = %q, want %q", rel, data, want)
		case !fi.ModTime().Equal(mtime):
			t.Errorf("%s has time %s, want %s", rel, fi.ModTime(), mtime)
		}
		return nil
	})
	if count != len(files) {
		t.Errorf("unpacked %d files, want %d", count, len(files))
	}
	if fi, err := os.Stat(filepath.Join(dst, "standalone/deployments/acme-provider.jar")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("the jar's mode: %v, %v", fi, err)
	}

	// Into a directory that holds something: refused, nothing written.
	f, _ = os.Open(part)
	defer f.Close()
	if _, err := UnpackCustomizations(t.Context(), f, dst); !errors.Is(err, ErrNotEmpty) {
		t.Errorf("Unpack into a full directory = %v, want ErrNotEmpty", err)
	}
}

// A part whose tar names a path outside customizations/ or above it is refused.
func TestUnpackCustomizationsRefusesEscapes(t *testing.T) {
	for _, name := range []string{"customizations/../../etc/passwd", "etc/passwd", "/customizations/x", "customizations/a/../../x"} {
		var buf bytes.Buffer
		zw, _ := zstd.NewWriter(&buf)
		tw := tar.NewWriter(zw)
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: 1})
		tw.Write([]byte("x"))
		tw.Close()
		zw.Close()
		dir := filepath.Join(t.TempDir(), "out")
		if _, err := UnpackCustomizations(t.Context(), &buf, dir); err == nil || !strings.Contains(err.Error(), "not a path below") {
			t.Errorf("%s: Unpack = %v, want a refusal", name, err)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "etc")); err == nil {
			t.Errorf("%s: written outside the directory", name)
		}
	}
}
