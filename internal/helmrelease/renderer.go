package helmrelease

import (
	"context"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

var _ rollout.Releaser = Renderer{}

// Renderer binds a spec to the client, so that it serves as the pipeline's ReleaseReader and
// Releaser: each method is the client's, with the bound spec where the client's takes one.
type Renderer struct {
	Client *Client
	Spec   UpgradeSpec
}

// Current returns the latest revision of the release.
func (r Renderer) Current(_ context.Context, name string) (rollout.Release, error) {
	return r.Client.Current(name)
}

// Render renders the bound spec.
func (r Renderer) Render(ctx context.Context, name string) (rollout.Release, error) {
	return r.Client.Render(ctx, name, r.Spec)
}

// Diff compares the two revisions' manifests.
func (r Renderer) Diff(current, target rollout.Release) ([]rollout.Change, error) {
	return DiffManifests(current.Manifest, target.Manifest, r.Client.namespace)
}

// Unlock marks a revision left pending failed (see Client.Unlock).
func (r Renderer) Unlock(ctx context.Context, rel rollout.Release) error {
	return r.Client.Unlock(ctx, rel)
}

// MarkFailed records a revision as failed, with the reason (see Client.MarkFailed).
func (r Renderer) MarkFailed(ctx context.Context, rel rollout.Release, reason string) error {
	return r.Client.MarkFailed(ctx, rel, reason)
}

// Deployed returns the newest deployed revision (see Client.Deployed).
func (r Renderer) Deployed(ctx context.Context, name string) (rollout.Release, error) {
	return r.Client.Deployed(ctx, name)
}

// Values returns the values the user gave a revision (see Client.Values).
func (r Renderer) Values(ctx context.Context, name string, revision int) ([]byte, error) {
	return r.Client.Values(ctx, name, revision)
}

// Upgrade upgrades the release to the bound spec (see Client.Upgrade).
func (r Renderer) Upgrade(ctx context.Context, name string, timeout time.Duration) (rollout.Release, error) {
	return r.Client.Upgrade(ctx, name, r.Spec, timeout)
}

// Rollback returns the release to revision `to` (see Client.Rollback).
func (r Renderer) Rollback(ctx context.Context, name string, to int, opts rollout.RollbackOptions) (rollout.Release, error) {
	return r.Client.Rollback(ctx, name, to, opts)
}

// OrphanStatefulSets deletes the named StatefulSets, orphaning their pods (see
// Client.OrphanStatefulSets).
func (r Renderer) OrphanStatefulSets(ctx context.Context, names []string) error {
	return r.Client.OrphanStatefulSets(ctx, names)
}

// ReplaceOrphanedPods deletes the orphaned pods the named StatefulSets cannot adopt (see
// Client.ReplaceOrphanedPods).
func (r Renderer) ReplaceOrphanedPods(ctx context.Context, names []string) ([]string, error) {
	return r.Client.ReplaceOrphanedPods(ctx, names)
}
