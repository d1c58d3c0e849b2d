package rollout_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// fakeReleases is a hand-written stand-in for the helm adapter.
type fakeReleases struct {
	current  rollout.Release
	target   rollout.Release
	changes  []rollout.Change
	err      error
	rendered bool
}

func (f *fakeReleases) Current(context.Context, string) (rollout.Release, error) {
	return f.current, f.err
}
func (f *fakeReleases) Render(context.Context, string) (rollout.Release, error) {
	f.rendered = true
	return f.target, nil
}
func (f *fakeReleases) Diff(rollout.Release, rollout.Release) ([]rollout.Change, error) {
	return f.changes, nil
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

	tests := []struct {
		name        string
		req         rollout.PlanRequest
		current     rollout.Release
		changes     []rollout.Change
		db          rollout.Database
		wantRefusal []error
		wantRender  bool
		wantSkipped int
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
			wantText:    []string{"recreate-statefulsets: orphan", "StatefulSet/identity-postgresql-id changes spec.selector"},
		},
		{
			name: "pending release", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "orphan", RollbackHooks: "auto"},
			current: pending, db: pg15, wantSkipped: 2,
			wantRefusal: []error{rollout.ErrReleasePending},
			wantText:    []string{"pending-upgrade at revision 4", "unlock-pending: true"},
		},
		{
			name: "pending release with unlock", req: rollout.PlanRequest{Release: "identity", RecreateStatefulSets: "orphan", RollbackHooks: "run", UnlockPending: true},
			current: pending, db: pg15, wantRender: true,
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
			rel := &fakeReleases{current: tt.current, target: target, changes: tt.changes}
			p, err := rollout.MakePlan(t.Context(), rel, fakeDB{db: tt.db}, tt.req)
			if err != nil {
				t.Fatal(err)
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
	_, err := rollout.MakePlan(t.Context(), &fakeReleases{err: notFound}, fakeDB{}, rollout.PlanRequest{Release: "x"})
	if !errors.Is(err, notFound) {
		t.Errorf("err = %v, want the release error", err)
	}
	unreachable := errors.New("connection refused")
	_, err = rollout.MakePlan(t.Context(), &fakeReleases{current: rollout.Release{Status: "deployed"}}, fakeDB{err: unreachable}, rollout.PlanRequest{Release: "x"})
	if !errors.Is(err, unreachable) {
		t.Errorf("err = %v, want the database error", err)
	}
}
