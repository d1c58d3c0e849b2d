package helmrelease

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Install installs chartPath (a chart directory or .tgz) as release name with values, waiting
// with helm's own waiter up to timeout. It is used to set up rehearsals and tests; upgrades
// go through the pipeline, which waits with its own readiness checks.
func (c *Client) Install(ctx context.Context, name, chartPath string, values map[string]any, timeout time.Duration) (rollout.Release, error) {
	ch, err := LoadChart(chartPath)
	if err != nil {
		return rollout.Release{}, err
	}
	install := action.NewInstall(c.cfg)
	install.ReleaseName = name
	install.Namespace = c.namespace
	install.Wait = timeout > 0
	install.Timeout = timeout
	rel, err := install.RunWithContext(ctx, ch, values)
	if err != nil {
		return rollout.Release{}, fmt.Errorf("install %q from %s: %w", name, chartPath, err)
	}
	return fromHelm(rel), nil
}

// keeper is a post-renderer that converts the render for the cluster and keeps what the chart
// rendered.
type keeper struct {
	converter
	rendered string
}

func (k *keeper) Run(rendered *bytes.Buffer) (*bytes.Buffer, error) {
	k.rendered = rendered.String()
	return k.converter.Run(rendered)
}

// InstallWithRemovedAPIs installs chartPath as Install does, and leaves the release as one
// installed before the cluster stopped serving some of the APIs the chart renders, then kept
// through the cluster's upgrades: its objects exist in the APIs the cluster serves (the API
// server converted them as it stopped serving the old ones), while its stored manifest keeps
// the apiVersions the chart rendered (what every later helm upgrade or rollback fails to
// build). Tests and rehearsals start from it; it returns the release as stored.
func (c *Client) InstallWithRemovedAPIs(ctx context.Context, name, chartPath string, values map[string]any, timeout time.Duration) (rollout.Release, error) {
	ch, err := LoadChart(chartPath)
	if err != nil {
		return rollout.Release{}, err
	}
	served, err := c.servedAPIs(ctx)
	if err != nil {
		return rollout.Release{}, err
	}
	keep := &keeper{converter: converter{served: served}}
	install := action.NewInstall(c.cfg)
	install.ReleaseName = name
	install.Namespace = c.namespace
	install.Wait = timeout > 0
	install.Timeout = timeout
	install.PostRenderer = keep
	rel, err := install.RunWithContext(ctx, ch, values)
	if err != nil {
		return rollout.Release{}, fmt.Errorf("install %q from %s: %w", name, chartPath, err)
	}
	if len(keep.convs) == 0 {
		return rollout.Release{}, fmt.Errorf("install %q from %s: the chart renders no API the cluster has stopped serving", name, chartPath)
	}
	rel.Manifest = keep.rendered
	if err := c.cfg.Releases.Update(rel); err != nil {
		return rollout.Release{}, fmt.Errorf("store %q revision %d with the rendered manifest: %w", name, rel.Version, err)
	}
	return fromHelm(rel), nil
}

// LoadChart loads a chart directory or archive.
func LoadChart(path string) (*chart.Chart, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("chart %s: %w", path, err)
	}
	ch, err := loader.Load(path)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", path, err)
	}
	return ch, nil
}
