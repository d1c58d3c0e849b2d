package ghaction_test

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/identity-upgrade/identity-upgrade/internal/ghaction"
	"github.com/identity-upgrade/identity-upgrade/internal/rollout"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// t0 is when every test run starts.
var t0 = time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)

// timeline builds steps one after another from t0: name, duration, note, error.
func timeline(steps ...any) []rollout.Step {
	var out []rollout.Step
	at := t0.Add(120 * time.Millisecond)
	for i := 0; i+4 <= len(steps); i += 4 {
		s := rollout.Step{Name: steps[i].(string), Start: at, Duration: steps[i+1].(time.Duration), Note: steps[i+2].(string)}
		if e, ok := steps[i+3].(error); ok {
			s.Err = e
		}
		out = append(out, s)
		at = at.Add(s.Duration + 5*time.Millisecond)
	}
	return out
}

func backup() *rollout.Backup {
	return &rollout.Backup{
		Name:      "identity-r4-20250314T092653Z",
		Dir:       "/runner/_temp/identity-upgrade-1234/identity-r4-20250314T092653Z",
		Locations: []string{"artifact:identity-r4-20250314T092653Z", "path:/backups/identity-r4-20250314T092653Z"},
		SHA256:    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Bytes:     3_481_216,
		Tables:    92,
		Rows:      14_220,
	}
}

func notReady() *rollout.NotReady {
	return &rollout.NotReady{
		Resource:  "StatefulSet/identity-id-keycloak",
		Pod:       "identity-id-keycloak-0",
		Container: "keycloak",
		Reason:    "CrashLoopBackOff",
		Message:   "back-off 20s restarting failed container",
		After:     74*time.Second + 300*time.Millisecond,
		Logs: []string{
			"09:28:01,442 INFO  [org.keycloak.connections.jpa.updater.liquibase] Updating database",
			"09:28:03,917 ERROR [org.keycloak.services] KC-SERVICES0010: Failed to update database: column \"realm_id\" | of relation <x> already exists",
			"09:28:03,920 FATAL [org.jboss.as.server] WFLYSRV0056: Server boot has failed in an unrecoverable manner; exiting.",
			"```",
		},
	}
}

// reports are the golden cases: one per way a run ends (exit 0, 1, 3, and 2 twice: refused by
// the pipeline, and refused for its inputs before it started), and a backup.
func reports() map[string]*rollout.Report {
	base := func() *rollout.Report {
		return &rollout.Report{
			Release: "identity", Namespace: "alfresco",
			PreviousRevision: 4, Revision: 4,
			FromChart: "alfresco-identity-service-2.1.0", ToChart: "alfresco-identity-service-3.0.0",
			Started: t0,
		}
	}

	success := base()
	success.Result = rollout.Upgraded
	success.Revision, success.UpgradedRevision = 5, 5
	success.Backup = backup()
	success.Backup.ArtifactID, success.Backup.ArtifactURL = 2718281, "https://github.com/octo/infra/actions/runs/1234/artifacts/2718281"
	success.Timeline = timeline(
		"lock", 42*time.Millisecond, "", nil,
		"preflight", 1830*time.Millisecond, "", nil,
		"quiesce", 12400*time.Millisecond, "scaled StatefulSet/identity-id-keycloak from 1 to 0", nil,
		"backup", 8200*time.Millisecond, "artifact:identity-r4-20250314T092653Z (3481216 bytes, sha256 9f86d081884c…)", nil,
		"upgrade", 3100*time.Millisecond, "revision 5; re-created [identity-postgresql-id], replaced pods [identity-postgresql-id-0]", nil,
		"readiness", 96500*time.Millisecond, "", nil,
	)
	success.Duration = 122 * time.Second

	rolledBack := base()
	nr := notReady()
	rolledBack.Result = rollout.RolledBack
	rolledBack.Revision, rolledBack.UpgradedRevision = 6, 5
	rolledBack.Backup = backup()
	rolledBack.DatabaseRestored = true
	rolledBack.DatabaseDrift = "Keycloak migrated the schema: DATABASECHANGELOG 412 → 437 rows, newest 12.0.0-KEYCLOAK-5461"
	rolledBack.Failure = fmt.Errorf("readiness: %w", nr)
	rolledBack.NotReady = nr
	rolledBack.Timeline = timeline(
		"lock", 42*time.Millisecond, "", nil,
		"preflight", 1830*time.Millisecond, "", nil,
		"quiesce", 12400*time.Millisecond, "scaled StatefulSet/identity-id-keycloak from 1 to 0", nil,
		"backup", 8200*time.Millisecond, "artifact:identity-r4-20250314T092653Z (3481216 bytes, sha256 9f86d081884c…)", nil,
		"upgrade", 3100*time.Millisecond, "revision 5", nil,
		"readiness", 74300*time.Millisecond, "", nr,
		"scale down", 6100*time.Millisecond, "[{StatefulSet identity-id-keycloak 1}]", nil,
		"restore database", 15700*time.Millisecond, "restored artifact:identity-r4-20250314T092653Z: Keycloak migrated the schema", nil,
		"rollback", 4400*time.Millisecond, "revision 6 (to 4), re-created [identity-postgresql-id], rollback hooks skipped", nil,
		"readiness after rollback", 58200*time.Millisecond, "", nil,
		"verify database", 900*time.Millisecond, "", nil,
	)
	rolledBack.Duration = 185*time.Second + 400*time.Millisecond

	needsHuman := base()
	nr3 := notReady()
	nr3.Logs = nil
	nr3.Reason, nr3.Message, nr3.Pod, nr3.Container = "Timeout", "0/1 replicas ready after 10m0s", "", ""
	needsHuman.Result = rollout.NeedsAttention
	needsHuman.Revision, needsHuman.UpgradedRevision = 5, 5
	needsHuman.Backup = backup()
	needsHuman.DatabaseDrift = "could not compare with the backup (dial tcp 10.0.0.7:5432: connect: connection refused)"
	needsHuman.Failure = fmt.Errorf("readiness: %w", nr3)
	needsHuman.NotReady = nr3
	restoreErr := errors.New("psql: error: connection to server at \"identity-postgresql-id\" (10.0.0.7), port 5432 failed: Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?")
	rollbackErr := errors.New("another operation (install/upgrade/rollback) is in progress")
	needsHuman.Recovery = errors.Join(fmt.Errorf("restore database: %w", restoreErr), fmt.Errorf("rollback: %w", rollbackErr))
	needsHuman.Timeline = timeline(
		"lock", 42*time.Millisecond, "", nil,
		"preflight", 1830*time.Millisecond, "", nil,
		"quiesce", 0*time.Millisecond, "skipped: quiesce is off", nil,
		"backup", 8200*time.Millisecond, "artifact:identity-r4-20250314T092653Z (3481216 bytes, sha256 9f86d081884c…)", nil,
		"upgrade", 3100*time.Millisecond, "revision 5", nil,
		"readiness", 600*time.Second, "", nr3,
		"restore database", 2*time.Second, "", restoreErr,
		"rollback", 300*time.Millisecond, "", rollbackErr,
		"readiness after rollback", 120*time.Second, "", errors.New("not ready: StatefulSet/identity-id-keycloak: Timeout"),
	)
	needsHuman.Duration = 737 * time.Second

	refused := &rollout.Report{
		Result: rollout.Refused, Release: "identity", Namespace: "alfresco", Started: t0,
		Failure: fmt.Errorf("lock: %w: held by run 1234 (octo/infra, attempt 1) since 09:20:11", rollout.ErrLocked),
		Timeline: timeline(
			"lock", 210*time.Millisecond, "", fmt.Errorf("%w: held by run 1234 (octo/infra, attempt 1) since 09:20:11", rollout.ErrLocked),
		),
		Duration: 250 * time.Millisecond,
	}

	// Refused before the pipeline started: the inputs did not validate.
	invalid := &rollout.Report{
		Result: rollout.Refused, Started: t0,
		Failure:  errors.New("invalid input: timeout: \"soon\" is not a duration (examples: 90s, 10m)\nchart: required"),
		Duration: 3 * time.Millisecond,
	}

	// The backup command.
	backedUp := &rollout.Report{
		Result: rollout.BackedUp, Release: "identity", Namespace: "alfresco", Started: t0,
		Backup: backup(), Duration: 8400 * time.Millisecond,
	}

	return map[string]*rollout.Report{
		"backed-up":       backedUp,
		"success":         success,
		"rolled-back":     rolledBack,
		"needs-attention": needsHuman,
		"refused":         refused,
		"invalid-input":   invalid,
	}
}

func TestSummaryGolden(t *testing.T) {
	for name, rep := range reports() {
		t.Run(name, func(t *testing.T) {
			got := ghaction.Summary(rep)
			path := filepath.Join("testdata", name+".md")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("summary differs from %s (run with -update to accept):\n%s", path, got)
			}
			if again := ghaction.Summary(rep); again != got {
				t.Error("summary is not deterministic")
			}
		})
	}
}

// TestSummaryContent checks what the golden files must say, so that accepting a wrong golden
// file with -update does not go unnoticed.
func TestSummaryContent(t *testing.T) {
	reps := reports()
	tests := []struct {
		name string
		want []string
		not  []string
	}{
		{"success", []string{"## ✅ identity upgraded\n", "| Result | `upgraded` (exit 0) |", "| Revisions | 4 before → 5 upgraded → 5 now |",
			"| Backup size | 3.3 MiB (3481216 bytes) |", "| Duration | 2m2s |", "| readiness | +25.7s | 1m36.5s | ✅ ok |",
			"`artifact:identity-r4-20250314T092653Z`<br>`path:/backups/identity-r4-20250314T092653Z`"},
			[]string{"### Cause", "### Recovery", "Database"}},
		{"rolled-back", []string{"## ↩️ identity rolled back\n", "4 before → 5 upgraded → 6 now (rolled back to revision 4)",
			"| Database | restored from the backup: Keycloak migrated the schema", "### Cause\n\nreadiness: not ready: pod identity-id-keycloak-0",
			"### Last log lines of `identity-id-keycloak-0/keycloak`", "````text\n09:28:01,442", "\n```\n````\n",
			"| readiness | +25.7s | 1m14.3s | ❌ failed | not ready:", "| verify database |"},
			[]string{"### Recovery"}},
		{"needs-attention", []string{"## ❌ identity needs a person\n", "| Result | `needs-attention` (exit 3) |",
			"### State now\n\n- Release identity: at revision 5, the upgrade's (alfresco-identity-service-3.0.0); not rolled back to revision 4.\n",
			"- Database: not restored, as the upgraded version left it: could not compare with the backup",
			"- Did not complete: restore database, rollback, readiness after rollback.\n",
			"- Backup taken before the upgrade: artifact:identity-r4-20250314T092653Z (sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08); to put it back, with Keycloak scaled to 0, run restore; the bundle to restore is artifact:identity-r4-20250314T092653Z.",
			"- Once the cause is fixed, run recover: it finishes the way back to revision 4",
			"### Recovery did not complete\n\n```text\nrestore database: psql: error:",
			"connections?\nrollback: another operation", "| Database | not restored: could not compare", "| quiesce | +2s | 0s | ⏭ skipped | skipped: quiesce is off |",
			"| restore database | +10m13.3s | 2s | ❌ failed | psql: error: connection to server at \"identity-postgresql-id\" (10.0.0.7), port 5432 failed: Connection refused<br>"},
			[]string{"### Last log lines"}},
		{"refused", []string{"## ⏸ refused: nothing changed\n", "Refused: identity was not changed.", "| Result | `refused` (exit 2) |",
			"### Cause\n\nlock: another identity-upgrade run holds the release"},
			[]string{"Revisions", "Backup", "Chart", "State now"}},
		{"invalid-input", []string{"## ⏸ refused: nothing changed\n\nRefused: nothing was changed.\n", "| Result | `refused` (exit 2) |",
			"| Duration | 3ms |", "### Cause\n\n```text\ninvalid input: timeout: \"soon\" is not a duration (examples: 90s, 10m)\nchart: required\n```\n"},
			[]string{"Release", "Revisions", "Backup", "State now", "Timeline"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ghaction.Summary(reps[tt.name])
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("summary lacks %q:\n%s", w, got)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("summary has %q:\n%s", n, got)
				}
			}
			// Every table row has the column count of its table: a | in a value is escaped.
			cols := 0
			for line := range strings.Lines(got) {
				if !strings.HasPrefix(line, "|") {
					cols = 0
					continue
				}
				n := strings.Count(line, "|") - strings.Count(line, `\|`)
				if cols == 0 {
					cols = n
				} else if n != cols {
					t.Errorf("row has %d cells, want %d: %q", n-1, cols-1, line)
				}
			}
		})
	}
}

func TestSummaryEscapes(t *testing.T) {
	rep := &rollout.Report{
		Result: rollout.Refused, Release: "identity", Started: t0,
		Failure: errors.New("- values: <script>alert(1)</script> *bold* | pipe"),
		Timeline: []rollout.Step{{Name: "preflight", Start: t0, Duration: time.Second,
			Note: "a | b\nsecond line", Err: errors.New("x")}},
	}
	got := ghaction.Summary(rep)
	for _, w := range []string{
		`\- values: \<script\>alert(1)\</script\> \*bold\* \| pipe`,
		`| preflight | +0s | 1s | ❌ failed | a \| b<br>second line: x |`,
	} {
		if !strings.Contains(got, w) {
			t.Errorf("summary lacks %q:\n%s", w, got)
		}
	}
	if strings.Contains(got, "<script>") {
		t.Errorf("raw HTML in the summary:\n%s", got)
	}
}

func TestSummaryHeadings(t *testing.T) {
	tests := []struct {
		rep  rollout.Report
		want string
	}{
		{rollout.Report{Result: rollout.Upgraded}, "## ✅ identity upgraded\n"},
		{rollout.Report{Result: rollout.Noop}, "## ✅ nothing to do\n"},
		{rollout.Report{Result: rollout.Planned, DryRun: true}, "## 📝 planned: nothing changed\n"},
		{rollout.Report{Result: rollout.Noop, NothingToRecover: true}, "## ✅ nothing to recover\n"},
		{rollout.Report{Result: rollout.RolledBack}, "## ↩️ identity rolled back\n"},
		{rollout.Report{Result: rollout.BackedUp}, "## ✅ database backed up\n"},
		{rollout.Report{Result: rollout.Restored}, "## ✅ database restored\n"},
		{rollout.Report{Result: rollout.Incomplete}, "## ⚠️ incomplete\n"},
		{rollout.Report{Result: rollout.Refused}, "## ⏸ refused: nothing changed\n"},
		{rollout.Report{Result: rollout.Failed}, "## ❌ failed: nothing changed\n"},
		{rollout.Report{Result: rollout.NeedsAttention}, "## ❌ identity needs a person\n"},
	}
	for _, tt := range tests {
		if got := ghaction.Summary(&tt.rep); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s/%d: summary starts %q, want %q", tt.rep.Result, tt.rep.ExitCode(), strings.SplitN(got, "\n", 2)[0], tt.want)
		}
	}
}

// TestSummaryOfAPlan: a plan's summary lists the changes the upgrade would make and its
// warnings, not only that nothing changed.
func TestSummaryOfAPlan(t *testing.T) {
	rep := &rollout.Report{Result: rollout.Planned, DryRun: true, Release: "identity", PreviousRevision: 1, Revision: 1,
		Plan: rollout.Plan{Target: rollout.Release{ChartName: "alfresco-identity-service", ChartVersion: "3.0.0"},
			Changes: []rollout.Change{{Action: rollout.Changed, Kind: "StatefulSet", Name: "identity-postgresql-id", Immutable: []string{"spec.selector"}},
				{Action: rollout.Added, Kind: "Secret", Name: "identity-realm"}},
			Warnings: []string{"downgrade: the target runs app 1.3.0"}}}
	got := ghaction.Summary(rep)
	for _, want := range []string{"## 📝 planned: nothing changed", "### Changes (2)", "- change `StatefulSet/identity-postgresql-id` (immutable: spec.selector)",
		"- add `Secret/identity-realm`", "### Warnings", "- downgrade: the target runs app 1.3.0"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}

// A bundle stored unencrypted (allow-plaintext-backup) that holds the release's Secrets says
// so; an encrypted one says what it is encrypted with; one without secrets says nothing.
func TestSummaryPlaintextBackup(t *testing.T) {
	rep := reports()["success"]
	bk := *rep.Backup
	rep.Backup = &bk
	bk.Secrets = []string{"the release's values", "the release's rendered manifest, with its Secrets"}
	got := ghaction.Summary(rep)
	want := "| Backup encryption | ⚠️ none: the stored bundle holds the release's values; the release's rendered manifest, with its Secrets, " +
		"in plain text: whoever can read `artifact:identity-r4-20250314T092653Z` or `path:/backups/identity-r4-20250314T092653Z` can read them " +
		"(give backup-encryption-recipients) |"
	if !strings.Contains(got, want) {
		t.Errorf("summary lacks\n%s\n%s", want, got)
	}
	bk.Encrypted = true
	if got := ghaction.Summary(rep); !strings.Contains(got, "| Backup encryption | age, every file of the bundle |") || strings.Contains(got, "plain text") {
		t.Errorf("encrypted bundle:\n%s", got)
	}
	bk.Encrypted, bk.Secrets = false, nil
	if got := ghaction.Summary(rep); strings.Contains(got, "Backup encryption") {
		t.Errorf("a bundle without secrets has an encryption row:\n%s", got)
	}
}

// The summary lists the customizations saved, by kind with counts and names, what was not
// saved and why, and the theme check's result; never content.
func TestSummaryCustomizations(t *testing.T) {
	rep := reports()["success"]
	rep.Customizations = &rollout.Customizations{
		Saved:    []rollout.Saved{{Kind: "Secrets", Names: []string{"kc-realm", "kc-db"}}, {Kind: "themes", Names: []string{"acme"}}},
		Warnings: []string{"themes of pod identity-id-keycloak-1 not read: forbidden"},
	}
	acme := rollout.ThemeUse{Realm: "alfresco", Kind: "login", Theme: "acme", Origin: "init container theme-acme (image acme/theme:1)"}
	rep.ThemeCheck = &rollout.ThemeCheck{Checked: 2, Version: "12.0.4", Missing: []rollout.ThemeUse{acme}}
	got := ghaction.Summary(rep)
	for _, want := range []string{
		"| Customizations | 2 Secrets (kc-realm, kc-db)<br>1 themes (acme)<br>⚠️ not saved: themes of pod identity-id-keycloak-1 not read: forbidden |",
		"| Theme check | ⚠️ Keycloak 12.0.4 lacks 1 of the 2 themes the realms name: realm alfresco: login theme \"acme\" (init container theme-acme (image acme/theme:1)) |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks\n%s\n%s", want, got)
		}
	}
	rep.ThemeCheck = &rollout.ThemeCheck{Skipped: "keycloak-url, keycloak-admin-user and keycloak-admin-password are not all given"}
	if got := ghaction.Summary(rep); !strings.Contains(got, "| Theme check | ⏭ skipped: keycloak-url, keycloak-admin-user and keycloak-admin-password are not all given |") {
		t.Errorf("skipped theme check:\n%s", got)
	}
}

// A plan's summary says which themes the realms name, or why the theme check will be skipped.
func TestSummaryPlanThemes(t *testing.T) {
	rep := reports()["success"]
	rep.Plan.Themes = &rollout.ThemePlan{Uses: []rollout.ThemeUse{{Realm: "alfresco", Kind: "login", Theme: "acme", Origin: "init container theme-acme (image acme/theme:1) of revision 4"}}}
	if got := ghaction.Summary(rep); !strings.Contains(got, "| Themes | realm alfresco: login theme \"acme\" (init container theme-acme (image acme/theme:1) of revision 4) |") {
		t.Errorf("summary:\n%s", got)
	}
	rep.Plan.Themes = &rollout.ThemePlan{Skipped: "keycloak-url, keycloak-admin-user and keycloak-admin-password are not all given"}
	if got := ghaction.Summary(rep); !strings.Contains(got, "| Themes | ⏭ not known (keycloak-url, keycloak-admin-user and keycloak-admin-password are not all given): the theme check after the upgrade is skipped |") {
		t.Errorf("summary:\n%s", got)
	}
}
