package helmrelease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// maxHistory is how many revisions an upgrade or rollback keeps (helm's --history-max).
const maxHistory = 10

// Upgrade upgrades release name to spec, loading chart and values as Render does (and
// reuse-values as helm's --reset-then-reuse-values). It does not wait for readiness: the
// pipeline's own waiter does that, so a revision is "deployed" as soon as helm has applied it.
// timeout bounds the chart's upgrade hooks. Resources a failed upgrade created are left for the
// rollback to handle (no cleanup-on-fail).
//
// helm patches each object with a three-way merge from the newest deployed revision's manifest.
// When the latest revision is not that one (failed, or unlocked after an interrupted run), it
// may have applied fields that neither manifest has (a nodeSelector, an annotation), and the
// merge would keep them in the upgraded release. Upgrade then replaces each object with the
// target's instead (helm's --force).
//
// On an error after helm recorded a new revision (a hook, an immutable field, a cancelled ctx),
// the returned Release is that revision as stored (status failed), so the caller knows one
// exists; on an error before (chart, values, rendering, a pending release) it is the zero
// Release. When ctx is cancelled helm returns at once and marks the revision failed, but its
// own goroutine may still be applying the resources it had started on.
func (c *Client) Upgrade(ctx context.Context, name string, spec UpgradeSpec, timeout time.Duration) (rollout.Release, error) {
	up, ch, vals, err := c.upgradeAction(spec)
	if err != nil {
		return rollout.Release{}, err
	}
	before, err := c.Current(name)
	if err != nil {
		return rollout.Release{}, err
	}
	up.Wait = false
	up.Timeout = timeout
	up.MaxHistory = maxHistory
	up.CleanupOnFail = false
	if before.Status != release.StatusDeployed.String() {
		up.Force = true
		c.log.Info("the latest revision is not the deployed one: replacing each object with the target's rather than merging",
			"release", name, "latest", before.Revision, "status", before.Status)
	}
	rel, err := up.RunWithContext(ctx, name, ch, vals)
	if err == nil {
		out := fromHelm(rel)
		c.log.Info("upgraded release", "release", name, "revision", out.Revision, "chart", out.Chart(), "status", out.Status)
		return out, nil
	}
	err = fmt.Errorf("upgrade %q to %s: %w", name, spec.Chart, err)
	// Read the outcome back from storage rather than from helm's returned object, which its
	// goroutine may still be writing to after a cancellation.
	last, lerr := c.cfg.Releases.Last(name)
	if lerr != nil {
		return rollout.Release{}, errors.Join(err, fmt.Errorf("read release %q after the failed upgrade: %w", name, lerr))
	}
	if last.Version <= before.Revision {
		return rollout.Release{}, err
	}
	return fromHelm(last), err
}

// upgradeAction loads the spec's chart and values and configures helm's upgrade the way both
// the dry run and the real upgrade run it.
func (c *Client) upgradeAction(spec UpgradeSpec) (*action.Upgrade, *chart.Chart, map[string]any, error) {
	ch, err := c.chart(spec)
	if err != nil {
		return nil, nil, nil, err
	}
	vals, err := spec.values()
	if err != nil {
		return nil, nil, nil, err
	}
	up := action.NewUpgrade(c.cfg)
	up.Namespace = c.namespace
	// reuse-values keeps the values the user gave the release and takes the new chart's
	// defaults. (helm's own --reuse-values also keeps the old chart's defaults, image tags
	// included: the 1.4 chart would be installed still running the 1.3 image.)
	up.ResetThenReuseValues = spec.ReuseValues
	return up, ch, vals, nil
}
