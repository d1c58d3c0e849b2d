package helmrelease

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"

	"github.com/identity-upgrade/identity-upgrade/internal/kubeapis"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Render returns the revision an upgrade of release name to spec would create, without
// changing anything: helm's client-side dry run, which renders the chart and its hooks
// against the release's stored values.
//
// It also finds what a plain upgrade would fail on or drop, whatever the spec asks to do about
// it, so that the plan can name each: the stored manifest's objects in APIs the cluster no
// longer serves (the render reads a copy of the stored revisions mapped to served APIs: helm
// fails on them before it renders), the render's own (converted, and listed, even without
// spec.ConvertRemovedAPIs), the values that move between the two charts' versions, and what
// the new pods reference that does not exist.
func (c *Client) Render(ctx context.Context, name string, spec UpgradeSpec) (rollout.Release, error) {
	rel, found, err := c.render(ctx, name, spec)
	if err != nil {
		return rollout.Release{}, err
	}
	out := fromHelm(rel)
	out.UnreadValues = unreadValues(rel.Config, rel.Chart)
	out.RemovedAPIs = fromConversions(found.stored)
	out.ConvertedAPIs = fromConversions(found.converted)
	out.ValueMoves = found.moves
	if out.MissingReferences, err = c.missingReferences(ctx, rel); err != nil {
		return rollout.Release{}, err
	}
	return out, nil
}

// unreadValues lists the paths of the user-supplied values (config: the reused values merged
// with the new ones) that ch has no key for in its own default values or, under a
// dependency's name or alias, in the dependency's: values a chart does not declare are most
// likely not read by its templates (2.1.0's keycloak.keycloak.replicas, which 3.0.0 reads as
// keycloak.replicas). global is shared by every chart and never listed.
func unreadValues(config map[string]any, ch *chart.Chart) []string {
	var out []string
	var walk func(prefix string, vals map[string]any, defaults map[string]any, deps map[string]*chart.Chart)
	walk = func(prefix string, vals map[string]any, defaults map[string]any, deps map[string]*chart.Chart) {
		for _, k := range slices.Sorted(maps.Keys(vals)) {
			path := prefix + k
			if prefix == "" && k == "global" {
				continue
			}
			sub, isMap := vals[k].(map[string]any)
			if def, ok := defaults[k]; ok {
				if defMap, ok := def.(map[string]any); ok && isMap && len(defMap) > 0 {
					walk(path+".", sub, defMap, nil)
				}
				continue
			}
			if dep, ok := deps[k]; ok {
				if isMap {
					walk(path+".", sub, dep.Values, dependencies(dep))
				}
				continue
			}
			out = append(out, path)
		}
	}
	if ch != nil {
		walk("", config, ch.Values, dependencies(ch))
	}
	return out
}

// dependencies are a chart's subcharts by the key their values sit under: the alias the
// parent gives them, else their name.
func dependencies(ch *chart.Chart) map[string]*chart.Chart {
	out := map[string]*chart.Chart{}
	for _, d := range ch.Dependencies() {
		out[d.Name()] = d
	}
	if ch.Metadata != nil {
		for _, d := range ch.Metadata.Dependencies {
			if d.Alias == "" {
				continue
			}
			for _, sub := range ch.Dependencies() {
				if sub.Name() == d.Name {
					out[d.Alias] = sub
				}
			}
		}
	}
	return out
}

// found is what a render found that a plain upgrade would fail on or drop (see Render).
type found struct {
	stored, converted []kubeapis.Conversion
	moves             []rollout.ValueMove
}

// render is Render's helm release, with the values the upgrade would give the chart (Config),
// and what it found.
func (c *Client) render(ctx context.Context, name string, spec UpgradeSpec) (*release.Release, found, error) {
	served, err := c.servedAPIs(ctx)
	if err != nil {
		return nil, found{}, err
	}
	cfg, stored, err := c.mappedConfig(name, served)
	if err != nil {
		return nil, found{}, fmt.Errorf("render upgrade of %q: the stored release: %w", name, err)
	}
	if cfg == nil {
		cfg = c.cfg
	}
	up, ch, vals, moves, err := c.upgradeAction(cfg, name, spec)
	if err != nil {
		return nil, found{}, err
	}
	conv := &converter{served: served}
	up.PostRenderer = conv
	up.DryRun = true
	up.DryRunOption = "client"
	rel, err := up.RunWithContext(ctx, name, ch, vals)
	if err != nil {
		return nil, found{}, fmt.Errorf("render upgrade of %q to %s: %w", name, spec.Chart, err)
	}
	return rel, found{stored: stored, converted: conv.convs, moves: moves}, nil
}
