package helmrelease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
	"github.com/identity-upgrade/identity-upgrade/internal/valuemoves"
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
	up, ch, vals, _, err := c.upgradeAction(c.cfg, name, spec)
	if err != nil {
		return rollout.Release{}, err
	}
	if spec.ConvertRemovedAPIs {
		served, err := c.servedAPIs(ctx)
		if err != nil {
			return rollout.Release{}, err
		}
		up.PostRenderer = &converter{served: served}
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
	err = removedAPIHint(err)
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

// upgradeAction loads the spec's chart and values and configures helm's upgrade on cfg the way
// both the dry run and the real upgrade run it. When the table of value moves has moves for
// the release's chart and the target's versions, it returns them: the reused values' and the
// given ones', applied when spec.MigrateValues is set.
func (c *Client) upgradeAction(cfg *action.Configuration, name string, spec UpgradeSpec) (*action.Upgrade, *chart.Chart, map[string]any, []rollout.ValueMove, error) {
	ch, err := c.chart(spec)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	vals, err := spec.values()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	up := action.NewUpgrade(cfg)
	up.Namespace = c.namespace
	// reuse-values keeps the values the user gave the release and takes the new chart's
	// defaults. (helm's own --reuse-values also keeps the old chart's defaults, image tags
	// included: the 1.4 chart would be installed still running the 1.3 image.)
	up.ResetThenReuseValues = spec.ReuseValues

	base, err := upgradeBase(cfg, name)
	if err != nil || base.Chart == nil || base.Chart.Metadata == nil || ch.Metadata == nil {
		// helm's upgrade says what is wrong with the release.
		return up, ch, vals, nil, nil
	}
	rules := valuemoves.Default().For(base.Chart.Metadata.Name, base.Chart.Metadata.Version, ch.Metadata.Version)
	if len(rules) == 0 {
		return up, ch, vals, nil, nil
	}
	var moves []rollout.ValueMove
	var reused map[string]any
	if spec.ReuseValues {
		var m []valuemoves.Move
		if reused, m, err = valuemoves.Apply(base.Config, rules); err != nil {
			return nil, nil, nil, nil, fmt.Errorf("move the values of revision %d: %w", base.Version, err)
		}
		moves = append(moves, fromMoves(m, false)...)
	}
	given, m, err := valuemoves.Apply(vals, rules)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("move the given values: %w", err)
	}
	moves = append(moves, fromMoves(m, true)...)
	if spec.MigrateValues {
		vals = given
		if spec.ReuseValues {
			// What helm's reset-then-reuse does, with the reused values moved first.
			vals = chartutil.CoalesceTables(vals, reused)
			up.ResetThenReuseValues = false
		}
	}
	return up, ch, vals, moves, nil
}

func fromMoves(moves []valuemoves.Move, given bool) []rollout.ValueMove {
	out := make([]rollout.ValueMove, 0, len(moves))
	for _, m := range moves {
		out = append(out, rollout.ValueMove{From: m.From, To: m.To, Value: m.Value, Note: m.Note, Given: given})
	}
	return out
}

// upgradeBase is the revision helm upgrades from: the latest when deployed, else the newest
// deployed one, else a failed or superseded latest.
func upgradeBase(cfg *action.Configuration, name string) (*release.Release, error) {
	last, err := cfg.Releases.Last(name)
	if err != nil {
		return nil, err
	}
	if last.Info.Status == release.StatusDeployed {
		return last, nil
	}
	deployed, err := cfg.Releases.Deployed(name)
	if err != nil {
		if last.Info.Status == release.StatusFailed || last.Info.Status == release.StatusSuperseded {
			return last, nil
		}
		return nil, err
	}
	return deployed, nil
}
