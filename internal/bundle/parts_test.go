package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// plainBundle writes a plaintext bundle with a dump and the two release parts.
func plainBundle(t *testing.T, values string) *Bundle {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "identity-r3-20260101T000000Z")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	dump := bytes.Repeat([]byte("rows\n"), 1000)
	m := Manifest{FormatVersion: ManifestVersion, DumpFormat: FormatCustom, Compression: "zstd", Encryption: "none",
		DumpFile: DumpFileName(FormatCustom, false), SizeBytes: int64(len(dump)), SHA256: fmt.Sprintf("%x", sha256.Sum256(dump))}
	if err := os.WriteFile(filepath.Join(dir, m.DumpFile), dump, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, src := range []Source{
		Bytes(PartReleaseValues, ReleaseValuesFile, []byte(values)),
		Bytes(PartReleaseManifest, ReleaseManifestFile, []byte("kind: Secret\ndata:\n  password: "+b64(values)+"\n")),
	} {
		p, err := WritePart(t.Context(), dir, src, nil)
		if err != nil {
			t.Fatal(err)
		}
		m.Parts = append(m.Parts, p)
	}
	if err := WriteManifest(dir, m); err != nil {
		t.Fatal(err)
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// The encrypted copy encrypts every file, each part checked on the way in and out; the
// identity opens each part, a damaged part or a missing or wrong identity is refused.
func TestEncryptedCopyEveryFile(t *testing.T) {
	const secret = "password: hunter2-Secret"
	b := plainBundle(t, secret)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	enc, err := EncryptedCopy(t.Context(), b, filepath.Join(t.TempDir(), b.Name()), []string{id.Recipient().String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(enc.Dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		data, err := os.ReadFile(filepath.Join(enc.Dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() != ManifestFile && !strings.HasSuffix(e.Name(), ".age") {
			t.Errorf("%s is stored unencrypted", e.Name())
		}
		for _, s := range []string{secret, b64(secret)} {
			if bytes.Contains(data, []byte(s)) {
				t.Errorf("%s shows %q", e.Name(), s)
			}
		}
	}
	if want := "dump.pgcustom.zst.age manifest.json release-manifest.yaml.age release-values.yaml.age"; strings.Join(names, " ") != want {
		t.Errorf("encrypted bundle holds %v, want %s", names, want)
	}
	reopened, err := Open(enc.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reopened.Manifest.Encrypted() || len(reopened.Manifest.Parts) != 2 {
		t.Fatalf("manifest %+v", reopened.Manifest)
	}
	read := func(ids ...age.Identity) (string, error) {
		rc, err := reopened.OpenPart(PartReleaseValues, ids)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		return string(data), err
	}
	if got, err := read(id); err != nil || got != secret {
		t.Errorf("OpenPart with the identity = %q, %v; want %q", got, err, secret)
	}
	if _, err := read(); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "backup-identity") {
		t.Errorf("OpenPart without an identity = %v, want a refusal naming backup-identity", err)
	}
	other, _ := age.GenerateX25519Identity()
	if _, err := read(other); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "other recipients") {
		t.Errorf("OpenPart with another identity = %v, want a refusal", err)
	}
	if _, err := reopened.OpenPart(PartCustomizations, []age.Identity{id}); !errors.Is(err, ErrNoPart) {
		t.Errorf("OpenPart of a missing part = %v, want ErrNoPart", err)
	}
	p, _ := reopened.Manifest.Part(PartReleaseValues)
	f, err := os.OpenFile(reopened.PartPath(p), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("x"))
	f.Close()
	if _, err := read(id); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("OpenPart of a damaged part = %v, want a refusal", err)
	}
	if _, err := EncryptedCopy(t.Context(), reopened, filepath.Join(t.TempDir(), "again"), []string{id.Recipient().String()}, nil); err == nil {
		t.Error("EncryptedCopy of an encrypted bundle succeeded")
	}
}

// A format 1 bundle (release files by name, no checksums) still opens, its release files as
// parts, and is written back as format 1; format 2 refuses what belongs to format 1, and a
// newer format is refused naming the fix.
func TestManifestFormats(t *testing.T) {
	b := plainBundle(t, "a: 1\n")
	v1 := b.Manifest
	v1.FormatVersion = 1
	if err := WriteManifest(b.Dir, v1); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(b.Dir, ManifestFile))
	if !strings.Contains(string(raw), `"release_files": [`) || strings.Contains(string(raw), `"parts"`) {
		t.Errorf("format 1 manifest written as\n%s", raw)
	}
	opened, err := Open(b.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := opened.Manifest.Part(PartReleaseManifest); !ok || p.File != ReleaseManifestFile || opened.Manifest.ReleaseFiles != nil {
		t.Errorf("format 1 parts %+v, release files %v", opened.Manifest.Parts, opened.Manifest.ReleaseFiles)
	}
	if err := opened.CheckPart(opened.Manifest.Parts[0]); err != nil {
		t.Errorf("CheckPart of a format 1 part: %v", err)
	}

	for name, edit := range map[string]func(m string) string{
		"release_files in format 2": func(m string) string {
			return strings.Replace(m, `"format_version": 1`, `"format_version": 2`, 1)
		},
		"format 3": func(m string) string {
			return strings.Replace(m, `"format_version": 1`, `"format_version": 3`, 1)
		},
	} {
		if err := os.WriteFile(filepath.Join(b.Dir, ManifestFile), []byte(edit(string(raw))), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(b.Dir)
		t.Logf("%s: %v", name, err)
		if !errors.Is(err, ErrRefused) {
			t.Errorf("%s: Open = %v, want a refusal", name, err)
		}
	}
	m := b.Manifest
	m.Parts = append(m.Parts, Part{Role: PartCustomizations, File: "../customizations.tar.zst", SHA256: strings.Repeat("0", 64)})
	if err := WriteManifest(b.Dir, m); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(b.Dir); !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "not a plain file name") {
		t.Errorf("a part outside the bundle: Open = %v, want a refusal", err)
	}
}
