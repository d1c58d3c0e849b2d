package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// world is a hand-written fake of every port of the pipeline. It records the calls in order
// and fails where a test tells it to.
type world struct {
	mu    sync.Mutex
	calls []string

	current  rollout.Release
	deployed rollout.Release
	target   rollout.Release
	changes  []rollout.Change
	db       rollout.Database

	lockErr, unlockErr, logoutErr, backupErr, upgradeErr, waitErr, rollbackErr, restoreErr, verifyErr, scaleDownErr error
	// upgradeRecords says whether a failing upgrade still records a revision.
	upgradeRecords bool
	// waitAfterRollbackErr fails the wait after the rollback.
	waitAfterRollbackErr error
	// rollbackConflicts fails that many rollbacks on a concurrent change (each recording a
	// failed revision, as helm does).
	rollbackConflicts int
	drift             string
	// blockWait makes the first Wait block until its context ends.
	blockWait bool
	// ctxErrs records, per call, whether the context was already done.
	ctxErrs map[string]error
	revs    int
	rolled  rollout.RollbackOptions
	// marked is the reason MarkFailed was given; markErr fails it.
	marked  string
	markErr error
}

func newWorld() *world {
	manifest13 := "kind: StatefulSet\nmetadata:\n  name: identity-id-keycloak\n"
	cur := rollout.Release{Name: "identity", Namespace: "ns", Revision: 4, Status: "deployed", ChartName: "alfresco-identity-service", ChartVersion: "2.1.0", Manifest: manifest13,
		Hooks: []rollout.Hook{{Kind: "Job", Name: "restore", Events: []string{"post-rollback"}}}}
	return &world{
		current:  cur,
		deployed: cur,
		target:   rollout.Release{Name: "identity", ChartName: "alfresco-identity-service", ChartVersion: "3.0.0", Manifest: manifest13 + "# 1.4\n"},
		changes:  []rollout.Change{{Action: rollout.Changed, Kind: "StatefulSet", Name: "identity-id-keycloak"}},
		db:       rollout.Database{ServerVersion: "15.14", ServerMajor: 15, PgDumpVersion: "15.14", PgDumpMajor: 15, Schema: rollout.SchemaState{ChangelogRows: 86}},
		ctxErrs:  map[string]error{},
		revs:     4,
	}
}

func (w *world) call(ctx context.Context, name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls = append(w.calls, name)
	w.ctxErrs[name] = ctx.Err()
}

func (w *world) called(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Contains(w.calls, name)
}

func (w *world) Current(ctx context.Context, name string) (rollout.Release, error) {
	w.call(ctx, "current")
	return w.current, nil
}
func (w *world) Deployed(ctx context.Context, name string) (rollout.Release, error) {
	w.call(ctx, "deployed")
	return w.deployed, nil
}
func (w *world) Render(ctx context.Context, name string) (rollout.Release, error) {
	w.call(ctx, "render")
	return w.target, nil
}
func (w *world) Diff(a, b rollout.Release) ([]rollout.Change, error) {
	return w.changes, nil // the same resources differ both ways
}
func (w *world) Unlock(ctx context.Context, rel rollout.Release) error {
	w.call(ctx, "unlock")
	w.current.Status = "failed"
	return nil
}
func (w *world) MarkFailed(ctx context.Context, rel rollout.Release, reason string) error {
	w.call(ctx, fmt.Sprintf("mark failed %d", rel.Revision))
	w.marked = reason
	return w.markErr
}
func (w *world) Values(ctx context.Context, name string, revision int) ([]byte, error) {
	w.call(ctx, fmt.Sprintf("values %d", revision))
	return []byte("replicaCount: 1\n"), nil
}
func (w *world) Upgrade(ctx context.Context, name string, timeout time.Duration) (rollout.Release, error) {
	w.call(ctx, "upgrade")
	if w.upgradeErr != nil && !w.upgradeRecords {
		return rollout.Release{}, w.upgradeErr
	}
	w.revs++
	rel := w.target
	rel.Revision = w.revs
	return rel, w.upgradeErr
}
func (w *world) Rollback(ctx context.Context, name string, to int, opts rollout.RollbackOptions) (rollout.Release, error) {
	w.call(ctx, fmt.Sprintf("rollback %d", to))
	w.rolled = opts
	if w.rollbackConflicts > 0 {
		w.rollbackConflicts--
		w.revs++
		return rollout.Release{Revision: w.revs, Status: "failed"},
			fmt.Errorf("failed to replace object: %w", rollout.ErrConflict)
	}
	if w.rollbackErr != nil {
		return rollout.Release{}, w.rollbackErr
	}
	w.revs++
	rel := w.deployed
	rel.Revision = w.revs
	return rel, nil
}
func (w *world) OrphanStatefulSets(ctx context.Context, names []string) error {
	w.call(ctx, "orphan "+strings.Join(names, ","))
	return nil
}
func (w *world) ReplaceOrphanedPods(ctx context.Context, names []string) ([]string, error) {
	w.call(ctx, "replace pods "+strings.Join(names, ","))
	return []string{names[0] + "-0"}, nil
}
func (w *world) Inspect(ctx context.Context) (rollout.Database, error) {
	w.call(ctx, "inspect")
	return w.db, nil
}
func (w *world) Backup(ctx context.Context, req rollout.BackupRequest) (rollout.Backup, error) {
	w.call(ctx, fmt.Sprintf("backup r%d", req.Release.Revision))
	if w.backupErr != nil {
		return rollout.Backup{}, w.backupErr
	}
	return rollout.Backup{Name: "identity-r4", Dir: "/tmp/b", Locations: []string{"backups/identity-r4"}, SHA256: strings.Repeat("a", 64), Bytes: 1234}, nil
}
func (w *world) Drift(ctx context.Context, b rollout.Backup) (string, error) {
	w.call(ctx, "drift")
	return w.drift, nil
}
func (w *world) Restore(ctx context.Context, b rollout.Backup) (string, error) {
	w.call(ctx, "restore")
	return "", w.restoreErr
}
func (w *world) Verify(ctx context.Context, b rollout.Backup) error {
	w.call(ctx, "verify")
	return w.verifyErr
}
func (w *world) Wait(ctx context.Context, req rollout.WaitRequest) error {
	if req.Manifest == w.deployed.Manifest { // the recorded revision, after the recovery
		w.call(ctx, "wait rolled-back")
		return w.waitAfterRollbackErr
	}
	w.call(ctx, "wait")
	if w.blockWait {
		<-ctx.Done()
		return ctx.Err()
	}
	return w.waitErr
}
func (w *world) Lock(ctx context.Context, release string) (func(context.Context) error, error) {
	w.call(ctx, "lock")
	if w.lockErr != nil {
		return nil, w.lockErr
	}
	return func(ctx context.Context) error {
		w.call(ctx, "unlock lease")
		return w.unlockErr
	}, nil
}
func (w *world) ScaleDown(ctx context.Context, namespace, manifest string) ([]rollout.Scaled, error) {
	w.call(ctx, "scale down")
	if w.scaleDownErr != nil {
		return nil, w.scaleDownErr
	}
	return []rollout.Scaled{{Kind: "StatefulSet", Name: "identity-id-keycloak", Replicas: 2}}, nil
}
func (w *world) ScaleUp(ctx context.Context, namespace string, scaled []rollout.Scaled) error {
	w.call(ctx, "scale up")
	return nil
}

func (w *world) Replicas(ctx context.Context, namespace, manifest string) ([]rollout.Scaled, error) {
	return []rollout.Scaled{{Kind: "StatefulSet", Name: "identity-id-keycloak", Replicas: 2}}, nil
}
func (w *world) Revision(ctx context.Context, name string, revision int) (rollout.Release, error) {
	w.call(ctx, fmt.Sprintf("revision %d", revision))
	if revision != w.deployed.Revision {
		return rollout.Release{}, fmt.Errorf("no revision %d", revision)
	}
	return w.deployed, nil
}
func (w *world) Reopen(ctx context.Context, b rollout.JournalBackup) (rollout.Backup, error) {
	w.call(ctx, "reopen "+b.Name)
	return rollout.Backup{Name: b.Name, Dir: "/tmp/reopened", Locations: b.Locations, SHA256: b.SHA256}, nil
}
func (w *world) RemoveStale(ctx context.Context) ([]string, error) { return nil, nil }
func (w *world) Lost(string) <-chan struct{}                       { return nil }
func (w *world) LostErr(string) error                              { return nil }

func (w *world) LogoutAll(ctx context.Context) (int, error) {
	w.call(ctx, "logout sessions")
	return 2, w.logoutErr
}
func (w *world) Clear(ctx context.Context, namespace, manifest string) ([]string, error) {
	w.call(ctx, "clear tx-object-store")
	return []string{"identity-id-keycloak-0"}, nil
}

func (w *world) pipeline() *rollout.Pipeline {
	return &rollout.Pipeline{Releases: w, Database: w, Waiter: w, Locker: w, Workloads: w, Sessions: w, TxStore: w}
}

func request() rollout.UpgradeRequest {
	return rollout.UpgradeRequest{
		PlanRequest: rollout.PlanRequest{Release: "identity", Namespace: "ns", RecreateStatefulSets: "never", RollbackHooks: "auto",
			Advise: (&config.Config{}).Advise},
		Timeout: time.Minute, StabilityWindow: time.Second,
		Rollback: "auto", RestoreDatabase: "auto", Quiesce: true,
	}
}

var notReady = &rollout.NotReady{Resource: "StatefulSet/identity-id-keycloak", Pod: "identity-id-keycloak-0", Container: "keycloak", Reason: "CrashLoopBackOff"}

func TestUpgrade(t *testing.T) {
	happy := []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade", "wait", "unlock lease"}
	recovered := []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade", "wait",
		"scale down", "drift", "restore", "mark failed 5", "rollback 4", "wait rolled-back", "verify", "unlock lease"}
	tests := []struct {
		name   string
		setup  func(*world, *rollout.UpgradeRequest)
		result rollout.Result
		exit   int
		calls  []string
		// failure and recovery are substrings of the report's errors ("" : none).
		failure, recovery string
		revision          int
		restored          bool
	}{
		{name: "success", result: rollout.Upgraded, exit: 0, calls: happy, revision: 5},
		{
			name: "another run holds the lock",
			setup: func(w *world, _ *rollout.UpgradeRequest) {
				w.lockErr = fmt.Errorf("%w: held by runner-7", rollout.ErrLocked)
			},
			result: rollout.Refused, exit: 2, calls: []string{"lock"}, failure: "held by runner-7", revision: 0,
		},
		{
			name: "immutable StatefulSet without recreate-statefulsets",
			setup: func(w *world, _ *rollout.UpgradeRequest) {
				w.changes = []rollout.Change{{Action: rollout.Changed, Kind: "StatefulSet", Name: "identity-postgresql-id", Immutable: []string{"spec.selector"}}}
			},
			result: rollout.Refused, exit: 2, calls: []string{"lock", "current", "current", "render", "inspect", "unlock lease"},
			failure: "StatefulSet/identity-postgresql-id changes spec.selector", revision: 4,
		},
		{
			name: "immutable StatefulSet re-created both ways with orphan",
			setup: func(w *world, r *rollout.UpgradeRequest) {
				r.RecreateStatefulSets = "orphan"
				w.changes = []rollout.Change{{Action: rollout.Changed, Kind: "StatefulSet", Name: "identity-postgresql-id", Immutable: []string{"spec.selector"}}}
				w.waitErr = notReady
				w.drift = "schema: 86 → 88 changesets"
			},
			result: rollout.RolledBack, exit: 1,
			calls: []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4",
				"orphan identity-postgresql-id", "upgrade", "replace pods identity-postgresql-id", "wait",
				"scale down", "drift", "restore", "mark failed 5", "orphan identity-postgresql-id", "rollback 4", "replace pods identity-postgresql-id",
				"wait rolled-back", "verify", "unlock lease"},
			failure: "CrashLoopBackOff", revision: 6, restored: true,
		},
		{
			name:   "release pending without unlock-pending",
			setup:  func(w *world, _ *rollout.UpgradeRequest) { w.current.Status, w.current.Revision = "pending-upgrade", 5 },
			result: rollout.Refused, exit: 2, calls: []string{"lock", "current", "current", "inspect", "unlock lease"},
			failure: "unlock-pending", revision: 5,
		},
		{
			name: "release pending with unlock-pending returns to the deployed revision",
			setup: func(w *world, r *rollout.UpgradeRequest) {
				w.current.Status, w.current.Revision, w.revs = "pending-upgrade", 5, 5
				r.UnlockPending = true
				w.waitErr = notReady
			},
			result: rollout.RolledBack, exit: 1,
			calls: []string{"lock", "current", "unlock", "current", "deployed", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade", "wait",
				"scale down", "drift", "mark failed 6", "rollback 4", "wait rolled-back", "unlock lease"},
			failure: "CrashLoopBackOff", revision: 7,
		},
		{
			name:   "backup fails: nothing upgraded, quiesce undone",
			setup:  func(w *world, _ *rollout.UpgradeRequest) { w.backupErr = errors.New("pg_dump: connection refused") },
			result: rollout.RolledBack, exit: 1,
			calls:   []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "scale up", "unlock lease"},
			failure: "backup: pg_dump: connection refused", revision: 4,
		},
		{
			name:   "quiesce fails",
			setup:  func(w *world, _ *rollout.UpgradeRequest) { w.scaleDownErr = errors.New("forbidden") },
			result: rollout.RolledBack, exit: 1,
			calls:   []string{"lock", "current", "current", "render", "inspect", "scale down", "unlock lease"},
			failure: "quiesce: forbidden", revision: 4,
		},
		{
			name:   "upgrade fails before helm records a revision (template error)",
			setup:  func(w *world, _ *rollout.UpgradeRequest) { w.upgradeErr = errors.New("render: fault injected") },
			result: rollout.RolledBack, exit: 1,
			calls: []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade",
				"scale up", "wait rolled-back", "unlock lease"},
			failure: "fault injected", revision: 4,
		},
		{
			name: "upgrade fails after helm recorded a revision",
			setup: func(w *world, _ *rollout.UpgradeRequest) {
				w.upgradeErr, w.upgradeRecords = errors.New("spec.selector: field is immutable"), true
				w.drift = ""
			},
			result: rollout.RolledBack, exit: 1,
			calls: []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade",
				"scale down", "drift", "mark failed 5", "rollback 4", "wait rolled-back", "unlock lease"},
			failure: "field is immutable", revision: 6,
		},
		{
			name:   "not ready, schema migrated: database restored and verified",
			setup:  func(w *world, _ *rollout.UpgradeRequest) { w.waitErr, w.drift = notReady, "schema changed" },
			result: rollout.RolledBack, exit: 1, calls: recovered, failure: "CrashLoopBackOff", revision: 6, restored: true,
		},
		{
			name: "restore-database never",
			setup: func(w *world, r *rollout.UpgradeRequest) {
				w.waitErr, w.drift, r.RestoreDatabase = notReady, "schema changed", "never"
			},
			result: rollout.RolledBack, exit: 1,
			calls: []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade", "wait",
				"scale down", "mark failed 5", "rollback 4", "wait rolled-back", "unlock lease"},
			failure: "CrashLoopBackOff", revision: 6,
		},
		{
			name:   "restore-database always",
			setup:  func(w *world, r *rollout.UpgradeRequest) { w.waitErr, r.RestoreDatabase = notReady, "always" },
			result: rollout.RolledBack, exit: 1,
			calls: []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade", "wait",
				"scale down", "restore", "mark failed 5", "rollback 4", "wait rolled-back", "verify", "unlock lease"},
			failure: "CrashLoopBackOff", revision: 6, restored: true,
		},
		{
			name: "rollback fails: needs a human, both errors reported",
			setup: func(w *world, _ *rollout.UpgradeRequest) {
				w.waitErr, w.drift, w.rollbackErr = notReady, "schema changed", errors.New("another operation is in progress")
			},
			result: rollout.NeedsAttention, exit: 3,
			calls: []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade", "wait",
				// A failed rollback is reported at once: no wait for a release that cannot be ready.
				"scale down", "drift", "restore", "mark failed 5", "rollback 4", "verify" /* read back */, "current", "wait rolled-back", "drift", "unlock lease"},
			failure: "CrashLoopBackOff", recovery: "another operation is in progress", revision: 5, restored: true,
		},
		{
			name: "rollback fails with re-created StatefulSets: their orphaned pods are replaced all the same",
			setup: func(w *world, r *rollout.UpgradeRequest) {
				r.RecreateStatefulSets = "orphan"
				w.changes = []rollout.Change{{Action: rollout.Changed, Kind: "StatefulSet", Name: "identity-postgresql-id", Immutable: []string{"spec.selector"}}}
				w.waitErr, w.rollbackErr = notReady, errors.New("post-rollback hooks: timed out waiting for the condition")
			},
			result: rollout.NeedsAttention, exit: 3,
			calls: []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4",
				"orphan identity-postgresql-id", "upgrade", "replace pods identity-postgresql-id", "wait",
				"scale down", "drift", "mark failed 5", "orphan identity-postgresql-id", "rollback 4", "replace pods identity-postgresql-id",
				/* read back */ "current", "wait rolled-back", "drift", "unlock lease"},
			failure: "CrashLoopBackOff", recovery: "timed out waiting for the condition", revision: 5,
		},
		{
			name: "rollback meets a concurrent change: rolled back again",
			setup: func(w *world, _ *rollout.UpgradeRequest) {
				w.waitErr, w.drift, w.rollbackConflicts = notReady, "schema changed", 2
			},
			result: rollout.RolledBack, exit: 1,
			calls: []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade", "wait",
				"scale down", "drift", "restore", "mark failed 5", "rollback 4", "rollback 4", "rollback 4", "wait rolled-back", "verify", "unlock lease"},
			failure: "CrashLoopBackOff", revision: 8, restored: true,
		},
		{
			name: "rollback meets a concurrent change every time: needs a human",
			setup: func(w *world, _ *rollout.UpgradeRequest) {
				w.waitErr, w.drift, w.rollbackConflicts = notReady, "schema changed", 3
			},
			result: rollout.NeedsAttention, exit: 3,
			calls: []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade", "wait",
				"scale down", "drift", "restore", "mark failed 5", "rollback 4", "rollback 4", "rollback 4", "verify" /* read back */, "current", "wait rolled-back", "drift", "unlock lease"},
			failure: "CrashLoopBackOff", recovery: "an object changed while it was being written", revision: 8, restored: true,
		},
		{
			name: "restore fails: the rollback still runs, needs a human",
			setup: func(w *world, _ *rollout.UpgradeRequest) {
				w.waitErr, w.drift, w.restoreErr = notReady, "schema changed", errors.New("pg_restore: disk full")
			},
			result: rollout.NeedsAttention, exit: 3,
			calls: []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade", "wait",
				"scale down", "drift", "restore", "mark failed 5", "rollback 4", "wait rolled-back" /* read back */, "current", "wait rolled-back", "drift", "unlock lease"},
			failure: "CrashLoopBackOff", recovery: "disk full", revision: 6,
		},
		{
			name: "not ready again after the rollback",
			setup: func(w *world, _ *rollout.UpgradeRequest) {
				w.waitErr, w.waitAfterRollbackErr = notReady, errors.New("still crashing")
			},
			result: rollout.NeedsAttention, exit: 3,
			calls: []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade", "wait",
				"scale down", "drift", "mark failed 5", "rollback 4", "wait rolled-back" /* read back */, "current", "wait rolled-back", "drift", "unlock lease"},
			failure: "CrashLoopBackOff", recovery: "still crashing", revision: 6,
		},
		{
			name:   "rollback never",
			setup:  func(w *world, r *rollout.UpgradeRequest) { w.waitErr, r.Rollback = notReady, "never" },
			result: rollout.NeedsAttention, exit: 3,
			calls:   []string{"lock", "current", "current", "render", "inspect", "scale down", "values 4", "backup r4", "upgrade", "wait", "unlock lease"},
			failure: "CrashLoopBackOff", recovery: "rollback: never", revision: 5,
		},
		{
			name: "sessions and tx-object-store before the scale-down",
			setup: func(w *world, r *rollout.UpgradeRequest) {
				r.LogoutSessions, r.ClearTxObjectStore = true, true
			},
			result: rollout.Upgraded, exit: 0,
			calls: []string{"lock", "current", "current", "render", "inspect", "logout sessions", "clear tx-object-store", "scale down",
				"values 4", "backup r4", "upgrade", "wait", "unlock lease"},
			revision: 5,
		},
		{
			name: "session logout fails: nothing changed further",
			setup: func(w *world, r *rollout.UpgradeRequest) {
				r.LogoutSessions, w.logoutErr = true, errors.New("401 Unauthorized")
			},
			result: rollout.RolledBack, exit: 1,
			// The way back gives Keycloak the replicas the journal recorded before the quiesce,
			// as the next run would: here the ones it still has.
			calls:   []string{"lock", "current", "current", "render", "inspect", "logout sessions", "scale up", "unlock lease"},
			failure: "log out sessions: 401", revision: 4,
		},
		{
			name:   "quiesce off",
			setup:  func(w *world, r *rollout.UpgradeRequest) { r.Quiesce = false },
			result: rollout.Upgraded, exit: 0,
			calls:    []string{"lock", "current", "current", "render", "inspect", "values 4", "backup r4", "upgrade", "wait", "unlock lease"},
			revision: 5,
		},
		{
			name:   "dry run",
			setup:  func(w *world, r *rollout.UpgradeRequest) { r.DryRun = true },
			result: rollout.Planned, exit: 0, calls: []string{"lock", "current", "current", "render", "inspect", "unlock lease"}, revision: 4,
		},
		{
			name: "nothing to upgrade",
			setup: func(w *world, r *rollout.UpgradeRequest) {
				w.target.ChartVersion, w.changes = "2.1.0", nil
			},
			// One readiness pass of the deployed revision tells nothing to do from broken.
			result: rollout.Noop, exit: 0, calls: []string{"lock", "current", "current", "render", "inspect", "wait rolled-back", "unlock lease"}, revision: 4,
		},
		{
			name: "renders the target but not ready: refused, not nothing to do",
			setup: func(w *world, r *rollout.UpgradeRequest) {
				w.target.ChartVersion, w.changes = "2.1.0", nil
				w.waitAfterRollbackErr = notReady
			},
			result: rollout.Refused, exit: 2, calls: []string{"lock", "current", "current", "render", "inspect", "wait rolled-back", "unlock lease"}, revision: 4,
			failure: "renders the target, but",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			req := request()
			if tt.setup != nil {
				tt.setup(w, &req)
			}
			rep := w.pipeline().Upgrade(t.Context(), req)
			if rep.Result != tt.result || rep.ExitCode() != tt.exit {
				t.Errorf("result %s, exit %d; want %s, %d (err: %v)", rep.Result, rep.ExitCode(), tt.result, tt.exit, rep.Err())
			}
			if !slices.Equal(w.calls, tt.calls) {
				t.Errorf("calls:\n got %q\nwant %q", w.calls, tt.calls)
			}
			checkErr(t, "failure", rep.Failure, tt.failure)
			checkErr(t, "recovery", rep.Recovery, tt.recovery)
			if rep.Revision != tt.revision {
				t.Errorf("revision %d, want %d", rep.Revision, tt.revision)
			}
			if rep.DatabaseRestored != tt.restored {
				t.Errorf("database restored %v, want %v", rep.DatabaseRestored, tt.restored)
			}
			if tt.exit == 1 && tt.failure == "CrashLoopBackOff" && (rep.NotReady == nil || rep.NotReady.Pod != "identity-id-keycloak-0") {
				t.Errorf("NotReady = %+v, want the readiness failure", rep.NotReady)
			}
			if tt.exit != 2 && rep.PreviousRevision != 4 {
				t.Errorf("previous revision %d, want 4", rep.PreviousRevision)
			}
			for i, s := range rep.Timeline {
				if i > 0 && s.Start.Before(rep.Timeline[i-1].Start) {
					t.Errorf("timeline out of order at %s", s.Name)
				}
			}
		})
	}
}

// TestStateNowIsReadBack: a recovery that did not complete tells the state it left as read
// back (the release's revisions, Keycloak's replicas, the recorded revision's readiness, the
// database against the backup), not as what it attempted.
func TestStateNowIsReadBack(t *testing.T) {
	w := newWorld()
	w.waitErr, w.drift, w.rollbackErr = notReady, "schema: 86 → 88 changesets", errors.New("admission webhook denied the request")
	w.waitAfterRollbackErr = errors.New("StatefulSet/identity-postgresql-id: not found")
	rep := w.pipeline().Upgrade(t.Context(), request())
	if rep.ExitCode() != rollout.ExitNeedsHuman || rep.Found == nil {
		t.Fatalf("exit %d, found %+v", rep.ExitCode(), rep.Found)
	}
	state := strings.Join(rep.State(), "\n")
	for _, want := range []string{"Release identity: latest revision 4 is deployed (alfresco-identity-service-2.1.0).",
		"Keycloak: StatefulSet/identity-id-keycloak at 2 replicas.",
		"Resources: revision 4's resources are not ready: StatefulSet/identity-postgresql-id: not found.",
		"Database: differs from the backup: schema: 86 → 88 changesets.", "Did not complete: rollback."} {
		if !strings.Contains(state, want) {
			t.Errorf("state lacks %q:\n%s", want, state)
		}
	}
}

func checkErr(t *testing.T, what string, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("%s: unexpected error %v", what, err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Errorf("%s: error %v, want one containing %q", what, err, want)
	}
}

func TestUpgradeSkipsTheRollbackHooksOfTheRecordedRevision(t *testing.T) {
	for _, tt := range []struct {
		hooks rollout.RollbackHooks
		skip  bool
	}{{"auto", true}, {"skip", true}, {"run", false}} {
		t.Run(string(tt.hooks), func(t *testing.T) {
			w := newWorld()
			w.waitErr = notReady
			req := request()
			req.RollbackHooks = tt.hooks
			req.ForceRollback = true
			rep := w.pipeline().Upgrade(t.Context(), req)
			if rep.ExitCode() != 1 {
				t.Fatalf("exit %d: %v", rep.ExitCode(), rep.Err())
			}
			if w.rolled.DisableHooks != tt.skip || !w.rolled.Force || w.rolled.CleanupOnFail {
				t.Errorf("rollback options %+v, want hooks disabled %v, force, no cleanup on fail", w.rolled, tt.skip)
			}
		})
	}
}

func TestUpgradeMarksTheFailedRevisionBeforeTheRollback(t *testing.T) {
	for _, tt := range []struct {
		name    string
		markErr error
		note    string
	}{
		{name: "marked", note: "revision 5 marked failed; revision 6 (= 4)"},
		{name: "the mark fails: the rollback goes on", markErr: errors.New("secrets is forbidden"),
			note: "revision 5 not marked failed (secrets is forbidden); revision 6 (= 4)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld()
			w.waitErr, w.markErr = notReady, tt.markErr
			rep := w.pipeline().Upgrade(t.Context(), request())
			if rep.ExitCode() != 1 || rep.Result != rollout.RolledBack {
				t.Fatalf("result %s exit %d: %v", rep.Result, rep.ExitCode(), rep.Err())
			}
			for _, want := range []string{"readiness: not ready: pod identity-id-keycloak-0", "CrashLoopBackOff", "; rolling back to revision 4"} {
				if !strings.Contains(w.marked, want) {
					t.Errorf("reason %q lacks %q", w.marked, want)
				}
			}
			for _, s := range rep.Timeline {
				if s.Name == "rollback" && !strings.HasPrefix(s.Note, tt.note) {
					t.Errorf("rollback note %q, want it to begin with %q", s.Note, tt.note)
				}
			}
		})
	}
	t.Run("a long cause is cut", func(t *testing.T) {
		w := newWorld()
		w.waitErr = &rollout.NotReady{Resource: "StatefulSet/identity-id-keycloak", Reason: "ProbeFailed", Message: strings.Repeat("x", 1000)}
		w.pipeline().Upgrade(t.Context(), request())
		if n := len([]rune(w.marked)); n > 300 || !strings.Contains(w.marked, "…; rolling back to revision 4") {
			t.Errorf("reason of %d characters: %q", n, w.marked)
		}
	})
}

func TestUpgradeCancelledDuringTheWaitRollsBackOnAFreshContext(t *testing.T) {
	w := newWorld()
	w.blockWait, w.drift = true, "rows changed in 2 tables"
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for !w.called("wait") {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	rep := w.pipeline().Upgrade(ctx, request())
	if rep.ExitCode() != 1 || rep.Result != rollout.RolledBack {
		t.Fatalf("result %s exit %d: %v", rep.Result, rep.ExitCode(), rep.Err())
	}
	if !strings.Contains(rep.Failure.Error(), "cancelled") {
		t.Errorf("failure %v does not say the run was cancelled", rep.Failure)
	}
	for _, c := range []string{"restore", "mark failed 5", "rollback 4", "verify", "unlock lease"} {
		if !w.called(c) {
			t.Errorf("%s was not called after the cancel", c)
		} else if err := w.ctxErrs[c]; err != nil {
			t.Errorf("%s ran on a done context: %v", c, err)
		}
	}
}

func TestUpgradeTimeline(t *testing.T) {
	w := newWorld()
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	p := w.pipeline()
	p.Now = func() time.Time { now = now.Add(time.Second); return now }
	rep := p.Upgrade(t.Context(), request())
	var names []string
	for _, s := range rep.Timeline {
		names = append(names, s.Name)
		if s.Duration < time.Second {
			t.Errorf("step %s took %v on a clock that ticks one second per reading", s.Name, s.Duration)
		}
	}
	want := []string{"lock", "preflight", "quiesce", "backup", "upgrade", "readiness"}
	if !slices.Equal(names, want) {
		t.Errorf("timeline %q, want %q", names, want)
	}
	if rep.Duration <= 6*time.Second {
		t.Errorf("duration %v shorter than its steps", rep.Duration)
	}
	if rep.FromChart != "alfresco-identity-service-2.1.0" || rep.ToChart != "alfresco-identity-service-3.0.0" || rep.Backup == nil {
		t.Errorf("report %+v", rep)
	}
}
