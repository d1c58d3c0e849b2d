package helmrelease

import (
	"context"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Revision returns one revision of the release: the one an interrupted run recorded to return
// to, which need not be the newest deployed one any more.
func (c *Client) Revision(_ context.Context, name string, revision int) (rollout.Release, error) {
	rel, err := c.revision(name, revision)
	if err != nil {
		return rollout.Release{}, err
	}
	return fromHelm(rel), nil
}

// Revision implements rollout.RevisionReader.
func (r Renderer) Revision(ctx context.Context, name string, revision int) (rollout.Release, error) {
	return r.Client.Revision(ctx, name, revision)
}
