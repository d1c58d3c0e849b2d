package helmrelease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

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
		if uerr := c.storeFailed(last, fmt.Sprintf("helm left it %s: %v", status, runErr)); uerr != nil {
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
