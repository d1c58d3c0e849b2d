package helmrelease

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/downloader"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/provenance"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// The chart sources of the `chart` input other than a local path: a chart repository
// (`repo/name` with `repo-url`) and an OCI registry (`oci://host/path/name`). Both are fetched
// with helm's own getters and registry client, as `helm upgrade --repo URL name --version V`
// and `helm upgrade oci://… --version V` would, but without helm's repositories.yaml, its
// repository cache or its registry config: nothing outside CacheDir is written.

// listMax bounds the versions or chart names an error lists.
const listMax = 12

// cacheDir returns the directory downloads are cached in, creating it: CacheDir, or
// identity-upgrade/charts under the user's cache directory.
func (s UpgradeSpec) cacheDir() (string, error) {
	dir := s.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			base = os.TempDir()
		}
		dir = filepath.Join(base, "identity-upgrade", "charts")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("chart cache directory: %w", err)
	}
	return dir, nil
}

// loadFromRepo fetches RepoURL's index.yaml, picks the version of the chart named after the
// slash of Chart that Version names (exactly, or the newest matching a semver constraint, or the
// newest stable one when empty), downloads its archive into the cache unless an archive with the
// index's digest is there already, and loads it. It returns the archive too.
func (s UpgradeSpec) loadFromRepo() (*chart.Chart, []byte, error) {
	_, name, ok := strings.Cut(s.Chart, "/")
	if !ok || name == "" || strings.Contains(name, "/") {
		return nil, nil, fmt.Errorf("chart %q: with repo-url the chart is repo/name (e.g. alfresco/alfresco-identity-service)", s.Chart)
	}
	repoURL := strings.TrimSpace(s.RepoURL)
	u, err := url.Parse(repoURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, nil, fmt.Errorf("repo-url %q is not an http(s) URL of a chart repository (e.g. https://kubernetes-charts.alfresco.com/stable)", repoURL)
	}
	cache, err := s.cacheDir()
	if err != nil {
		return nil, nil, err
	}
	work, err := os.MkdirTemp(cache, "index-")
	if err != nil {
		return nil, nil, fmt.Errorf("chart cache directory: %w", err)
	}
	defer os.RemoveAll(work)

	getters := getter.All(cli.New())
	index, indexURL, err := s.fetchIndex(repoURL, work, getters)
	if err != nil {
		return nil, nil, err
	}
	cv, err := s.pickVersion(index, name, indexURL)
	if err != nil {
		return nil, nil, err
	}
	if len(cv.URLs) == 0 {
		return nil, nil, fmt.Errorf("chart %q version %s: %s lists no download URL for it", s.Chart, cv.Version, indexURL)
	}
	chartURL, err := repo.ResolveReferenceURL(repoURL, cv.URLs[0])
	if err != nil {
		return nil, nil, fmt.Errorf("chart %q version %s: %s: %w", s.Chart, cv.Version, indexURL, err)
	}

	// One cache directory per repository, so that two repositories' same-named archives do not
	// meet; an archive is reused only when the index gives its digest and it still matches.
	sum := sha256.Sum256([]byte(repoURL))
	dest := filepath.Join(cache, "repo-"+hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dest, 0o700); err != nil {
		return nil, nil, fmt.Errorf("chart cache directory: %w", err)
	}
	archive := filepath.Join(dest, archiveName(chartURL))
	if cv.Digest == "" || !digestMatches(archive, cv.Digest) {
		archive, err = s.download(repoURL, chartURL, dest, work, getters)
		if err != nil {
			return nil, nil, fmt.Errorf("chart %q version %s: download %s: %w", s.Chart, cv.Version, chartURL, err)
		}
	}
	data, err := os.ReadFile(archive)
	if err != nil {
		return nil, nil, fmt.Errorf("chart %q version %s: %w", s.Chart, cv.Version, err)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, nil, fmt.Errorf("chart %q version %s from %s: %w", s.Chart, cv.Version, chartURL, err)
	}
	if ch.Metadata.Name != cv.Name || ch.Metadata.Version != cv.Version {
		return nil, nil, fmt.Errorf("chart %q: %s holds chart %s %s, but %s says %s %s",
			s.Chart, chartURL, ch.Metadata.Name, ch.Metadata.Version, indexURL, cv.Name, cv.Version)
	}
	return ch, data, nil
}

// fetchIndex downloads and parses the repository's index.yaml into work.
func (s UpgradeSpec) fetchIndex(repoURL, work string, getters getter.Providers) (*repo.IndexFile, string, error) {
	indexURL, err := repo.ResolveReferenceURL(repoURL, "index.yaml")
	if err != nil {
		return nil, "", fmt.Errorf("repo-url %q: %w", repoURL, err)
	}
	r, err := repo.NewChartRepository(&repo.Entry{
		Name:     "identity-upgrade",
		URL:      repoURL,
		Username: s.Username,
		Password: s.Password,
	}, getters)
	if err != nil {
		return nil, "", fmt.Errorf("repo-url %q: %w", repoURL, err)
	}
	r.CachePath = work
	file, err := r.DownloadIndexFile()
	if err != nil {
		return nil, "", fmt.Errorf("repo-url %s: %w", repoURL, fetchError(err, indexURL, s.Username != ""))
	}
	index, err := repo.LoadIndexFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("repo-url %s: %s is not a chart repository index: %w", repoURL, indexURL, err)
	}
	return index, indexURL, nil
}

// pickVersion chooses the chart version as helm does (IndexFile.Get), and otherwise says what
// the repository has.
func (s UpgradeSpec) pickVersion(index *repo.IndexFile, name, indexURL string) (*repo.ChartVersion, error) {
	vs := index.Entries[name]
	if len(vs) == 0 {
		names := make([]string, 0, len(index.Entries))
		for n, v := range index.Entries {
			if len(v) > 0 {
				names = append(names, n)
			}
		}
		slices.Sort(names)
		return nil, fmt.Errorf("chart %q: %s has no chart named %q (charts there: %s)", s.Chart, indexURL, name, list(names))
	}
	version := strings.TrimSpace(s.Version)
	cv, err := index.Get(name, version)
	if err == nil {
		return cv, nil
	}
	available := make([]string, 0, len(vs))
	for _, v := range vs { // newest first: LoadIndexFile sorts them
		available = append(available, v.Version)
	}
	if version == "" {
		return nil, fmt.Errorf("chart %q: %s has no stable version (available: %s); set chart-version", s.Chart, indexURL, list(available))
	}
	if _, cerr := semver.NewConstraint(version); cerr != nil {
		return nil, fmt.Errorf("chart-version %q is neither a version nor a semver constraint (chart %q, available: %s): %w", version, s.Chart, list(available), cerr)
	}
	return nil, fmt.Errorf("chart %q: version %q not found in %s (available: %s); set chart-version to one of them, or leave it empty for the newest",
		s.Chart, version, indexURL, list(available))
}

// download fetches chartURL into dest with helm's ChartDownloader, passing the credentials only
// to the repository's own scheme and host (as helm does without --pass-credentials).
func (s UpgradeSpec) download(repoURL, chartURL, dest, work string, getters getter.Providers) (string, error) {
	user, pass := s.Username, s.Password
	if ru, cu := parseURL(repoURL), parseURL(chartURL); ru.Scheme != cu.Scheme || ru.Host != cu.Host {
		user, pass = "", ""
	}
	dl := downloader.ChartDownloader{
		Out:     io.Discard,
		Verify:  downloader.VerifyNever,
		Getters: getters,
		Options: []getter.Option{getter.WithBasicAuth(user, pass)},
		// Files that do not exist: no repositories.yaml of the user's helm is consulted.
		RepositoryConfig: filepath.Join(work, "repositories.yaml"),
		RepositoryCache:  work,
	}
	archive, _, err := dl.DownloadTo(chartURL, "", dest)
	if err != nil {
		return "", fetchError(err, chartURL, user != "")
	}
	return archive, nil
}

// loadOCI pulls the chart from an OCI registry with helm's registry client. The tag is the
// reference's own, or Version when it is an exact version, or else the newest tag matching
// Version as a semver constraint (the newest stable one when empty), as helm resolves it. A
// reference with a digest is pulled by digest. Plain HTTP is used for a loopback registry only.
func (s UpgradeSpec) loadOCI() (*chart.Chart, []byte, error) {
	ref := strings.TrimPrefix(s.Chart, registry.OCIScheme+"://")
	host, _, _ := strings.Cut(ref, "/")
	version := strings.TrimSpace(s.Version)

	cache, err := s.cacheDir()
	if err != nil {
		return nil, nil, err
	}
	work, err := os.MkdirTemp(cache, "oci-")
	if err != nil {
		return nil, nil, fmt.Errorf("chart cache directory: %w", err)
	}
	defer os.RemoveAll(work)
	opts := []registry.ClientOption{
		registry.ClientOptWriter(io.Discard),
		// Never written (there is no Login); keeps helm's own registry config out of it. Docker's
		// config (e.g. from docker login) is still read when no credentials are given.
		registry.ClientOptCredentialsFile(filepath.Join(work, "config.json")),
	}
	if isLoopback(host) {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	if s.Username != "" {
		opts = append(opts, registry.ClientOptBasicAuth(s.Username, s.Password))
	}
	client, err := registry.NewClient(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("chart %q: registry client: %w", s.Chart, err)
	}

	repoRef, tag, digest := splitOCIRef(ref)
	switch {
	case digest != "":
		// Pinned by digest; a version, if given, is checked against the chart below.
	case tag != "":
		if version != "" && version != tag && strings.ReplaceAll(version, "+", "_") != tag {
			return nil, nil, fmt.Errorf("chart %q has tag %s but chart-version is %q; give the version in one place only", s.Chart, tag, version)
		}
	case isExactVersion(version):
		tag = version
		ref = repoRef + ":" + tag
	default:
		tags, err := client.Tags(repoRef)
		if err != nil {
			return nil, nil, fmt.Errorf("chart %q: list the tags to resolve chart-version %q: %w", s.Chart, version, fetchError(err, "oci://"+repoRef, s.Username != ""))
		}
		if len(tags) == 0 {
			return nil, nil, fmt.Errorf("chart %q: the repository has no version tags; check the reference, or set chart-version to an existing tag", s.Chart)
		}
		tag, err = registry.GetTagMatchingVersionOrConstraint(tags, version)
		if err != nil {
			if version == "" {
				return nil, nil, fmt.Errorf("chart %q has no stable version (available: %s); set chart-version", s.Chart, list(tags))
			}
			return nil, nil, fmt.Errorf("chart %q: no version matches chart-version %q (available: %s)", s.Chart, version, list(tags))
		}
		ref = repoRef + ":" + tag
	}

	res, err := client.Pull(ref, registry.PullOptWithChart(true))
	if err != nil {
		err = fetchError(err, "oci://"+ref, s.Username != "")
		if tag != "" && !errors.Is(err, errUnreachable) {
			tags, terr := client.Tags(repoRef)
			switch {
			case terr == nil && !registry.ContainsTag(tags, strings.ReplaceAll(tag, "_", "+")):
				return nil, nil, fmt.Errorf("chart %q: version %q not found in the registry (available: %s); set chart-version to one of them",
					s.Chart, tag, list(tags))
			case terr != nil && statusOf(terr) == 404:
				return nil, nil, fmt.Errorf("chart %q: the registry %s has no repository %s: %w", s.Chart, host, strings.TrimPrefix(repoRef, host+"/"), terr)
			}
		}
		return nil, nil, fmt.Errorf("chart %q: pull oci://%s: %w", s.Chart, ref, err)
	}
	ch, err := loader.LoadArchive(bytes.NewReader(res.Chart.Data))
	if err != nil {
		return nil, nil, fmt.Errorf("chart %q: oci://%s is not a chart archive: %w", s.Chart, ref, err)
	}
	if digest != "" && version != "" && !versionMatches(ch.Metadata.Version, version) {
		return nil, nil, fmt.Errorf("chart %q is version %s, which chart-version %q does not match", s.Chart, ch.Metadata.Version, version)
	}
	return ch, res.Chart.Data, nil
}

// splitOCIRef splits host/path[:tag][@digest] (without oci://).
func splitOCIRef(ref string) (repoRef, tag, digest string) {
	if before, d, ok := strings.Cut(ref, "@"); ok {
		ref, digest = before, d
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:], digest
	}
	return ref, "", digest
}

func isExactVersion(v string) bool {
	_, err := semver.StrictNewVersion(v)
	return err == nil
}

func versionMatches(have, want string) bool {
	if have == want {
		return true
	}
	c, err := semver.NewConstraint(want)
	if err != nil {
		return false
	}
	v, err := semver.NewVersion(have)
	return err == nil && c.Check(v)
}

// isLoopback reports whether host[:port] is this machine, where a registry may speak plain HTTP.
func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

var errUnreachable = errors.New("not reachable")

// statusPattern finds the HTTP status in helm's getter errors ("failed to fetch URL : 401
// Unauthorized") and in the registry's ("response status code 401: unauthorized").
var statusPattern = regexp.MustCompile(`(?: : |status code )([1-5][0-9][0-9])\b`)

// fetchError says what a failed fetch of what means for the inputs: an unreachable server, a
// refusal that better credentials may fix, or a URL that is not there.
func fetchError(err error, what string, withCredentials bool) error {
	var uerr *url.Error
	var nerr net.Error
	if errors.As(err, &uerr) || errors.As(err, &nerr) {
		return fmt.Errorf("%s %w: %w", what, errUnreachable, err)
	}
	if errors.Is(err, auth.ErrBasicCredentialNotFound) {
		return fmt.Errorf("%w (it requires credentials: set registry-username and registry-password)", err)
	}
	switch statusOf(err) {
	case 401, 403:
		if withCredentials {
			return fmt.Errorf("%w (check registry-username and registry-password)", err)
		}
		return fmt.Errorf("%w (it requires credentials: set registry-username and registry-password)", err)
	case 404:
		return fmt.Errorf("%w (not found: check the URL or reference)", err)
	}
	return err
}

// statusOf returns the HTTP status an error reports, or 0.
func statusOf(err error) int {
	m := statusPattern.FindStringSubmatch(err.Error())
	if m == nil {
		return 0
	}
	code, _ := strconv.Atoi(m[1])
	return code
}

func digestMatches(path, digest string) bool {
	got, err := provenance.DigestFile(path)
	return err == nil && got == digest
}

func list(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	if len(items) > listMax {
		return strings.Join(items[:listMax], ", ") + fmt.Sprintf(" and %d more", len(items)-listMax)
	}
	return strings.Join(items, ", ")
}

// parseURL parses s, or returns an empty URL.
func parseURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{}
	}
	return u
}

func archiveName(chartURL string) string { return path.Base(parseURL(chartURL).Path) }
