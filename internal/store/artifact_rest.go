package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/bundle"
)

// The artifacts of another workflow run are read through GitHub's public REST API, as
// actions/download-artifact does when it is given run-id: the run's artifacts listed by name,
// then the artifact's zip, which the API answers with a redirect to a signed URL.

// artifactAPIVersion is the REST API version the requests ask for.
const artifactAPIVersion = "2022-11-28"

// artifactRESTItem is one artifact as the REST API lists it.
type artifactRESTItem struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Size      int64     `json:"size_in_bytes"`
	Expired   bool      `json:"expired"`
	ExpiresAt time.Time `json:"expires_at"`
	Digest    string    `json:"digest"`
}

// artifactREST is the REST API of one repository, as Open with RunID uses it.
type artifactREST struct {
	a    Artifact
	base string // GITHUB_API_URL, no trailing slash
	repo string // owner/name
}

func (a Artifact) rest() (*artifactREST, error) {
	if strings.TrimSpace(a.Token) == "" {
		return nil, fmt.Errorf("reading the artifacts of workflow run %d needs a GitHub token that may read the repository's actions (github-token, or GITHUB_TOKEN)", a.RunID)
	}
	base := strings.TrimRight(strings.TrimSpace(a.getenv("GITHUB_API_URL")), "/")
	if base == "" {
		base = "https://api.github.com"
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("GITHUB_API_URL is not an http(s) URL")
	}
	repo := strings.TrimSpace(a.getenv("GITHUB_REPOSITORY"))
	if owner, name, ok := strings.Cut(repo, "/"); !ok || owner == "" || name == "" || strings.ContainsAny(name, "/?#") {
		return nil, fmt.Errorf("GITHUB_REPOSITORY %q is not owner/name: cannot tell whose workflow run %d it is", repo, a.RunID)
	}
	return &artifactREST{a: a, base: base, repo: repo}, nil
}

// openFromRun downloads the newest unexpired artifact called name of workflow run RunID.
func (a Artifact) openFromRun(ctx context.Context, name string) (*bundle.Bundle, error) {
	if a.RunID < 0 {
		return nil, fmt.Errorf("workflow run id %d is not a run id", a.RunID)
	}
	r, err := a.rest()
	if err != nil {
		return nil, err
	}
	item, err := r.find(ctx, name)
	if err != nil {
		return nil, err
	}
	signed, err := r.zipURL(ctx, item.ID)
	if err != nil {
		return nil, err
	}
	parent, err := os.MkdirTemp(a.TempDir, "artifact-")
	if err != nil {
		return nil, err
	}
	b, err := a.downloadBundle(ctx, signed, parent, name, item.Digest)
	if err != nil {
		os.RemoveAll(parent)
		return nil, err
	}
	return b, nil
}

// get makes one REST API request, retried on 429, 5xx and network errors, and returns the
// response (its body closed) and the body, when keep accepts the status; any other status is
// an error.
func (r *artifactREST) get(ctx context.Context, u string, client *http.Client, keep func(int) bool) (*http.Response, []byte, error) {
	var (
		out  *http.Response
		body []byte
	)
	err := r.a.retry(ctx, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Accept", "application/vnd.github+json")
		req.Header.Set("Authorization", "Bearer "+r.a.Token)
		req.Header.Set("X-GitHub-Api-Version", artifactAPIVersion)
		req.Header.Set("User-Agent", "identity-upgrade")
		resp, err := client.Do(req)
		if err != nil {
			return artifactNetError(err)
		}
		defer resp.Body.Close()
		data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		if !keep(resp.StatusCode) {
			return r.statusError(resp, data)
		}
		if err != nil {
			return artifactRetryable{err: err}
		}
		out, body = resp, data
		return nil
	})
	return out, body, err
}

// statusError explains the statuses a token that may not read the run gets.
func (r *artifactREST) statusError(resp *http.Response, body []byte) error {
	err := artifactStatusError(resp, body)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return fmt.Errorf("%w (the GitHub token was refused: give a valid github-token)", err)
	case http.StatusForbidden, http.StatusNotFound:
		return fmt.Errorf("%w (is workflow run %d in %s, and may the token read its actions? It needs actions: read)", err, r.a.RunID, r.repo)
	}
	return err
}

// find lists the run's artifacts called name and returns the newest that has not expired.
func (r *artifactREST) find(ctx context.Context, name string) (artifactRESTItem, error) {
	u := fmt.Sprintf("%s/repos/%s/actions/runs/%d/artifacts?name=%s&per_page=100", r.base, r.repo, r.a.RunID, url.QueryEscape(name))
	var list struct {
		Artifacts []artifactRESTItem `json:"artifacts"`
	}
	_, body, err := r.get(ctx, u, r.a.client(), func(status int) bool { return status == http.StatusOK })
	if err == nil {
		if err = json.Unmarshal(body, &list); err != nil {
			err = fmt.Errorf("the list of artifacts is not JSON: %w", err)
		}
	}
	if err != nil {
		return artifactRESTItem{}, fmt.Errorf("list the artifacts of workflow run %d of %s: %w", r.a.RunID, r.repo, err)
	}
	var best, expired *artifactRESTItem
	for i := range list.Artifacts {
		it := &list.Artifacts[i]
		switch {
		case it.Name != name:
		case it.Expired:
			expired = it
		case best == nil || it.ID > best.ID:
			best = it
		}
	}
	switch {
	case best != nil:
		return *best, nil
	case expired != nil:
		return artifactRESTItem{}, fmt.Errorf("artifact %q of workflow run %d expired on %s: GitHub keeps artifacts for the repository's retention days (retention-days when the backup was taken)",
			name, r.a.RunID, expired.ExpiresAt.UTC().Format(time.DateOnly))
	}
	return artifactRESTItem{}, fmt.Errorf("no artifact %q in workflow run %d of %s", name, r.a.RunID, r.repo)
}

// zipURL asks for the artifact's zip and returns the signed URL the API redirects to; the
// redirect is not followed, so that the token is never sent to the blob storage.
func (r *artifactREST) zipURL(ctx context.Context, id int64) (string, error) {
	client := *r.a.client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	u := fmt.Sprintf("%s/repos/%s/actions/artifacts/%d/zip", r.base, r.repo, id)
	resp, _, err := r.get(ctx, u, &client, func(status int) bool { return status/100 == 3 })
	if err != nil {
		return "", fmt.Errorf("download artifact %d of %s: %w", id, r.repo, err)
	}
	loc, err := resp.Location()
	if err != nil || (loc.Scheme != "https" && loc.Scheme != "http") {
		return "", fmt.Errorf("download artifact %d of %s: HTTP %s without a redirect to the zip", id, r.repo, resp.Status)
	}
	return loc.String(), nil
}

// artifactCheckDigest compares the SHA-256 of the downloaded zip with digest ("sha256:<hex>");
// an empty digest, or one of another algorithm, is not checked.
func artifactCheckDigest(ctx context.Context, f *os.File, digest string) error {
	want, ok := strings.CutPrefix(digest, "sha256:")
	if !ok {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(h, bundle.ContextReader(ctx, f)); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
		return fmt.Errorf("%w: the downloaded artifact has sha256 %s, GitHub lists %s", bundle.ErrRefused, got, want)
	}
	return nil
}
