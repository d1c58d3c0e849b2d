package rollout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Journal is the write-ahead record of one run, kept in the cluster beside the release so that
// a run that dies (SIGKILL, a lost runner, an OOM kill) loses nothing: the next run, or
// `recover`, finds what it had changed and puts it back with its backup. It is written before
// every step that changes something and after it, and holds no secret.
type Journal struct {
	// RunID and Holder name the run (the holder is the run's Lease holder).
	RunID  string `json:"runID"`
	Holder string `json:"holder"`
	// Step is how far the run got; StepClosed when it ended.
	Step JournalStep `json:"step"`
	// RecordedRevision is the revision to return to; TargetChart the chart upgraded to.
	RecordedRevision int    `json:"recordedRevision,omitempty"`
	TargetChart      string `json:"targetChart,omitempty"`
	// MappedFrom is the revision whose stored manifest the run mapped to served APIs
	// (map-removed-apis); RecordedRevision is then the mapped revision, which a rollback of
	// this run returns to.
	MappedFrom int `json:"mappedFrom,omitempty"`
	// Backup is where the run's backup went, with its checksum and the schema state it holds.
	Backup *JournalBackup `json:"backup,omitempty"`
	// Scaled are the workloads the quiesce scaled to zero, with their replicas.
	Scaled []Scaled `json:"scaled,omitempty"`
	// Orphans are the StatefulSets orphan-deleted to be re-created.
	Orphans []string `json:"orphans,omitempty"`
	// UpgradeRevision is the revision helm recorded for the upgrade, once known.
	UpgradeRevision int `json:"upgradeRevision,omitempty"`
	// Scratch is the namespace of the rehearsal's clone while it exists.
	Scratch string `json:"scratch,omitempty"`
	// Outcome says how the run ended, once closed; while open, that it lost its lock.
	Outcome string    `json:"outcome,omitempty"`
	Updated time.Time `json:"updated"`
}

// JournalBackup is the part of a Backup the next run needs to find it again and restore it.
type JournalBackup struct {
	Name      string      `json:"name"`
	Locations []string    `json:"locations"`
	SHA256    string      `json:"sha256"`
	Bytes     int64       `json:"bytes"`
	Schema    SchemaState `json:"schema"`
}

// JournalStep is how far a run got.
type JournalStep string

const (
	// StepStarted: the run holds the lock and has changed nothing yet.
	StepStarted JournalStep = "started"
	// StepRehearsing: the run is trying the upgrade on a clone in the Scratch namespace;
	// production is untouched.
	StepRehearsing JournalStep = "rehearsing"
	// StepQuiescing: the run is scaling Keycloak down (Scaled may be partly filled).
	StepQuiescing JournalStep = "quiescing"
	// StepBackingUp: Keycloak is down; the backup is being taken.
	StepBackingUp JournalStep = "backing-up"
	// StepUpgrading: the backup is complete; StatefulSets may be orphan-deleted and helm may
	// be applying the target.
	StepUpgrading JournalStep = "upgrading"
	// StepWaiting: helm recorded UpgradeRevision; readiness is being checked.
	StepWaiting JournalStep = "waiting"
	// StepReady: the upgrade passed readiness.
	StepReady JournalStep = "ready"
	// StepRecovering: the run is putting the release and the database back.
	StepRecovering JournalStep = "recovering"
	// StepClosed: the run ended, whatever its outcome; nothing is left to recover.
	StepClosed JournalStep = "closed"
)

// journalNext lists where a step may go. A run moves forward through the pipeline, may start
// its recovery from any step that changed something, and closes from anywhere.
var journalNext = map[JournalStep][]JournalStep{
	"":             {StepStarted},
	StepStarted:    {StepRehearsing, StepQuiescing, StepClosed},
	StepRehearsing: {StepQuiescing, StepRecovering, StepClosed},
	StepQuiescing:  {StepBackingUp, StepRecovering, StepClosed},
	StepBackingUp:  {StepUpgrading, StepRecovering, StepClosed},
	StepUpgrading:  {StepWaiting, StepRecovering, StepClosed},
	StepWaiting:    {StepReady, StepRecovering, StepClosed},
	StepReady:      {StepClosed, StepRecovering},
	StepRecovering: {StepClosed},
	StepClosed:     {StepStarted},
}

// ErrJournalTransition marks a journal moved to a step it cannot reach from where it is.
var ErrJournalTransition = errors.New("journal: step not reachable")

// Advance moves the journal to step, or fails with ErrJournalTransition.
func (j *Journal) Advance(step JournalStep) error {
	if !slices.Contains(journalNext[j.Step], step) {
		return fmt.Errorf("%w: %q → %q", ErrJournalTransition, j.Step, step)
	}
	j.Step = step
	return nil
}

// Open reports whether the journal records a run that has not closed: if its Lease is gone or
// expired, that run was interrupted.
func (j Journal) Open() bool { return j.Step != "" && j.Step != StepClosed }

// Changed reports whether the run had changed the release or its workloads by the step it
// reached.
func (j Journal) Changed() bool {
	return j.Open() && j.Step != StepStarted
}

// Upgraded reports whether the run may have started changing the release itself (orphan
// deletes, helm's update).
func (j Journal) Upgraded() bool {
	switch j.Step {
	case StepUpgrading, StepWaiting, StepReady, StepRecovering:
		return true
	}
	return false
}

// Journaler keeps one journal per release, in its namespace. Implemented in the cluster by
// kubejournal.
type Journaler interface {
	// Read returns the release's journal, or a zero Journal when there is none.
	Read(ctx context.Context, release string) (Journal, error)
	// Write stores the journal; it fails when someone else wrote it since this process last
	// read or wrote it (optimistic concurrency).
	Write(ctx context.Context, release string, j Journal) error
}

// journal moves the run's journal to step, with change applied, and writes it: the journal in
// memory is what the way back reads, the one in the cluster (when there is a Journaler) what
// the next run reads. A run that cannot write its journal must not go on changing things: the
// caller treats the error as a failure of the step, and the journal in memory stays as it was.
func (r *run) journal(ctx context.Context, step JournalStep, change func(*Journal)) error {
	j := r.jr
	if step != j.Step {
		if err := j.Advance(step); err != nil {
			return err
		}
	}
	if change != nil {
		change(&j)
	}
	j.Updated = r.p.now().UTC()
	if r.p.Journal != nil {
		if err := r.p.Journal.Write(ctx, r.req.Release, j); err != nil {
			return fmt.Errorf("write the run journal (step %s): %w", step, err)
		}
	}
	r.jr = j
	return nil
}

// journalBackup is what the journal keeps of a backup.
func journalBackup(b Backup) *JournalBackup {
	return &JournalBackup{Name: b.Name, Locations: slices.Clone(b.Locations), SHA256: b.SHA256, Bytes: b.Bytes, Schema: b.Schema}
}

// journalStart opens this run's journal, with what the next run would need to undo it, before
// anything changes.
func (r *run) journalStart(ctx context.Context, plan Plan) error {
	return r.journal(ctx, StepStarted, func(j *Journal) {
		*j = Journal{Step: StepStarted, RunID: r.req.RunID, Holder: r.req.Holder,
			RecordedRevision: plan.Current.Revision, TargetChart: plan.Target.Chart()}
	})
}

// journalQuiescing records the replicas the quiesce is about to take away, known before it
// scales anything.
func (r *run) journalQuiescing(ctx context.Context, plan Plan) error {
	var scaled []Scaled
	if r.p.Workloads != nil && r.req.Quiesce {
		var err error
		if scaled, err = r.p.Workloads.Replicas(ctx, r.req.Namespace, plan.Current.Manifest); err != nil {
			return fmt.Errorf("read the Keycloak replicas: %w", err)
		}
	}
	return r.journal(ctx, StepQuiescing, func(j *Journal) { j.Scaled = scaled })
}

// removeStale removes the working copies of earlier runs once no interrupted run needs them.
func (r *run) removeStale(ctx context.Context) {
	removed, err := r.p.Database.RemoveStale(ctx)
	if err != nil {
		r.log.Warn("remove what earlier runs left", "err", err)
	}
	if len(removed) > 0 {
		r.log.Info("removed the working copies earlier runs left", "dirs", removed)
	}
}

// ErrLeaseLost is the cause of a run stopped because it lost its lock: another run may be
// changing the release, so this one changes nothing more (exit 3).
var ErrLeaseLost = errors.New("the run lost its lock on the release")

// watchLock returns ctx cancelled with ErrLeaseLost as soon as the lock on the release is lost.
func (r *run) watchLock(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-r.p.Locker.Lost(r.req.Release):
			cancel(fmt.Errorf("%w: %v", ErrLeaseLost, r.p.Locker.LostErr(r.req.Release)))
		case <-ctx.Done():
		}
	}()
	return ctx, func() { cancel(nil) }
}

// lostLock ends a run that lost its lock: it changes nothing more, and says so in its journal
// if nobody else wrote it since.
func (r *run) lostLock(ctx context.Context, cause error) *Report {
	r.rep.Failure = errors.Join(r.rep.Failure, context.Cause(ctx))
	r.rep.Recovery = fmt.Errorf("%w: nothing more was changed after that moment; another run may be working on the release; the journal says how far this run got", ErrLeaseLost)
	if cause != nil && !errors.Is(cause, ErrLeaseLost) {
		r.rep.Failure = errors.Join(cause, r.rep.Failure)
	}
	if r.jr.Open() {
		// The step stays: the next run completes the recovery from there.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := r.journal(wctx, r.jr.Step, func(j *Journal) {
			j.Outcome = fmt.Sprintf("lost its lock at step %s: %v", j.Step, context.Cause(ctx))
		}); err != nil {
			r.log.Warn("the run journal", "err", err)
		}
	}
	r.rep.Result = NeedsAttention
	return r.rep
}
