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
	if err := c.storeFailed(stored, "left "+status.String()+" by an interrupted run"); err != nil {
		return fmt.Errorf("unlock %q revision %d: %w", rel.Name, rel.Revision, err)
	}
	c.log.Info("unlocked release", "release", rel.Name, "revision", rel.Revision, "was", status.String())
	return nil
}

// MarkFailed records revision rel.Revision of release rel.Name as failed, whatever its status,
// with the description "marked failed by identity-upgrade: <reason>". helm upgrade --atomic
// does the same to an upgrade before rolling it back; without it the rollback would supersede
// a revision that reads "Upgrade complete". It touches nothing but the stored record.
func (c *Client) MarkFailed(ctx context.Context, rel rollout.Release, reason string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("mark %q revision %d failed: %w", rel.Name, rel.Revision, context.Cause(ctx))
	}
	stored, err := c.revision(rel.Name, rel.Revision)
	if err != nil {
		return fmt.Errorf("mark failed: %w", err)
	}
	was := stored.Info.Status
	if err := c.storeFailed(stored, reason); err != nil {
		return fmt.Errorf("mark %q revision %d failed: %w", rel.Name, rel.Revision, err)
	}
	c.log.Info("marked revision failed", "release", rel.Name, "revision", rel.Revision, "was", was.String(), "reason", reason)
	return nil
}

// storeFailed stores rel with status failed and the description "marked failed by
// identity-upgrade: <why>" (helm history's DESCRIPTION).
func (c *Client) storeFailed(rel *release.Release, why string) error {
	rel.SetStatus(release.StatusFailed, "marked failed by identity-upgrade: "+why)
	if err := c.cfg.Releases.Update(rel); err != nil {
		return fmt.Errorf("store status failed: %w", err)
	}
	return nil
}
