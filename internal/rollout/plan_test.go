package rollout_test

import (
	"cmp"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// fakeReleases is a hand-written stand-in for the helm adapter.
type fakeReleases struct {
	current  rollout.Release // the latest revision
	deployed rollout.Release // the newest deployed one, when the latest is not
	target   rollout.Release
	changes  []rollout.Change
	err      error
	rendered bool
	diffFrom int // the revision Diff was asked to compare from
}

func (f *fakeReleases) Current(context.Context, string) (rollout.Release, error) {
	return f.current, f.err
}
func (f *fakeReleases) Render(context.Context, string) (rollout.Release, error) {
	f.rendered = true
	return f.target, nil
}
func (f *fakeReleases) Diff(from rollout.Release, _ rollout.Release) ([]rollout.Change, error) {
	f.diffFrom = from.Revision
	return f.changes, nil
}
func (f *fakeReleases) Deployed(context.Context, string) (rollout.Release, error) {
	if f.deployed.Revision == 0 {
		return f.deployed, errors.New("no deployed revision")
	}
	return f.deployed, nil
}

// fakeReady is the readiness pass of the noop check.
type fakeReady struct {
	err    error
	waited string // the manifest waited for
}

func (f *fakeReady) Wait(_ context.Context, req rollout.WaitRequest) error {
	f.waited = req.Manifest
	return f.err
}

type fakeDB struct {
	db  rollout.Database
	err error
}

func (f fakeDB) Inspect(context.Context) (rollout.Database, error) { return f.db, f.err }

func TestMakePlan(t *testing.T) {
	deployed := rollout.Release{
		Name: "identity", Namespace: "idsvc", Revision: 3, Status: "deployed",
		ChartName: "alfresco-identity-service", ChartVersion: "2.1.0", AppVersion: "1.3.0",
		Hooks: []rollout.Hook{
			{Kind: "Job", Name: "restore", Events: []string{"post-rollback"}},
			{Kind: "Job", Name: "delete-statefulsets", Events: []string{"pre-rollback"}},
			{Kind: "Job", Name: "dump", Events: []string{"pre-upgrade"}},
		},
	}
	target := rollout.Release{ChartName: "alfresco-identity-service", ChartVersion: "3.0.0", AppVersion: "1.4.0"}
	selectorChange := []rollout.Change{
		{Action: rollout.Changed, Kind: "StatefulSet", Name: "identity-postgresql-id", Immutable: []string{"spec.selector"}},
		{Action: rollout.Changed, Kind: "StatefulSet", Name: "identity-id-keycloak"},
	}
	pg15 := rollout.Database{ServerVersion: "15.14", ServerMajor: 15, Name: "keycloak", PgDumpVersion: "15.14", PgDumpMajor: 15}
	pending := deployed
	pending.Status = "pending-upgrade"
	pending.Revision = 4
	// The vendor's plain upgrade to 3.0.0 failed on the immutable selector: revision 4 is
	// failed, its manifest already has the new selector and it has no hooks.
	failed := rollout.Release{Name: "identity", Namespace: "idsvc", Revision: 4, Status: "failed",
		ChartName: "alfresco-identity-service", ChartVersion: "3.0.0", AppVersion: "1.4.0"}
	sameChart := rollout.Release{ChartName: "alfresco-identity-service", ChartVersion: "2.1.0", AppVersion: "1.3.0"}
	deployed.Manifest = "kind: StatefulSet\n"
	brokenPods := errors.New("StatefulSet/identity-id-keycloak: CrashLoopBackOff")
	downgrade := rollout.Release{ChartName: "alfresco-identity-service", ChartVersion: "1.9.0", AppVersion: "1.2.9",
		UnreadValues: []string{"keycloak.keycloak", "postgresql.persistence"}}

	tests := []struct {
		name        string
		req         rollout.PlanRequest
		current     rollout.Release
		deployed    rollout.Release
		target      *rollout.Release
		changes     []rollout.Change
		db          rollout.Database
		ready       error
		wantRefusal []error
		wantRender  bool
		wantSkipped int
		wantCurrent int // the revision planned against and returned to (default 3)
		wantNoop    bool
		wantText    []string
	}{
		{
			name: "clean upgrade", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "orphan", RollbackHooks: "auto"},
			current: deployed, changes: selectorChange, db: pg15, wantRender: true, wantSkipped: 2,
			wantText: []string{"revision 3", "alfresco-identity-service-3.0.0", "~ StatefulSet/identity-postgresql-id  (immutable: spec.selector)", "Ready:"},
		},
		{
			name: "immutable selector without orphan", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "never", RollbackHooks: "auto"},
			current: deployed, changes: selectorChange, db: pg15, wantRender: true, wantSkipped: 2,
			wantRefusal: []error{rollout.ErrImmutableChange},
			wantText:    []string{"give --recreate-statefulsets orphan", "StatefulSet/identity-postgresql-id changes spec.selector"},
		},
		{
			name: "pending release", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "orphan", RollbackHooks: "auto"},
			current: pending, db: pg15, wantSkipped: 2,
			wantRefusal: []error{rollout.ErrReleasePending},
			wantText:    []string{"pending-upgrade at revision 4", "give --unlock-pending true"},
		},
		{
			name: "as an action, refusals name the input", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "never", RollbackHooks: "auto", Advise: (&config.Config{Action: true}).Advise},
			current: deployed, changes: selectorChange, db: pg15, wantRender: true, wantSkipped: 2,
			wantRefusal: []error{rollout.ErrImmutableChange},
			wantText:    []string{"set the input recreate-statefulsets: orphan"},
		},
		{
			name: "a downgrade and values the target does not read are warned of", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "orphan", RollbackHooks: "auto"},
			current: deployed, target: &downgrade, db: pg15, wantRender: true, wantSkipped: 2,
			wantText: []string{"Warnings:", "downgrade: the target runs app 1.2.9, older than the current 1.3.0",
				"chart alfresco-identity-service-1.9.0 has no key for, so they would be dropped: keycloak.keycloak, postgresql.persistence", "Ready:"},
		},
		{
			name: "pending release with unlock", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "orphan", RollbackHooks: "run", UnlockPending: true},
			current: pending, deployed: deployed, db: pg15, wantRender: true,
			wantText: []string{"latest:  revision 4, pending-upgrade", "roll back to revision 3"},
		},
		{
			// Hooks, refusals and changes are those of the revision returned to (3), not of
			// the failed one, whose manifest already has the new selector and no hooks.
			name: "latest revision failed", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "never", RollbackHooks: "auto"},
			current: failed, deployed: deployed, changes: selectorChange, db: pg15, wantRender: true, wantSkipped: 2,
			wantRefusal: []error{rollout.ErrImmutableChange},
			wantText:    []string{"latest:  revision 4, failed, chart alfresco-identity-service-3.0.0", "current: revision 3, deployed", "roll back to revision 3"},
		},
		{
			name: "latest failed, deployed renders the target: a repair", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "orphan", RollbackHooks: "auto"},
			current: failed, deployed: deployed, target: &sameChart, db: pg15, wantRender: true, wantSkipped: 2,
			wantText: []string{"Repair: revision 3 renders the target, but the latest revision 4 is failed", "Ready:"},
		},
		{
			name: "nothing to do", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "orphan", RollbackHooks: "auto"},
			current: deployed, target: &sameChart, db: pg15, wantRender: true, wantSkipped: 2, wantNoop: true,
			wantText: []string{"Nothing to do: revision 3 already renders the target and is ready."},
		},
		{
			name: "renders the target but broken", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "orphan", RollbackHooks: "auto"},
			current: deployed, target: &sameChart, db: pg15, ready: brokenPods, wantRender: true, wantSkipped: 2,
			wantRefusal: []error{rollout.ErrBrokenNoop},
			wantText:    []string{"revision 3 (chart alfresco-identity-service-2.1.0) is deployed and renders the target, but StatefulSet/identity-id-keycloak: CrashLoopBackOff", "Fix the cause, or upgrade to the chart version of a revision that worked"},
		},
		{
			name: "pg_dump too old", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "never", RollbackHooks: "skip"},
			current: deployed, db: rollout.Database{ServerVersion: "16.4", ServerMajor: 16, PgDumpVersion: "15.14", PgDumpMajor: 15},
			wantRender: true, wantSkipped: 2, wantRefusal: []error{rollout.ErrPgDumpTooOld},
			wantText: []string{"pg_dump 15.14 cannot dump a PostgreSQL 16.4 server; install pg_dump 16 or newer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rel := &fakeReleases{current: tt.current, deployed: tt.deployed, target: target, changes: tt.changes}
			if tt.target != nil {
				rel.target = *tt.target
			}
			ready := &fakeReady{err: tt.ready}
			if tt.req.Advise == nil {
				tt.req.Advise = (&config.Config{}).Advise // the command line's words
			}
			p, err := rollout.MakePlan(t.Context(), rel, fakeDB{db: tt.db}, ready, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			wantCurrent := cmp.Or(tt.wantCurrent, 3)
			if tt.current.Pending() && !tt.req.UnlockPending {
				wantCurrent = tt.current.Revision // refused before deciding
			}
			if p.Current.Revision != wantCurrent || (tt.wantRender && rel.diffFrom != wantCurrent) {
				t.Errorf("planned against revision %d (diff from %d), want %d", p.Current.Revision, rel.diffFrom, wantCurrent)
			}
			if p.Noop != tt.wantNoop {
				t.Errorf("noop = %v, want %v", p.Noop, tt.wantNoop)
			}
			if tt.wantNoop && ready.waited != deployed.Manifest {
				t.Errorf("the noop check waited for %q, want the deployed manifest", ready.waited)
			}
			if rel.rendered != tt.wantRender {
				t.Errorf("rendered = %v, want %v", rel.rendered, tt.wantRender)
			}
			if len(p.Refusals) != len(tt.wantRefusal) {
				t.Fatalf("refusals = %v, want %v", p.Refusals, tt.wantRefusal)
			}
			for i, want := range tt.wantRefusal {
				if !errors.Is(p.Refusals[i], want) {
					t.Errorf("refusal %d = %v, want %v", i, p.Refusals[i], want)
				}
			}
			if len(p.SkippedRollbackHooks) != tt.wantSkipped {
				t.Errorf("skipped hooks = %v, want %d", p.SkippedRollbackHooks, tt.wantSkipped)
			}
			var out strings.Builder
			if err := p.WriteText(&out); err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(out.String(), want) {
					t.Errorf("plan text lacks %q:\n%s", want, out.String())
				}
			}
		})
	}
}

func TestMakePlanPassesErrorsThrough(t *testing.T) {
	notFound := errors.New("release not found")
	_, err := rollout.MakePlan(t.Context(), &fakeReleases{err: notFound}, fakeDB{}, nil, rollout.PlanRequest{Release: "x"})
	if !errors.Is(err, notFound) {
		t.Errorf("err = %v, want the release error", err)
	}
	unreachable := errors.New("connection refused")
	_, err = rollout.MakePlan(t.Context(), &fakeReleases{current: rollout.Release{Status: "deployed"}}, fakeDB{err: unreachable}, nil, rollout.PlanRequest{Release: "x"})
	if !errors.Is(err, unreachable) {
		t.Errorf("err = %v, want the database error", err)
	}
}
