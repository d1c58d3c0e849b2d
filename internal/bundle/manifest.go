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

// ManifestVersion is the manifest format this package writes and reads.
const ManifestVersion = 1

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
	Encryption    string    `json:"encryption"`
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
	// ReleaseFiles are files of the release kept beside the dump (its values and manifest at
	// Revision), by name.
	ReleaseFiles []string `json:"release_files,omitempty"`
}

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
	case m.FormatVersion != ManifestVersion:
		return refuse("manifest format_version %d is not supported (this version reads %d)", m.FormatVersion, ManifestVersion)
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
	for _, f := range m.ReleaseFiles {
		if f == "" || f != filepath.Base(f) || strings.HasPrefix(f, ".") || f == m.DumpFile || f == ManifestFile {
			return refuse("release file %q is not a plain file name", f)
		}
	}
	return &Bundle{Dir: dir, Manifest: m}, nil
}

// WriteManifest writes the manifest into dir through a temporary file and a rename, so that a
// bundle either has a whole manifest or none.
func WriteManifest(dir string, m Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".manifest-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
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
