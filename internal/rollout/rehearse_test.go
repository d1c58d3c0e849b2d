package rollout_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

// cloning is the fake world with a clone: a scratch namespace, the clone's database, and the
// checks of a running Keycloak.
type cloning struct {
	*journaled
	cloneWaitErr error // the clone's readiness
	probeErr     error
	removeErr    error
	scratch      map[string]bool
	changesets   int64
}

func (c *cloning) CreateScratch(ctx context.Context, namespace, runID string) error {
	c.call(ctx, "create scratch "+namespace)
	c.scratch[namespace] = true
	return nil
}
func (c *cloning) InstallClone(ctx context.Context, namespace string) (rollout.Release, error) {
	c.call(ctx, "install clone")
	rel := c.target
	rel.Namespace, rel.Revision = namespace, 1
	return rel, nil
}
func (c *cloning) CloneDatabase(ctx context.Context, namespace string) (rollout.CloneDatabase, error) {
	return cloneDB{c}, nil
}
func (c *cloning) RemoveScratch(ctx context.Context, namespace string) error {
	c.call(ctx, "remove scratch "+namespace)
	if c.removeErr != nil {
		return c.removeErr
	}
	delete(c.scratch, namespace)
	return nil
}
func (c *cloning) Probe(ctx context.Context, namespace, manifest string, realms []string) (string, error) {
	c.call(ctx, "probe "+strings.Join(realms, ","))
	return "discovery of " + strings.Join(realms, ", "), c.probeErr
}
func (c *cloning) Wait(ctx context.Context, req rollout.WaitRequest) error {
	if req.Namespace == "ns-rehearsal" {
		c.call(ctx, "wait clone")
		if c.cloneWaitErr == nil {
			c.changesets = 88 // Keycloak migrated the clone
		}
		return c.cloneWaitErr
	}
	return c.world.Wait(ctx, req)
}

type cloneDB struct{ c *cloning }

func (d cloneDB) Inspect(ctx context.Context) (rollout.Database, error) {
	d.c.call(ctx, "inspect clone")
	return rollout.Database{Schema: rollout.SchemaState{ChangelogRows: d.c.changesets}}, nil
}
func (d cloneDB) Restore(ctx context.Context, b rollout.Backup) (string, error) {
	d.c.call(ctx, "restore clone")
	d.c.changesets = 86
	return "restored", nil
}
func (d cloneDB) Realms(ctx context.Context) ([]string, error) {
	return []string{"master", "alfresco"}, nil
}
func (d cloneDB) Close() error { return nil }

func newCloning() (*cloning, *rollout.Pipeline) {
	j, p := newJournaled()
	c := &cloning{journaled: j, scratch: map[string]bool{}}
	p.Cloner, p.Prober, p.Waiter = c, c, c
	return c, p
}

func rehearseRequest(only bool) rollout.UpgradeRequest {
	req := request()
	req.Rehearse, req.RehearseOnly = &rollout.RehearseRequest{Namespace: "ns-rehearsal"}, only
	return req
}

// The rehearsal's own calls: a backup kept on this machine, the clone installed, the backup
// restored into it, Keycloak started, ready, checked, the clone removed.
var rehearsal = []string{"values 4", "backup r4", "create scratch ns-rehearsal", "install clone", "restore clone", "inspect clone",
	"scale up", "wait clone", "wait clone", "inspect clone", "probe master,alfresco", "remove scratch ns-rehearsal"}

func TestRehearsal(t *testing.T) {
	preflight := []string{"lock", "read journal", "current", "current", "render", "inspect"}
	tests := []struct {
		name   string
		only   bool
		setup  func(*cloning)
		result rollout.Result
		calls  []string
		passed bool
	}{
		{name: "rehearse: passed", only: true, result: rollout.Rehearsed, passed: true,
			calls: slices.Concat(preflight, rehearsal, []string{"unlock lease"})},
		{name: "rehearse: the migration fails on the clone", only: true, result: rollout.RehearsalFailed,
			setup: func(c *cloning) { c.cloneWaitErr = notReady },
			calls: slices.Concat(preflight, rehearsal[:8], []string{"remove scratch ns-rehearsal", "unlock lease"})},
		{name: "rehearse-first: passed, then the upgrade", result: rollout.Upgraded, passed: true,
			calls: slices.Concat(preflight, rehearsal, []string{"scale down", "values 4", "backup r4", "upgrade", "wait", "unlock lease"})},
		{name: "rehearse-first: a realm's discovery fails: refused, production untouched", result: rollout.Refused,
			setup: func(c *cloning) { c.probeErr = errors.New("realm alfresco: discovery answered 404") },
			calls: slices.Concat(preflight, rehearsal, []string{"unlock lease"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, p := newCloning()
			if tt.setup != nil {
				tt.setup(c)
			}
			rep := p.Upgrade(t.Context(), rehearseRequest(tt.only))
			if rep.Result != tt.result {
				t.Fatalf("result %s, want %s: %v", rep.Result, tt.result, rep.Err())
			}
			if !slices.Equal(c.calls, tt.calls) {
				t.Errorf("calls\n got %q\nwant %q", c.calls, tt.calls)
			}
			reh := rep.Rehearsal
			if reh == nil || reh.Passed != tt.passed || !reh.Removed || len(c.scratch) > 0 {
				t.Fatalf("rehearsal %+v, scratch left %v", reh, c.scratch)
			}
			if tt.passed && reh.Applied() != 2 {
				t.Errorf("changesets applied %d, want 2", reh.Applied())
			}
			if !tt.passed && !errors.Is(rep.Failure, rollout.ErrRehearsalFailed) {
				t.Errorf("failure %v does not say the rehearsal failed", rep.Failure)
			}
			if tt.result == rollout.Upgraded && (rep.Downtime <= 0 || !strings.Contains(reportText(t, rep), "the clone's migration predicted")) {
				t.Errorf("downtime %s: the report does not set the prediction beside it", rep.Downtime)
			}
			var plan strings.Builder
			if err := rep.Plan.WriteText(&plan); err != nil {
				t.Fatal(err)
			}
			if predicted := strings.Contains(plan.String(), "downtime: at least"); predicted != tt.passed {
				t.Errorf("the plan shows a predicted downtime: %t, want %t:\n%s", predicted, !predicted, plan.String())
			}
			if c.journal.Open() || c.journal.Scratch != "" {
				t.Errorf("journal %+v, want closed with no scratch namespace", c.journal)
			}
		})
	}
}

// TestRehearsalLeftByADeadRun: a run that died in its rehearsal left the scratch namespace in
// its journal; the next run removes it first, and production needs nothing else.
func TestRehearsalLeftByADeadRun(t *testing.T) {
	c, p := newCloning()
	c.journal = rollout.Journal{Step: rollout.StepRehearsing, RunID: "killed-run", RecordedRevision: 4, Scratch: "ns-rehearsal"}
	c.scratch["ns-rehearsal"] = true
	req := request()
	req.RecoverOnly = true
	rep := p.Upgrade(t.Context(), req)
	if rep.ExitCode() != rollout.ExitRolledBack || len(c.scratch) > 0 || c.journal.Open() {
		t.Fatalf("exit %d, scratch %v, journal %+v: %v", rep.ExitCode(), c.scratch, c.journal, rep.Err())
	}
	if want := []string{"lock", "read journal", "revision 4", "remove scratch ns-rehearsal", "unlock lease"}; !slices.Equal(c.calls, want) {
		t.Errorf("calls\n got %q\nwant %q", c.calls, want)
	}
}

// TestRehearsalCloneNotRemoved: a clone that cannot be removed stays in the open journal; the
// run needs a person.
func TestRehearsalCloneNotRemoved(t *testing.T) {
	c, p := newCloning()
	c.removeErr = errors.New("namespaces is forbidden")
	rep := p.Upgrade(t.Context(), rehearseRequest(true))
	if rep.ExitCode() != rollout.ExitNeedsHuman || !c.journal.Open() || c.journal.Scratch != "ns-rehearsal" {
		t.Fatalf("exit %d, journal %+v: %v", rep.ExitCode(), c.journal, rep.Err())
	}
}

func reportText(t *testing.T, rep *rollout.Report) string {
	t.Helper()
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
