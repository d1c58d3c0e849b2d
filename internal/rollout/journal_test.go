package rollout_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// TestJournalTransitions walks every step to every step: forward through the pipeline, into
// the recovery from any step that changed something, closed from anywhere, a new run only
// from closed.
func TestJournalTransitions(t *testing.T) {
	steps := []rollout.JournalStep{"", rollout.StepStarted, rollout.StepRehearsing, rollout.StepQuiescing, rollout.StepBackingUp, rollout.StepUpgrading,
		rollout.StepWaiting, rollout.StepReady, rollout.StepRecovering, rollout.StepClosed}
	allowed := map[[2]rollout.JournalStep]bool{}
	for _, p := range [][2]rollout.JournalStep{
		{"", rollout.StepStarted},
		{rollout.StepStarted, rollout.StepRehearsing}, {rollout.StepStarted, rollout.StepQuiescing}, {rollout.StepStarted, rollout.StepClosed},
		{rollout.StepRehearsing, rollout.StepQuiescing}, {rollout.StepRehearsing, rollout.StepRecovering}, {rollout.StepRehearsing, rollout.StepClosed},
		{rollout.StepQuiescing, rollout.StepBackingUp}, {rollout.StepQuiescing, rollout.StepRecovering}, {rollout.StepQuiescing, rollout.StepClosed},
		{rollout.StepBackingUp, rollout.StepUpgrading}, {rollout.StepBackingUp, rollout.StepRecovering}, {rollout.StepBackingUp, rollout.StepClosed},
		{rollout.StepUpgrading, rollout.StepWaiting}, {rollout.StepUpgrading, rollout.StepRecovering}, {rollout.StepUpgrading, rollout.StepClosed},
		{rollout.StepWaiting, rollout.StepReady}, {rollout.StepWaiting, rollout.StepRecovering}, {rollout.StepWaiting, rollout.StepClosed},
		{rollout.StepReady, rollout.StepClosed}, {rollout.StepReady, rollout.StepRecovering},
		{rollout.StepRecovering, rollout.StepClosed},
		{rollout.StepClosed, rollout.StepStarted},
	} {
		allowed[p] = true
	}
	for _, from := range steps {
		for _, to := range steps {
			j := rollout.Journal{Step: from}
			err := j.Advance(to)
			if want := allowed[[2]rollout.JournalStep{from, to}]; (err == nil) != want {
				t.Errorf("%q → %q: err %v, allowed %v", from, to, err, want)
			}
			if err != nil && !errors.Is(err, rollout.ErrJournalTransition) {
				t.Errorf("%q → %q: %v does not wrap ErrJournalTransition", from, to, err)
			}
		}
		j := rollout.Journal{Step: from}
		if open := j.Open(); open != (from != "" && from != rollout.StepClosed) {
			t.Errorf("%q: open %v", from, open)
		}
	}
}

// journaled is the fake world with a journal.
type journaled struct {
	*world
	journal  rollout.Journal
	writes   []rollout.JournalStep
	writeErr error
	reopened *rollout.JournalBackup
}

func (j *journaled) Read(ctx context.Context, release string) (rollout.Journal, error) {
	j.call(ctx, "read journal")
	return j.journal, nil
}
func (j *journaled) Write(ctx context.Context, release string, entry rollout.Journal) error {
	j.writes = append(j.writes, entry.Step)
	if j.writeErr != nil {
		return j.writeErr
	}
	j.journal = entry
	return nil
}
func (j *journaled) Reopen(ctx context.Context, b rollout.JournalBackup) (rollout.Backup, error) {
	j.reopened = &b
	return j.world.Reopen(ctx, b)
}

func newJournaled() (*journaled, *rollout.Pipeline) {
	j := &journaled{world: newWorld()}
	p := &rollout.Pipeline{Releases: j, Database: j, Waiter: j.world, Locker: j.world,
		Workloads: j, Sessions: j.world, TxStore: j.world, Journal: j}
	return j, p
}

// TestJournalOfARun checks what a run writes: before each step that changes something, with
// the replicas known before the quiesce and the backup before the upgrade, and closed at the
// end, whether it upgraded, rolled back or failed before the upgrade.
func TestJournalOfARun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(*journaled)
		writes  []rollout.JournalStep
		outcome string
	}{
		{"upgraded", nil, []rollout.JournalStep{"started", "quiescing", "backing-up", "upgrading", "waiting", "ready", "closed"}, "upgraded to revision 5"},
		{"rolled back", func(j *journaled) { j.waitErr = notReady }, []rollout.JournalStep{"started", "quiescing", "backing-up", "upgrading", "waiting", "recovering", "closed"}, "rolled back to revision 4"},
		{"backup failed", func(j *journaled) { j.backupErr = errors.New("disk full") }, []rollout.JournalStep{"started", "quiescing", "backing-up", "recovering", "closed"}, "failed before the upgrade"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, p := newJournaled()
			if tc.setup != nil {
				tc.setup(j)
			}
			rep := p.Upgrade(t.Context(), request())
			if !slices.Equal(j.writes, tc.writes) {
				t.Errorf("journal writes %q, want %q", j.writes, tc.writes)
			}
			if j.journal.Open() || !strings.Contains(j.journal.Outcome, tc.outcome) {
				t.Errorf("journal %+v, want closed with %q (report %s)", j.journal, tc.outcome, rep.Headline())
			}
			if len(j.journal.Scaled) != 1 || j.journal.Scaled[0].Replicas != 2 || j.journal.RecordedRevision != 4 {
				t.Errorf("journal recorded %+v", j.journal)
			}
		})
	}
	t.Run("a journal that cannot be written stops the run before it changes anything", func(t *testing.T) {
		j, p := newJournaled()
		j.writeErr = errors.New("forbidden")
		rep := p.Upgrade(t.Context(), request())
		if rep.ExitCode() != rollout.ExitRefused || j.called("scale down") {
			t.Errorf("exit %d, calls %q", rep.ExitCode(), j.calls)
		}
	})
}

// TestInterruptedRun starts where a killed run left the release: its journal open at each step
// that changed something. The next run completes that run's recovery with that run's backup
// and recorded revision (not a new backup of what may be a migrated database), and stops with
// exit 1; a run that had passed readiness is closed as upgraded after one readiness pass.
func TestInterruptedRun(t *testing.T) {
	backup := &rollout.JournalBackup{Name: "identity-r4-killed", Locations: []string{"backups/identity-r4-killed"}, SHA256: "cc"}
	scaled := []rollout.Scaled{{Kind: "StatefulSet", Name: "identity-id-keycloak", Replicas: 2}}
	for _, tc := range []struct {
		name    string
		journal rollout.Journal
		pending bool // helm's update was killed: the latest revision is pending
		setup   func(*journaled)
		exit    int
		calls   []string
	}{
		{name: "in the quiesce", journal: rollout.Journal{Step: rollout.StepQuiescing, RecordedRevision: 4, Scaled: scaled},
			exit: rollout.ExitRolledBack, calls: []string{"lock", "read journal", "revision 4", "scale up", "unlock lease"}},
		{name: "during helm's update", pending: true,
			journal: rollout.Journal{Step: rollout.StepUpgrading, RecordedRevision: 4, Scaled: scaled, Backup: backup},
			setup:   func(j *journaled) { j.drift = "Keycloak migrated the schema" },
			exit:    rollout.ExitRolledBack,
			calls: []string{"lock", "read journal", "revision 4", "current", "unlock", "reopen identity-r4-killed",
				"scale down", "drift", "restore", "mark failed 5", "rollback 4", "wait rolled-back", "verify", "unlock lease"}},
		// The run's rollback failed (the old StatefulSet refused): the latest revision is the
		// failed rollback's. recover re-creates what the journal says the upgrade orphaned, and
		// replaces the orphaned pod, though nothing differs between that revision and the
		// recorded one any more.
		{name: "after a rollback that failed", journal: rollout.Journal{Step: rollout.StepRecovering, RecordedRevision: 4, UpgradeRevision: 5,
			Scaled: scaled, Backup: backup, Orphans: []string{"identity-postgresql-id"}},
			setup: func(j *journaled) {
				j.revs = 6
				j.current = j.deployed
				j.current.Revision, j.current.Status = 6, "failed"
			},
			exit: rollout.ExitRolledBack,
			calls: []string{"lock", "read journal", "revision 4", "current", "reopen identity-r4-killed", "scale down", "drift",
				"mark failed 6", "orphan identity-postgresql-id", "rollback 4", "replace pods identity-postgresql-id", "wait rolled-back", "unlock lease"}},
		{name: "after readiness, still ready", journal: rollout.Journal{Step: rollout.StepReady, RecordedRevision: 4, UpgradeRevision: 5, Backup: backup},
			exit: rollout.ExitOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, p := newJournaled()
			tc.journal.RunID = "killed-run"
			j.journal = tc.journal
			if tc.pending {
				j.revs = 5
				j.current = j.target
				j.current.Revision, j.current.Status = 5, "pending-upgrade"
			}
			if tc.journal.Step == rollout.StepReady {
				// It upgraded to revision 5, which runs; this run has nothing left to do.
				j.revs = 5
				j.current = j.target
				j.current.Revision, j.current.Status = 5, "deployed"
				j.deployed = j.current
				j.target.ChartVersion, j.changes = j.current.ChartVersion, nil
			}
			if tc.setup != nil {
				tc.setup(j)
			}
			rep := p.Upgrade(t.Context(), request())
			if rep.ExitCode() != tc.exit {
				t.Fatalf("exit %d, want %d: %s\n%v", rep.ExitCode(), tc.exit, rep.Headline(), rep.Err())
			}
			if tc.calls != nil && !slices.Equal(j.calls, tc.calls) {
				t.Errorf("calls\n got %q\nwant %q", j.calls, tc.calls)
			}
			if j.journal.Open() {
				t.Errorf("the journal is still open: %+v", j.journal)
			}
			if tc.journal.Backup != nil && tc.exit == rollout.ExitRolledBack && (j.reopened == nil || j.reopened.Name != backup.Name || j.called("backup r4")) {
				t.Errorf("restored from %v; want the interrupted run's own backup, and no new backup", j.reopened)
			}
			if tc.exit == rollout.ExitRolledBack && !strings.HasPrefix(rep.Headline(), "Recovered an interrupted run (killed-run") {
				t.Errorf("headline %q", rep.Headline())
			}
		})
	}
	t.Run("recover only: nothing interrupted is a noop", func(t *testing.T) {
		j, p := newJournaled()
		req := request()
		req.RecoverOnly = true
		rep := p.Upgrade(t.Context(), req)
		if rep.ExitCode() != rollout.ExitOK || j.called("scale down") || j.called("render") {
			t.Errorf("exit %d, calls %q", rep.ExitCode(), j.calls)
		}
	})
}

// lossy is a locker whose lock is lost when the run reaches a call.
type lossy struct {
	*world
	at   string
	lost chan struct{}
}

func (l *lossy) Lost(string) <-chan struct{} { return l.lost }
func (l *lossy) LostErr(string) error        { return errors.New("lease deleted while this run held it") }

// TestLostLock: a run whose lock is lost (the lease deleted, or taken over after it could not
// be renewed) during readiness stops at once: no rollback, no restore, no scale change after
// that moment; exit 3, the cause named.
func TestLostLock(t *testing.T) {
	w := newWorld()
	w.blockWait = true
	l := &lossy{world: w, lost: make(chan struct{})}
	p := w.pipeline()
	p.Locker = l
	go func() {
		for !w.called("wait") {
			time.Sleep(time.Millisecond)
		}
		close(l.lost)
	}()
	rep := p.Upgrade(t.Context(), request())
	if rep.ExitCode() != rollout.ExitNeedsHuman || !errors.Is(rep.Err(), rollout.ErrLeaseLost) || !strings.Contains(rep.Err().Error(), "lease deleted") {
		t.Fatalf("exit %d, err %v", rep.ExitCode(), rep.Err())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	after := w.calls[slices.Index(w.calls, "wait")+1:]
	if !slices.Equal(after, []string{"unlock lease"}) {
		t.Errorf("calls after the lock was lost: %q, want only the lease's release", after)
	}
}

// TestLostLockRecordsIt: a run with a journal that loses its lock writes the loss into its
// journal and leaves it open at the step it reached, for the next run to complete.
func TestLostLockRecordsIt(t *testing.T) {
	j, p := newJournaled()
	j.blockWait = true
	l := &lossy{world: j.world, lost: make(chan struct{})}
	p.Locker = l
	go func() {
		for !j.called("wait") {
			time.Sleep(time.Millisecond)
		}
		close(l.lost)
	}()
	rep := p.Upgrade(t.Context(), request())
	if rep.ExitCode() != rollout.ExitNeedsHuman {
		t.Fatalf("exit %d", rep.ExitCode())
	}
	if !j.journal.Open() || j.journal.Step != rollout.StepWaiting || !strings.Contains(j.journal.Outcome, "lost its lock at step waiting") {
		t.Errorf("journal %+v, want open at waiting with the loss recorded", j.journal)
	}
}
