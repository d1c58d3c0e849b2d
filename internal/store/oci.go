package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/progress"
)

// OCIScheme prefixes the oci:// entries of backup-store and the locations OCI returns.
const OCIScheme = "oci://"

// Media types of a backup stored as an OCI 1.1 artifact: an image manifest with the artifact
// type, the empty config, and one layer per bundle file, titled with the file's name.
const (
	OCIArtifactType = "application/vnd.identity-upgrade.backup.v1"
	// OCIDumpMediaType is the dump's media type before its suffixes: +zstd for the
	// compression, then +age when it is encrypted (as in ocicrypt's "+gzip+encrypted").
	OCIDumpMediaType     = "application/vnd.identity-upgrade.backup.dump.v1"
	OCIManifestMediaType = "application/vnd.identity-upgrade.backup.manifest.v1+json"
	OCIReleaseMediaType  = "application/vnd.identity-upgrade.backup.release.v1"
	// OCICustomizationsMediaType is the customizations part's, a tar compressed with zstd.
	OCICustomizationsMediaType = "application/vnd.identity-upgrade.backup.customizations.v1.tar+zstd"

	ociEmptyMediaType = "application/vnd.oci.empty.v1+json"
	// ociAnnotationTitle names a layer's file (as oras and the OCI image spec use it).
	ociAnnotationTitle   = "org.opencontainers.image.title"
	ociAnnotationCreated = "org.opencontainers.image.created"
	// OCIAnnotationPrefix prefixes the artifact's annotations about the backup.
	OCIAnnotationPrefix = "io.github.identity-upgrade.backup."
)

// ociEmptyConfig is the OCI empty descriptor's content.
var ociEmptyConfig = []byte("{}")

// OCI is the oci://registry/repo[:tag] store: each bundle is one artifact in the repository.
type OCI struct {
	// Ref is the backup-store entry without "oci://": registry/repo[:tag]. Without a tag the
	// bundle's name is the tag.
	Ref string
	// Username and Password (registry-username, registry-password) authenticate to the
	// registry; when both are empty the machine's docker credentials are used
	// (authn.DefaultKeychain).
	Username, Password string
	// TempDir is where Open unpacks a pulled bundle; the caller removes it. Empty means the
	// system's temporary directory.
	TempDir string
	// Insecure allows plain HTTP. It is implied for loopback registries (127.0.0.1, localhost,
	// [::1]); any other registry is spoken to over HTTPS only.
	Insecure bool
	// Log receives the progress of the dump's layer pushed or pulled at Info ("upload
	// progress", "download progress"); nil logs nothing.
	Log *slog.Logger
}

// Put pushes the bundle as an artifact and returns its location,
// oci://registry/repo:tag@sha256:<manifest digest>. The dump is streamed from its file; its
// digest and size are those of the bundle's manifest, and the registry checks them on upload.
func (o OCI) Put(ctx context.Context, b *bundle.Bundle) (string, error) {
	tag, err := o.tag(b.Name())
	if err != nil {
		return "", err
	}
	art, err := newOCIArtifact(b, func() *progress.Meter {
		return progress.Start(ctx, o.Log, "upload progress", progress.Options{
			Total: b.Manifest.SizeBytes, Attrs: []any{"store", "oci", "ref", tag.String()},
		})
	})
	if err != nil {
		return "", fmt.Errorf("push backup %s to %s: %w", b.Name(), tag, err)
	}
	img, err := partial.CompressedToImage(art)
	if err != nil {
		return "", fmt.Errorf("push backup %s to %s: %w", b.Name(), tag, err)
	}
	if err := remote.Write(tag, img, o.remoteOptions(ctx, tag.Registry)...); err != nil {
		return "", fmt.Errorf("push backup %s to %s: %w", b.Name(), tag, ociExplain(err))
	}
	return OCIScheme + tag.Name() + "@" + art.digest.String(), nil
}

// Check tells whether bundles can be pushed to the repository now, without pushing one: the
// registry answers, and the credentials Put would use may push to the repository (as
// remote.CheckPushPermission finds out: a blob upload started, then cancelled).
func (o OCI) Check(ctx context.Context) error {
	tag, err := o.tag("check")
	if err != nil {
		return err
	}
	t := transport.NewUserAgent(transport.NewRetry(ociContextTransport{ctx: ctx, base: o.transport(tag.Registry)}), "identity-upgrade")
	if err := remote.CheckPushPermission(tag, o.keychain(), t); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return fmt.Errorf("backup-store %q: cannot push to %s: %w", OCIScheme+strings.TrimPrefix(o.Ref, OCIScheme), tag.Context(), ociExplain(err))
	}
	return nil
}

// Open pulls the artifact at location (oci://registry/repo:tag, …@sha256:…, or both, when
// the digest wins) into a new directory under TempDir and opens it as a bundle: its manifest
// is checked and every file's digest was verified while it was copied.
func (o OCI) Open(ctx context.Context, location string) (*bundle.Bundle, error) {
	ref, err := o.parseLocation(location)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(ref, o.remoteOptions(ctx, ref.Context().Registry)...)
	if err != nil {
		err = ociExplain(err)
		if ociStatus(err) == http.StatusNotFound {
			err = fmt.Errorf("%w: no backup at %s: %w", bundle.ErrRefused, ref, err)
		}
		return nil, fmt.Errorf("pull backup %s: %w", ref, err)
	}
	b, err := o.pull(ctx, ref, img)
	if err != nil {
		return nil, fmt.Errorf("pull backup %s: %w", ref, err)
	}
	return b, nil
}

func (o OCI) pull(ctx context.Context, ref name.Reference, img v1.Image) (*bundle.Bundle, error) {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", bundle.ErrRefused, fmt.Sprintf(format, args...))
	}
	m, err := img.Manifest()
	if err != nil {
		return nil, ociExplain(err)
	}
	if m.ArtifactType != OCIArtifactType {
		return nil, refuse("artifact type %q is not %s: not a backup", m.ArtifactType, OCIArtifactType)
	}
	files := map[string]v1.Descriptor{}
	for _, l := range m.Layers {
		title := l.Annotations[ociAnnotationTitle]
		switch {
		case !ociPlainName(title):
			return nil, refuse("layer %s has title %q, not a plain file name", l.Digest, title)
		case len(l.URLs) > 0:
			return nil, refuse("layer %s (%s) points to other places", l.Digest, title)
		case l.Digest.Algorithm != "sha256":
			return nil, refuse("layer %s (%s) is not addressed by sha256", l.Digest, title)
		}
		if _, dup := files[title]; dup {
			return nil, refuse("two layers are titled %q", title)
		}
		files[title] = l
	}
	if _, ok := files[bundle.ManifestFile]; !ok {
		return nil, refuse("no layer titled %s", bundle.ManifestFile)
	}

	dir, err := ociMkdir(o.TempDir, ociBundleName(ref, m.Annotations))
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(dir)
		}
	}()
	// The manifest comes last, as in every bundle directory: without it the bundle is
	// incomplete.
	for title, l := range files {
		if title != bundle.ManifestFile {
			if err := ociDownload(ctx, img, l, filepath.Join(dir, title), o.Log); err != nil {
				return nil, err
			}
		}
	}
	if err := ociDownload(ctx, img, files[bundle.ManifestFile], filepath.Join(dir, bundle.ManifestFile), nil); err != nil {
		return nil, err
	}
	b, err := bundle.Open(dir)
	if err != nil {
		return nil, err
	}
	dump, found := files[b.Manifest.DumpFile]
	switch {
	case !found:
		return nil, refuse("the artifact has no layer titled %s, the dump file of its manifest", b.Manifest.DumpFile)
	case dump.Digest.Hex != b.Manifest.SHA256 || dump.Size != b.Manifest.SizeBytes:
		return nil, refuse("the dump layer is %s (%d bytes), the manifest says sha256:%s (%d bytes)",
			dump.Digest, dump.Size, b.Manifest.SHA256, b.Manifest.SizeBytes)
	}
	for _, p := range b.Manifest.Parts {
		l, found := files[p.File]
		switch {
		case !found:
			return nil, refuse("the artifact has no layer titled %s, the %s part of its manifest", p.File, p.Role)
		case p.SHA256 != "" && (l.Digest.Hex != p.SHA256 || l.Size != p.SizeBytes):
			return nil, refuse("the %s layer is %s (%d bytes), the manifest says sha256:%s (%d bytes)", p.Role, l.Digest, l.Size, p.SHA256, p.SizeBytes)
		}
	}
	ok = true
	return b, nil
}

// ociDownload streams one layer into a new file; the reader of remote checks the size and the
// digest, and fails at the end of a blob that does not match. log receives the progress of a
// dump's layer.
func ociDownload(ctx context.Context, img v1.Image, d v1.Descriptor, path string, log *slog.Logger) error {
	l, err := img.LayerByDigest(d.Digest)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), ociExplain(err))
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(string(d.MediaType), OCIDumpMediaType) {
		log = nil
	}
	meter := progress.Start(ctx, log, "download progress", progress.Options{
		Total: d.Size, Attrs: []any{"store", "oci", "file", filepath.Base(path)},
	})
	defer meter.Stop()
	n, err := io.Copy(f, bundle.ContextReader(ctx, meter.Reader(rc)))
	if err == nil && n != d.Size {
		err = fmt.Errorf("%w: got %d bytes, the artifact says %d", bundle.ErrRefused, n, d.Size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	return nil
}

// ociMkdir makes dir/<name>, or dir/<name>-<random> when that exists.
func ociMkdir(dir, name string) (string, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	p := filepath.Join(dir, name)
	err := os.Mkdir(p, 0o700)
	if err == nil {
		return p, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return "", err
	}
	return os.MkdirTemp(dir, name+"-")
}

// ociBundleName is the pulled bundle's directory name: the name it was pushed with, else the
// tag, else "backup".
func ociBundleName(ref name.Reference, annotations map[string]string) string {
	if n := annotations[OCIAnnotationPrefix+"name"]; ociPlainName(n) {
		return n
	}
	if t, ok := ref.(name.Tag); ok && ociPlainName(t.TagStr()) {
		return t.TagStr()
	}
	return "backup"
}

func ociPlainName(s string) bool {
	return s != "" && s == filepath.Base(s) && !strings.HasPrefix(s, ".") && !strings.ContainsAny(s, `/\`)
}

// tag is the reference Put pushes bundleName to.
func (o OCI) tag(bundleName string) (name.Tag, error) {
	ref := strings.TrimPrefix(o.Ref, OCIScheme)
	opts := o.nameOptions(ref)
	if strings.Contains(ref, "@") {
		return name.Tag{}, fmt.Errorf("backup store %s%s: a store takes a tag, not a digest", OCIScheme, ref)
	}
	if repo, err := name.NewRepository(ref, opts...); err == nil {
		return repo.Tag(ociTag(bundleName)), nil
	}
	t, err := name.NewTag(ref, append(opts, name.StrictValidation)...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("backup store %s%s: %w", OCIScheme, ref, err)
	}
	return t, nil
}

// parseLocation reads a location Put returned, or one with only a tag or only a digest.
func (o OCI) parseLocation(location string) (name.Reference, error) {
	s := strings.TrimPrefix(location, OCIScheme)
	opts := o.nameOptions(s)
	if strings.Contains(s, "@") {
		d, err := name.NewDigest(s, opts...)
		if err != nil {
			return nil, fmt.Errorf("backup location %s: %w", location, err)
		}
		return d, nil
	}
	if _, err := name.NewRepository(s, opts...); err == nil {
		return nil, fmt.Errorf("backup location %s names a repository, not a backup: add :tag or @sha256:digest", location)
	}
	t, err := name.NewTag(s, append(opts, name.StrictValidation)...)
	if err != nil {
		return nil, fmt.Errorf("backup location %s: %w", location, err)
	}
	return t, nil
}

func (o OCI) nameOptions(ref string) []name.Option {
	if o.allowHTTP(strings.SplitN(ref, "/", 2)[0]) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// allowHTTP tells whether plain HTTP may be used with a registry host[:port].
func (o OCI) allowHTTP(registry string) bool { return o.Insecure || ociLoopback(registry) }

// ociLoopback tells whether a registry host[:port] is this machine.
func ociLoopback(registry string) bool {
	host := registry
	if h, _, err := net.SplitHostPort(registry); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (o OCI) remoteOptions(ctx context.Context, reg name.Registry) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithUserAgent("identity-upgrade"),
		remote.WithTransport(o.transport(reg)),
		remote.WithAuthFromKeychain(o.keychain()),
	}
}

// transport is the store's transport to reg: go-containerregistry falls back to plain HTTP
// for private (RFC 1918) addresses too; a backup and its credentials go there only when asked.
func (o OCI) transport(reg name.Registry) http.RoundTripper {
	return ociTransport{base: remote.DefaultTransport, allowHTTP: o.allowHTTP(reg.RegistryStr())}
}

// keychain gives the credentials: registry-username and registry-password when either is
// set, else the machine's docker credentials.
func (o OCI) keychain() authn.Keychain {
	if o.Username != "" || o.Password != "" {
		return ociKeychain{&authn.Basic{Username: o.Username, Password: o.Password}}
	}
	return authn.DefaultKeychain
}

// ociKeychain gives the same credentials for every registry.
type ociKeychain struct{ auth authn.Authenticator }

func (k ociKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.auth, nil }

// ociContextTransport sends every request with ctx: remote.CheckPushPermission makes its
// requests without one, so without it a registry that does not answer would hold the run.
type ociContextTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ociContextTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return t.base.RoundTrip(req.WithContext(t.ctx))
}

// ociTransport refuses plain HTTP unless it is allowed.
type ociTransport struct {
	base      http.RoundTripper
	allowHTTP bool
}

func (t ociTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "https" && !t.allowHTTP {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, fmt.Errorf("refusing plain HTTP to %s (only loopback registries, or an insecure store, are spoken to without TLS)", req.URL.Host)
	}
	return t.base.RoundTrip(req)
}

// ociTag turns a bundle name into a valid tag: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}.
func ociTag(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) == 0 || b[0] == '.' || b[0] == '-' {
		b = append([]byte("_"), b...)
	}
	if len(b) > 128 {
		b = b[:128]
	}
	return string(b)
}

// ociStatus is the HTTP status of a registry error, or 0.
func ociStatus(err error) int {
	var terr *transport.Error
	if errors.As(err, &terr) {
		return terr.StatusCode
	}
	return 0
}

// ociExplain adds what to do to the registry errors a user can fix.
func ociExplain(err error) error {
	switch ociStatus(err) {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("%w (check registry-username and registry-password, or the docker credentials of this machine)", err)
	}
	return err
}

// ociArtifact is a bundle as a partial.CompressedImageCore: the manifest is built once, the
// layers are files read when they are uploaded.
type ociArtifact struct {
	manifest []byte
	digest   v1.Hash
	layers   map[v1.Hash]*ociFileLayer
}

func newOCIArtifact(b *bundle.Bundle, dumpMeter func() *progress.Meter) (*ociArtifact, error) {
	m := b.Manifest
	art := &ociArtifact{layers: map[v1.Hash]*ociFileLayer{}}
	var descs []v1.Descriptor
	add := func(l *ociFileLayer) {
		art.layers[l.digest] = l
		descs = append(descs, v1.Descriptor{
			MediaType:   l.mediaType,
			Size:        l.size,
			Digest:      l.digest,
			Annotations: map[string]string{ociAnnotationTitle: filepath.Base(l.path)},
		})
	}

	// The dump: its digest and size are the manifest's, so it is not read here.
	dumpHash, err := v1.NewHash("sha256:" + m.SHA256)
	if err != nil {
		return nil, fmt.Errorf("manifest sha256 %q: %w", m.SHA256, err)
	}
	fi, err := os.Stat(b.DumpPath())
	if err != nil {
		return nil, err
	}
	if fi.Size() != m.SizeBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes, the manifest says %d", bundle.ErrRefused, b.DumpPath(), fi.Size(), m.SizeBytes)
	}
	add(&ociFileLayer{path: b.DumpPath(), digest: dumpHash, size: m.SizeBytes, mediaType: ociDumpMediaType(m), meter: dumpMeter})

	for _, p := range m.Parts {
		l, err := ociHashedFile(b.PartPath(p), ociPartMediaType(m, p))
		if err != nil {
			return nil, err
		}
		if p.SHA256 != "" && (l.digest.Hex != p.SHA256 || l.size != p.SizeBytes) {
			return nil, fmt.Errorf("%w: %s is %s (%d bytes), the manifest says sha256:%s (%d bytes)", bundle.ErrRefused, l.path, l.digest, l.size, p.SHA256, p.SizeBytes)
		}
		add(l)
	}
	l, err := ociHashedFile(filepath.Join(b.Dir, bundle.ManifestFile), OCIManifestMediaType)
	if err != nil {
		return nil, err
	}
	add(l)

	created := m.CreatedAt
	if created.IsZero() {
		created = time.Now()
	}
	ann := map[string]string{
		ociAnnotationCreated:                   created.UTC().Format(time.RFC3339),
		OCIAnnotationPrefix + "name":           b.Name(),
		OCIAnnotationPrefix + "format-version": strconv.Itoa(m.FormatVersion),
		OCIAnnotationPrefix + "database":       m.Database,
		OCIAnnotationPrefix + "dump-format":    m.DumpFormat,
		OCIAnnotationPrefix + "compression":    m.Compression,
		OCIAnnotationPrefix + "encryption":     m.Encryption,
		OCIAnnotationPrefix + "sha256":         m.SHA256,
		OCIAnnotationPrefix + "size":           strconv.FormatInt(m.SizeBytes, 10),
	}
	for k, v := range map[string]string{
		"server-version":  m.ServerVersion,
		"pg-dump-version": m.PgDumpVersion,
		"release":         m.Release,
		"chart-version":   m.ChartVersion,
	} {
		if v != "" {
			ann[OCIAnnotationPrefix+k] = v
		}
	}
	if m.Revision != 0 {
		ann[OCIAnnotationPrefix+"revision"] = strconv.Itoa(m.Revision)
	}

	configHash, _, err := v1.SHA256(bytes.NewReader(ociEmptyConfig))
	if err != nil {
		return nil, err
	}
	manifest := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  OCIArtifactType,
		Config: v1.Descriptor{
			MediaType: ociEmptyMediaType,
			Size:      int64(len(ociEmptyConfig)),
			Digest:    configHash,
			Data:      ociEmptyConfig,
		},
		Layers:      descs,
		Annotations: ann,
	}
	if art.manifest, err = json.Marshal(manifest); err != nil {
		return nil, err
	}
	if art.digest, _, err = v1.SHA256(bytes.NewReader(art.manifest)); err != nil {
		return nil, err
	}
	return art, nil
}

// ociPartMediaType is a part's media type: the release's files are YAML, the customizations
// a zstd-compressed tar; +age when the bundle is encrypted.
func ociPartMediaType(m bundle.Manifest, p bundle.Part) types.MediaType {
	var mt string
	switch p.Role {
	case bundle.PartCustomizations:
		mt = OCICustomizationsMediaType
	default:
		mt = OCIReleaseMediaType
		plain := strings.TrimSuffix(p.File, ".age")
		if ext := filepath.Ext(plain); ext == ".yaml" || ext == ".yml" {
			mt += "+yaml"
		}
	}
	if m.Encrypted() {
		mt += "+age"
	}
	return types.MediaType(mt)
}

// ociDumpMediaType is the dump's media type with suffixes for its compression and encryption.
func ociDumpMediaType(m bundle.Manifest) types.MediaType {
	mt := OCIDumpMediaType
	if m.Compression != "" && m.Compression != "none" {
		mt += "+" + m.Compression
	}
	if m.Encryption != "" && m.Encryption != "none" {
		mt += "+" + m.Encryption
	}
	return types.MediaType(mt)
}

func (a *ociArtifact) RawConfigFile() ([]byte, error)      { return ociEmptyConfig, nil }
func (a *ociArtifact) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }
func (a *ociArtifact) RawManifest() ([]byte, error)        { return a.manifest, nil }

func (a *ociArtifact) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	if l, ok := a.layers[h]; ok {
		return l, nil
	}
	return nil, fmt.Errorf("no layer %s in the backup artifact", h)
}

// ociFileLayer is a file as a layer, opened each time it is read; when meter is set, each
// read of it is counted by a Meter of its own.
type ociFileLayer struct {
	path      string
	digest    v1.Hash
	size      int64
	mediaType types.MediaType
	meter     func() *progress.Meter
}

// ociHashedFile is a small bundle file as a layer, its digest computed now.
func ociHashedFile(path string, mt types.MediaType) (*ociFileLayer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h, n, err := v1.SHA256(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &ociFileLayer{path: path, digest: h, size: n, mediaType: mt}, nil
}

func (l *ociFileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *ociFileLayer) Size() (int64, error)                { return l.size, nil }
func (l *ociFileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }

func (l *ociFileLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil || l.meter == nil {
		return f, err
	}
	return l.meter().ReadCloser(f), nil
}
