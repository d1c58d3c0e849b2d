package rollout

import (
	"context"
	"errors"
	"fmt"
)

// ErrInterrupted is the cause reported for a run that the next run (or recover) recovered.
var ErrInterrupted = errors.New("an earlier run was interrupted before it finished")

// resumeInterrupted reads the release's journal and, when it records a run that did not
// finish (its Lease is gone, or this run could not have taken the lock), completes that run
// first with that run's backup and recorded revision. It returns nil when there is nothing to
// complete, or when the interrupted run had passed readiness and its revision still does: the
// caller goes on. Otherwise it returns the report of that recovery.
func (r *run) resumeInterrupted(ctx context.Context) *Report {
	if r.p.Journal == nil {
		return nil
	}
	var j Journal
	if err := r.step(ctx, "journal", func(ctx context.Context) (string, error) {
		var err error
		if j, err = r.p.Journal.Read(ctx, r.req.Release); err != nil {
			return "", fmt.Errorf("read the run journal: %w", err)
		}
		if !j.Open() {
			return "no interrupted run", nil
		}
		return fmt.Sprintf("run %s was interrupted at %s (revision to return to: %d)", j.RunID, j.Step, j.RecordedRevision), nil
	}); err != nil {
		return r.refuse(err)
	}
	r.jr = j
	if !j.Open() {
		return nil
	}
	interrupted := j
	r.rep.Interrupted = &interrupted
	r.log.Warn("an earlier run did not finish: completing it first", "run", j.RunID, "holder", j.Holder, "step", j.Step,
		"recorded_revision", j.RecordedRevision)

	if !j.Changed() {
		if err := r.journal(ctx, StepClosed, func(j *Journal) { j.Outcome = "interrupted before it changed anything" }); err != nil {
			return r.refuse(err)
		}
		r.rep.Interrupted = nil
		return nil
	}
	if j.Step == StepReady {
		// It passed readiness and died before closing: close it as upgraded when its
		// revision still runs, and go on.
		latest, err := r.p.Releases.Current(ctx, r.req.Release)
		if err == nil && latest.Status == "deployed" {
			if err = readyNow(ctx, r.p.Waiter, r.req.Namespace, latest.Manifest); err == nil {
				if err := r.journal(ctx, StepClosed, func(j *Journal) {
					j.Outcome = fmt.Sprintf("upgraded to revision %d (closed by a later run after a readiness pass)", latest.Revision)
				}); err != nil {
					return r.refuse(err)
				}
				r.rep.Interrupted = nil
				return nil
			}
		}
		r.log.Warn("the interrupted run's upgrade is not ready any more: rolling it back", "err", err)
	}
	return r.recoverInterrupted(ctx, j)
}

// recoverInterrupted puts back what the interrupted run j changed: the quiesce only, when it
// died before the upgrade; else the database (when it drifted from j's backup) and the release
// (to j's recorded revision), as the run's own recovery would have.
func (r *run) recoverInterrupted(ctx context.Context, j Journal) *Report {
	rep := r.rep
	cause := fmt.Errorf("%w: run %s stopped at step %s", ErrInterrupted, j.RunID, j.Step)
	recorded, err := r.p.Releases.Revision(ctx, r.req.Release, j.RecordedRevision)
	if err != nil {
		return r.refuse(fmt.Errorf("read the interrupted run's recorded revision %d: %w", j.RecordedRevision, err))
	}
	rep.Plan.Current = recorded
	rep.Plan.SkippedRollbackHooks = skippedRollbackHooks(recorded, r.req.PlanRequest)
	rep.PreviousRevision, rep.Revision = recorded.Revision, recorded.Revision
	rep.FromChart, rep.ToChart = recorded.Chart(), j.TargetChart

	if !j.Upgraded() {
		// It died in the quiesce or the backup: nothing was upgraded. Give Keycloak its
		// replicas back.
		rep.Failure = cause
		return r.takeWayBack(ctx, Release{}, "recovered by a later run: nothing had been upgraded")
	}

	// The release may be left pending by the killed helm call: it was this run's, so it is
	// unlocked without asking.
	latest, err := r.p.Releases.Current(ctx, r.req.Release)
	if err != nil {
		return r.needsAttention(fmt.Errorf("read the release: %w", err))
	}
	if latest.Pending() {
		if err := r.step(ctx, "unlock", func(ctx context.Context) (string, error) {
			return fmt.Sprintf("revision %d was %s", latest.Revision, latest.Status), r.p.Releases.Unlock(ctx, latest)
		}); err != nil {
			rep.Recovery = err
			return r.needsAttention(nil)
		}
		latest.Status = "failed"
	}
	var target Release
	switch {
	case latest.Revision > recorded.Revision:
		target = latest
		rep.UpgradedRevision, rep.Revision = latest.Revision, latest.Revision
	case len(j.Orphans) > 0:
		// It died between the orphan delete and helm's update: the StatefulSets are gone
		// and their pods orphaned. Applying the recorded revision again re-creates them,
		// and they adopt their pods (the same selector).
		target = recorded
	}
	if j.Backup != nil {
		if err := r.step(ctx, "find the backup", func(ctx context.Context) (string, error) {
			b, err := r.p.Database.Reopen(ctx, *j.Backup)
			if err != nil {
				return "", fmt.Errorf("open the interrupted run's backup %s: %w", j.Backup.Name, err)
			}
			rep.Backup = &b
			return b.Dir, nil
		}); err != nil {
			rep.Recovery = err
			return r.needsAttention(nil)
		}
	}
	r.target = target
	return r.goBack(ctx, cause)
}

// needsAttention ends a recovery that could not finish; err, when set, is why. The journal
// stays open for the next run.
func (r *run) needsAttention(err error) *Report {
	if err != nil {
		r.rep.Recovery = errors.Join(r.rep.Recovery, err)
	}
	if r.rep.Failure == nil {
		r.rep.Failure = r.rep.Recovery
	}
	r.rep.Result = NeedsAttention
	return r.rep
}
