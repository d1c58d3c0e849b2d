package helmrelease

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"sigs.k8s.io/yaml"
)

// The chart sources are tested against real servers on 127.0.0.1: a chart repository served
// from a directory (index.yaml built by helm) and go-containerregistry's registry. No cluster.

const testChart = "alfresco-identity-service"

var testChartVersions = []string{"2.1.0", "3.0.0"}

// packageTestCharts packages the test charts into a new directory and returns the archives by
// version.
func packageTestCharts(t *testing.T) (dir string, archives map[string]string) {
	t.Helper()
	dir = t.TempDir()
	archives = map[string]string{}
	for _, v := range testChartVersions {
		ch, err := loader.Load(filepath.Join("..", "..", "testdata", "charts", "identity", v))
		if err != nil {
			t.Fatal(err)
		}
		archives[v], err = chartutil.Save(ch, dir)
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir, archives
}

// chartRepo serves the packaged test charts as a chart repository whose index has relative
// chart URLs, under /stable like https://kubernetes-charts.alfresco.com/stable. With user set, every request needs that basic auth. It returns the repository URL
// and a counter of archive downloads.
func chartRepo(t *testing.T, user, pass string) (string, *atomic.Int32) {
	t.Helper()
	dir, _ := packageTestCharts(t)
	index, err := repo.IndexDirectory(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := index.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	downloads := new(atomic.Int32)
	files := http.StripPrefix("/stable", http.FileServer(http.Dir(dir)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="charts"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		if strings.HasSuffix(r.URL.Path, ".tgz") {
			downloads.Add(1)
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/stable", downloads
}

func TestChartFromRepo(t *testing.T) {
	t.Parallel()
	repoURL, _ := chartRepo(t, "", "")
	for _, tc := range []struct {
		version, want, wantErr string
	}{
		{version: "3.0.0", want: "3.0.0"},
		{version: "2.1.0", want: "2.1.0"},
		{version: "", want: "3.0.0"},
		{version: "~2.1", want: "2.1.0"},
		{version: ">=2.0.0 <4", want: "3.0.0"},
		{version: "9.9.9", wantErr: `chart "alfresco/alfresco-identity-service": version "9.9.9" not found in ` + repoURL + "/index.yaml (available: 3.0.0, 2.1.0)"},
		{version: "not a version", wantErr: `chart-version "not a version" is neither a version nor a semver constraint`},
	} {
		t.Run("version="+tc.version, func(t *testing.T) {
			t.Parallel()
			checkLoad(t, UpgradeSpec{Chart: "alfresco/" + testChart, RepoURL: repoURL, Version: tc.version, CacheDir: t.TempDir()}, tc.want, tc.wantErr)
		})
	}
}

func TestChartFromRepoWithTrailingSlashAndUnknownName(t *testing.T) {
	t.Parallel()
	repoURL, _ := chartRepo(t, "", "")
	ch, _, err := UpgradeSpec{Chart: "stable/" + testChart, RepoURL: repoURL + "/", CacheDir: t.TempDir()}.load()
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.Version != "3.0.0" {
		t.Errorf("loaded version %s, want 3.0.0", ch.Metadata.Version)
	}
	_, _, err = UpgradeSpec{Chart: "alfresco/identity", RepoURL: repoURL, CacheDir: t.TempDir()}.load()
	if want := `has no chart named "identity" (charts there: ` + testChart + ")"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("load of an unknown chart: %v, want an error containing %q", err, want)
	}
}

func TestChartFromRepoIsCachedByDigest(t *testing.T) {
	t.Parallel()
	repoURL, downloads := chartRepo(t, "", "")
	spec := UpgradeSpec{Chart: "alfresco/" + testChart, RepoURL: repoURL, Version: "3.0.0", CacheDir: t.TempDir()}
	for range 2 {
		if _, _, err := spec.load(); err != nil {
			t.Fatal(err)
		}
	}
	if n := downloads.Load(); n != 1 {
		t.Errorf("archive downloaded %d times for two loads, want once", n)
	}
	// A damaged cached archive is fetched again.
	matches, err := filepath.Glob(filepath.Join(spec.CacheDir, "repo-*", testChart+"-3.0.0.tgz"))
	if err != nil || len(matches) != 1 {
		t.Fatalf("cached archive: %v %v", matches, err)
	}
	if err := os.WriteFile(matches[0], []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := spec.load(); err != nil {
		t.Fatal(err)
	}
	if n := downloads.Load(); n != 2 {
		t.Errorf("archive downloaded %d times after the cache was damaged, want twice", n)
	}
	// Nothing but the cache: the index and its work files are gone.
	entries, err := os.ReadDir(spec.CacheDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "repo-") {
			t.Errorf("cache directory keeps %s", e.Name())
		}
	}
}

func TestChartRepoUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	repoURL := "http://" + addr + "/stable"
	_, _, err = UpgradeSpec{Chart: "alfresco/" + testChart, RepoURL: repoURL, CacheDir: t.TempDir()}.load()
	want := "repo-url " + repoURL + ": " + repoURL + "/index.yaml not reachable: "
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("load: %v, want an error containing %q", err, want)
	}
}

func TestChartRepoNotARepository(t *testing.T) {
	t.Parallel()
	repoURL, _ := chartRepo(t, "", "")
	_, _, err := UpgradeSpec{Chart: "alfresco/" + testChart, RepoURL: repoURL + "/nothing-here", CacheDir: t.TempDir()}.load()
	if want := "404 Not Found (not found: check the URL"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("load: %v, want an error containing %q", err, want)
	}
}

func TestChartRepoBasicAuth(t *testing.T) {
	t.Parallel()
	repoURL, _ := chartRepo(t, "reader", "s3cret")
	spec := UpgradeSpec{Chart: "alfresco/" + testChart, RepoURL: repoURL, Version: "2.1.0", CacheDir: t.TempDir()}

	_, _, err := spec.load()
	if want := "401 Unauthorized (it requires credentials: set registry-username and registry-password)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("load without credentials: %v, want an error containing %q", err, want)
	}
	spec.Username, spec.Password = "reader", "wrong"
	_, _, err = spec.load()
	if want := "401 Unauthorized (check registry-username and registry-password)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("load with a wrong password: %v, want an error containing %q", err, want)
	}
	if err != nil && strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
	spec.Password = "s3cret"
	ch, _, err := spec.load()
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.Version != "2.1.0" {
		t.Errorf("loaded version %s, want 2.1.0", ch.Metadata.Version)
	}
}

// ociRegistry starts go-containerregistry's registry on 127.0.0.1 and pushes the packaged test
// charts to host/charts/alfresco-identity-service with helm's registry client. It returns the
// chart reference without a tag.
func ociRegistry(t *testing.T, versions ...string) string {
	t.Helper()
	return ociRegistryWithAuth(t, "", "", versions...)
}

// ociRegistryWithAuth is ociRegistry, with every request needing basic auth when user is set.
func ociRegistryWithAuth(t *testing.T, user, pass string, versions ...string) string {
	t.Helper()
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	opts := []registry.ClientOption{
		registry.ClientOptPlainHTTP(),
		registry.ClientOptWriter(io.Discard),
		registry.ClientOptCredentialsFile(filepath.Join(t.TempDir(), "config.json")),
	}
	if user != "" {
		opts = append(opts, registry.ClientOptBasicAuth(user, pass))
	}
	client, err := registry.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	_, archives := packageTestCharts(t)
	for _, v := range versions {
		data, err := os.ReadFile(archives[v])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.Push(data, host+"/charts/"+testChart+":"+v); err != nil {
			t.Fatalf("push %s: %v", v, err)
		}
	}
	return "oci://" + host + "/charts/" + testChart
}

func TestChartFromOCI(t *testing.T) {
	t.Parallel()
	ref := ociRegistry(t, "2.1.0", "3.0.0")
	for _, tc := range []struct {
		chart, version, want, wantErr string
	}{
		{chart: ref, version: "3.0.0", want: "3.0.0"},
		{chart: ref, version: "2.1.0", want: "2.1.0"},
		{chart: ref, version: "", want: "3.0.0"},
		{chart: ref, version: "~2.1", want: "2.1.0"},
		{chart: ref + ":2.1.0", version: "", want: "2.1.0"},
		{chart: ref + ":2.1.0", version: "2.1.0", want: "2.1.0"},
		{chart: ref, version: "9.9.9", wantErr: `chart "` + ref + `": version "9.9.9" not found in the registry (available: 3.0.0, 2.1.0)`},
		{chart: ref, version: "~9", wantErr: `no version matches chart-version "~9" (available: 3.0.0, 2.1.0)`},
		{chart: ref + ":2.1.0", version: "3.0.0", wantErr: "has tag 2.1.0 but chart-version is \"3.0.0\""},
	} {
		t.Run(strings.TrimPrefix(tc.chart, ref)+"version="+tc.version, func(t *testing.T) {
			t.Parallel()
			checkLoad(t, UpgradeSpec{Chart: tc.chart, Version: tc.version, CacheDir: t.TempDir()}, tc.want, tc.wantErr)
		})
	}
}

func TestChartFromOCIUnknownRepository(t *testing.T) {
	t.Parallel()
	ref := ociRegistry(t)
	_, _, err := UpgradeSpec{Chart: ref, Version: "3.0.0", CacheDir: t.TempDir()}.load()
	if want := `chart "` + ref + `": the registry 127.0.0.1:`; err == nil || !strings.HasPrefix(err.Error(), want) ||
		!strings.Contains(err.Error(), "has no repository charts/"+testChart) {
		t.Fatalf("load: %v, want an error saying the registry has no repository charts/%s", err, testChart)
	}
}

func TestChartFromOCIBasicAuth(t *testing.T) {
	t.Parallel()
	ref := ociRegistryWithAuth(t, "pusher", "s3cret", "3.0.0")
	spec := UpgradeSpec{Chart: ref, Version: "3.0.0", CacheDir: t.TempDir()}
	_, _, err := spec.load()
	if want := "set registry-username and registry-password"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("load without credentials: %v, want an error containing %q", err, want)
	}
	spec.Username, spec.Password = "pusher", "wrong"
	_, _, err = spec.load()
	if want := "check registry-username and registry-password"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("load with a wrong password: %v, want an error containing %q", err, want)
	}
	spec.Password = "s3cret"
	spec.Version = "" // resolved from the tags, which need the credentials too
	ch, _, err := spec.load()
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.Version != "3.0.0" {
		t.Errorf("loaded version %s, want 3.0.0", ch.Metadata.Version)
	}
}

func TestChartFromOCIUnreachable(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, _, err = UpgradeSpec{Chart: "oci://" + addr + "/charts/" + testChart, Version: "3.0.0", CacheDir: t.TempDir()}.load()
	if want := "not reachable"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("load: %v, want an error containing %q", err, want)
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:5000": true, "localhost:5000": true, "localhost": true, "[::1]:5000": true, "127.0.0.2": true,
		"ghcr.io": false, "registry.example.com:443": false, "10.0.0.1:5000": false, "localhost.example.com": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// checkLoad loads spec's chart and checks that it is the test chart at version want, or,
// with wantErr, that the load fails with an error containing it.
func checkLoad(t *testing.T, spec UpgradeSpec, want, wantErr string) {
	t.Helper()
	ch, _, err := spec.load()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("load: %v, want an error containing %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if ch.Metadata.Name != testChart || ch.Metadata.Version != want {
		t.Errorf("loaded %s %s, want %s %s", ch.Metadata.Name, ch.Metadata.Version, testChart, want)
	}
}

// TestChartFetchedOncePerClient checks that a client reads a repository once for a spec: the
// dry run and the upgrade of one run get the same chart even when the repository publishes a
// newer version in between, and each gets a chart of its own.
func TestChartFetchedOncePerClient(t *testing.T) {
	t.Parallel()
	dir, _ := packageTestCharts(t)
	full, err := repo.IndexDirectory(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	older, err := repo.IndexDirectory(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	older.Entries[testChart] = slices.DeleteFunc(older.Entries[testChart], func(cv *repo.ChartVersion) bool { return cv.Version == "3.0.0" })
	var published atomic.Pointer[repo.IndexFile]
	published.Store(older)
	indexReads := new(atomic.Int32)
	files := http.StripPrefix("/stable", http.FileServer(http.Dir(dir)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/index.yaml") {
			indexReads.Add(1)
			data, err := yaml.Marshal(published.Load())
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Write(data)
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	spec := UpgradeSpec{Chart: "alfresco/" + testChart, RepoURL: srv.URL + "/stable", CacheDir: t.TempDir()}
	c := &Client{}
	first, err := c.chart(spec)
	if err != nil {
		t.Fatal(err)
	}
	published.Store(full) // 3.0.0 is published between the dry run and the upgrade
	second, err := c.chart(spec)
	if err != nil {
		t.Fatal(err)
	}
	if first.Metadata.Version != "2.1.0" || second.Metadata.Version != "2.1.0" {
		t.Errorf("versions %s then %s, want 2.1.0 both times", first.Metadata.Version, second.Metadata.Version)
	}
	if first == second {
		t.Error("both calls returned the same chart object")
	}
	if n := indexReads.Load(); n != 1 {
		t.Errorf("index.yaml read %d times, want once", n)
	}
	// Another client (another run) sees the new version.
	if ch, err := (&Client{}).chart(spec); err != nil || ch.Metadata.Version != "3.0.0" {
		t.Errorf("a new client loaded %v, %v; want 3.0.0", ch.Metadata.Version, err)
	}
}
