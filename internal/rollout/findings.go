package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// What a plan finds in the vendor's older charts on a current cluster, each refused unless the
// request applies its fix (an Option), since a plain upgrade would fail on it after the
// downtime began, or drop what the customer configured.
var (
	// ErrRemovedAPIs: an object in an API the cluster no longer serves, in the stored release
	// (helm cannot build it: every upgrade and rollback fails) or in the target's render.
	ErrRemovedAPIs = errors.New("APIs the cluster no longer serves")
	// ErrValuesDropped: reused values under keys the target chart moved.
	ErrValuesDropped = errors.New("reused values would be dropped")
	// ErrMissingReference: an object the new pods need does not exist.
	ErrMissingReference = errors.New("the new pods reference what does not exist")
)

// findings adds to the plan the refusals and warnings of what the rendered target found:
// removed APIs in the stored revision and in the render, values that move between the
// charts' versions, and missing references.
func (p *Plan) findings(req PlanRequest) {
	t := p.Target
	if len(t.RemovedAPIs) > 0 && !req.MapRemovedAPIs {
		p.Refusals = append(p.Refusals, fmt.Errorf("%w: the stored manifest of revision %d has %s; helm fails to build it, so every upgrade and rollback of the release fails "+
			"(\"ensure CRDs are installed first\"); %s to rewrite it to the APIs that replaced them, as helm-mapkubeapis does (a new revision; the objects in the cluster do not change)",
			ErrRemovedAPIs, p.Current.Revision, conversions(t.RemovedAPIs), req.Advise.advise(Fix{OptionMapRemovedAPIs, "true"})))
	}
	if len(t.ConvertedAPIs) > 0 && !req.ConvertRemovedAPIs {
		p.Refusals = append(p.Refusals, fmt.Errorf("%w: chart %s renders %s; helm cannot apply them, and turning the part off would delete the live object; "+
			"%s to convert them, so that they are upgraded in place",
			ErrRemovedAPIs, t.Chart(), conversions(t.ConvertedAPIs), req.Advise.advise(Fix{OptionConvertRemovedAPIs, "true"})))
	}
	var reused []string
	for _, m := range t.ValueMoves {
		if !m.Given {
			reused = append(reused, m.String())
		}
	}
	if len(reused) > 0 && !req.MigrateValues {
		p.Refusals = append(p.Refusals, fmt.Errorf("%w: the release's values are reused under keys chart %s does not read, so these would be dropped without a word: %s; "+
			"%s to move them to the keys it reads",
			ErrValuesDropped, t.Chart(), strings.Join(reused, "; "), req.Advise.advise(Fix{OptionMigrateValues, "true"})))
	}
	for _, r := range t.MissingReferences {
		switch {
		case r.Unchecked != "":
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s: %s", r, r.Unchecked))
		case r.Optional:
			p.Warnings = append(p.Warnings, fmt.Sprintf("%s does not exist; it is optional, so the pods start without it", r))
		default:
			p.Refusals = append(p.Refusals, fmt.Errorf("%w: %s does not exist in namespace %q and the new manifest does not create it: the pods would never start, "+
				"after Keycloak is down; create it first", ErrMissingReference, r, req.Namespace))
		}
	}
}

// conversions names objects in removed APIs for a message.
func conversions(cs []APIConversion) string {
	var parts []string
	for _, c := range cs {
		to := c.To
		if to == "" {
			to = "nothing (no replacement; dropped)"
		}
		parts = append(parts, fmt.Sprintf("%s in %s (removed in Kubernetes %s; served as %s)", c.Object(), c.From, c.RemovedIn, to))
	}
	return strings.Join(parts, ", ")
}

// writeFindings writes what the plan does about the vendor's older charts: removed APIs mapped
// or converted, values moved.
func (p Plan) writeFindings(b *strings.Builder) {
	req, t := p.Request, p.Target
	section := func(title string, allowed bool, done, refused string, lines []string) {
		if len(lines) == 0 {
			return
		}
		how := done
		if !allowed {
			how = refused
		}
		fmt.Fprintf(b, "%s, %s:\n", title, how)
		for _, l := range lines {
			fmt.Fprintf(b, "  %s\n", l)
		}
	}
	section(fmt.Sprintf("Removed APIs in the stored manifest of revision %d", p.Current.Revision), req.MapRemovedAPIs,
		"would be mapped before the upgrade (map-removed-apis): a new revision, which a failure rolls back to",
		"refused without map-removed-apis", strs(t.RemovedAPIs))
	section("Removed APIs in the render of chart "+t.Chart(), req.ConvertRemovedAPIs,
		"converted (convert-removed-apis)", "refused without convert-removed-apis", strs(t.ConvertedAPIs))
	var moves []string
	for _, m := range t.ValueMoves {
		from := "reused"
		if m.Given {
			from = "given"
		}
		moves = append(moves, fmt.Sprintf("%s (%s)", m, from))
	}
	section(fmt.Sprintf("Values chart %s reads under other keys", t.Chart()), req.MigrateValues,
		"moved (migrate-values)", "not moved without migrate-values", moves)
}

// strs is each element's String.
func strs[T fmt.Stringer](xs []T) []string {
	out := make([]string, 0, len(xs))
	for _, x := range xs {
		out = append(out, x.String())
	}
	return out
}

// RemovedAPIMapper rewrites the stored manifest of a revision to the APIs the cluster serves
// (helmrelease.Renderer), returning the revision that holds the mapped manifest.
type RemovedAPIMapper interface {
	MapRemovedAPIs(ctx context.Context, rel Release) (Release, []APIConversion, error)
}

// mapRemovedAPIs maps the stored manifest of the revision to return to, when the plan found
// removed APIs in it and the request allows it, before anything else changes: from then on the
// mapped revision is the one the run backs up, upgrades from and returns to, and the journal
// records it (the way back of a run that dies after this reads it there).
func (r *run) mapRemovedAPIs(ctx context.Context) error {
	if !r.req.MapRemovedAPIs || len(r.rep.Plan.Target.RemovedAPIs) == 0 {
		return nil
	}
	return r.step(ctx, "map removed APIs", func(ctx context.Context) (string, error) {
		m, ok := r.p.Releases.(RemovedAPIMapper)
		if !ok {
			return "", errors.New("map-removed-apis is set but the release adapter cannot map")
		}
		from := r.rep.Plan.Current
		mapped, convs, err := m.MapRemovedAPIs(ctx, from)
		if err != nil {
			return "", err
		}
		if mapped.Revision == from.Revision {
			return "nothing to map", nil
		}
		r.rep.Plan.Current = mapped
		r.rep.PreviousRevision, r.rep.Revision = mapped.Revision, mapped.Revision
		if err := r.journal(ctx, r.jr.Step, func(j *Journal) {
			j.RecordedRevision, j.MappedFrom = mapped.Revision, from.Revision
		}); err != nil {
			return "", err
		}
		var objects []string
		for _, c := range convs {
			objects = append(objects, c.Object())
		}
		return fmt.Sprintf("revision %d → %d: %d objects (%s)", from.Revision, mapped.Revision, len(convs), strings.Join(objects, ", ")), nil
	})
}
