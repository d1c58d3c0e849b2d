package store

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
)

// ociTestRegistry starts an in-memory registry on loopback and returns its host:port. wrap,
// when given, wraps its handler (for authentication).
func ociTestRegistry(t *testing.T, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	// Hermetic: no docker credentials of this machine.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func TestOCIPutOpen(t *testing.T) {
	host := ociTestRegistry(t, nil)
	b := testBundle(t, t.TempDir(), "keycloak-r7-20250304T050607Z", 3<<20+17, 1)
	o := OCI{Ref: host + "/backups/keycloak", TempDir: t.TempDir()}

	loc, err := o.Put(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "oci://" + host + "/backups/keycloak:keycloak-r7-20250304T050607Z@sha256:"
	if !strings.HasPrefix(loc, prefix) || len(loc) != len(prefix)+64 {
		t.Fatalf("location %q, want %s<digest>", loc, prefix)
	}
	tagOnly, _, _ := strings.Cut(loc, "@")
	digestOnly := "oci://" + host + "/backups/keycloak@" + strings.SplitN(loc, "@", 2)[1]

	for _, l := range []string{loc, tagOnly, digestOnly} {
		t.Run(l, func(t *testing.T) {
			o := o
			o.TempDir = t.TempDir()
			got, err := o.Open(t.Context(), l)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(got.Dir) != o.TempDir {
				t.Errorf("pulled into %s, want a directory under %s", got.Dir, o.TempDir)
			}
			sameBundle(t, b, got)
		})
	}

	// The artifact's shape, as other tools see it.
	ref, err := name.ParseReference(strings.TrimPrefix(loc, "oci://"))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.ArtifactType != OCIArtifactType {
		t.Errorf("manifest media type %q, artifact type %q", m.MediaType, m.ArtifactType)
	}
	if m.Config.MediaType != "application/vnd.oci.empty.v1+json" || m.Config.Size != 2 ||
		m.Config.Digest.String() != "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a" {
		t.Errorf("config %+v is not the empty descriptor", m.Config)
	}
	layers := map[string]string{}
	for _, l := range m.Layers {
		layers[l.Annotations["org.opencontainers.image.title"]] = string(l.MediaType)
	}
	wantLayers := map[string]string{
		"dump.pgcustom.zst":     "application/vnd.identity-upgrade.backup.dump.v1+zstd",
		"release-values.yaml":   "application/vnd.identity-upgrade.backup.release.v1+yaml",
		"release-manifest.yaml": "application/vnd.identity-upgrade.backup.release.v1+yaml",
		"manifest.json":         "application/vnd.identity-upgrade.backup.manifest.v1+json",
	}
	if fmt.Sprint(layers) != fmt.Sprint(wantLayers) {
		t.Errorf("layers %v, want %v", layers, wantLayers)
	}
	if m.Layers[0].Digest.Hex != b.Manifest.SHA256 || m.Layers[0].Size != b.Manifest.SizeBytes {
		t.Errorf("dump layer %+v, manifest says %s %d", m.Layers[0], b.Manifest.SHA256, b.Manifest.SizeBytes)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.created":    "2025-03-04T05:06:07Z",
		OCIAnnotationPrefix + "database":      "keycloak",
		OCIAnnotationPrefix + "dump-format":   "custom",
		OCIAnnotationPrefix + "encryption":    "none",
		OCIAnnotationPrefix + "sha256":        b.Manifest.SHA256,
		OCIAnnotationPrefix + "size":          fmt.Sprint(b.Manifest.SizeBytes),
		OCIAnnotationPrefix + "release":       "keycloak",
		OCIAnnotationPrefix + "revision":      "7",
		OCIAnnotationPrefix + "chart-version": "1.3.2",
	} {
		if m.Annotations[k] != want {
			t.Errorf("annotation %s = %q, want %q", k, m.Annotations[k], want)
		}
	}
}

func TestOCIPutExplicitTag(t *testing.T) {
	host := ociTestRegistry(t, nil)
	b := testBundle(t, t.TempDir(), "keycloak-r3-20250101T000000Z", 1000, 2)
	o := OCI{Ref: "oci://" + host + "/backups:nightly", TempDir: t.TempDir()}
	loc, err := o.Put(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(loc, "oci://"+host+"/backups:nightly@sha256:") {
		t.Fatalf("location %q does not carry the store's tag", loc)
	}
	got, err := o.Open(t.Context(), "oci://"+host+"/backups:nightly")
	if err != nil {
		t.Fatal(err)
	}
	// The directory keeps the bundle's name, not the tag.
	sameBundle(t, b, got)
}

func TestOCIOpenRefuses(t *testing.T) {
	host := ociTestRegistry(t, nil)
	b := testBundle(t, t.TempDir(), "keycloak-r1-20250101T000000Z", 1000, 3)
	o := OCI{Ref: host + "/backups", TempDir: t.TempDir()}
	if _, err := o.Put(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(100, 1)
	if err != nil {
		t.Fatal(err)
	}
	imgRef, err := name.NewTag(host + "/backups:an-image")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(imgRef, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		location string
		refused  bool
		want     string
	}{
		{"oci://" + host + "/backups:keycloak-r1-20250101T000000Y", true, "no backup at " + host + "/backups:keycloak-r1-20250101T000000Y"},
		{"oci://" + host + "/other:keycloak-r1-20250101T000000Z", true, "no backup at"},
		{"oci://" + host + "/backups:an-image", true, "not a backup"},
		{"oci://" + host + "/backups", false, "names a repository, not a backup"},
		{"oci://" + host + "/backups@sha256:0123", false, "backup location"},
	} {
		t.Run(tc.location, func(t *testing.T) {
			_, err := o.Open(t.Context(), tc.location)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if errors.Is(err, bundle.ErrRefused) != tc.refused {
				t.Errorf("error %q: refused = %v, want %v", err, !tc.refused, tc.refused)
			}
		})
	}
	if entries, _ := os.ReadDir(o.TempDir); len(entries) != 0 {
		t.Errorf("failed pulls left %v in TempDir", entries)
	}
}

func TestOCIPutRefusesDumpNotMatchingManifest(t *testing.T) {
	host := ociTestRegistry(t, nil)
	o := OCI{Ref: host + "/backups", TempDir: t.TempDir()}

	// Same size, other bytes: the registry checks the digest the manifest gave.
	b := testBundle(t, t.TempDir(), "changed", 4096, 4)
	if _, err := writeRandom(b.DumpPath(), 4096, 5); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Put(t.Context(), b); err == nil || !strings.Contains(err.Error(), "DIGEST_INVALID") {
		t.Errorf("Put of a dump whose bytes differ from its manifest: %v, want a digest error", err)
	}

	// Other size: refused before anything is sent.
	b = testBundle(t, t.TempDir(), "truncated", 4096, 6)
	if err := os.Truncate(b.DumpPath(), 100); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Put(t.Context(), b); !errors.Is(err, bundle.ErrRefused) {
		t.Errorf("Put of a truncated dump: %v, want bundle.ErrRefused", err)
	}
}

func TestOCIBasicAuth(t *testing.T) {
	host := ociTestRegistry(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	b := testBundle(t, t.TempDir(), "keycloak-r2-20250101T000000Z", 10000, 7)
	o := OCI{Ref: host + "/backups", Username: "ci", Password: "s3cret", TempDir: t.TempDir()}
	loc, err := o.Put(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := o.Open(t.Context(), loc)
	if err != nil {
		t.Fatal(err)
	}
	sameBundle(t, b, got)

	for _, bad := range []OCI{
		{Ref: o.Ref, TempDir: o.TempDir},
		{Ref: o.Ref, TempDir: o.TempDir, Username: "ci", Password: "wrong"},
	} {
		_, err := bad.Put(t.Context(), b)
		t.Log(err)
		if err == nil || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "registry-username") {
			t.Errorf("Put with user %q: %v, want a 401 that says what to set", bad.Username, err)
		}
		_, err = bad.Open(t.Context(), loc)
		if err == nil || !strings.Contains(err.Error(), "registry-username") || errors.Is(err, bundle.ErrRefused) {
			t.Errorf("Open with user %q: %v, want a 401 that says what to set", bad.Username, err)
		}
		if bad.Password != "" && strings.Contains(fmt.Sprint(err), bad.Password) {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

func TestOCIReferences(t *testing.T) {
	for _, tc := range []struct {
		ref, bundle, want string
	}{
		{"127.0.0.1:5000/backups", "kc-r1-20250101T000000Z", "127.0.0.1:5000/backups:kc-r1-20250101T000000Z"},
		{"oci://ghcr.io/org/backups:nightly", "kc-r1-20250101T000000Z", "ghcr.io/org/backups:nightly"},
		{"ghcr.io/org/backups", "odd name+x", "ghcr.io/org/backups:odd-name-x"},
		{"ghcr.io/org/backups", ".hidden", "ghcr.io/org/backups:_.hidden"},
		{"ghcr.io/org/backups@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "x", ""},
		{"ghcr.io/Org/backups", "x", ""},
	} {
		tag, err := OCI{Ref: tc.ref}.tag(tc.bundle)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: tag %s, want an error", tc.ref, tag)
			}
			continue
		}
		if err != nil || tag.Name() != tc.want {
			t.Errorf("%s with bundle %q: %v, %v; want %s", tc.ref, tc.bundle, tag, err, tc.want)
		}
	}

	for _, tc := range []struct{ compression, encryption, want string }{
		{"zstd", "none", "application/vnd.identity-upgrade.backup.dump.v1+zstd"},
		{"zstd", "age", "application/vnd.identity-upgrade.backup.dump.v1+zstd+age"},
	} {
		if got := ociDumpMediaType(bundle.Manifest{Compression: tc.compression, Encryption: tc.encryption}); string(got) != tc.want {
			t.Errorf("dump media type for %s/%s: %s, want %s", tc.compression, tc.encryption, got, tc.want)
		}
	}

	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "localhost": true, "[::1]:5000": true, "[::1]": true,
		"127.1.2.3": true, "10.0.0.1:5000": false, "192.168.1.1": false, "ghcr.io": false, "localhost.example.com": false,
	} {
		if got := ociLoopback(host); got != want {
			t.Errorf("ociLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// A registry on a private address would get plain HTTP from go-containerregistry after a
// failed HTTPS ping; the store refuses that unless Insecure is set.
func TestOCITransportRefusesPlainHTTP(t *testing.T) {
	var called bool
	base := roundTripFunc(func(*http.Request) (*http.Response, error) {
		called = true
		return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
	})
	req, _ := http.NewRequest(http.MethodGet, "http://10.0.0.1:5000/v2/", nil)
	if _, err := (ociTransport{base: base}).RoundTrip(req); err == nil || called {
		t.Errorf("plain HTTP to a private address: err %v, sent %v", err, called)
	}
	if _, err := (ociTransport{base: base, allowHTTP: true}).RoundTrip(req); err != nil || !called {
		t.Errorf("plain HTTP allowed: err %v, sent %v", err, called)
	}
	called = false
	req, _ = http.NewRequest(http.MethodGet, "https://10.0.0.1:5000/v2/", nil)
	if _, err := (ociTransport{base: base}).RoundTrip(req); err != nil || !called {
		t.Errorf("HTTPS: err %v, sent %v", err, called)
	}
	for _, tc := range []struct {
		o    OCI
		reg  string
		want bool
	}{
		{OCI{}, "10.0.0.1:5000", false},
		{OCI{}, "127.0.0.1:5000", true},
		{OCI{Insecure: true}, "10.0.0.1:5000", true},
	} {
		if got := tc.o.allowHTTP(tc.reg); got != tc.want {
			t.Errorf("Insecure %v, registry %s: plain HTTP allowed %v, want %v", tc.o.Insecure, tc.reg, got, tc.want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestOCIHelperRegistry is not a test: run by TestOCILargeBundle as a separate process, it
// serves a registry whose blobs are on disk, so that the test process's heap holds only the
// store's own memory (pkg/registry buffers chunked uploads in memory).
func TestOCIHelperRegistry(t *testing.T) {
	dir := os.Getenv("OCI_HELPER_REGISTRY_DIR")
	if dir == "" {
		return
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: registry.New(
		registry.Logger(log.New(io.Discard, "", 0)),
		registry.WithBlobHandler(registry.NewDiskBlobHandler(dir)),
	)}
	go srv.Serve(l)
	fmt.Println(l.Addr().String())
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
	srv.Close()
}

func ociHelperRegistry(t *testing.T) string {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	cmd := exec.Command(os.Args[0], "-test.run=^TestOCIHelperRegistry$", "-test.count=1")
	cmd.Env = append(os.Environ(), "OCI_HELPER_REGISTRY_DIR="+t.TempDir())
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("registry process: %v", err)
	}
	return strings.TrimSpace(line)
}

func TestOCILargeBundleBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and pushes a 256 MiB dump")
	}
	const size = 256 << 20
	const limit = 64 << 20
	host := ociHelperRegistry(t)
	b := testBundle(t, t.TempDir(), "keycloak-r9-20250101T000000Z", size, 42)
	o := OCI{Ref: host + "/backups/big", TempDir: t.TempDir()}

	measure := func(what string, f func() error) {
		t.Helper()
		stop := heapGrowth()
		start := time.Now()
		err := f()
		d := time.Since(start)
		growth := int64(stop())
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		t.Logf("%s %d MiB: %v, %.0f MB/s, peak heap growth %.1f MiB",
			what, size>>20, d.Round(time.Millisecond), float64(size)/1e6/d.Seconds(), float64(growth)/(1<<20))
		if growth > limit {
			t.Errorf("%s: heap grew by %.1f MiB, more than %d MiB: the dump is not streamed", what, float64(growth)/(1<<20), limit>>20)
		}
	}

	var loc string
	measure("Put", func() (err error) {
		loc, err = o.Put(context.Background(), b)
		return err
	})
	var got *bundle.Bundle
	measure("Open", func() (err error) {
		got, err = o.Open(context.Background(), loc)
		return err
	})
	sameBundle(t, b, got)
}

// TestOCICheck checks oci:// stores the way the preflight does, against go-containerregistry's
// registry: a registry that lets the credentials push passes and gets nothing; wrong or missing
// credentials, a registry that is not there and one that does not answer fail, naming the
// store and what to set, without showing the password.
func TestOCICheck(t *testing.T) {
	requireAuth := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "s3cret" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	open := ociTestRegistry(t, nil)
	locked := ociTestRegistry(t, requireAuth)
	for _, o := range []OCI{
		{Ref: "oci://" + open + "/backups/keycloak"},
		{Ref: open + "/backups/keycloak:nightly"},
		{Ref: "oci://" + locked + "/backups", Username: "ci", Password: "s3cret"},
	} {
		if err := o.Check(t.Context()); err != nil {
			t.Errorf("Check of %s: %v", o.Ref, err)
		}
		repo, err := name.NewRepository(strings.Split(strings.TrimPrefix(o.Ref, "oci://"), ":nightly")[0], name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if tags, err := remote.List(repo, remote.WithAuth(&authn.Basic{Username: o.Username, Password: o.Password})); len(tags) != 0 {
			t.Errorf("the check left tags %v in %s (%v)", tags, repo, err)
		}
	}

	for _, o := range []OCI{
		{Ref: "oci://" + locked + "/backups", Username: "ci", Password: "wrong-pw-71"},
		{Ref: "oci://" + locked + "/backups"},
	} {
		err := o.Check(t.Context())
		t.Log(err)
		if err == nil || !strings.HasPrefix(err.Error(), `backup-store "oci://`+locked+`/backups": cannot push to `+locked+"/backups: ") ||
			!strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "registry-password") {
			t.Errorf("Check with user %q: %v, want a 401 naming the store and what to set", o.Username, err)
		}
		if strings.Contains(fmt.Sprint(err), "wrong-pw-71") {
			t.Errorf("the error shows the password: %v", err)
		}
	}

	// Nothing listens: the port of a server that was closed.
	srv := httptest.NewServer(http.NotFoundHandler())
	gone := strings.TrimPrefix(srv.URL, "http://")
	srv.Close()
	if err := (OCI{Ref: gone + "/backups"}).Check(t.Context()); err == nil || !strings.Contains(err.Error(), `backup-store "oci://`+gone+`/backups"`) {
		t.Errorf("Check of a registry that is not there: %v", err)
	}

	// A registry that never answers holds the check only as long as the context.
	stuck := ociTestRegistry(t, func(http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := OCI{Ref: stuck + "/backups"}.Check(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("Check of a registry that does not answer: %v after %v, want the deadline", err, time.Since(start))
	}
}
