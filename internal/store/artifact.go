package store

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
)

// ArtifactScheme prefixes the locations Artifact returns.
const ArtifactScheme = "artifact:"

// DefaultBlockSize is the size of the blocks Artifact uploads; memory use is about one block.
const DefaultBlockSize = 8 << 20

// ErrArtifactUnavailable marks a run where the GitHub artifact store cannot be used: outside a
// GitHub Actions job, or on GitHub Enterprise Server.
var ErrArtifactUnavailable = errors.New("the GitHub artifact store (v4) is not available")

// Artifact is the GitHub Actions artifact (v4) store: a bundle becomes one artifact, a zip
// holding the dump file, the release files and manifest.json, named after the bundle. It talks
// to the results service the way actions/upload-artifact and actions/download-artifact do, so
// it works only inside a job whose runner gives the action ACTIONS_RUNTIME_TOKEN and
// ACTIONS_RESULTS_URL (container actions get them; run: steps do not), and it reads only the
// artifacts of the current workflow run.
type Artifact struct {
	// Getenv reads ACTIONS_RESULTS_URL, ACTIONS_RUNTIME_TOKEN and GITHUB_SERVER_URL.
	Getenv func(string) string
	// HTTP is the client for every request; nil means http.DefaultClient.
	HTTP *http.Client
	// BlockSize is the size of the uploaded blocks; 0 means DefaultBlockSize.
	BlockSize int
	// TempDir is where Open downloads and unpacks; "" means os.TempDir(). Open leaves the
	// bundle there: removing TempDir removes it.
	TempDir string
	// Attempts bounds the tries of each request (a twirp call, a block, the download) on
	// 429, 5xx and network errors; 0 means 5.
	Attempts int
	// Backoff is the wait before the first retry, doubled for each next one (at most 30 s),
	// unless the server asks for longer with Retry-After; 0 means 1 s.
	Backoff time.Duration
	// RetentionDays is how many days GitHub keeps the artifacts Put makes (1 to 90), sent as
	// their expiry; at most the repository's limit, which the runner gives in
	// GITHUB_RETENTION_DAYS. 0 means the repository's default.
	RetentionDays int
	// RunID, when not 0, is the workflow run whose artifacts Open reads: through the REST API
	// (GITHUB_API_URL, the repository GITHUB_REPOSITORY) with Token, as
	// actions/download-artifact does with run-id. 0 means the current run, through the
	// results service.
	RunID int64
	// Token authenticates the REST API requests of Open with RunID: a token that may read the
	// repository's actions (actions: read).
	Token string
	// Log receives the progress of the upload and the download at Info ("upload progress",
	// "download progress"); nil logs nothing.
	Log *slog.Logger
}

// Available tells whether the artifact store can be used here, with a clear error when not: on
// GitHub Enterprise Server (the v4 artifact service does not exist there; the official toolkit
// refuses it too) or outside a GitHub Actions job.
func Available(getenv func(string) string) error {
	if server := getenv("GITHUB_SERVER_URL"); artifactOnGHES(server) {
		return fmt.Errorf("%w on GitHub Enterprise Server (GITHUB_SERVER_URL %s); use backup-store oci://registry/repo[:tag] or path:DIR",
			ErrArtifactUnavailable, server)
	}
	var missing []string
	for _, k := range []string{"ACTIONS_RUNTIME_TOKEN", "ACTIONS_RESULTS_URL"} {
		if getenv(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w outside a GitHub Actions job: %s not set (the runner gives them to container actions, not to run: steps); use backup-store path:DIR or oci://registry/repo[:tag]",
			ErrArtifactUnavailable, strings.Join(missing, " and "))
	}
	return nil
}

// Check tells whether bundles can be stored as artifacts of this job, without storing one:
// not on GitHub Enterprise Server, and the runner gave the results service's URL and a
// runtime token naming this workflow run and job (Available, then what Put reads of them).
// The service itself is not asked.
func (a Artifact) Check(context.Context) error {
	if _, err := a.session(); err != nil {
		return fmt.Errorf("backup-store %q: %w", "artifact", err)
	}
	return nil
}

// artifactOnGHES follows the official toolkit: github.com, *.ghe.com (GHE.com data residency) and
// *.localhost are not GitHub Enterprise Server; an unset GITHUB_SERVER_URL means github.com.
func artifactOnGHES(serverURL string) bool {
	if serverURL == "" {
		return false
	}
	u, err := url.Parse(strings.TrimSpace(serverURL))
	if err != nil || u.Hostname() == "" {
		return true
	}
	host := strings.ToLower(u.Hostname())
	return host != "github.com" && !strings.HasSuffix(host, ".ghe.com") && !strings.HasSuffix(host, ".localhost")
}

// artifactNameChars are the characters GitHub refuses in artifact names.
const artifactNameChars = "\":<>|*?\\/\r\n"

func checkArtifactName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("artifact name %q is empty", name)
	case strings.ContainsAny(name, artifactNameChars):
		return fmt.Errorf("artifact name %q has one of the characters GitHub refuses: \" : < > | * ? \\ / CR LF", name)
	}
	return nil
}

// Put uploads the bundle as the artifact named after it (the bundle's name, never a secret) and
// returns "artifact:<name>". The zip is written while it is uploaded, block by block: nothing
// larger than a block is held in memory.
func (a Artifact) Put(ctx context.Context, b *bundle.Bundle) (string, error) {
	p, err := a.Place(ctx, b)
	return p.Location, err
}

// Place is Put, and also tells the artifact's id (from the service's answer to
// FinalizeArtifact) and the URL of the artifact on the workflow run's page,
// GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/GITHUB_RUN_ID/artifacts/<id> (empty when
// the runner did not give those variables).
func (a Artifact) Place(ctx context.Context, b *bundle.Bundle) (bundle.Placement, error) {
	name := b.Name()
	id, err := a.put(ctx, b, name)
	if err != nil {
		return bundle.Placement{}, fmt.Errorf("store bundle %s as a GitHub artifact: %w", name, err)
	}
	return bundle.Placement{Location: ArtifactScheme + name, ArtifactID: id, ArtifactURL: a.artifactURL(id)}, nil
}

func (a Artifact) put(ctx context.Context, b *bundle.Bundle, name string) (int64, error) {
	if err := checkArtifactName(name); err != nil {
		return 0, err
	}
	s, err := a.session()
	if err != nil {
		return 0, err
	}
	entries, err := artifactEntries(ctx, b)
	if err != nil {
		return 0, err
	}
	uploadURL, err := s.createArtifact(ctx, name, a.expiresAt(time.Now()))
	if err != nil {
		return 0, err
	}
	size, sum, err := a.upload(ctx, uploadURL, func(w io.Writer) error { return artifactWriteZip(ctx, w, entries) })
	if err != nil {
		return 0, err
	}
	return s.finalizeArtifact(ctx, name, size, sum)
}

// expiresAt is when an artifact uploaded now expires: RetentionDays from now, at most the
// repository's limit (GITHUB_RETENTION_DAYS), as the official toolkit computes it; the zero
// time when RetentionDays is 0 (the service applies the repository's default).
func (a Artifact) expiresAt(now time.Time) time.Time {
	days := a.RetentionDays
	if days <= 0 {
		return time.Time{}
	}
	if limit, err := strconv.Atoi(strings.TrimSpace(a.getenv("GITHUB_RETENTION_DAYS"))); err == nil && limit > 0 && limit < days {
		days = limit
	}
	return now.AddDate(0, 0, days)
}

// artifactURL is the page of artifact id in this workflow run, or "" when it cannot be told.
func (a Artifact) artifactURL(id int64) string {
	server := strings.TrimRight(strings.TrimSpace(a.getenv("GITHUB_SERVER_URL")), "/")
	if server == "" {
		server = "https://github.com"
	}
	repo, run := strings.TrimSpace(a.getenv("GITHUB_REPOSITORY")), strings.TrimSpace(a.getenv("GITHUB_RUN_ID"))
	if id <= 0 || repo == "" || run == "" {
		return ""
	}
	return fmt.Sprintf("%s/%s/actions/runs/%s/artifacts/%d", server, repo, run, id)
}

func (a Artifact) getenv(k string) string {
	if a.Getenv == nil {
		return os.Getenv(k)
	}
	return a.Getenv(k)
}

// Open downloads the artifact at location ("artifact:<name>" or a bare name) from the current
// workflow run, or from run RunID when it is set, and unpacks it into a new directory
// TempDir/artifact-*/<name>, then opens it as a bundle (its manifest checked, its dump not
// yet; the dump's size is checked).
func (a Artifact) Open(ctx context.Context, location string) (*bundle.Bundle, error) {
	name := strings.TrimPrefix(location, ArtifactScheme)
	b, err := a.open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("open GitHub artifact %s: %w", name, err)
	}
	return b, nil
}

func (a Artifact) open(ctx context.Context, name string) (*bundle.Bundle, error) {
	if err := checkArtifactName(name); err != nil {
		return nil, err
	}
	if a.RunID != 0 {
		return a.openFromRun(ctx, name)
	}
	s, err := a.session()
	if err != nil {
		return nil, err
	}
	if err := s.findArtifact(ctx, name); err != nil {
		return nil, err
	}
	signed, err := s.signedArtifactURL(ctx, name)
	if err != nil {
		return nil, err
	}
	parent, err := os.MkdirTemp(a.TempDir, "artifact-")
	if err != nil {
		return nil, err
	}
	b, err := a.downloadBundle(ctx, signed, parent, name, "")
	if err != nil {
		os.RemoveAll(parent)
		return nil, err
	}
	return b, nil
}

// downloadBundle downloads the zip at signed into parent and unpacks it into parent/name. A
// digest ("sha256:<hex>", as the REST API lists it) is checked against the zip; "" checks
// nothing.
func (a Artifact) downloadBundle(ctx context.Context, signed, parent, name, digest string) (*bundle.Bundle, error) {
	zf, err := os.CreateTemp(parent, ".download-*.zip")
	if err != nil {
		return nil, err
	}
	defer func() {
		zf.Close()
		os.Remove(zf.Name())
	}()
	size, err := a.download(ctx, signed, zf)
	if err != nil {
		return nil, err
	}
	if err := artifactCheckDigest(ctx, zf, digest); err != nil {
		return nil, err
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	if err := artifactUnzip(ctx, zf, size, dir); err != nil {
		return nil, err
	}
	b, err := bundle.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := artifactCheckFiles(b); err != nil {
		return nil, err
	}
	return b, nil
}

// artifactEntry is one file of the artifact's zip.
type artifactEntry struct {
	name string
	path string // the file to copy, or
	data []byte // the content itself
	size int64
	crc  uint32
	mod  time.Time
}

// artifactEntries lists the bundle's files, the manifest last, with their sizes and CRC-32s: the
// zip then has no data descriptors, so tools that unzip while they download (as
// actions/download-artifact does) can read its stored entries.
func artifactEntries(ctx context.Context, b *bundle.Bundle) ([]artifactEntry, error) {
	names := b.Manifest.Files()
	var entries []artifactEntry
	for _, n := range names {
		e := artifactEntry{name: n, path: filepath.Join(b.Dir, n)}
		f, err := os.Open(e.path)
		if err != nil {
			return nil, err
		}
		fi, err := f.Stat()
		if err == nil && !fi.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", e.path)
		}
		if err == nil {
			h := crc32.NewIEEE()
			e.size, err = io.Copy(h, bundle.ContextReader(ctx, f))
			e.crc, e.mod = h.Sum32(), fi.ModTime()
		}
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.path, err)
		}
		entries = append(entries, e)
	}
	m, err := b.Manifest.Encode()
	if err != nil {
		return nil, err
	}
	return append(entries, artifactEntry{name: bundle.ManifestFile, data: m, size: int64(len(m)), crc: crc32.ChecksumIEEE(m), mod: time.Now()}), nil
}

// artifactWriteZip writes the entries stored (the dump is already compressed and maybe encrypted:
// compressing again gains nothing).
func artifactWriteZip(ctx context.Context, w io.Writer, entries []artifactEntry) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		if err := artifactWriteEntry(ctx, zw, e); err != nil {
			return err
		}
	}
	return zw.Close()
}

func artifactWriteEntry(ctx context.Context, zw *zip.Writer, e artifactEntry) error {
	fh := &zip.FileHeader{Name: e.name, Method: zip.Store, Modified: e.mod}
	fh.SetMode(0o600)
	var (
		fw  io.Writer
		err error
	)
	if e.size < 1<<32-1 {
		// Sizes and CRC in the local header: no data descriptor.
		fh.CRC32, fh.CompressedSize64, fh.UncompressedSize64 = e.crc, uint64(e.size), uint64(e.size)
		fw, err = zw.CreateRaw(fh)
	} else {
		// Zip64: archive/zip writes the sizes in a data descriptor.
		fw, err = zw.CreateHeader(fh)
	}
	if err != nil {
		return err
	}
	var r io.Reader
	if e.data != nil {
		r = strings.NewReader(string(e.data))
	} else {
		f, err := os.Open(e.path)
		if err != nil {
			return err
		}
		defer f.Close()
		r = bundle.ContextReader(ctx, f)
	}
	h := crc32.NewIEEE()
	n, err := io.Copy(io.MultiWriter(fw, h), io.LimitReader(r, e.size+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", e.name, err)
	}
	if n != e.size || h.Sum32() != e.crc {
		return fmt.Errorf("%s changed while it was being stored", e.name)
	}
	return nil
}

// artifactUnzip unpacks the zip into dir. Only plain file names are accepted: no directories, no
// path separators, no dot files, no duplicates, nothing but regular files.
func artifactUnzip(ctx context.Context, r io.ReaderAt, size int64, dir string) error {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return fmt.Errorf("the artifact is not a zip: %w", err)
	}
	seen := map[string]bool{}
	for _, f := range zr.File {
		n := f.Name
		if n == "" || strings.ContainsAny(n, `/\:`) || strings.HasPrefix(n, ".") || n != filepath.Base(n) ||
			!f.Mode().IsRegular() || seen[n] {
			return fmt.Errorf("the artifact holds %q, which is not a plain file name of a bundle", n)
		}
		seen[n] = true
		if err := artifactUnzipFile(ctx, f, filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("unpack %s: %w", n, err)
		}
	}
	return nil
}

func artifactUnzipFile(ctx context.Context, f *zip.File, dst string) error {
	rc, err := f.Open()
	if err != nil {
		return err
	}
	defer rc.Close()
	// archive/zip checks the size and the CRC-32 at the end of the entry.
	return bundle.WriteFile(ctx, dst, rc)
}

// artifactCheckFiles checks that the files the manifest names came with it.
func artifactCheckFiles(b *bundle.Bundle) error {
	fi, err := os.Stat(b.DumpPath())
	if err != nil {
		return fmt.Errorf("%w: the artifact has no dump file %s", bundle.ErrRefused, b.Manifest.DumpFile)
	}
	if fi.Size() != b.Manifest.SizeBytes {
		return fmt.Errorf("%w: dump file %s has %d bytes, the manifest says %d", bundle.ErrRefused, b.Manifest.DumpFile, fi.Size(), b.Manifest.SizeBytes)
	}
	for _, p := range b.Manifest.Parts {
		if err := b.CheckPart(p); err != nil {
			return fmt.Errorf("%w: the artifact's %w", bundle.ErrRefused, err)
		}
	}
	return nil
}
