package helmrelease

import (
	"context"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
)

// PlainUpgrade upgrades the way the vendor's `helm upgrade RELEASE CHART` does, with no help:
// tests use it to show what plain helm does with the charts' traps.
func (c *Client) PlainUpgrade(ctx context.Context, name, chartPath string) error {
	ch, err := LoadChart(chartPath)
	if err != nil {
		return err
	}
	up := action.NewUpgrade(c.cfg)
	up.Namespace = c.namespace
	_, err = up.RunWithContext(ctx, name, ch, nil)
	return err
}

// SetStoredStatus overwrites the stored status of a revision, as a process killed in the middle
// of a helm operation leaves it (e.g. "pending-upgrade").
func (c *Client) SetStoredStatus(name string, revision int, status string) error {
	rel, err := c.cfg.Releases.Get(name, revision)
	if err != nil {
		return err
	}
	rel.Info.Status = release.Status(status)
	return c.cfg.Releases.Update(rel)
}

// StoredDescription is the stored description of a revision (helm history's DESCRIPTION).
func (c *Client) StoredDescription(name string, revision int) (string, error) {
	rel, err := c.cfg.Releases.Get(name, revision)
	if err != nil {
		return "", err
	}
	return rel.Info.Description, nil
}

// AtomicUpgrade upgrades the way `helm upgrade --atomic --timeout TIMEOUT NAME CHART` does, with
// values as the whole user-supplied value set (helm's --set/-f, no --reuse-values): it waits for
// every resource up to timeout (Atomic implies Wait) and, on failure, rolls back to the last
// successful revision, waiting up to timeout again. The benchmark compares the pipeline with it.
func (c *Client) AtomicUpgrade(ctx context.Context, name, chartPath string, values map[string]any, timeout time.Duration) error {
	ch, err := LoadChart(chartPath)
	if err != nil {
		return err
	}
	up := action.NewUpgrade(c.cfg)
	up.Namespace = c.namespace
	up.Atomic = true
	up.Wait = true
	up.Timeout = timeout
	_, err = up.RunWithContext(ctx, name, ch, values)
	return err
}

// PlainRender is helm's own client-side dry run of an upgrade of name to chartPath with the
// release's values reused, and nothing else: the baseline the render's findings are measured
// against.
func (c *Client) PlainRender(ctx context.Context, name, chartPath string) (string, error) {
	ch, err := LoadChart(chartPath)
	if err != nil {
		return "", err
	}
	up := action.NewUpgrade(c.cfg)
	up.Namespace = c.namespace
	up.ResetThenReuseValues = true
	up.DryRun = true
	up.DryRunOption = "client"
	rel, err := up.RunWithContext(ctx, name, ch, nil)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}
