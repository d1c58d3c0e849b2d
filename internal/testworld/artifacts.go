package testworld

import (
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
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
