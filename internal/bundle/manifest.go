package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Dump formats.
const (
	FormatCustom = "custom" // pg_dump -Fc, restored with pg_restore
	FormatPlain  = "plain"  // SQL, restored with psql
)

// Files of the release that an upgrade's bundle carries beside the dump: the values given to
// the recorded revision and its rendered manifest (the vendor's "back up your
// customisations"), so that a release whose history was lost can be re-created by hand.
const (
	ReleaseValuesFile   = "release-values.yaml"
	ReleaseManifestFile = "release-manifest.yaml"
)

// DumpFileName returns the name of the dump file of a bundle.
func DumpFileName(format string, encrypted bool) string {
	name := "dump.pgcustom.zst"
	if format == FormatPlain {
		name = "dump.sql.zst"
	}
	if encrypted {
		name += ".age"
	}
	return name
}

// DefaultName returns the default bundle name: <release-or-database>-<UTC yyyymmddThhmmssZ>.
func DefaultName(prefix string, t time.Time) string {
	return prefix + "-" + t.UTC().Format("20060102T150405Z")
}

// ManifestFile is the name of a bundle's manifest; it is written last, so a bundle without it
// is incomplete.
const ManifestFile = "manifest.json"

// ManifestVersion is the manifest format this package writes. It reads format 1 too, whose
// release files were listed by name (release_files), unencrypted and without checksums.
const ManifestVersion = 2

// Manifest describes a bundle: what was dumped, how, and how to check it.
type Manifest struct {
	FormatVersion int       `json:"format_version"`
	CreatedAt     time.Time `json:"created_at"`
	ServerVersion string    `json:"server_version"`
	PgDumpVersion string    `json:"pg_dump_version"`
	Database      string    `json:"database"`
	DumpFormat    string    `json:"dump_format"`
	DumpFile      string    `json:"dump_file"`
	Compression   string    `json:"compression"`
	// Encryption is "age" when every file of the bundle but the manifest (the dump and every
	// part) is encrypted to the backup's recipients, "none" when none is.
	Encryption string `json:"encryption"`
	// SHA256 (hex) and SizeBytes are of the dump file as stored (compressed, encrypted).
	SHA256    string `json:"sha256"`
	SizeBytes int64  `json:"size_bytes"`
	// RowCounts holds the exact row count of every table: counted in the dump as it streamed
	// (or in the dump's own snapshot, for a table whose data the dump does not hold).
	// Tables of the public schema are named bare, others schema.table.
	RowCounts map[string]int64 `json:"row_counts"`
	Schema    ManifestSchema   `json:"schema"`
	// Content is what a later reading compares to tell whether anything was written since
	// the backup (rows, sequences, definitions); absent in bundles made before it existed.
	Content *ContentState `json:"content,omitempty"`
	// Release, Revision and ChartVersion name the Helm release the database belongs to, when
	// the backup is part of an upgrade.
	Release      string `json:"release,omitempty"`
	Revision     int    `json:"revision,omitempty"`
	ChartVersion string `json:"chart_version,omitempty"`
	// Parts are the bundle's other files, beside the dump: the release's values and manifest
	// at Revision, the customizations. Each is checked by its sha256 and size as stored.
	Parts []Part `json:"parts,omitempty"`
	// Customizations is the index of the customizations part, when there is one.
	Customizations *Customizations `json:"customizations,omitempty"`
	// ReleaseFiles names the release files of a format 1 bundle; Open reads them as Parts.
	ReleaseFiles []string `json:"release_files,omitempty"`
}

// Part roles: what a part of a bundle holds.
const (
	PartReleaseValues   = "release-values"   // the values given to the recorded revision (YAML)
	PartReleaseManifest = "release-manifest" // its rendered manifest, Secrets included (YAML)
	PartCustomizations  = "customizations"   // what Keycloak is configured with (tar, zstd)
)

// Part is one file of a bundle beside its dump and manifest.
type Part struct {
	Role string `json:"role"`
	File string `json:"file"`
	// SHA256 (hex) and SizeBytes are of the file as stored (encrypted when the bundle is);
	// a format 1 bundle's release files have none.
	SHA256    string `json:"sha256,omitempty"`
	SizeBytes int64  `json:"size_bytes"`
}

// Part returns the part of the given role.
func (m *Manifest) Part(role string) (Part, bool) {
	for _, p := range m.Parts {
		if p.Role == role {
			return p, true
		}
	}
	return Part{}, false
}

// Files are the names of the bundle's files other than the manifest: the dump, then the
// parts.
func (m *Manifest) Files() []string {
	files := []string{m.DumpFile}
	for _, p := range m.Parts {
		files = append(files, p.File)
	}
	return files
}

// Encrypted reports whether the bundle's files are encrypted (with age).
func (m *Manifest) Encrypted() bool { return m.Encryption == "age" }

// ManifestSchema is SchemaState as stored in the manifest.
type ManifestSchema struct {
	ChangelogRows    int64  `json:"changelog_rows"`
	LatestChangeID   string `json:"latest_change_id"`
	MigrationVersion string `json:"migration_version,omitempty"`
}

// State returns the schema state.
func (s ManifestSchema) State() rollout.SchemaState {
	return rollout.SchemaState{ChangelogRows: s.ChangelogRows, LatestChangeID: s.LatestChangeID, MigrationVersion: s.MigrationVersion}
}

// ContentState is what a backup records, in the dump's own snapshot, so that a later reading
// can tell whether anything was written to the database since: the snapshot's oldest
// transaction, every sequence's value and a fingerprint of the schema's definitions.
type ContentState struct {
	// SnapshotXmin is the snapshot's xmin (64 bits, with the epoch): every transaction from
	// it on was not in the dump, so any row whose xmin is that transaction or a later one was
	// written after the backup (or by a transaction that had not committed at its snapshot).
	SnapshotXmin uint64 `json:"snapshot_xmin"`
	// Sequences are every sequence's last value ("" when never called), by row-count key.
	Sequences map[string]string `json:"sequences"`
	// SchemaDigest is the md5 of the definitions of every relation, column, constraint,
	// index, trigger, routine and type outside the system schemas.
	SchemaDigest string `json:"schema_digest"`
}

// Bundle is a complete backup in a local directory: the dump file and its manifest.
type Bundle struct {
	Dir      string
	Manifest Manifest
}

// PartPath is the path of a part's file.
func (b *Bundle) PartPath(p Part) string { return filepath.Join(b.Dir, p.File) }

// DumpPath is the path of the bundle's dump file.
func (b *Bundle) DumpPath() string { return filepath.Join(b.Dir, b.Manifest.DumpFile) }

// Name is the bundle's name: the base name of its directory.
func (b *Bundle) Name() string { return filepath.Base(b.Dir) }

// ErrRefused marks a bundle that restore will not use: no manifest, an unknown format, a
// checksum mismatch, a missing or wrong key. Nothing was changed when it is returned.
var ErrRefused = errors.New("bundle refused")

// Open reads and checks the manifest of the bundle in dir. It does not read the dump.
func Open(dir string) (*Bundle, error) {
	refuse := func(format string, args ...any) (*Bundle, error) {
		return nil, fmt.Errorf("%w: %s: %s", ErrRefused, dir, fmt.Sprintf(format, args...))
	}
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return refuse("no %s: not a bundle, or an incomplete backup (the manifest is written last)", ManifestFile)
	}
	if err != nil {
		return refuse("%v", err)
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return refuse("%s is not valid JSON: %v", ManifestFile, err)
	}
	switch {
	case m.FormatVersion != 1 && m.FormatVersion != ManifestVersion:
		return refuse("manifest format_version %d is not supported (this version reads 1 and %d): use a newer identity-upgrade", m.FormatVersion, ManifestVersion)
	case m.DumpFormat != FormatCustom && m.DumpFormat != FormatPlain:
		return refuse("dump_format %q is not custom or plain", m.DumpFormat)
	case m.Compression != "zstd":
		return refuse("compression %q is not zstd", m.Compression)
	case m.Encryption != "none" && m.Encryption != "age":
		return refuse("encryption %q is not none or age", m.Encryption)
	case m.DumpFile == "" || m.DumpFile != filepath.Base(m.DumpFile) || strings.HasPrefix(m.DumpFile, "."):
		return refuse("dump_file %q is not a plain file name", m.DumpFile)
	case len(m.SHA256) != 64:
		return refuse("sha256 %q is not a SHA-256 digest", m.SHA256)
	}
	if m.FormatVersion == 1 {
		if len(m.Parts) > 0 {
			return refuse("a format 1 manifest has no parts")
		}
		for _, f := range m.ReleaseFiles {
			role := f
			switch f {
			case ReleaseValuesFile:
				role = PartReleaseValues
			case ReleaseManifestFile:
				role = PartReleaseManifest
			}
			m.Parts = append(m.Parts, Part{Role: role, File: f})
		}
		m.ReleaseFiles = nil
	} else if len(m.ReleaseFiles) > 0 {
		return refuse("release_files belongs to format 1; format %d lists parts", m.FormatVersion)
	}
	files := map[string]bool{m.DumpFile: true, ManifestFile: true}
	roles := map[string]bool{}
	for _, p := range m.Parts {
		switch {
		case p.File == "" || p.File != filepath.Base(p.File) || strings.HasPrefix(p.File, "."):
			return refuse("part file %q is not a plain file name", p.File)
		case files[p.File]:
			return refuse("part file %q is named twice", p.File)
		case p.Role == "" || roles[p.Role]:
			return refuse("part %s has an empty or repeated role %q", p.File, p.Role)
		case m.FormatVersion > 1 && (len(p.SHA256) != 64 || p.SizeBytes < 0):
			return refuse("part %s has sha256 %q and size %d: not a SHA-256 digest and a size", p.File, p.SHA256, p.SizeBytes)
		}
		files[p.File], roles[p.Role] = true, true
	}
	return &Bundle{Dir: dir, Manifest: m}, nil
}

// Encode is the manifest's file content: indented JSON and a newline. A format 1 manifest
// names its release files, as readers of that format expect, rather than listing parts.
func (m Manifest) Encode() ([]byte, error) {
	if m.FormatVersion == 1 {
		for _, p := range m.Parts {
			m.ReleaseFiles = append(m.ReleaseFiles, p.File)
		}
		m.Parts = nil
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// WriteManifest writes the manifest into dir through a temporary file and a rename, so that a
// bundle either has a whole manifest or none.
func WriteManifest(dir string, m Manifest) error {
	data, err := m.Encode()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".manifest-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, ManifestFile)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
