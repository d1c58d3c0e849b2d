package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// UpgradeRequest is the part of the configuration the upgrade pipeline needs.
type UpgradeRequest struct {
	PlanRequest
	// BackupName names the bundle; empty: <release>-r<revision>-<UTC timestamp>.
	BackupName string
	// Timeout bounds the helm upgrade and the readiness wait together; the recovery gets a
	// budget of its own (RecoveryTimeout).
	Timeout         time.Duration
	StabilityWindow time.Duration
	ProbeURL        string
	Rollback        RollbackPolicy
	RestoreDatabase RestoreDatabase
	// Quiesce scales the Keycloak workloads to zero before the backup; before that,
	// LogoutSessions ends the users' sessions and ClearTxObjectStore deletes the transaction
	// object store in the running pods (the vendor's first two steps).
	Quiesce            bool
	LogoutSessions     bool
	ClearTxObjectStore bool
	// ForceRollback is helm rollback --force (the vendor's rollback uses it).
	ForceRollback bool
	// RecoveryTimeout bounds the recovery (scale down, restore, rollback, wait); 0: Timeout,
	// at least 2 minutes.
	RecoveryTimeout time.Duration
	DryRun          bool
	// RunID and Holder name the run in its journal.
	RunID, Holder string
	// RecoverOnly completes an interrupted run, if there is one, and stops (recover).
	RecoverOnly bool
	// ContinueAfterRecovery goes on with this run's upgrade after recovering an interrupted
	// run, instead of stopping with exit 1.
	ContinueAfterRecovery bool
	// CancelBudget bounds the recovery of a cancelled run (SIGINT, SIGTERM); 0:
	// RecoveryTimeout. What does not fit stays in the journal.
	CancelBudget time.Duration
}

// Result is the outcome of a run, as the `result` output names it.
type Result string

const (
	Upgraded       Result = "upgraded"        // exit 0: upgraded
	Noop           Result = "noop"            // exit 0: nothing to do, or a dry run
	RolledBack     Result = "rolled-back"     // exit 1: failed, and everything it changed was put back
	Refused        Result = "refused"         // exit 2: refused before changing anything
	NeedsAttention Result = "needs-attention" // exit 3: failed and could not restore
)

// Exit codes of identity-upgrade, the CLI and the action alike; scripts and workflows depend on
// these numbers.
const (
	ExitOK         = 0 // upgraded, or nothing to do
	ExitRolledBack = 1 // failed; the release and database were rolled back cleanly
	ExitRefused    = 2 // invalid input, or refused before anything was touched
	ExitNeedsHuman = 3 // failed and could not restore; needs a person
)

// Step is one timed step of the timeline.
type Step struct {
	Name     string
	Start    time.Time
	Duration time.Duration
	Err      error
	// Note says what the step did, in a few words ("skipped: quiesce is off").
	Note string
}

// Report is what a run did, for the outputs, the summary and the exit code.
type Report struct {
	Result    Result
	ExitCode  int
	Release   string
	Namespace string
	// PreviousRevision is the recorded revision R; Revision the revision the release is at
	// when the run ends; UpgradedRevision the revision the upgrade created (0: none).
	PreviousRevision int
	Revision         int
	UpgradedRevision int
	FromChart        string
	ToChart          string
	Plan             Plan
	Backup           *Backup
	// DatabaseRestored is true when the recovery restored the database from the backup;
	// DatabaseDrift is why it did (or what it found).
	DatabaseRestored bool
	DatabaseDrift    string
	// Failure is the first cause of a failed run; Recovery the errors of the recovery, if it
	// did not complete. NotReady is set when readiness decided the failure.
	Failure  error
	Recovery error
	NotReady *NotReady
	Timeline []Step
	// DryRun is set when the run only planned.
	DryRun bool
	// Interrupted is the journal of an earlier run that did not finish, which this run
	// recovered (or tried to) before anything else.
	Interrupted *Journal
	Started     time.Time
	Duration    time.Duration
}

// Err joins the failure and the recovery errors: nil for a successful run.
func (r *Report) Err() error { return errors.Join(r.Failure, r.Recovery) }

// Pipeline is the upgrade procedure over its ports. Workloads, Sessions and TxStore may be nil
// when the request does not use them; every other port is required.
type Pipeline struct {
	Releases  Releaser
	Database  Databaser
	Waiter    Waiter
	Locker    Locker
	Workloads Workloads
	Sessions  Sessions
	TxStore   TxObjectStore
	// Journal, when set, keeps the run's write-ahead journal in the cluster.
	Journal Journaler
	Log     *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// StepHook, when set, is called as each step starts; the function it returns is called as
	// the step ends (the action opens and closes a log group with it).
	StepHook func(name string) (end func())
}

// run is the state of one run of the pipeline.
type run struct {
	p      *Pipeline
	req    UpgradeRequest
	rep    *Report
	log    *slog.Logger
	scaled []Scaled
	// orphans are the StatefulSets re-created because their immutable fields change.
	orphans []string
	// jr is the run's journal as last written (or read, for an interrupted run).
	jr Journal
}

// Upgrade runs the procedure: preflight and lock, quiesce, backup, upgrade, readiness; on a
// failure after the backup (cancellation included) the recovery: scale down, restore the
// database when it changed, roll back to the recorded revision, wait ready, verify. The
// report is always complete; its ExitCode says how the run ended.
func (p *Pipeline) Upgrade(ctx context.Context, req UpgradeRequest) *Report {
	r := &run{p: p, req: req, log: p.Log, rep: &Report{Release: req.Release, Namespace: req.Namespace}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.rep.Started = p.now()
	defer func() { r.rep.Duration = p.now().Sub(r.rep.Started) }()

	// 2. Preflight: lock, release state, plan, database facts. Nothing changes here, but for
	// the unlock the user asked for.
	var unlock func(context.Context) error
	if err := r.step(ctx, "lock", func(ctx context.Context) (string, error) {
		var err error
		unlock, err = p.Locker.Lock(ctx, req.Release)
		return "", err
	}); err != nil {
		return r.refuse(err)
	}
	defer func() {
		// The lock is released on a fresh context: the run's own may be cancelled by now.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := unlock(ctx); err != nil {
			r.log.Warn("release the lock", "err", err)
		}
	}()

	// A run that loses its lock stops changing anything at once.
	ctx, stopWatch := r.watchLock(ctx)
	defer stopWatch()

	// An earlier run that died is completed first, with its own backup and revision.
	if rep := r.resumeInterrupted(ctx); rep != nil {
		if !r.jr.Open() {
			// Recovered and closed: what the dead run left on this machine is no longer needed.
			r.removeStale(ctx)
		}
		if rep.ExitCode != ExitRolledBack || !req.ContinueAfterRecovery || req.RecoverOnly {
			return rep
		}
		r.log.Info("recovered an interrupted run; going on with this run's upgrade (continue-after-recovery)")
		r.rep = &Report{Release: req.Release, Namespace: req.Namespace, Interrupted: rep.Interrupted, Timeline: rep.Timeline, Started: rep.Started}
	}
	r.removeStale(ctx)
	if req.RecoverOnly {
		r.rep.Result, r.rep.ExitCode = Noop, ExitOK
		return r.rep
	}

	var plan Plan
	if err := r.step(ctx, "preflight", func(ctx context.Context) (string, error) {
		var err error
		plan, err = r.preflight(ctx)
		return "", err
	}); err != nil {
		return r.refuse(err)
	}
	r.rep.Plan = plan
	r.rep.PreviousRevision, r.rep.Revision = plan.Current.Revision, plan.Current.Revision
	r.rep.FromChart, r.rep.ToChart = plan.Current.Chart(), plan.Target.Chart()
	if plan.Refused() {
		return r.refuse(errors.Join(plan.Refusals...))
	}
	if req.DryRun {
		r.rep.Result, r.rep.ExitCode, r.rep.DryRun = Noop, ExitOK, true
		return r.rep
	}
	if plan.Noop {
		r.log.Info("nothing to upgrade: the deployed revision renders the target and is ready", "revision", plan.Current.Revision)
		r.rep.Result, r.rep.ExitCode = Noop, ExitOK
		return r.rep
	}
	r.orphans = ImmutableStatefulSets(plan.Changes, req.Namespace)

	// From here on the run changes things: its journal says how far it got, before each step.
	if err := r.journalStart(ctx, plan); err != nil {
		return r.refuse(err)
	}

	// 3. Quiesce: the downtime the vendor asks for, so that the backup is the last word.
	if err := r.step(ctx, "quiesce", r.quiesce); err != nil {
		return r.abort(ctx, err)
	}
	if err := r.journal(ctx, StepBackingUp, func(j *Journal) { j.Scaled = r.scaled }); err != nil {
		return r.abort(ctx, err)
	}

	// 4. Backup: nothing is upgraded without a complete, verified backup.
	if err := r.step(ctx, "backup", func(ctx context.Context) (string, error) {
		values, err := p.Releases.Values(ctx, req.Release, plan.Current.Revision)
		if err != nil {
			return "", err
		}
		b, err := p.Database.Backup(ctx, BackupRequest{Name: req.BackupName, Release: plan.Current, Values: values})
		if err != nil {
			return "", err
		}
		r.rep.Backup = &b
		return fmt.Sprintf("%s (%d bytes, sha256 %.12s…)", b.Location(), b.Bytes, b.SHA256), nil
	}); err != nil {
		return r.abort(ctx, err)
	}
	if err := r.journal(ctx, StepUpgrading, func(j *Journal) {
		j.Backup, j.Orphans = journalBackup(*r.rep.Backup), r.orphans
	}); err != nil {
		return r.abort(ctx, err)
	}

	// 5. Upgrade, then 6. readiness, within one timeout. The waiter enforces the rest of it
	// itself, so that a timeout is reported as what was not ready, not as a bare deadline.
	start := p.now()
	upCtx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	var target Release
	err := r.step(upCtx, "upgrade", func(ctx context.Context) (string, error) {
		if len(r.orphans) > 0 {
			if err := p.Releases.OrphanStatefulSets(ctx, r.orphans); err != nil {
				return "", fmt.Errorf("orphan-delete StatefulSets %v before the upgrade: %w", r.orphans, err)
			}
		}
		var err error
		target, err = p.Releases.Upgrade(ctx, req.Release, req.Timeout)
		if target.Revision > 0 {
			r.rep.UpgradedRevision, r.rep.Revision = target.Revision, target.Revision
		}
		if err != nil {
			return "", err
		}
		if len(r.orphans) > 0 {
			pods, err := p.Releases.ReplaceOrphanedPods(ctx, r.orphans)
			if err != nil {
				return "", fmt.Errorf("replace the orphaned pods of %v: %w", r.orphans, err)
			}
			return fmt.Sprintf("revision %d; re-created %v, replaced pods %v", target.Revision, r.orphans, pods), nil
		}
		return fmt.Sprintf("revision %d", target.Revision), nil
	})
	if err == nil {
		err = r.journal(ctx, StepWaiting, func(j *Journal) { j.UpgradeRevision = target.Revision })
	}
	if err == nil {
		err = r.step(ctx, "readiness", func(ctx context.Context) (string, error) {
			return "", p.Waiter.Wait(ctx, WaitRequest{
				Namespace:       req.Namespace,
				Manifest:        target.Manifest,
				Timeout:         req.Timeout - p.now().Sub(start),
				StabilityWindow: req.StabilityWindow,
				ProbeURL:        req.ProbeURL,
			})
		})
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("cancelled: %w", errors.Join(context.Cause(ctx), err))
		}
		return r.recover(ctx, target, err)
	}
	if err := r.journal(ctx, StepReady, nil); err != nil {
		r.log.Warn("the run journal", "err", err)
	}
	if err := r.journal(ctx, StepClosed, func(j *Journal) {
		j.Outcome = fmt.Sprintf("upgraded to revision %d", target.Revision)
	}); err != nil {
		r.log.Warn("the run journal: the next run will close it after a readiness pass", "err", err)
	}
	r.rep.Result, r.rep.ExitCode = Upgraded, ExitOK
	return r.rep
}

// preflight reads the release and the database and makes the plan; a release left pending-*
// is unlocked first when the request allows it.
func (r *run) preflight(ctx context.Context) (Plan, error) {
	cur, err := r.p.Releases.Current(ctx, r.req.Release)
	if err != nil {
		return Plan{}, err
	}
	if cur.Pending() && r.req.UnlockPending {
		r.log.Warn("release left in progress: marking it failed (unlock-pending)", "revision", cur.Revision, "status", cur.Status)
		if err := r.p.Releases.Unlock(ctx, cur); err != nil {
			return Plan{}, fmt.Errorf("unlock revision %d: %w", cur.Revision, err)
		}
	}
	plan, err := MakePlan(ctx, r.p.Releases, r.p.Database, r.p.Waiter, r.req.PlanRequest)
	if err != nil {
		return plan, err
	}
	if plan.Latest.Revision != 0 {
		r.log.Warn("the latest revision is not deployed: the run returns to the newest deployed one on failure",
			"latest", plan.Latest.Revision, "status", plan.Latest.Status, "return-to", plan.Current.Revision)
	}
	return plan, nil
}

func (r *run) quiesce(ctx context.Context) (string, error) {
	var notes []string
	if r.req.LogoutSessions {
		if r.p.Sessions == nil {
			return "", errors.New("logout-sessions is set but no session port is configured")
		}
		n, err := r.p.Sessions.LogoutAll(ctx)
		if err != nil {
			return "", fmt.Errorf("log out sessions: %w", err)
		}
		notes = append(notes, fmt.Sprintf("sessions of %d realms logged out", n))
	}
	if r.req.ClearTxObjectStore {
		if r.p.TxStore == nil {
			return "", errors.New("clear-tx-object-store is set but no exec port is configured")
		}
		pods, err := r.p.TxStore.Clear(ctx, r.req.Namespace, r.rep.Plan.Current.Manifest)
		if err != nil {
			return "", fmt.Errorf("clear tx-object-store: %w", err)
		}
		notes = append(notes, fmt.Sprintf("tx-object-store cleared in %v", pods))
	}
	if r.req.Quiesce && r.p.Workloads != nil {
		scaled, err := r.p.Workloads.ScaleDown(ctx, r.req.Namespace, r.rep.Plan.Current.Manifest)
		r.scaled = scaled
		if err != nil {
			return "", err
		}
		notes = append(notes, fmt.Sprintf("scaled to 0: %v", scaled))
	}
	if len(notes) == 0 {
		return "skipped: quiesce is off", nil
	}
	return strings.Join(notes, "; "), nil
}

// refuse ends a run that changed nothing: exit 2.
func (r *run) refuse(err error) *Report {
	r.rep.Failure = err
	r.rep.Result, r.rep.ExitCode = Refused, ExitRefused
	return r.rep
}

// abort ends a run that failed before the upgrade: the release is untouched, and the quiesce
// is undone.
func (r *run) abort(ctx context.Context, cause error) *Report {
	if errors.Is(context.Cause(ctx), ErrLeaseLost) {
		return r.lostLock(ctx, cause)
	}
	r.rep.Failure = cause
	ctx, cancel := r.recoveryContext(ctx)
	defer cancel()
	if r.jr.Open() {
		if err := r.journal(ctx, StepRecovering, nil); err != nil {
			r.rep.Recovery = err
		}
	}
	if len(r.scaled) > 0 && r.rep.Recovery == nil {
		r.rep.Recovery = r.step(ctx, "scale up", func(ctx context.Context) (string, error) {
			return fmt.Sprintf("%v", r.scaled), r.p.Workloads.ScaleUp(ctx, r.req.Namespace, r.scaled)
		})
	}
	// Nothing was upgraded and what the run changed is undone: as good as a rollback.
	r.rep.Result, r.rep.ExitCode = RolledBack, ExitRolledBack
	if r.rep.Recovery != nil {
		r.rep.Result, r.rep.ExitCode = NeedsAttention, ExitNeedsHuman
		r.log.Warn("the recovery did not finish: the run journal stays open; the next run, or identity-upgrade recover, completes it")
	} else if r.jr.Open() {
		if err := r.journal(ctx, StepClosed, func(j *Journal) { j.Outcome = "failed before the upgrade; the quiesce was undone" }); err != nil {
			r.log.Warn("the run journal", "err", err)
		}
	}
	return r.rep
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

// recover puts the release and the database back after a failed upgrade or readiness wait.
func (r *run) recover(parent context.Context, target Release, cause error) *Report {
	if errors.Is(context.Cause(parent), ErrLeaseLost) {
		return r.lostLock(parent, cause)
	}
	rep := r.rep
	rep.Failure = cause
	if nr, ok := errors.AsType[*NotReady](cause); ok {
		rep.NotReady = nr
	}
	rep.Result, rep.ExitCode = NeedsAttention, ExitNeedsHuman
	if r.req.Rollback == RollbackNever {
		rep.Recovery = errors.New("rollback: never: the release and the database were left as the failed upgrade made them")
		if r.jr.Open() {
			if err := r.journal(context.WithoutCancel(parent), StepClosed, func(j *Journal) { j.Outcome = "failed; left as it failed (rollback: never)" }); err != nil {
				r.log.Warn("the run journal", "err", err)
			}
		}
		return rep
	}
	ctx, cancel := r.recoveryContext(parent)
	defer cancel()
	cur := rep.Plan.Current
	var errs []error
	if r.jr.Open() && r.jr.Step != StepRecovering {
		if err := r.journal(ctx, StepRecovering, nil); err != nil {
			// Without a journal the run still recovers: it only cannot hand on what it
			// does not finish.
			r.log.Warn("the run journal", "err", err)
		}
	}

	if target.Revision == 0 {
		// helm recorded no revision: the release is as it was. Undo the quiesce and check.
		if len(r.scaled) > 0 {
			errs = append(errs, r.step(ctx, "scale up", func(ctx context.Context) (string, error) {
				return fmt.Sprintf("%v", r.scaled), r.p.Workloads.ScaleUp(ctx, r.req.Namespace, r.scaled)
			}))
		}
	} else {
		// Stop the new version before the database is touched.
		if r.p.Workloads != nil {
			errs = append(errs, r.step(ctx, "scale down", func(ctx context.Context) (string, error) {
				s, err := r.p.Workloads.ScaleDown(ctx, r.req.Namespace, target.Manifest)
				return fmt.Sprintf("%v", s), err
			}))
		}
		errs = append(errs, r.step(ctx, "restore database", r.restoreDatabase))
		errs = append(errs, r.step(ctx, "rollback", func(ctx context.Context) (string, error) {
			return r.rollback(ctx, target)
		}))
	}
	errs = append(errs, r.step(ctx, "readiness after rollback", func(ctx context.Context) (string, error) {
		return "", r.p.Waiter.Wait(ctx, WaitRequest{Namespace: r.req.Namespace, Manifest: cur.Manifest, Timeout: r.req.Timeout})
	}))
	if rep.DatabaseRestored {
		errs = append(errs, r.step(ctx, "verify database", func(ctx context.Context) (string, error) {
			return "", r.p.Database.Verify(ctx, *rep.Backup)
		}))
	}
	rep.Recovery = errors.Join(errs...)
	if rep.Recovery == nil {
		rep.Result, rep.ExitCode = RolledBack, ExitRolledBack
		if r.jr.Open() {
			if err := r.journal(ctx, StepClosed, func(j *Journal) {
				j.Outcome = fmt.Sprintf("failed and rolled back to revision %d", rep.Plan.Current.Revision)
			}); err != nil {
				r.log.Warn("the run journal", "err", err)
			}
		}
	} else if r.jr.Open() {
		r.log.Warn("the recovery did not finish: the run journal stays open; the next run, or identity-upgrade recover, completes it")
	}
	return rep
}

// restoreDatabase restores the backup when restore-database says so: always, or (auto) when
// the database drifted from it while the new version ran.
func (r *run) restoreDatabase(ctx context.Context) (string, error) {
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

// rollback returns the release to the recorded revision, re-creating the StatefulSets whose
// immutable fields differ (the same trap as the upgrade, in reverse), with the target's
// rollback hooks skipped when the plan says so.
func (r *run) rollback(ctx context.Context, target Release) (string, error) {
	cur := r.rep.Plan.Current
	orphans := r.orphans
	if back, err := r.p.Releases.Diff(target, cur); err == nil {
		orphans = ImmutableStatefulSets(append(back, r.rep.Plan.Changes...), r.req.Namespace)
	}
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
	}
	if len(orphans) > 0 {
		// Whatever helm's error: a StatefulSet it re-created before failing (a post-rollback
		// hook that timed out) stays at 0/1 behind the orphaned pod of the same name until the
		// pod is replaced. One it did not re-create is skipped.
		pods, perr := r.p.Releases.ReplaceOrphanedPods(ctx, orphans)
		if perr != nil {
			return note, errors.Join(err, fmt.Errorf("replace the orphaned pods of %v: %w", orphans, perr))
		}
		if err == nil {
			note += fmt.Sprintf("; re-created %v", orphans)
		}
		note += fmt.Sprintf("; replaced pods %v", pods)
	}
	return note, err
}

// step runs one step of the timeline, logging its start and end.
func (r *run) step(ctx context.Context, name string, f func(context.Context) (string, error)) error {
	start := r.p.now()
	if r.p.StepHook != nil {
		defer r.p.StepHook(name)()
	}
	r.log.Info("step", "step", name)
	note, err := f(ctx)
	s := Step{Name: name, Start: start, Duration: r.p.now().Sub(start), Err: err, Note: note}
	r.rep.Timeline = append(r.rep.Timeline, s)
	if err != nil {
		r.log.Error("step failed", "step", name, "duration", s.Duration.Round(time.Millisecond), "err", err)
		return fmt.Errorf("%s: %w", name, err)
	}
	r.log.Info("step done", "step", name, "duration", s.Duration.Round(time.Millisecond), "note", note)
	return nil
}

func (p *Pipeline) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}
