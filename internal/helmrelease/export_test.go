package helmrelease

import (
	"context"

	"helm.sh/helm/v3/pkg/action"
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
