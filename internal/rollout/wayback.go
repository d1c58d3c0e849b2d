package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The way back: how a run's changes are put back, read from its journal. The run itself goes
// back this way when a step fails, the next run (or recover) when the run died: one procedure
// for all three, so that none of them can skip a step the others take.

// undo is one step of the way back. It knows from the run's journal whether it is needed.
type undo interface {
	name() string
	needed(r *run) bool
	do(ctx context.Context, r *run) (note string, err error)
}

// blocker is a step whose failure leaves the release as no later step can mend: the steps
// after it are not tried (a readiness wait would only wait out its timeout), but for those
// that must run whatever happened.
type blocker interface{ blocks() bool }

// mustRun is a step that runs even after a blocking failure.
type mustRun interface{ evenIfBlocked() bool }

// wayBack lists the steps that put back what the run's journal says it changed; from is the
// revision the release is at (Revision 0: helm recorded none for the upgrade).
func (r *run) wayBack(from Release) []undo {
	switch {
	case !r.jr.Upgraded():
		// Stopped in the rehearsal, the quiesce or the backup: only a clone and Keycloak's
		// replicas changed.
		return []undo{removeScratch{}, scaleUp{}}
	case from.Revision == 0:
		// helm recorded no revision: the release is as it was. Undo the quiesce and check.
		return []undo{removeScratch{}, scaleUp{}, readyAgain{}}
	}
	return []undo{removeScratch{}, stopNew{from}, restoreDatabase{}, rollBack{from}, replaceOrphanedPods{from}, readyAgain{}, verifyDatabase{}}
}

// goBack ends a run whose step failed: it goes the way back, unless rollback is never after the
// upgrade began, and records how the run ended.
func (r *run) goBack(ctx context.Context, cause error) *Report {
	if errors.Is(context.Cause(ctx), ErrLeaseLost) {
		return r.lostLock(ctx, cause)
	}
	r.rep.Failure = cause
	if nr, ok := errors.AsType[*NotReady](cause); ok {
		r.rep.NotReady = nr
	}
	if r.jr.Upgraded() && r.req.Rollback == RollbackNever {
		r.rep.Result = NeedsAttention
		r.rep.Recovery = errors.New("rollback: never: the release and the database were left as the failed upgrade made them")
		if err := r.journal(context.WithoutCancel(ctx), StepClosed, func(j *Journal) { j.Outcome = "failed; left as it failed (rollback: never)" }); err != nil {
			r.log.Warn("the run journal", "err", err)
		}
		return r.rep
	}
	outcome := "failed before the upgrade; the quiesce was undone"
	if r.jr.Upgraded() {
		outcome = fmt.Sprintf("failed and rolled back to revision %d", r.rep.Plan.Current.Revision)
	}
	return r.takeWayBack(ctx, r.target, outcome)
}

// takeWayBack runs the way back on a fresh bounded context and ends the report: rolled back
// when every step succeeded (the journal then closes with outcome), else needs attention
// (the journal stays open for the next run or recover).
func (r *run) takeWayBack(parent context.Context, from Release, outcome string) *Report {
	rep := r.rep
	ctx, cancel := r.recoveryContext(parent)
	defer cancel()
	steps := r.wayBack(from) // from the journal as the run left it, before it says recovering
	if r.jr.Open() && r.jr.Step != StepRecovering {
		if err := r.journal(ctx, StepRecovering, nil); err != nil {
			// Without a journal the run still recovers: it only cannot hand on what it
			// does not finish.
			r.log.Warn("the run journal", "err", err)
		}
	}
	var errs []error
	blocked := ""
	for _, u := range steps {
		if !u.needed(r) {
			continue
		}
		if m, ok := u.(mustRun); blocked != "" && !(ok && m.evenIfBlocked()) {
			r.log.Warn("step not tried", "step", u.name(), "because", blocked+" failed")
			continue
		}
		err := r.step(ctx, u.name(), func(ctx context.Context) (string, error) { return u.do(ctx, r) })
		if b, ok := u.(blocker); err != nil && ok && b.blocks() {
			blocked = u.name()
		}
		errs = append(errs, err)
	}
	rep.Recovery = errors.Join(errs...)
	if rep.Recovery != nil {
		rep.Result = NeedsAttention
		rep.Found = r.readBack(ctx)
		if r.jr.Open() {
			r.log.Warn("the recovery did not finish: the run journal stays open; the next run, or identity-upgrade recover, completes it")
		}
		return rep
	}
	rep.Result = RolledBack
	if r.jr.Open() {
		if err := r.journal(ctx, StepClosed, func(j *Journal) { j.Outcome = outcome }); err != nil {
			r.log.Warn("the run journal", "err", err)
		}
	}
	return rep
}

// readBackTimeout bounds the reading of the state a way back that did not complete left.
const readBackTimeout = 20 * time.Second

// readBack reads the state the way back left, for the person it is handed to: the release's
// latest and deployed revisions, Keycloak's replicas, whether the recorded revision's resources
// exist and are ready, and whether the database still equals the backup. What it cannot read
// it says so; it changes nothing.
func (r *run) readBack(parent context.Context) *Found {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(parent), readBackTimeout)
	defer cancel()
	f := &Found{}
	cur := r.rep.Plan.Current
	if latest, err := r.p.Releases.Current(ctx, r.req.Release); err != nil {
		f.Release = fmt.Sprintf("could not be read: %v", err)
	} else {
		f.Release = fmt.Sprintf("latest revision %d is %s%s", latest.Revision, latest.Status, chartOf(latest.Chart()))
		if latest.Status != "deployed" {
			if d, err := r.p.Releases.Deployed(ctx, r.req.Release); err == nil {
				f.Release += fmt.Sprintf("; the newest deployed is revision %d%s", d.Revision, chartOf(d.Chart()))
			} else {
				f.Release += "; no revision is deployed"
			}
		}
	}
	if r.p.Workloads != nil {
		scaled, err := r.p.Workloads.Replicas(ctx, r.req.Namespace, cur.Manifest)
		var parts []string
		for _, s := range scaled {
			parts = append(parts, fmt.Sprintf("%s/%s at %d replicas", s.Kind, s.Name, s.Replicas))
		}
		if err != nil {
			parts = append(parts, err.Error())
		}
		f.Keycloak = strings.Join(parts, "; ")
	}
	// One short pass: what of the recorded revision is missing or not ready.
	if err := r.p.Waiter.Wait(ctx, WaitRequest{Namespace: r.req.Namespace, Manifest: cur.Manifest, Timeout: 5 * time.Second}); err != nil {
		f.Resources = fmt.Sprintf("revision %d's resources are not ready: %v", cur.Revision, err)
	} else {
		f.Resources = fmt.Sprintf("revision %d's resources are ready", cur.Revision)
	}
	if b := r.rep.Backup; b != nil {
		switch drift, err := r.p.Database.Drift(ctx, *b); {
		case err != nil:
			f.Database = fmt.Sprintf("could not be compared with the backup: %v", err)
		case drift == "":
			f.Database = "equals the backup"
		default:
			f.Database = "differs from the backup: " + drift
		}
	}
	return f
}

// recoveryContext is a fresh context for the recovery: it must run even when the run was
// cancelled, and it must end.
// A run that was cancelled (SIGINT, SIGTERM) gets CancelBudget when set: what does not fit
// stays in the journal for the next run.
func (r *run) recoveryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	d := r.req.RecoveryTimeout
	if d == 0 {
		d = max(r.req.Timeout, 2*time.Minute)
	}
	if ctx.Err() != nil && r.req.CancelBudget > 0 {
		d = r.req.CancelBudget
	}
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}

// scaleUp gives the Keycloak workloads the replicas the quiesce took away.
type scaleUp struct{}

func (scaleUp) name() string       { return "scale up" }
func (scaleUp) needed(r *run) bool { return len(r.jr.Scaled) > 0 }
func (scaleUp) do(ctx context.Context, r *run) (string, error) {
	return fmt.Sprintf("%v", r.jr.Scaled), r.p.Workloads.ScaleUp(ctx, r.req.Namespace, r.jr.Scaled)
}

// stopNew scales the upgraded Keycloak down before the database is touched.
type stopNew struct{ from Release }

func (stopNew) name() string       { return "scale down" }
func (stopNew) needed(r *run) bool { return r.p.Workloads != nil }
func (s stopNew) do(ctx context.Context, r *run) (string, error) {
	scaled, err := r.p.Workloads.ScaleDown(ctx, r.req.Namespace, s.from.Manifest)
	return fmt.Sprintf("%v", scaled), err
}

// restoreDatabase restores the backup when restore-database says so: always, or (auto) when
// the database drifted from it while the new version ran.
type restoreDatabase struct{}

func (restoreDatabase) name() string       { return "restore database" }
func (restoreDatabase) needed(r *run) bool { return r.rep.Backup != nil }
func (restoreDatabase) do(ctx context.Context, r *run) (string, error) {
	b := r.rep.Backup
	switch r.req.RestoreDatabase {
	case RestoreNever:
		return "skipped: restore-database is never", nil
	case RestoreAlways:
		r.rep.DatabaseDrift = "restore-database is always"
	default:
		drift, err := r.p.Database.Drift(ctx, *b)
		if err != nil {
			// Unknown is treated as changed: restoring an unchanged database costs time only.
			drift = fmt.Sprintf("could not compare with the backup (%v)", err)
		}
		if drift == "" {
			return "skipped: the database equals the backup", nil
		}
		r.rep.DatabaseDrift = drift
	}
	how, err := r.p.Database.Restore(ctx, *b)
	if err != nil {
		return "", err
	}
	r.rep.DatabaseRestored = true
	if how != "" {
		how = " (" + how + ")"
	}
	return "restored " + b.Location() + how + ": " + r.rep.DatabaseDrift, nil
}

// rollbackAttempts is how many rollbacks are tried when each fails on a concurrent change.
const rollbackAttempts = 3

// rollBack returns the release to the recorded revision, re-creating the StatefulSets whose
// immutable fields differ (the same trap as the upgrade, in reverse), with the target's
// rollback hooks skipped when the plan says so.
type rollBack struct{ from Release }

func (rollBack) name() string       { return "rollback" }
func (rollBack) needed(r *run) bool { return true }
func (rb rollBack) do(ctx context.Context, r *run) (string, error) {
	target := rb.from
	cur := r.rep.Plan.Current
	orphans := r.orphans(target)
	// No cleanup on fail: what a failed rollback created belongs to the revision rolled back
	// to, the postgres StatefulSet it re-created by orphan delete among them; deleting it would
	// leave the upgrade's orphaned pod without a StatefulSet.
	opts := RollbackOptions{
		DisableHooks: len(r.rep.Plan.SkippedRollbackHooks) > 0 || r.req.RollbackHooks == HooksSkip,
		Force:        r.req.ForceRollback,
		Timeout:      r.req.Timeout,
	}
	// As helm upgrade --atomic does, the upgrade's revision is recorded failed, with the cause,
	// before the rollback; helm would supersede it as "Upgrade complete" otherwise.
	const maxCause = 256
	cause := []rune(r.rep.Failure.Error())
	if len(cause) > maxCause {
		cause = append(cause[:maxCause], '…')
	}
	marked := fmt.Sprintf("revision %d marked failed", target.Revision)
	if target.Revision == cur.Revision {
		// The recorded revision applied again (an interrupted run deleted objects of it
		// before helm recorded anything): there is no upgrade revision to mark.
		marked = fmt.Sprintf("revision %d applied again", cur.Revision)
	} else if err := r.p.Releases.MarkFailed(ctx, target, fmt.Sprintf("%s; rolling back to revision %d", string(cause), cur.Revision)); err != nil {
		// Only the history's record is wrong: the rollback goes on.
		r.log.Warn("mark the upgrade's revision failed", "revision", target.Revision, "err", err)
		marked = fmt.Sprintf("revision %d not marked failed (%v)", target.Revision, err)
	}
	var rel Release
	var err error
	for attempt := 1; ; attempt++ {
		if len(orphans) > 0 {
			if err := r.p.Releases.OrphanStatefulSets(ctx, orphans); err != nil {
				return marked, fmt.Errorf("orphan-delete StatefulSets %v before the rollback: %w", orphans, err)
			}
		}
		rel, err = r.p.Releases.Rollback(ctx, r.req.Release, cur.Revision, opts)
		if rel.Revision > 0 {
			r.rep.Revision = rel.Revision
		}
		if err == nil || !errors.Is(err, ErrConflict) || attempt == rollbackAttempts || ctx.Err() != nil {
			break
		}
		// Helm writes each object from a fresh read; a controller that wrote in between
		// (a status after the scale-down) makes the write fail, and a new rollback succeeds.
		r.log.Warn("rollback hit a concurrent change; rolling back again", "attempt", attempt, "err", err)
	}
	note := marked
	if err != nil {
		err = fmt.Errorf("helm rollback to revision %d: %w", cur.Revision, err)
	} else {
		note += fmt.Sprintf("; revision %d (= %d)", rel.Revision, cur.Revision)
		if opts.DisableHooks {
			note += ", rollback hooks skipped"
		}
		if len(orphans) > 0 {
			note += fmt.Sprintf("; re-created %v", orphans)
		}
	}
	return note, err
}

func (rollBack) blocks() bool { return true }

// orphans are the StatefulSets the way back re-creates: those the run's journal says the
// upgrade orphaned, and those whose immutable fields differ between the revision the release is
// at and the recorded one (a rollback meets the upgrade's trap in reverse). The journal keeps
// them across runs, so that recover re-creates them after a rollback that failed.
func (r *run) orphans(from Release) []string {
	orphans := slices.Clone(r.jr.Orphans)
	if back, err := r.p.Releases.Diff(from, r.rep.Plan.Current); err == nil {
		orphans = append(orphans, ImmutableStatefulSets(append(back, r.rep.Plan.Changes...), r.req.Namespace)...)
	}
	slices.Sort(orphans)
	return slices.Compact(orphans)
}

// replaceOrphanedPods deletes the pods that the re-created StatefulSets cannot adopt (they keep
// the labels of the revision that made them), so that each StatefulSet makes its own. It runs
// whatever the rollback's outcome: a StatefulSet helm re-created before failing (a
// post-rollback hook that timed out) stays at 0/1 behind the orphaned pod of the same name
// until the pod is replaced; one it did not re-create is skipped, and its pod, the database's,
// keeps running until recover re-creates it.
type replaceOrphanedPods struct{ from Release }

func (replaceOrphanedPods) name() string         { return "replace orphaned pods" }
func (p replaceOrphanedPods) needed(r *run) bool { return len(r.orphans(p.from)) > 0 }
func (replaceOrphanedPods) evenIfBlocked() bool  { return true }
func (p replaceOrphanedPods) do(ctx context.Context, r *run) (string, error) {
	orphans := r.orphans(p.from)
	pods, err := r.p.Releases.ReplaceOrphanedPods(ctx, orphans)
	if err != nil {
		return "", fmt.Errorf("replace the orphaned pods of %v: %w", orphans, err)
	}
	return fmt.Sprintf("of %v: replaced pods %v", orphans, pods), nil
}

// readyAgain waits until the recorded revision's resources are ready again.
type readyAgain struct{}

func (readyAgain) name() string       { return "readiness after rollback" }
func (readyAgain) needed(r *run) bool { return true }
func (readyAgain) do(ctx context.Context, r *run) (string, error) {
	return "", r.p.Waiter.Wait(ctx, WaitRequest{Namespace: r.req.Namespace, Manifest: r.rep.Plan.Current.Manifest, Timeout: r.req.Timeout})
}

// verifyDatabase checks a restored database against the backup's manifest.
type verifyDatabase struct{}

func (verifyDatabase) name() string        { return "verify database" }
func (verifyDatabase) evenIfBlocked() bool { return true } // the database's state, whatever the release's
func (verifyDatabase) needed(r *run) bool  { return r.rep.DatabaseRestored }
func (verifyDatabase) do(ctx context.Context, r *run) (string, error) {
	return "", r.p.Database.Verify(ctx, *r.rep.Backup)
}
