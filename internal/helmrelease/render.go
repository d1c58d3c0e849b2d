package helmrelease

import (
	"context"
	"fmt"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Render returns the revision an upgrade of release name to spec would create, without
// changing anything: helm's client-side dry run, which renders the chart and its hooks
// against the release's stored values.
func (c *Client) Render(ctx context.Context, name string, spec UpgradeSpec) (rollout.Release, error) {
	up, ch, vals, err := c.upgradeAction(spec)
	if err != nil {
		return rollout.Release{}, err
	}
	up.DryRun = true
	up.DryRunOption = "client"
	rel, err := up.RunWithContext(ctx, name, ch, vals)
	if err != nil {
		return rollout.Release{}, fmt.Errorf("render upgrade of %q to %s: %w", name, spec.Chart, err)
	}
	return fromHelm(rel), nil
}
