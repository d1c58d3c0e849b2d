package rollout_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/config"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

func TestReportText(t *testing.T) {
	backup := &rollout.Backup{Locations: []string{"/backups/identity-r4"}, SHA256: strings.Repeat("b", 64), Bytes: 4096}
	steps := []rollout.Step{{Name: "backup", Duration: 1500 * time.Millisecond, Note: "/backups/identity-r4"}, {Name: "readiness", Duration: 3 * time.Second, Err: errors.New("x")}}
	nr := &rollout.NotReady{Resource: "StatefulSet/identity-id-keycloak", Pod: "identity-id-keycloak-0", Container: "keycloak", Reason: "CrashLoopBackOff",
		Logs: []string{"FATAL Failed to update database"}}
	tests := []struct {
		name string
		rep  rollout.Report
		want []string
	}{
		{"upgraded", rollout.Report{Result: rollout.Upgraded, Release: "identity", PreviousRevision: 4, Revision: 5, UpgradedRevision: 5,
			FromChart: "c-2.1.0", ToChart: "c-3.0.0", Backup: backup, Timeline: steps[:1]},
			[]string{"Upgraded identity: revision 4 → 5 (c-2.1.0 → c-3.0.0).", "backup: /backups/identity-r4 (4096 bytes, sha256 bbbb", "backup", "1.5s", "ok"}},
		{"rolled back with the database", rollout.Report{Result: rollout.RolledBack, Release: "identity", PreviousRevision: 4, Revision: 6, UpgradedRevision: 5,
			Backup: backup, DatabaseRestored: true, DatabaseDrift: "Keycloak migrated the schema", Failure: nr, NotReady: nr, Timeline: steps},
			[]string{"Failed and rolled back: identity is back at revision 4's release (now revision 6); the database was restored from the backup.",
				"database: Keycloak migrated the schema → restored", "Cause: not ready: pod identity-id-keycloak-0 container keycloak (StatefulSet/identity-id-keycloak): CrashLoopBackOff",
				"Last log lines of identity-id-keycloak-0/keycloak:\n  | FATAL Failed to update database", "FAILED"}},
		{"needs a person", rollout.Report{Result: rollout.NeedsAttention, Release: "identity", Namespace: "alfresco", PreviousRevision: 4, Revision: 5,
			Plan:             rollout.Plan{Request: rollout.PlanRequest{Release: "identity", Advise: (&config.Config{}).Advise}},
			UpgradedRevision: 5, Backup: backup, Failure: nr, Recovery: errors.New("rollback: another operation is in progress"),
			Timeline: []rollout.Step{{Name: "readiness", Err: nr}, {Name: "rollback", Err: errors.New("another operation is in progress")}}},
			[]string{"FAILED and NOT fully recovered", "Recovery did not complete: rollback: another operation is in progress",
				"result: needs-attention (exit 3)", "State now:\n  - Release identity: at revision 5, the upgrade's; not rolled back to revision 4.\n",
				"  - Database: not restored, as the upgraded version left it.\n", "  - Did not complete: rollback.\n",
				"  - Backup taken before the upgrade: /backups/identity-r4 (sha256 bbbb", "to put it back, with Keycloak scaled to 0, run identity-upgrade restore with the database flags; give --from /backups/identity-r4.",
				"  - Once the cause is fixed, run identity-upgrade recover with the same --release-name, --namespace and database flags: " +
					"it finishes the way back to revision 4 from the run journal, with this run's backup.\n"}},
		{"failed before the upgrade", rollout.Report{Result: rollout.RolledBack, Release: "identity", PreviousRevision: 4, Revision: 4, Failure: errors.New("backup: disk full")},
			[]string{"Failed before the upgrade: identity was not upgraded and is still at revision 4.", "Cause: backup: disk full"}},
		{"refused", rollout.Report{Result: rollout.Refused, Release: "identity", Failure: rollout.ErrLocked},
			[]string{"Refused: identity was not changed.", "result: refused (exit 2)"}},
		{"refused before the release is known", *rollout.Refusal("", "", time.Now(), errors.New("invalid input: timeout: not a duration")),
			[]string{"Refused: nothing was changed.", "result: refused (exit 2)", "Cause: invalid input: timeout: not a duration"}},
		{"backed up", rollout.Report{Result: rollout.BackedUp, Release: "identity", Backup: backup},
			[]string{"Backed up the database of identity to /backups/identity-r4.", "result: backed-up (exit 0)"}},
		{"backed up without a release", rollout.Report{Result: rollout.BackedUp, Backup: backup},
			[]string{"Backed up the database to /backups/identity-r4."}},
		{"backup incomplete", rollout.Report{Result: rollout.Incomplete, Backup: backup, Failure: errors.New("store the backup: 500")},
			[]string{"Backup incomplete: the dump was taken, but only 1 of the backup stores hold it.", "Cause: store the backup: 500"}},
		{"restored", rollout.Report{Result: rollout.Restored, Backup: &rollout.Backup{Locations: []string{"oci://r/b:kc-1"}}},
			[]string{"Restored the database from oci://r/b:kc-1."}},
		{"restore incomplete", rollout.Report{Result: rollout.Incomplete, Failure: errors.New("psql: terminated")},
			[]string{"Restore incomplete: the database may be partly restored; run the restore again.", "result: incomplete (exit 1)"}},
		{"planned", rollout.Report{Result: rollout.Planned, DryRun: true, Release: "identity", PreviousRevision: 4, FromChart: "c-2.1.0", ToChart: "c-3.0.0"},
			[]string{"Planned: identity would be upgraded from revision 4 (c-2.1.0 → c-3.0.0); nothing was changed.", "result: planned (exit 0)"}},
		{"nothing to recover", rollout.Report{Result: rollout.Noop, NothingToRecover: true, Release: "identity"},
			[]string{"Nothing to recover: no run of identity was interrupted; nothing was changed."}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			if err := tt.rep.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, b.String())
				}
			}
		})
	}
}

// TestStateOnlyWhenNeedsAttention: the state of things is told when a person has to act, and
// only then.
func TestStateOnlyWhenNeedsAttention(t *testing.T) {
	for _, res := range []rollout.Result{rollout.Upgraded, rollout.Noop, rollout.RolledBack, rollout.Refused} {
		if s := (&rollout.Report{Result: res, Release: "identity"}).State(); s != nil {
			t.Errorf("%s: state %q, want none", res, s)
		}
	}
	// The recovery of a run that failed before the upgrade: Keycloak was not scaled back up.
	rep := &rollout.Report{Result: rollout.NeedsAttention, Release: "identity", PreviousRevision: 4, Revision: 4, FromChart: "c-2.1.0",
		Timeline: []rollout.Step{{Name: "backup", Err: errors.New("disk full")}, {Name: "scale up", Err: errors.New("forbidden")}}}
	want := []string{
		"Release identity: not upgraded; still at revision 4 (c-2.1.0).",
		"Database: unchanged; nothing was upgraded.",
		"Did not complete: scale up. The Keycloak workloads may still be scaled to 0.",
		"Once the cause is fixed, run recover: it finishes the way back to revision 4 from the run journal, with this run's backup.",
	}
	if got := rep.State(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("state:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRefusal(t *testing.T) {
	started := time.Now().Add(-1500 * time.Millisecond)
	cause := errors.New("kubeconfig: no such file")
	rep := rollout.Refusal("identity", "alfresco", started, cause)
	if rep.Result != rollout.Refused || rep.ExitCode() != rollout.ExitRefused || rep.Failure != cause || rep.Release != "identity" ||
		rep.Namespace != "alfresco" || !rep.Started.Equal(started) || rep.Duration < 1500*time.Millisecond {
		t.Errorf("Refusal = %+v", rep)
	}
}

func TestExitCodes(t *testing.T) {
	// The documented contract; scripts and workflows depend on these numbers.
	if rollout.ExitOK != 0 || rollout.ExitRolledBack != 1 || rollout.ExitRefused != 2 || rollout.ExitNeedsHuman != 3 {
		t.Errorf("exit codes changed: %d %d %d %d", rollout.ExitOK, rollout.ExitRolledBack, rollout.ExitRefused, rollout.ExitNeedsHuman)
	}
}
