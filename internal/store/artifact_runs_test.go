package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
	"github.com/identity-upgrade/identity-upgrade/internal/testworld"
)

// TestArtifactRetention: retention-days becomes the expires_at of CreateArtifact, at most the
// repository's limit; without it no expiry is sent and the repository's default applies.
func TestArtifactRetention(t *testing.T) {
	srv := testworld.StartArtifactServer(t)
	var created []map[string]any
	srv.SetIntercept(func(w http.ResponseWriter, r *http.Request) bool {
		if strings.HasSuffix(r.URL.Path, "/CreateArtifact") {
			body, _ := io.ReadAll(r.Body)
			var req map[string]any
			if err := json.Unmarshal(body, &req); err != nil {
				t.Errorf("CreateArtifact body %s: %v", body, err)
			}
			created = append(created, req)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		return false
	})
	for i, tc := range []struct {
		days     int
		limit    string // GITHUB_RETENTION_DAYS
		wantDays int    // 0: no expires_at
	}{
		{days: 30, wantDays: 30},
		{days: 30, limit: "10", wantDays: 10},
		{days: 5, limit: "10", wantDays: 5},
		{days: 90, limit: "not a number", wantDays: 90},
		{days: 0, limit: "10"},
	} {
		t.Run(fmt.Sprintf("%d days, limit %q", tc.days, tc.limit), func(t *testing.T) {
			env := srv.Env()
			env["GITHUB_RETENTION_DAYS"] = tc.limit
			a := Artifact{Getenv: artifactTestEnv(env), TempDir: t.TempDir(), Backoff: time.Millisecond, RetentionDays: tc.days}
			before := time.Now()
			if _, err := a.Put(t.Context(), testBundle(t, t.TempDir(), fmt.Sprintf("kept-%d", i), 1000, 1)); err != nil {
				t.Fatal(err)
			}
			after := time.Now()
			req := created[len(created)-1]
			raw, ok := req["expires_at"]
			if tc.wantDays == 0 {
				if ok {
					t.Errorf("CreateArtifact sent expires_at %v, want none (the repository's default)", raw)
				}
				return
			}
			s, _ := raw.(string)
			got, err := time.Parse(time.RFC3339, s)
			if err != nil {
				t.Fatalf("expires_at %v is not an RFC 3339 timestamp: %v", raw, err)
			}
			lo, hi := before.AddDate(0, 0, tc.wantDays).Add(-time.Second), after.AddDate(0, 0, tc.wantDays)
			if got.Before(lo) || got.After(hi) {
				t.Errorf("expires_at %s, want %d days from now (%s to %s)", got, tc.wantDays, lo, hi)
			}
		})
	}
}

// TestArtifactPlace: the artifact's id is FinalizeArtifact's and its URL the run's page of it.
func TestArtifactPlace(t *testing.T) {
	srv := testworld.StartArtifactServer(t)
	env := srv.Env()
	maps.Copy(env, map[string]string{"GITHUB_SERVER_URL": "https://github.com/", "GITHUB_REPOSITORY": "acme/identity", "GITHUB_RUN_ID": "16000000001"})
	a := Artifact{Getenv: artifactTestEnv(env), TempDir: t.TempDir(), Backoff: time.Millisecond}
	b := testBundle(t, t.TempDir(), "identity-r1-20260504T030201Z", 1000, 1)

	var s bundle.Store = a
	p, err := bundle.Place(t.Context(), s, b)
	if err != nil {
		t.Fatal(err)
	}
	id := testworld.ArtifactID(b.Name())
	want := bundle.Placement{Location: "artifact:" + b.Name(), ArtifactID: id,
		ArtifactURL: fmt.Sprintf("https://github.com/acme/identity/actions/runs/16000000001/artifacts/%d", id)}
	if p != want {
		t.Errorf("Place = %+v, want %+v", p, want)
	}

	// Outside a run the runner describes (no GITHUB_REPOSITORY), the id without a URL.
	delete(env, "GITHUB_REPOSITORY")
	b2 := testBundle(t, t.TempDir(), "second", 1000, 2)
	p, err = a.Place(t.Context(), b2)
	if err != nil {
		t.Fatal(err)
	}
	if p.ArtifactID != testworld.ArtifactID("second") || p.ArtifactURL != "" {
		t.Errorf("Place without GITHUB_REPOSITORY = %+v, want the id and no URL", p)
	}

	// Other stores tell their location only.
	dir := bundle.DirStore{Dir: t.TempDir()}
	p, err = bundle.Place(t.Context(), dir, b)
	if err != nil {
		t.Fatal(err)
	}
	if p != (bundle.Placement{Location: dir.Location(b.Name())}) {
		t.Errorf("Place in a DirStore = %+v, want its location only", p)
	}
}

// TestArtifactOpenFromRun takes a backup in one workflow run and opens it in another, through
// the REST API: the run's artifacts listed by name, the zip through the redirect to a signed
// URL, which gets no token.
func TestArtifactOpenFromRun(t *testing.T) {
	srv := testworld.StartArtifactServer(t)
	rest := srv.StartREST(t, "acme/identity", "ghs_readactions")
	const earlier = 7
	b := testBundle(t, t.TempDir(), "identity-r3-20260504T030201Z", 300<<10, 1)
	put := Artifact{Getenv: artifactTestEnv(srv.EnvForRun(earlier)), TempDir: t.TempDir(), Backoff: time.Millisecond, BlockSize: 64 << 10}
	if _, err := put.Put(t.Context(), b); err != nil {
		t.Fatal(err)
	}

	// The current run (1), as before: only its own artifacts.
	env := srv.Env()
	maps.Copy(env, rest.Env())
	current := Artifact{Getenv: artifactTestEnv(env), TempDir: t.TempDir(), Backoff: time.Millisecond}
	if _, err := current.Put(t.Context(), testBundle(t, t.TempDir(), "tonight", 100, 2)); err != nil {
		t.Fatal(err)
	}
	if _, err := current.Open(t.Context(), "artifact:"+b.Name()); err == nil || !strings.Contains(err.Error(), "no artifact") {
		t.Errorf("Open in the current run: %v, want no artifact", err)
	}

	other := current
	other.RunID, other.Token = earlier, rest.Token
	got, err := other.Open(t.Context(), "artifact:"+b.Name())
	if err != nil {
		t.Fatal(err)
	}
	sameBundle(t, b, got)
	if !strings.HasPrefix(got.Dir, other.TempDir+string(os.PathSeparator)) {
		t.Errorf("opened bundle at %s, not under TempDir %s", got.Dir, other.TempDir)
	}
	id := testworld.ArtifactID(b.Name())
	wantCalls := []string{
		"GET /repos/acme/identity/actions/runs/7/artifacts",
		fmt.Sprintf("GET /repos/acme/identity/actions/artifacts/%d/zip", id),
		"GET /blob/7/" + b.Name(),
	}
	if calls := rest.Calls(); !slices.Equal(calls, wantCalls) {
		t.Errorf("REST calls %q, want %q", calls, wantCalls)
	}

	// Outside a job as well: the REST API needs no runtime token.
	outside := other
	outside.Getenv = artifactTestEnv(rest.Env())
	if got, err := outside.Open(t.Context(), b.Name()); err != nil {
		t.Errorf("Open outside a job: %v", err)
	} else {
		sameBundle(t, b, got)
	}

	for _, tc := range []struct {
		name string
		edit func(a *Artifact, env map[string]string)
		from string
		want []string
	}{
		{"no token", func(a *Artifact, _ map[string]string) { a.Token = "" }, b.Name(), []string{"needs a GitHub token", "github-token"}},
		{"token refused", func(a *Artifact, _ map[string]string) { a.Token = "ghs_wrong" }, b.Name(), []string{"401", "Bad credentials", "give a valid github-token"}},
		{"another repository", func(_ *Artifact, env map[string]string) { env["GITHUB_REPOSITORY"] = "acme/other" }, b.Name(), []string{"404", "actions: read"}},
		{"no repository", func(_ *Artifact, env map[string]string) { delete(env, "GITHUB_REPOSITORY") }, b.Name(), []string{"GITHUB_REPOSITORY", "not owner/name"}},
		{"another run", func(a *Artifact, _ map[string]string) { a.RunID = 8 }, b.Name(), []string{`no artifact "` + b.Name() + `" in workflow run 8 of acme/identity`}},
		{"another name", func(*Artifact, map[string]string) {}, "identity-r9", []string{`no artifact "identity-r9" in workflow run 7`}},
		{"bad name", func(*Artifact, map[string]string) {}, "a/b", []string{"GitHub refuses"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := rest.Env()
			a := other
			a.Getenv, a.TempDir = artifactTestEnv(env), t.TempDir()
			tc.edit(&a, env)
			_, err := a.Open(t.Context(), tc.from)
			t.Log(err)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Open: %v, want an error saying %q", err, w)
				}
			}
			if err != nil && strings.Contains(err.Error(), "ghs_") {
				t.Errorf("the error shows the token: %v", err)
			}
			if entries, _ := os.ReadDir(a.TempDir); len(entries) != 0 {
				t.Errorf("a failed Open left %d entries in TempDir", len(entries))
			}
		})
	}

	// An expired artifact is named as such.
	rest.Expire(earlier, b.Name())
	if _, err := other.Open(t.Context(), b.Name()); err == nil || !strings.Contains(err.Error(), "expired on") {
		t.Errorf("Open of an expired artifact: %v, want expired", err)
	}
}

// TestArtifactCheckDigest: a zip whose SHA-256 is not the one GitHub lists is refused.
func TestArtifactCheckDigest(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "a.zip"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString("zip bytes")
	const sum = "sha256:4be6e4b1bc4ee1dbbebb2e5e70a1ab0d3a0c2e1b56fd39e8a44f2b3c2d1bd2cd" // not of "zip bytes"
	if err := artifactCheckDigest(t.Context(), f, sum); !errors.Is(err, bundle.ErrRefused) {
		t.Errorf("wrong digest: %v, want bundle.ErrRefused", err)
	}
	right := "sha256:" + fileSHA(t, f.Name())
	for _, d := range []string{right, "sha256:" + strings.ToUpper(right[7:]), "", "md5:abc"} {
		if err := artifactCheckDigest(t.Context(), f, d); err != nil {
			t.Errorf("digest %q: %v", d, err)
		}
	}
}
