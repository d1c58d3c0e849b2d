package helmrelease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/yaml"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// Sentinel errors of the release operations.
var (
	// ErrNotPending is returned by Unlock for a revision that has no operation left in progress.
	ErrNotPending = errors.New("revision is not pending")
	// ErrNoDeployedRevision is returned by Deployed when no revision is deployed.
	ErrNoDeployedRevision = errors.New("release has no deployed revision")
)

// maxHistory is how many revisions an upgrade or rollback keeps (helm's --history-max).
const maxHistory = 10

var _ rollout.Releaser = Renderer{}

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

// Deployed returns the newest revision whose status is deployed: the one running when the
// latest revision failed or was unlocked. It fails with ErrNoDeployedRevision when there is none
// (a failed install, or every revision failed or superseded).
func (c *Client) Deployed(ctx context.Context, name string) (rollout.Release, error) {
	if err := ctx.Err(); err != nil {
		return rollout.Release{}, fmt.Errorf("deployed revision of %q: %w", name, context.Cause(ctx))
	}
	rel, err := c.cfg.Releases.Deployed(name)
	if errors.Is(err, driver.ErrNoDeployedReleases) {
		return rollout.Release{}, fmt.Errorf("release %q in namespace %q: %w", name, c.namespace, ErrNoDeployedRevision)
	}
	if err != nil {
		return rollout.Release{}, fmt.Errorf("read deployed revision of %q: %w", name, err)
	}
	return fromHelm(rel), nil
}

// Values returns the values the user gave revision `revision` of the release (helm get values,
// without the chart's defaults), as YAML; "{}" when none were given.
func (c *Client) Values(ctx context.Context, name string, revision int) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("values of %q revision %d: %w", name, revision, context.Cause(ctx))
	}
	stored, err := c.revision(name, revision)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	if len(stored.Config) == 0 {
		return []byte("{}\n"), nil
	}
	out, err := yaml.Marshal(stored.Config)
	if err != nil {
		return nil, fmt.Errorf("values of %q revision %d: %w", name, revision, err)
	}
	return out, nil
}

// revision reads one stored revision; revision must be > 0.
func (c *Client) revision(name string, revision int) (*release.Release, error) {
	if revision <= 0 {
		return nil, fmt.Errorf("release %q: invalid revision %d", name, revision)
	}
	stored, err := c.cfg.Releases.Get(name, revision)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, fmt.Errorf("release %q revision %d in namespace %q: %w", name, revision, c.namespace, ErrReleaseNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read release %q revision %d: %w", name, revision, err)
	}
	if stored.Info == nil {
		return nil, fmt.Errorf("release %q revision %d has no status record", name, revision)
	}
	return stored, nil
}

// Upgrade upgrades release name to spec, loading chart and values as Render does (and
// reuse-values as helm's --reset-then-reuse-values). It does not wait for readiness: the
// pipeline's own waiter does that, so a revision is "deployed" as soon as helm has applied it.
// timeout bounds the chart's upgrade hooks. Resources a failed upgrade created are left for the
// rollback to handle (no cleanup-on-fail).
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

// Rollback returns release name to revision `to` (never 0, helm's "previous"), recording a new
// revision, without waiting for readiness. opts.Timeout bounds the rollback hooks (when they
// run), shortened to ctx's deadline if that comes first.
//
// helm's Rollback.Run takes no context. ctx is checked before it starts; once started, it runs
// to the end even if ctx is cancelled: stopping helm half-way would leave the release
// pending-rollback, which is the state a rollback is meant to get out of. Its duration is
// bounded by the timeout for the hooks and by the API server's answers for the rest.
//
// helm does not record the failure of a rollback hook: it returns with the new revision left
// pending-rollback, which locks the release. Since helm is done with it, Rollback then marks
// that revision failed (as Unlock does) and returns it with the error.
func (c *Client) Rollback(ctx context.Context, name string, to int, opts rollout.RollbackOptions) (rollout.Release, error) {
	if to <= 0 {
		return rollout.Release{}, fmt.Errorf("rollback %q: invalid target revision %d (0 would mean helm's previous revision)", name, to)
	}
	if err := ctx.Err(); err != nil {
		return rollout.Release{}, fmt.Errorf("rollback %q to revision %d: %w", name, to, context.Cause(ctx))
	}
	before, err := c.Current(name)
	if err != nil {
		return rollout.Release{}, err
	}
	rb := action.NewRollback(c.cfg)
	rb.Version = to
	rb.DisableHooks = opts.DisableHooks
	rb.Force = opts.Force
	rb.CleanupOnFail = opts.CleanupOnFail
	rb.Timeout = boundedTimeout(ctx, opts.Timeout)
	rb.Wait = false
	rb.MaxHistory = maxHistory
	runErr := rb.Run(name)

	last, err := c.cfg.Releases.Last(name)
	if err != nil {
		return rollout.Release{}, errors.Join(
			fmt.Errorf("rollback %q to revision %d: %w", name, to, runErr),
			fmt.Errorf("read release %q after the rollback: %w", name, err))
	}
	if last.Version <= before.Revision {
		if runErr == nil {
			runErr = fmt.Errorf("helm recorded no new revision (latest is still %d)", last.Version)
		}
		return rollout.Release{}, fmt.Errorf("rollback %q to revision %d: %w", name, to, runErr)
	}
	if runErr == nil {
		out := fromHelm(last)
		c.log.Info("rolled back release", "release", name, "to", to, "revision", out.Revision, "status", out.Status)
		return out, nil
	}
	if conflicted(runErr) {
		runErr = &conflictError{runErr}
	}
	err = fmt.Errorf("rollback %q to revision %d: %w", name, to, runErr)
	if status := last.Info.Status; status.IsPending() {
		last.SetStatus(release.StatusFailed, fmt.Sprintf("marked failed by identity-upgrade: helm left it %s: %v", status, runErr))
		if uerr := c.cfg.Releases.Update(last); uerr != nil {
			err = errors.Join(err, fmt.Errorf("mark revision %d, left %s, failed: %w", last.Version, status, uerr))
		}
	}
	return fromHelm(last), err
}

// conflicted reports whether err is a write that failed because the object changed since it
// was read (HTTP 409). Helm's update joins the errors of its objects into one string, so the
// API server's message is looked for too.
func conflicted(err error) bool {
	return err != nil && (apierrors.IsConflict(err) || strings.Contains(err.Error(), "the object has been modified; please apply your changes to the latest version"))
}

// conflictError marks an error as a conflict (rollout.ErrConflict), keeping its message.
type conflictError struct{ err error }

func (e *conflictError) Error() string        { return e.err.Error() }
func (e *conflictError) Unwrap() error        { return e.err }
func (e *conflictError) Is(target error) bool { return target == rollout.ErrConflict }

// boundedTimeout shortens timeout (0: none) to what is left before ctx's deadline.
func boundedTimeout(ctx context.Context, timeout time.Duration) time.Duration {
	deadline, ok := ctx.Deadline()
	if !ok {
		return timeout
	}
	left := max(time.Until(deadline), time.Millisecond)
	if timeout <= 0 || left < timeout {
		return left
	}
	return timeout
}

// Upgrade upgrades the release to the bound spec (see Client.Upgrade).
func (r Renderer) Upgrade(ctx context.Context, name string, timeout time.Duration) (rollout.Release, error) {
	return r.Client.Upgrade(ctx, name, r.Spec, timeout)
}
