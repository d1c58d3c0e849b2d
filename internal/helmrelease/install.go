package helmrelease

import (
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
