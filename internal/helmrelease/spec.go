package helmrelease

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// UpgradeSpec is the target of an upgrade: chart, version and values, as the inputs give them.
type UpgradeSpec struct {
	// Chart is the `chart` input: repo/name with RepoURL (the part before the slash is only the
	// repository's alias), oci://host/path/name[:tag][@digest], or a local chart directory or
	// .tgz.
	Chart string
	// Version (`chart-version`) is an exact version or a semver constraint; empty means the
	// newest stable version. Not used with a local chart.
	Version string
	// RepoURL (`repo-url`) is the chart repository whose index.yaml lists Chart.
	RepoURL string
	// Username and Password (`registry-username`, `registry-password`) authenticate to the
	// chart repository (HTTP basic auth, sent to the repository's own host only) or the OCI
	// registry. Without them an OCI pull uses docker's stored credentials, if any.
	Username string
	Password string
	// CacheDir holds downloaded chart archives (default: identity-upgrade/charts under the
	// user's cache directory). A repository chart is downloaded again only when its digest in
	// index.yaml changes. A Client reads the index (or an OCI tag list) and the archive once
	// per spec.
	CacheDir string
	// Values is inline YAML; ValuesFiles are read in order; Set are key=value lines with helm's
	// --set syntax. Later sources win, as with helm.
	Values      string
	ValuesFiles []string
	Set         []string
	// ReuseValues keeps the values given to the current revision, over the new chart's
	// defaults (helm's --reset-then-reuse-values).
	ReuseValues bool
	// MigrateValues moves the reused values and the given ones to the keys the target chart
	// reads them under, by the table of value moves for the release's chart and the target's
	// versions (migrate-values).
	MigrateValues bool
	// ConvertRemovedAPIs converts the objects of the render whose apiVersion the cluster no
	// longer serves to the API that replaced it (convert-removed-apis), as a post-renderer.
	ConvertRemovedAPIs bool
}

func (s UpgradeSpec) values() (map[string]any, error) {
	base := map[string]any{}
	for _, f := range s.ValuesFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("values-files: %w", err)
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("values-files: %s is not valid YAML: %w", f, err)
		}
		base = chartutil.CoalesceTables(m, base)
	}
	if strings.TrimSpace(s.Values) != "" {
		m := map[string]any{}
		if err := yaml.Unmarshal([]byte(s.Values), &m); err != nil {
			return nil, fmt.Errorf("values: not valid YAML: %w", err)
		}
		base = chartutil.CoalesceTables(m, base)
	}
	for _, kv := range s.Set {
		if err := strvals.ParseInto(kv, base); err != nil {
			key, _, _ := strings.Cut(kv, "=")
			return nil, fmt.Errorf("set: %q: %w", key, err)
		}
	}
	return base, nil
}

// load fetches and loads the chart the spec names: from an OCI registry, a chart repository
// (see chartsource.go) or the local file system. For a fetched chart it also returns the
// archive.
func (s UpgradeSpec) load() (*chart.Chart, []byte, error) {
	switch {
	case registry.IsOCI(s.Chart):
		return s.loadOCI()
	case s.RepoURL != "":
		return s.loadFromRepo()
	}
	ch, err := LoadChart(s.Chart)
	if err != nil && errors.Is(err, fs.ErrNotExist) && strings.Count(s.Chart, "/") == 1 &&
		!strings.HasPrefix(s.Chart, ".") && !strings.HasPrefix(s.Chart, "/") {
		return nil, nil, fmt.Errorf("chart %q is no local path, and as repo/name it needs repo-url (the chart repository's URL): %w", s.Chart, err)
	}
	return ch, nil, err
}

// source names where the spec's chart comes from and which version it asks for.
func (s UpgradeSpec) source() string {
	return strings.Join([]string{s.Chart, s.Version, s.RepoURL, s.Username, s.Password}, "\x00")
}

// chart loads the spec's chart. A chart from a repository or a registry is fetched once per
// client: the dry run and the upgrade of one run then use the same archive, even when the
// repository publishes a newer version in between (chart-version empty or a constraint), and
// the index or tag list is read once. Each call returns a chart of its own, since helm's
// actions change the chart they are given.
func (c *Client) chart(spec UpgradeSpec) (*chart.Chart, error) {
	key := spec.source()
	c.mu.Lock()
	data, ok := c.archives[key]
	c.mu.Unlock()
	if ok {
		return loader.LoadArchive(bytes.NewReader(data))
	}
	ch, data, err := spec.load()
	if err == nil && data != nil {
		c.mu.Lock()
		if c.archives == nil {
			c.archives = map[string][]byte{}
		}
		c.archives[key] = data
		c.mu.Unlock()
	}
	return ch, err
}
