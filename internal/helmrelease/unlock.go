package helmrelease

import (
	"context"
	"errors"
	"fmt"

	"helm.sh/helm/v3/pkg/release"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// ErrNotPending is returned by Unlock for a revision that has no operation left in progress.
var ErrNotPending = errors.New("revision is not pending")

// Unlock marks revision rel.Revision of release rel.Name failed when it is pending-install,
// pending-upgrade or pending-rollback, as Flux's helm-controller does: helm refuses every
// operation on a release whose latest revision is pending, and only a process that is gone
// leaves one so. It touches nothing but the release's stored record, and refuses (ErrNotPending)
// a revision that is not pending. That no other process is still working on the release is the
// caller's to ensure (the Lease lock).
func (c *Client) Unlock(ctx context.Context, rel rollout.Release) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("unlock %q revision %d: %w", rel.Name, rel.Revision, context.Cause(ctx))
	}
	stored, err := c.revision(rel.Name, rel.Revision)
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	status := stored.Info.Status
	if !status.IsPending() {
		return fmt.Errorf("unlock %q revision %d: it is %s: %w", rel.Name, rel.Revision, status, ErrNotPending)
	}
	stored.SetStatus(release.StatusFailed, fmt.Sprintf("marked failed by identity-upgrade: left %s by an interrupted run", status))
	if err := c.cfg.Releases.Update(stored); err != nil {
		return fmt.Errorf("unlock %q revision %d: store status failed: %w", rel.Name, rel.Revision, err)
	}
	c.log.Info("unlocked release", "release", rel.Name, "revision", rel.Revision, "was", status.String())
	return nil
}
