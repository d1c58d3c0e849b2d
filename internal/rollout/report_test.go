package rollout_test

import (
	"errors"
	"strings"
	"testing"
	"time"

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
		{"upgraded", rollout.Report{Result: rollout.Upgraded, ExitCode: 0, Release: "identity", PreviousRevision: 4, Revision: 5, UpgradedRevision: 5,
			FromChart: "c-2.1.0", ToChart: "c-3.0.0", Backup: backup, Timeline: steps[:1]},
			[]string{"Upgraded identity: revision 4 → 5 (c-2.1.0 → c-3.0.0).", "backup: /backups/identity-r4 (4096 bytes, sha256 bbbb", "backup", "1.5s", "ok"}},
		{"rolled back with the database", rollout.Report{Result: rollout.RolledBack, ExitCode: 1, Release: "identity", PreviousRevision: 4, Revision: 6, UpgradedRevision: 5,
			Backup: backup, DatabaseRestored: true, DatabaseDrift: "Keycloak migrated the schema", Failure: nr, NotReady: nr, Timeline: steps},
			[]string{"Failed and rolled back: identity is back at revision 4's release (now revision 6); the database was restored from the backup.",
				"database: Keycloak migrated the schema → restored", "Cause: not ready: pod identity-id-keycloak-0 container keycloak (StatefulSet/identity-id-keycloak): CrashLoopBackOff",
				"Last log lines of identity-id-keycloak-0/keycloak:\n  | FATAL Failed to update database", "FAILED"}},
		{"needs a human", rollout.Report{Result: rollout.Failed, ExitCode: 3, Release: "identity", PreviousRevision: 4, Revision: 5,
			Failure: nr, Recovery: errors.New("rollback: another operation is in progress")},
			[]string{"FAILED and NOT fully recovered", "Recovery did not complete: rollback: another operation is in progress"}},
		{"failed before the upgrade", rollout.Report{Result: rollout.RolledBack, ExitCode: 1, Release: "identity", PreviousRevision: 4, Revision: 4, Failure: errors.New("backup: disk full")},
			[]string{"Failed before the upgrade: identity was not upgraded and is still at revision 4.", "Cause: backup: disk full"}},
		{"refused", rollout.Report{Result: rollout.Failed, ExitCode: 2, Release: "identity", Failure: rollout.ErrLocked},
			[]string{"Refused: identity was not changed.", "result: failed (exit 2)"}},
		{"dry run", rollout.Report{Result: rollout.Noop, DryRun: true, Release: "identity", PreviousRevision: 4, FromChart: "c-2.1.0", ToChart: "c-3.0.0"},
			[]string{"Dry run: identity would be upgraded from revision 4 (c-2.1.0 → c-3.0.0); nothing was changed."}},
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
