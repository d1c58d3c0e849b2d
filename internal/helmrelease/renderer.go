package helmrelease

import (
	"context"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

var _ rollout.Releaser = Renderer{}

// Renderer is the client bound to the spec of one run: the pipeline's Releaser. It has the
// client's methods; those that take a spec take the bound one.
type Renderer struct {
	*Client
	Spec UpgradeSpec
}

// Current returns the latest revision of the release.
func (r Renderer) Current(_ context.Context, name string) (rollout.Release, error) {
	return r.Client.Current(name)
}

// Render renders the bound spec.
func (r Renderer) Render(ctx context.Context, name string) (rollout.Release, error) {
	return r.Client.Render(ctx, name, r.Spec)
}

// Diff compares the two revisions' manifests (see Client.Diff).
func (r Renderer) Diff(current, target rollout.Release) ([]rollout.Change, error) {
	return r.Client.Diff(current.Manifest, target.Manifest)
}

// MapRemovedAPIs maps the stored manifest of a revision to served APIs (see
// Client.MapRemovedAPIs).
func (r Renderer) MapRemovedAPIs(ctx context.Context, rel rollout.Release) (rollout.Release, []rollout.APIConversion, error) {
	return r.Client.MapRemovedAPIs(ctx, rel)
}

// Upgrade upgrades the release to the bound spec (see Client.Upgrade).
func (r Renderer) Upgrade(ctx context.Context, name string, timeout time.Duration) (rollout.Release, error) {
	return r.Client.Upgrade(ctx, name, r.Spec, timeout)
}
