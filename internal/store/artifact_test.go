package store

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

func artifactTestEnv(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// artifactStore is the store as a job on s sees it, with short retry waits.
func artifactStore(t *testing.T, s *testworld.ArtifactServer) Artifact {
	return Artifact{Getenv: artifactTestEnv(s.Env()), TempDir: t.TempDir(), Backoff: time.Millisecond}
}

func TestArtifactRoundTrip(t *testing.T) {
	srv := testworld.StartArtifactServer(t)
	a := artifactStore(t, srv)
	a.BlockSize = 64 << 10 // many blocks, the last one short
	b := testBundle(t, t.TempDir(), "identity-r3-20260504T030201Z", 1<<20+12345, 1)

	loc, err := a.Put(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if want := "artifact:" + b.Name(); loc != want {
		t.Errorf("Put returned %q, want %q", loc, want)
	}

	// What act stored is a zip of stored entries without data descriptors (readable while
	// it downloads), the manifest last.
	zr, err := zip.OpenReader(srv.StoredZip(b.Name()))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Method != zip.Store || f.Flags&0x8 != 0 {
			t.Errorf("entry %s: method %d, flags %#x; want stored, no data descriptor", f.Name, f.Method, f.Flags)
		}
	}
	zr.Close()
	if want := []string{"dump.pgcustom.zst", bundle.ReleaseValuesFile, bundle.ReleaseManifestFile, "manifest.json"}; !slices.Equal(names, want) {
		t.Errorf("zip entries %v, want %v", names, want)
	}

	for _, location := range []string{loc, b.Name()} {
		got, err := a.Open(t.Context(), location)
		if err != nil {
			t.Fatalf("Open(%q): %v", location, err)
		}
		sameBundle(t, b, got)
		if !strings.HasPrefix(got.Dir, a.TempDir+string(os.PathSeparator)) {
			t.Errorf("opened bundle at %s, not under TempDir %s", got.Dir, a.TempDir)
		}
	}
}

func TestArtifactLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("uploads 200 MiB")
	}
	const size = 200 << 20
	srv := testworld.StartArtifactServer(t)
	a := artifactStore(t, srv) // default block size
	b := testBundle(t, t.TempDir(), "large", size, 1)

	var finalized struct {
		Size string `json:"size"`
		Hash string `json:"hash"`
	}
	srv.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/FinalizeArtifact") {
			body, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(body, &finalized); err != nil {
				t.Errorf("FinalizeArtifact body %s: %v", body, err)
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		return false
	})

	stop := heapGrowth()
	start := time.Now()
	if _, err := a.Put(t.Context(), b); err != nil {
		stop()
		t.Fatal(err)
	}
	putTime := time.Since(start)
	putPeak := stop()

	stored := srv.StoredZip(b.Name())
	fi, err := os.Stat(stored)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := "sha256:"+fileSHA(t, stored), finalized.Hash; got != want {
		t.Errorf("act stored a zip with %s, we finalized %s", got, want)
	}
	if got := fmt.Sprint(fi.Size()); got != finalized.Size {
		t.Errorf("act stored %s bytes, we finalized %s", got, finalized.Size)
	}
	if fi.Size() < size {
		t.Errorf("stored zip has %d bytes, less than the dump's %d", fi.Size(), size)
	}

	stop = heapGrowth()
	start = time.Now()
	got, err := a.Open(t.Context(), "artifact:"+b.Name())
	openTime := time.Since(start)
	openPeak := stop()
	if err != nil {
		t.Fatal(err)
	}
	sameBundle(t, b, got)

	mb := float64(size) / (1 << 20)
	t.Logf("Put %.0f MiB in %v (%.0f MiB/s), peak heap growth %.1f MiB; Open in %v (%.0f MiB/s), peak heap growth %.1f MiB",
		mb, putTime.Round(time.Millisecond), mb/putTime.Seconds(), float64(putPeak)/(1<<20),
		openTime.Round(time.Millisecond), mb/openTime.Seconds(), float64(openPeak)/(1<<20))
	const bound = 64 << 20
	if putPeak > bound || openPeak > bound {
		t.Errorf("peak heap growth Put %d, Open %d bytes; want below %d", putPeak, openPeak, bound)
	}
}

func TestArtifactRetries(t *testing.T) {
	srv := testworld.StartArtifactServer(t)
	a := artifactStore(t, srv)
	a.BlockSize = 64 << 10
	b := testBundle(t, t.TempDir(), "retried", 300<<10, 1)

	second := base64.StdEncoding.EncodeToString([]byte("block-00000001"))
	var blockTries, createTries int
	srv.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		q := r.URL.Query()
		switch {
		case strings.HasSuffix(r.URL.Path, "/CreateArtifact"):
			createTries++
			if createTries == 1 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				io.WriteString(w, `{"code":"resource_exhausted","msg":"slow down"}`)
				return true
			}
		case q.Get("comp") == "block" && q.Get("blockid") == second:
			blockTries++
			if blockTries <= 2 {
				// Answer before reading the body, as a busy front end does.
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return true
			}
		}
		return false
	})

	if _, err := a.Put(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if createTries != 2 || blockTries != 3 {
		t.Errorf("CreateArtifact tried %d times (want 2), block 1 %d times (want 3)", createTries, blockTries)
	}
	srv.SetIntercept(nil)
	got, err := a.Open(t.Context(), "artifact:"+b.Name())
	if err != nil {
		t.Fatal(err)
	}
	sameBundle(t, b, got)
}

func TestArtifactGivesUp(t *testing.T) {
	srv := testworld.StartArtifactServer(t)
	a := artifactStore(t, srv)
	a.BlockSize = 64 << 10
	a.Attempts = 3
	b := testBundle(t, t.TempDir(), "refused", 200<<10, 1)

	var tries, finalized int
	srv.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("comp") == "block" {
			tries++
			http.Error(w, "down", http.StatusBadGateway)
			return true
		}
		if strings.HasSuffix(r.URL.Path, "/FinalizeArtifact") {
			finalized++
		}
		return false
	})
	_, err := a.Put(t.Context(), b)
	if err == nil {
		t.Fatal("Put succeeded while every block failed")
	}
	t.Log(err)
	if tries != 3 || finalized != 0 {
		t.Errorf("block tried %d times (want 3), finalized %d times (want 0)", tries, finalized)
	}
	for _, want := range []string{"502", "3 tries", "block 0", "refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "sig=") {
		t.Errorf("error %q shows the signed URL's signature", err)
	}

	// Cancelled while retrying: Put ends at once with the context's error.
	a.Attempts, a.Backoff = 100, time.Hour
	ctx, cancel := context.WithCancel(t.Context())
	srv.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Query().Get("comp") == "block" {
			cancel()
			http.Error(w, "down", http.StatusServiceUnavailable)
			return true
		}
		return false
	})
	start := time.Now()
	_, err = a.Put(ctx, b)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancelled Put took %v", d)
	}
}

func TestArtifactToken(t *testing.T) {
	srv := testworld.StartArtifactServer(t)
	var requests int
	srv.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		requests++
		return false
	})
	b := testBundle(t, t.TempDir(), "token", 1000, 1)
	for _, tc := range []struct{ name, token, want string }{
		{"no scp", testworld.ArtifactToken(""), "no Actions.Results:<run>:<job> scope in its scp claim"},
		{"other scopes", testworld.ArtifactToken("Actions.GenericRead:00000000-0000-0000-0000-000000000000"), "no Actions.Results"},
		{"not a JWT", "ghs_notajwt", "is not a JWT"},
		{"bad payload", "eyJhbGciOiJub25lIn0.!!!.", "not base64url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := artifactStore(t, srv)
			a.Getenv = artifactTestEnv(map[string]string{"ACTIONS_RESULTS_URL": srv.URL, "ACTIONS_RUNTIME_TOKEN": tc.token})
			_, err := a.Put(t.Context(), b)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Put with a token with %s: %v, want an error saying %q", tc.name, err, tc.want)
			}
			if strings.Contains(err.Error(), tc.token) {
				t.Errorf("error %q shows the token", err)
			}
			if _, err := a.Open(t.Context(), "artifact:token"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open with a token with %s: %v", tc.name, err)
			}
		})
	}
	if requests != 0 {
		t.Errorf("%d requests sent with unusable tokens", requests)
	}
}

func TestArtifactAvailable(t *testing.T) {
	token := testworld.ArtifactToken("Actions.Results:1:2")
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string // "" for available
	}{
		{"github.com", map[string]string{"GITHUB_SERVER_URL": "https://github.com", "ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RESULTS_URL": "https://results.example/"}, ""},
		{"ghe.com", map[string]string{"GITHUB_SERVER_URL": "https://acme.ghe.com", "ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RESULTS_URL": "https://results.example/"}, ""},
		{"no server url", map[string]string{"ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RESULTS_URL": "https://results.example/"}, ""},
		{"GHES", map[string]string{"GITHUB_SERVER_URL": "https://github.acme.internal", "ACTIONS_RUNTIME_TOKEN": token, "ACTIONS_RESULTS_URL": "https://results.example/"},
			"the GitHub artifact store (v4) is not available on GitHub Enterprise Server (GITHUB_SERVER_URL https://github.acme.internal); use backup-store oci://registry/repo[:tag] or path:DIR"},
		{"outside Actions", map[string]string{}, "outside a GitHub Actions job: ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL not set"},
		{"no results url", map[string]string{"ACTIONS_RUNTIME_TOKEN": token}, "ACTIONS_RESULTS_URL not set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Available(artifactTestEnv(tc.env))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Available: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrArtifactUnavailable) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Available: %v, want ErrArtifactUnavailable saying %q", err, tc.want)
			}
			a := Artifact{Getenv: artifactTestEnv(tc.env), TempDir: t.TempDir()}
			if _, err := a.Put(t.Context(), &bundle.Bundle{Dir: "/nowhere/x"}); !errors.Is(err, ErrArtifactUnavailable) {
				t.Errorf("Put: %v, want ErrArtifactUnavailable", err)
			}
			if _, err := a.Open(t.Context(), "artifact:x"); !errors.Is(err, ErrArtifactUnavailable) {
				t.Errorf("Open: %v, want ErrArtifactUnavailable", err)
			}
		})
	}
}

// TestArtifactUnsafeZip uploads zips no bundle has (through the same protocol) and checks that
// Open refuses them and writes nothing outside TempDir, nor leaves anything in it.
func TestArtifactUnsafeZip(t *testing.T) {
	srv := testworld.StartArtifactServer(t)
	a := artifactStore(t, srv)
	s, err := a.session()
	if err != nil {
		t.Fatal(err)
	}
	manifest, _ := os.ReadFile(filepath.Join(testBundle(t, t.TempDir(), "m", 10, 1).Dir, bundle.ManifestFile))
	for i, tc := range []struct {
		entries []string
		want    string
	}{
		{[]string{"../evil.txt", "manifest.json"}, `"../evil.txt", which is not a plain file name`},
		{[]string{"sub/dump.pgcustom.zst", "manifest.json"}, "not a plain file name"},
		{[]string{"/abs", "manifest.json"}, "not a plain file name"},
		{[]string{`..\evil`, "manifest.json"}, "not a plain file name"},
		{[]string{"manifest.json", "manifest.json"}, "not a plain file name"},
		{[]string{"values.yaml"}, "no manifest.json"},
		{[]string{"manifest.json"}, "no dump file"},
	} {
		name := fmt.Sprintf("unsafe-%d", i)
		t.Run(name, func(t *testing.T) {
			signed, err := s.createArtifact(t.Context(), name, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			size, sum, err := a.upload(t.Context(), signed, func(w io.Writer) error {
				zw := zip.NewWriter(w)
				for _, e := range tc.entries {
					fw, err := zw.CreateHeader(&zip.FileHeader{Name: e, Method: zip.Store})
					if err != nil {
						return err
					}
					fw.Write(manifest)
				}
				return zw.Close()
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.finalizeArtifact(t.Context(), name, size, sum); err != nil {
				t.Fatal(err)
			}
			_, err = a.Open(t.Context(), "artifact:"+name)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want an error saying %q", err, tc.want)
			}
			left, _ := os.ReadDir(a.TempDir)
			if len(left) != 0 {
				t.Errorf("Open left %d entries in TempDir", len(left))
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(a.TempDir), "evil.txt")); err == nil {
				t.Errorf("Open wrote outside TempDir")
			}
		})
	}
}

func TestArtifactNotFound(t *testing.T) {
	srv := testworld.StartArtifactServer(t)
	a := artifactStore(t, srv)
	if _, err := a.Put(t.Context(), testBundle(t, t.TempDir(), "present", 100, 1)); err != nil {
		t.Fatal(err)
	}
	_, err := a.Open(t.Context(), "artifact:absent")
	if err == nil || !strings.Contains(err.Error(), `no artifact "absent" in this workflow run`) {
		t.Fatalf("Open of a missing artifact: %v", err)
	}
	if _, err := a.Open(t.Context(), "artifact:a/b"); err == nil || !strings.Contains(err.Error(), "characters GitHub refuses") {
		t.Errorf("Open of an invalid name: %v", err)
	}
}

// TestArtifactDumpChanged checks that a dump that changes between the checksum pass and the
// upload fails the upload instead of storing a zip whose header does not match its data.
func TestArtifactDumpChanged(t *testing.T) {
	b := testBundle(t, t.TempDir(), "changed", 4096, 1)
	entries, err := artifactEntries(t.Context(), b)
	if err != nil {
		t.Fatal(err)
	}
	if err := artifactWriteZip(t.Context(), io.Discard, entries); err != nil {
		t.Fatalf("unchanged bundle: %v", err)
	}
	data, err := os.ReadFile(b.DumpPath())
	if err != nil {
		t.Fatal(err)
	}
	data[100] ^= 1
	if err := os.WriteFile(b.DumpPath(), data, 0o600); err != nil {
		t.Fatal(err)
	}
	err = artifactWriteZip(t.Context(), io.Discard, entries)
	if err == nil || !strings.Contains(err.Error(), "dump.pgcustom.zst changed while it was being stored") {
		t.Fatalf("changed dump: %v", err)
	}
}

// TestArtifactCheck checks the artifact store the way the preflight does: in a job on act's
// artifact server it passes without asking the service, and the bundle is then stored;
// outside a job, on GitHub Enterprise Server, or with a results URL or token Put could not
// use, it fails naming the store and what to use instead.
func TestArtifactCheck(t *testing.T) {
	srv := testworld.StartArtifactServer(t)
	var requests atomic.Int32
	srv.SetIntercept(func(http.ResponseWriter, *http.Request) bool {
		requests.Add(1)
		return false
	})
	a := artifactStore(t, srv)
	if err := a.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("the check sent %d requests", n)
	}
	if _, err := a.Put(t.Context(), testBundle(t, t.TempDir(), "checked", 1000, 1)); err != nil {
		t.Fatalf("Put after a passed check: %v", err)
	}
	afterPut := requests.Load()

	with := func(k, v string) map[string]string {
		env := srv.Env()
		env[k] = v
		return env
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"outside Actions", map[string]string{}, "not available outside a GitHub Actions job: ACTIONS_RUNTIME_TOKEN and ACTIONS_RESULTS_URL not set"},
		{"GHES", with("GITHUB_SERVER_URL", "https://github.acme.internal"),
			"not available on GitHub Enterprise Server (GITHUB_SERVER_URL https://github.acme.internal); use backup-store oci://registry/repo[:tag] or path:DIR"},
		{"results URL not http", with("ACTIONS_RESULTS_URL", "ftp://results.example/"), "ACTIONS_RESULTS_URL is not an http(s) URL"},
		{"token without the run", with("ACTIONS_RUNTIME_TOKEN", testworld.ArtifactToken("Actions.ExampleScope")), "has no Actions.Results:<run>:<job> scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Artifact{Getenv: artifactTestEnv(tc.env)}.Check(t.Context())
			if err == nil || !strings.HasPrefix(err.Error(), `backup-store "artifact": `) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check: %v, want backup-store \"artifact\" and %q", err, tc.want)
			}
		})
	}
	if n := requests.Load(); n != afterPut {
		t.Errorf("the failed checks sent %d requests", n-afterPut)
	}
}
