package testworld

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/nektos/act/pkg/artifacts"
)

// ArtifactServer is a GitHub Actions artifact (v4) service on 127.0.0.1: nektos/act's
// RoutesV4, the server `act` runs workflows against, storing under Dir.
type ArtifactServer struct {
	URL       string
	Dir       string
	mu        sync.Mutex
	intercept func(w http.ResponseWriter, r *http.Request) bool
}

// StartArtifactServer starts an artifact server for the test; it stops when the test ends.
func StartArtifactServer(t testing.TB) *ArtifactServer {
	t.Helper()
	s := &ArtifactServer{Dir: t.TempDir()}
	router := httprouter.New()
	artifacts.RoutesV4(router, s.Dir, osFS{}, osFS{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// act's routes keep the request host in shared state: one request at a time.
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.intercept != nil && s.intercept(w, r) {
			return
		}
		router.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// SetIntercept makes f see every request first; it answers the request itself by returning
// true (to inject failures).
func (s *ArtifactServer) SetIntercept(f func(w http.ResponseWriter, r *http.Request) bool) {
	s.mu.Lock()
	s.intercept = f
	s.mu.Unlock()
}

// StoredZip is where act keeps an artifact's zip (workflow run backend id 1).
func (s *ArtifactServer) StoredZip(name string) string {
	return filepath.Join(s.Dir, "1", name, name+".zip")
}

// Env is what the runner gives a container action for this server: the results URL, a
// runtime token for run 1 / job 2, and github.com as the server.
func (s *ArtifactServer) Env() map[string]string {
	return map[string]string{
		"ACTIONS_RESULTS_URL":   s.URL + "/",
		"ACTIONS_RUNTIME_TOKEN": ArtifactToken("Actions.ExampleScope Actions.Results:1:2"),
		"GITHUB_SERVER_URL":     "https://github.com",
	}
}

// EnvForRun is Env for a job of another workflow run: its artifacts are stored under run.
func (s *ArtifactServer) EnvForRun(run int64) map[string]string {
	env := s.Env()
	env["ACTIONS_RUNTIME_TOKEN"] = ArtifactToken(fmt.Sprintf("Actions.Results:%d:2", run))
	return env
}

// ArtifactREST is a stand-in for GitHub's REST API of workflow run artifacts on 127.0.0.1
// (act has none), answering from what the artifact server stored; a run id is the workflow
// run backend id act stored the artifacts under. It serves
//
//	GET /repos/{owner}/{repo}/actions/runs/{run_id}/artifacts?name=NAME
//	GET /repos/{owner}/{repo}/actions/artifacts/{artifact_id}/zip
//
// for one repository and one bearer token, as GitHub answers them: the list with the ids act
// gave (FinalizeArtifact's), sizes and the zip's sha256 digest, and the zip as a 302 redirect
// to a signed URL of this server, which refuses requests that carry an Authorization header
// (blob storage is not GitHub's API).
type ArtifactREST struct {
	URL   string
	Repo  string
	Token string

	s       *ArtifactServer
	key     []byte
	mu      sync.Mutex
	expired map[string]bool // run/name
	calls   []string
}

// StartREST starts the REST stand-in for repository repo ("owner/name") and token; it stops
// when the test ends.
func (s *ArtifactServer) StartREST(t testing.TB, repo, token string) *ArtifactREST {
	t.Helper()
	r := &ArtifactREST{Repo: repo, Token: token, s: s, key: []byte(t.Name()), expired: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /repos/{owner}/{repo}/actions/runs/{run}/artifacts", r.list)
	mux.HandleFunc("GET /repos/{owner}/{repo}/actions/artifacts/{id}/zip", r.zip)
	mux.HandleFunc("GET /blob/{run}/{name}", r.blob)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.calls = append(r.calls, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		mux.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.URL = srv.URL
	return r
}

// Env is what a job of this repository has for the REST API: GITHUB_API_URL and
// GITHUB_REPOSITORY.
func (r *ArtifactREST) Env() map[string]string {
	return map[string]string{"GITHUB_API_URL": r.URL, "GITHUB_REPOSITORY": r.Repo}
}

// Expire makes the artifact name of run listed as expired.
func (r *ArtifactREST) Expire(run int64, name string) {
	r.mu.Lock()
	r.expired[fmt.Sprintf("%d/%s", run, name)] = true
	r.mu.Unlock()
}

// Calls are the requests served so far, as "METHOD /path".
func (r *ArtifactREST) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// ArtifactID is the id act gives the artifact called name (FNV-1a, 32 bits).
func ArtifactID(name string) int64 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int64(h.Sum32())
}

func (r *ArtifactREST) api(w http.ResponseWriter, req *http.Request) bool {
	switch {
	case req.Header.Get("Authorization") != "Bearer "+r.Token:
		restError(w, http.StatusUnauthorized, "Bad credentials")
	case req.PathValue("owner")+"/"+req.PathValue("repo") != r.Repo:
		restError(w, http.StatusNotFound, "Not Found")
	default:
		return true
	}
	return false
}

func restError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": msg, "documentation_url": "https://docs.github.com/rest"})
}

// restArtifact is one artifact of act's store, as the REST API lists it.
type restArtifact struct {
	ID          int64     `json:"id"`
	Name        string    `json:"name"`
	SizeInBytes int64     `json:"size_in_bytes"`
	Expired     bool      `json:"expired"`
	CreatedAt   time.Time `json:"created_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	Digest      string    `json:"digest"`
	WorkflowRun struct {
		ID int64 `json:"id"`
	} `json:"workflow_run"`
}

// stored lists the artifacts act stored for run, those called name only unless name is "".
func (r *ArtifactREST) stored(run int64, name string) ([]restArtifact, error) {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	entries, err := os.ReadDir(filepath.Join(r.s.Dir, strconv.FormatInt(run, 10)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []restArtifact
	for _, e := range entries {
		if name != "" && e.Name() != name {
			continue
		}
		zipPath := filepath.Join(r.s.Dir, strconv.FormatInt(run, 10), e.Name(), e.Name()+".zip")
		data, err := os.ReadFile(zipPath)
		if err != nil {
			return nil, err
		}
		fi, err := os.Stat(zipPath)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		a := restArtifact{ID: ArtifactID(e.Name()), Name: e.Name(), SizeInBytes: int64(len(data)), CreatedAt: fi.ModTime().UTC(),
			ExpiresAt: fi.ModTime().UTC().AddDate(0, 0, 90), Digest: "sha256:" + hex.EncodeToString(sum[:])}
		a.WorkflowRun.ID = run
		r.mu.Lock()
		a.Expired = r.expired[fmt.Sprintf("%d/%s", run, e.Name())]
		r.mu.Unlock()
		out = append(out, a)
	}
	return out, nil
}

func (r *ArtifactREST) list(w http.ResponseWriter, req *http.Request) {
	if !r.api(w, req) {
		return
	}
	run, err := strconv.ParseInt(req.PathValue("run"), 10, 64)
	if err != nil || run <= 0 {
		restError(w, http.StatusNotFound, "Not Found")
		return
	}
	list, err := r.stored(run, req.URL.Query().Get("name"))
	if err != nil {
		restError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(map[string]any{"total_count": len(list), "artifacts": append([]restArtifact{}, list...)})
}

func (r *ArtifactREST) zip(w http.ResponseWriter, req *http.Request) {
	if !r.api(w, req) {
		return
	}
	id, _ := strconv.ParseInt(req.PathValue("id"), 10, 64)
	r.s.mu.Lock()
	runs, _ := os.ReadDir(r.s.Dir)
	r.s.mu.Unlock()
	for _, d := range runs {
		run, err := strconv.ParseInt(d.Name(), 10, 64)
		if err != nil {
			continue
		}
		list, _ := r.stored(run, "")
		for _, a := range list {
			if a.ID == id && !a.Expired {
				path := fmt.Sprintf("/blob/%d/%s", run, url.PathEscape(a.Name))
				http.Redirect(w, req, r.URL+path+"?sig="+r.sign(path), http.StatusFound)
				return
			}
		}
	}
	restError(w, http.StatusNotFound, "Not Found")
}

func (r *ArtifactREST) sign(path string) string {
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(path))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// blob serves a zip at a signed URL: no Authorization header, a valid signature.
func (r *ArtifactREST) blob(w http.ResponseWriter, req *http.Request) {
	if req.Header.Get("Authorization") != "" {
		http.Error(w, "a signed URL takes no Authorization header", http.StatusBadRequest)
		return
	}
	if !hmac.Equal([]byte(req.URL.Query().Get("sig")), []byte(r.sign(req.URL.EscapedPath()))) {
		http.Error(w, "signature mismatch", http.StatusForbidden)
		return
	}
	name := req.PathValue("name")
	if name == "" || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		http.NotFound(w, req)
		return
	}
	r.s.mu.Lock()
	data, err := os.ReadFile(filepath.Join(r.s.Dir, req.PathValue("run"), name, name+".zip"))
	r.s.mu.Unlock()
	if err != nil {
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Write(data)
}

// ArtifactToken is an unsigned JWT with the given scp claim ("" leaves it out); act checks
// nothing but the integer ids in it.
func ArtifactToken(scp string) string {
	claims := map[string]any{"iss": "test", "exp": time.Now().Add(time.Hour).Unix()}
	if scp != "" {
		claims["scp"] = scp
	}
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc.EncodeToString(payload) + "."
}

// osFS is the os-backed file system act's routes need (act's own is unexported); act passes
// absolute paths, which os.DirFS would refuse.
type osFS struct{}

func (osFS) Open(name string) (fs.File, error) { return os.Open(name) }

func (osFS) OpenWritable(name string) (artifacts.WritableFile, error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
}

func (osFS) OpenAppendable(name string) (artifacts.WritableFile, error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(name, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}
