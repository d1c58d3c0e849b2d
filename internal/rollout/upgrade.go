package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
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
	// Rehearse, when set, tries the upgrade on a clone first (rehearse-first); with
	// RehearseOnly the run stops there (rehearse).
	Rehearse     *RehearseRequest
	RehearseOnly bool
	// MissingTheme says what the theme check does when the new Keycloak lacks a theme a realm
	// names: fail (the default) or warn.
	MissingTheme MissingTheme
}

// Result is the outcome of a run, as the `result` output names it.
type Result string

const (
	Upgraded       Result = "upgraded"        // exit 0: upgraded
	Noop           Result = "noop"            // exit 0: nothing to do
	Planned        Result = "planned"         // exit 0: plan or a dry run: the upgrade would start; nothing changed
	RolledBack     Result = "rolled-back"     // exit 1: failed, and everything it changed was put back
	Refused        Result = "refused"         // exit 2: refused before changing anything
	NeedsAttention Result = "needs-attention" // exit 3: failed and could not restore

	Rehearsed       Result = "rehearsed"        // exit 0: rehearse: the upgrade worked on a clone
	RehearsalFailed Result = "rehearsal-failed" // exit 1: rehearse: it failed on the clone, which is gone
)

// Exit codes of identity-upgrade, the CLI and the action alike; scripts and workflows depend on
// these numbers.
const (
	ExitOK         = 0 // upgraded, or nothing to do
	ExitRolledBack = 1 // failed; the release and database were rolled back cleanly
	ExitRefused    = 2 // invalid input, or refused before anything was touched
	ExitNeedsHuman = 3 // failed and could not restore; needs a person
)

// ExitCode is the exit code of a run that ended with this result: the one place results
// become numbers.
func (r Result) ExitCode() int {
	switch r {
	case Upgraded, Noop, Planned, BackedUp, Restored, Rehearsed:
		return ExitOK
	case RolledBack, Incomplete, RehearsalFailed, Failed:
		return ExitRolledBack
	case Refused:
		return ExitRefused
	}
	return ExitNeedsHuman
}

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
	// NothingToRecover is set when recover found no interrupted run.
	NothingToRecover bool
	// Found is the state read back after a recovery that did not complete; nil otherwise.
	Found *Found
	// Rehearsal is what the rehearsal on a clone found, when there was one.
	Rehearsal *Rehearsal
	// Downtime is how long Keycloak was down for an upgrade that succeeded with the quiesce:
	// from the scale-down to ready (what a rehearsal predicts, with the backup and the helm
	// upgrade on top).
	Downtime time.Duration
	// Interrupted is the journal of an earlier run that did not finish, which this run
	// recovered (or tried to) before anything else.
	Interrupted *Journal
	// Customizations are what the run saved of Keycloak's customizations before the downtime;
	// ThemeCheck what the theme check after the upgrade found.
	Customizations *Customizations
	ThemeCheck     *ThemeCheck
	Started        time.Time
	Duration       time.Duration
}

// Found is the state a recovery that did not complete left, read back from the cluster and the
// database (not inferred from what was attempted). An empty field was not read.
type Found struct {
	Release   string // the release's latest and deployed revisions
	Keycloak  string // the Keycloak workloads' replicas
	Resources string // whether the recorded revision's resources exist and are ready
	Database  string // the database against the backup
}

// ExitCode is the exit code of the run: its result's.
func (r *Report) ExitCode() int { return r.Result.ExitCode() }

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
	// Customizer, when set, saves the customizations before the downtime and checks the
	// themes after the upgrade.
	Customizer Customizer
	// Journal, when set, keeps the run's write-ahead journal in the cluster.
	Journal Journaler
	// Cloner and Prober make and check the rehearsal's clone; needed by a request that
	// rehearses (Prober may be nil: no HTTP checks).
	Cloner Cloner
	Prober Prober
	Log    *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// StepHook, when set, is called as each step starts; the function it returns is called as
	// the step ends (the action opens and closes a log group with it).
	StepHook func(name string) (end func())
}

// run is the state of one run of the pipeline. What it changed is in its journal, jr: the
// way back reads it from there, whether the run itself goes back, the next run or recover.
type run struct {
	p   *Pipeline
	req UpgradeRequest
	rep *Report
	log *slog.Logger
	// jr is the run's journal as last written (or read, for an interrupted run).
	jr Journal
	// target is the revision helm recorded for the upgrade (Revision 0: none yet).
	target Release
	// upgradeStart is when the upgrade began: the upgrade and the readiness wait share one
	// timeout.
	upgradeStart time.Time
	// downSince is when the quiesce had stopped Keycloak: the downtime began.
	downSince time.Time
}

// Upgrade runs the procedure the README numbers, one method a step: lock and recover an
// interrupted run; 2. preflight (the plan); the customizations, while Keycloak runs;
// 3. quiesce; 4. backup; 5. upgrade; 6. readiness, then the theme check.
// On a failure after the quiesce (cancellation included) the run goes back the one way back
// (wayback.go). The report is always complete; its ExitCode says how the run ended.
func (p *Pipeline) Upgrade(ctx context.Context, req UpgradeRequest) *Report {
	r := &run{p: p, req: req, log: p.Log, rep: &Report{Release: req.Release, Namespace: req.Namespace, Plan: Plan{Request: req.PlanRequest}}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.rep.Started = p.now()
	defer func() { r.rep.Duration = p.now().Sub(r.rep.Started) }()

	unlock, err := r.lock(ctx)
	if err != nil {
		return r.refuse(err)
	}
	defer unlock()
	// A run that loses its lock stops changing anything at once.
	ctx, stopWatch := r.watchLock(ctx)
	defer stopWatch()

	if rep, done := r.completeInterrupted(ctx); done {
		return rep
	}
	if req.RecoverOnly {
		r.rep.Result, r.rep.NothingToRecover = Noop, true
		return r.rep
	}

	plan, err := r.preflight(ctx)
	if err != nil {
		return r.refuse(err)
	}
	if req.RehearseOnly {
		// A fresh install on the clone meets no immutable field of the live objects.
		plan.Refusals = slices.DeleteFunc(plan.Refusals, func(err error) bool { return errors.Is(err, ErrImmutableChange) })
	}
	switch {
	case plan.Refused():
		return r.refuse(errors.Join(plan.Refusals...))
	case req.DryRun:
		r.rep.Result, r.rep.DryRun = plan.Result(), true
		return r.rep
	case plan.Noop:
		r.log.Info("nothing to upgrade: the deployed revision renders the target and is ready", "revision", plan.Current.Revision)
		r.rep.Result = Noop
		return r.rep
	}

	// From here on the run changes things: its journal says how far it got, before each step.
	if err := r.journalStart(ctx, plan); err != nil {
		return r.refuse(err)
	}
	if req.Rehearse != nil {
		if err := r.rehearsalFirst(ctx); err != nil || req.RehearseOnly {
			return r.rehearsalEnded(ctx, err)
		}
	}
	if err := r.journalQuiescing(ctx, plan); err != nil {
		return r.refuse(err)
	}
	for _, step := range []func(context.Context) error{r.mapRemovedAPIs, r.customizations, r.quiesce, r.backup, r.upgrade, r.readiness, r.themeCheck} {
		if err := step(ctx); err != nil {
			return r.goBack(ctx, err)
		}
	}
	return r.upgraded(ctx)
}

// lock takes the release's lock; the function it returns releases it on a fresh context (the
// run's own may be cancelled by then).
func (r *run) lock(ctx context.Context) (func(), error) {
	var unlock func(context.Context) error
	err := r.step(ctx, "lock", func(ctx context.Context) (string, error) {
		var err error
		unlock, err = r.p.Locker.Lock(ctx, r.req.Release)
		return "", err
	})
	if err != nil {
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := unlock(ctx); err != nil {
			r.log.Warn("release the lock", "err", err)
		}
	}, nil
}

// completeInterrupted completes an earlier run that died, with its own backup and revision,
// before anything else. done says the run ends with rep: the interrupted run could not be
// completed, or this run stops after it (recover, or without continue-after-recovery).
func (r *run) completeInterrupted(ctx context.Context) (rep *Report, done bool) {
	rep = r.resumeInterrupted(ctx)
	if rep != nil && !r.jr.Open() {
		// Recovered and closed: what the dead run left on this machine is no longer needed.
		r.removeStale(ctx)
	}
	if rep != nil {
		if rep.ExitCode() != ExitRolledBack || !r.req.ContinueAfterRecovery || r.req.RecoverOnly {
			return rep, true
		}
		r.log.Info("recovered an interrupted run; going on with this run's upgrade (continue-after-recovery)")
		r.rep = &Report{Release: r.req.Release, Namespace: r.req.Namespace, Interrupted: rep.Interrupted, Timeline: rep.Timeline, Started: rep.Started}
	}
	r.removeStale(ctx)
	return nil, false
}

// preflight reads the release and the database and makes the plan; a release left pending-*
// is unlocked first when the request allows it. Nothing changes here, but for that unlock.
func (r *run) preflight(ctx context.Context) (Plan, error) {
	var plan Plan
	err := r.step(ctx, "preflight", func(ctx context.Context) (string, error) {
		cur, err := r.p.Releases.Current(ctx, r.req.Release)
		if err != nil {
			return "", err
		}
		if cur.Pending() && r.req.UnlockPending {
			r.log.Warn("release left in progress: marking it failed (unlock-pending)", "revision", cur.Revision, "status", cur.Status)
			if err := r.p.Releases.Unlock(ctx, cur); err != nil {
				return "", fmt.Errorf("unlock revision %d: %w", cur.Revision, err)
			}
		}
		plan, err = MakePlan(ctx, r.p.Releases, r.p.Database, r.p.Waiter, r.req.PlanRequest)
		if err != nil {
			return "", err
		}
		PlanThemes(ctx, r.p.Customizer, &plan)
		if plan.Latest.Revision != 0 {
			r.log.Warn("the latest revision is not deployed: the run returns to the newest deployed one on failure",
				"latest", plan.Latest.Revision, "status", plan.Latest.Status, "return-to", plan.Current.Revision)
		}
		return "", nil
	})
	if err != nil {
		return plan, err
	}
	r.rep.Plan = plan
	r.rep.PreviousRevision, r.rep.Revision = plan.Current.Revision, plan.Current.Revision
	r.rep.FromChart, r.rep.ToChart = plan.Current.Chart(), plan.Target.Chart()
	return plan, nil
}

// quiesce is the downtime the vendor asks for, so that the backup is the last word: the users'
// sessions ended, the transaction object store cleared, Keycloak scaled to zero.
func (r *run) quiesce(ctx context.Context) error {
	err := r.step(ctx, "quiesce", func(ctx context.Context) (string, error) {
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
			r.jr.Scaled = scaled
			if err != nil {
				return "", err
			}
			notes = append(notes, fmt.Sprintf("scaled to 0: %v", scaled))
		}
		if len(notes) == 0 {
			return "skipped: quiesce is off", nil
		}
		return strings.Join(notes, "; "), nil
	})
	if err != nil {
		return err
	}
	r.downSince = r.p.now()
	return r.journal(ctx, StepBackingUp, nil)
}

// backup takes a complete, verified backup of the database (with the release's values and
// manifest): nothing is upgraded without one.
func (r *run) backup(ctx context.Context) error {
	cur := r.rep.Plan.Current
	err := r.step(ctx, "backup", func(ctx context.Context) (string, error) {
		values, err := r.p.Releases.Values(ctx, r.req.Release, cur.Revision)
		if err != nil {
			return "", err
		}
		b, err := r.p.Database.Backup(ctx, BackupRequest{Name: r.req.BackupName, Release: cur, Values: values, Customizations: r.rep.Customizations})
		if err != nil {
			return "", err
		}
		r.rep.Backup = &b
		return fmt.Sprintf("%s (%d bytes, sha256 %.12s…)", b.Location(), b.Bytes, b.SHA256), nil
	})
	if err != nil {
		return err
	}
	return r.journal(ctx, StepUpgrading, func(j *Journal) {
		j.Backup, j.Orphans = journalBackup(*r.rep.Backup), ImmutableStatefulSets(r.rep.Plan.Changes, r.req.Namespace)
	})
}

// upgrade applies the target chart, re-creating the StatefulSets whose immutable fields
// change (orphan delete before, the orphaned pods replaced after). The upgrade and the
// readiness wait share one timeout.
func (r *run) upgrade(ctx context.Context) error {
	r.upgradeStart = r.p.now()
	orphans := r.jr.Orphans
	upCtx, cancel := context.WithTimeout(ctx, r.req.Timeout)
	defer cancel()
	err := r.step(upCtx, "upgrade", func(ctx context.Context) (string, error) {
		if len(orphans) > 0 {
			if err := r.p.Releases.OrphanStatefulSets(ctx, orphans); err != nil {
				return "", fmt.Errorf("orphan-delete StatefulSets %v before the upgrade: %w", orphans, err)
			}
		}
		target, err := r.p.Releases.Upgrade(ctx, r.req.Release, r.req.Timeout)
		if target.Revision > 0 {
			r.target = target
			r.rep.UpgradedRevision, r.rep.Revision = target.Revision, target.Revision
		}
		if err != nil {
			return "", err
		}
		if len(orphans) > 0 {
			pods, err := r.p.Releases.ReplaceOrphanedPods(ctx, orphans)
			if err != nil {
				return "", fmt.Errorf("replace the orphaned pods of %v: %w", orphans, err)
			}
			return fmt.Sprintf("revision %d; re-created %v, replaced pods %v", target.Revision, orphans, pods), nil
		}
		return fmt.Sprintf("revision %d", target.Revision), nil
	})
	if err != nil {
		return r.cancelled(ctx, err)
	}
	return r.journal(ctx, StepWaiting, func(j *Journal) { j.UpgradeRevision = r.target.Revision })
}

// readiness waits until every resource of the upgrade's manifest is ready and stays ready, in
// what is left of the upgrade's timeout: the waiter enforces it itself, so that a timeout is
// reported as what was not ready, not as a bare deadline.
func (r *run) readiness(ctx context.Context) error {
	err := r.step(ctx, "readiness", func(ctx context.Context) (string, error) {
		return "", r.p.Waiter.Wait(ctx, WaitRequest{
			Namespace:       r.req.Namespace,
			Manifest:        r.target.Manifest,
			Timeout:         r.req.Timeout - r.p.now().Sub(r.upgradeStart),
			StabilityWindow: r.req.StabilityWindow,
			ProbeURL:        r.req.ProbeURL,
		})
	})
	return r.cancelled(ctx, err)
}

// cancelled says so when a step failed because the run was cancelled.
func (r *run) cancelled(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("cancelled: %w", errors.Join(context.Cause(ctx), err))
	}
	return err
}

// upgraded closes the journal of a run that passed readiness.
func (r *run) upgraded(ctx context.Context) *Report {
	if err := r.journal(ctx, StepReady, nil); err != nil {
		r.log.Warn("the run journal", "err", err)
	}
	if err := r.journal(ctx, StepClosed, func(j *Journal) {
		j.Outcome = fmt.Sprintf("upgraded to revision %d", r.target.Revision)
	}); err != nil {
		r.log.Warn("the run journal: the next run will close it after a readiness pass", "err", err)
	}
	r.rep.Result = Upgraded
	if r.req.Quiesce && !r.downSince.IsZero() {
		r.rep.Downtime = r.p.now().Sub(r.downSince)
	}
	return r.rep
}

// refuse ends a run that changed nothing: exit 2.
func (r *run) refuse(err error) *Report {
	r.rep.Failure = err
	r.rep.Result = Refused
	return r.rep
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
